"""`cnnatlas plot KIND ... --out FILE`: one picture, drawn from what cnnatlas measures.

Kinds: rf-growth, pareto, erf, feature-maps, filters, equivariance, training, confusion, diagram, roofline.
FILE ends in .png or .svg (a diagram also takes .dot for the Graphviz source).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidArgumentError
from .argtypes import FRACTION, MODEL_HELP, PATH, add_model_arg, integer, model_args, out_file, writing
from .inputs import parse_shape
from .roofline import add_machine_args


def _out(args) -> Path:
    return Path(args.out)


def _rf_growth(args) -> None:
    from ..viz import plot_rf_growth
    from ..viz.fields import RF_GROWTH_MODELS

    plot_rf_growth(args.models or list(RF_GROWTH_MODELS), out=_out(args))


def _pareto(args) -> None:
    from ..viz import plot_pareto
    from ..viz.atlas import select_models

    plot_pareto(select_models(args.models) if args.models is not None else None, out=_out(args))


def _model(args, meta: bool = True):
    """MODEL as named, or a model built with the --model-arg pairs (on the meta device where `meta`
    allows it; with real weights, from seed 0, for pictures of what the weights compute)."""
    kwargs = model_args(args.model_arg)
    if not kwargs:
        return args.model
    from ..train import load_run_or_model

    return load_run_or_model(args.model, meta=meta, model_args=kwargs)


def _erf(args) -> None:
    from ..viz import plot_erf

    size = parse_shape(args.input) if args.input is not None else None
    plot_erf(
        _model(args, meta=False),
        size,
        samples=args.samples,
        fraction=args.fraction,
        layer=args.layer,
        cap=args.max_size,
        out=_out(args),
    )


def _feature_maps(args) -> None:
    from ..viz import plot_feature_maps

    layers = [s.strip() for s in args.layers.split(",") if s.strip()] if args.layers is not None else None
    if layers == []:
        raise InvalidArgumentError(f"--layers: expected module paths separated by commas; got {args.layers!r}")
    plot_feature_maps(
        _model(args, meta=False),
        args.image,
        layers,
        channels=args.channels,
        checkpoint=args.checkpoint,
        sample=args.sample,
        frame=args.frame,
        out=_out(args),
    )


def _filters(args) -> None:
    from ..viz import plot_filters

    plot_filters(_model(args, meta=False), checkpoint=args.checkpoint, out=_out(args))


def _equivariance(args) -> None:
    from ..viz import plot_equivariance

    plot_equivariance(args.image, tuple(args.shift), channel=args.channel, out=_out(args))


def _training(args) -> None:
    from ..viz import plot_training

    plot_training(args.run_dir, out=_out(args))


def _confusion(args) -> None:
    from ..viz import plot_confusion

    plot_confusion(args.run_dir, out=_out(args), data=args.data, checkpoint=args.checkpoint)


def _diagram(args) -> None:
    from ..viz import plot_diagram

    size = parse_shape(args.input) if args.input is not None else None
    plot_diagram(_model(args), args.block, depth=args.depth, input_size=size, out=_out(args))


def _roofline(args) -> None:
    from ..viz.roofline import plot_roofline
    from .summary import machine_of

    size = parse_shape(args.input) if args.input is not None else None
    plot_roofline(_model(args), size, machine_of(args), out=_out(args))


def _run(args) -> int:
    if not getattr(args, "draw", None):
        raise InvalidArgumentError(
            "plot needs a KIND: rf-growth, pareto, erf, feature-maps, filters, equivariance, "
            "training, confusion, diagram or roofline (see 'cnnatlas plot --help')"
        )
    suffixes = (".svg", ".png", ".dot", ".gv") if args.kind == "diagram" else (".png", ".svg")
    if Path(args.out).suffix.lower() not in suffixes:
        raise InvalidArgumentError(f"--out must end in {', '.join(suffixes)}; got {args.out!r}")
    from ..viz.common import is_cnnatlas_picture

    if Path(args.out).exists() and not is_cnnatlas_picture(args.out):
        raise InvalidArgumentError(
            f"--out {args.out}: a file that is not a picture cnnatlas drew (a photograph of yours? --image takes "
            "the input); expected a new file name, or an earlier picture to replace: choose another --out, or "
            "move that file away first"
        )
    with writing(args.out):
        args.draw(args)
    print(f"wrote {args.out}")
    return 0


_IMAGE_HELP = "any image file (default: the photograph matplotlib ships)"
_CHECKPOINT_HELP = "a checkpoint of the run instead of its final weights"


def _rf_growth_args(k) -> None:
    """Arguments of `plot rf-growth`: the models compared."""
    k.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="models (default: vgg16 resnet50 inception_v3 densenet121 mobilenet_v2 efficientnet_b0)",
    )


def _pareto_args(k) -> None:
    """Arguments of `plot pareto`: which models."""
    k.add_argument(
        "--models",
        metavar="PATTERN",
        help="models to include: a pattern or comma list (default: all with a published ImageNet top-1)",
    )


def _erf_args(k) -> None:
    """Arguments of `plot erf`: model, input, samples, mass fraction and probed layer."""
    k.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    add_model_arg(k)
    k.add_argument(
        "--input",
        metavar="SHAPE",
        help="input with batch, e.g. 1x3x128x128 (default: the model's, sides capped at --max-size)",
    )
    k.add_argument(
        "--max-size", type=integer(1), default=224, metavar="PX", help="cap on the default input's sides (224)"
    )
    k.add_argument("--samples", type=integer(1), default=8, help="random inputs averaged (default 8)")
    k.add_argument("--fraction", type=FRACTION, default=0.95, help="gradient mass the ERF square holds (0.95)")
    k.add_argument("--layer", metavar="NAME", help="module whose centre unit is probed (default: the last spatial map)")


def _feature_maps_args(k) -> None:
    """Arguments of `plot feature-maps`: model or run, image, layers, channels, checkpoint."""
    k.add_argument("model", metavar="MODEL", help="a model name (initialised weights) or a training run folder")
    add_model_arg(k)
    k.add_argument(
        "--image",
        type=PATH,
        metavar="PATH",
        help="any image file (default: for a run, an image of its own test set, --sample; else the photograph "
        "matplotlib ships)",
    )
    k.add_argument(
        "--sample",
        type=integer(0),
        metavar="N",
        help="for a run without --image: item N of its test set (default 0)",
    )
    k.add_argument(
        "--frame",
        type=integer(0),
        metavar="T",
        help="for a run on clips: the frame shown (default the middle one); each layer's maps at its time step",
    )
    k.add_argument(
        "--layers",
        metavar="A,B",
        help="module paths, as `cnnatlas rf MODEL` lists them (default: the stage outputs of more than one pixel)",
    )
    k.add_argument("--channels", type=integer(1), default=8, help="maps per layer (default 8)")
    k.add_argument("--checkpoint", type=PATH, metavar="DIR", help=_CHECKPOINT_HELP)


def _filters_args(k) -> None:
    """Arguments of `plot filters`: the run and its checkpoint."""
    k.add_argument("model", metavar="RUN_DIR", help="a training run folder (or a model name: initial weights)")
    add_model_arg(k)
    k.add_argument("--checkpoint", type=PATH, metavar="DIR", help=_CHECKPOINT_HELP)


def _equivariance_args(k) -> None:
    """Arguments of `plot equivariance`: image, shift and channel shown."""
    k.add_argument("--image", type=PATH, metavar="PATH", help=_IMAGE_HELP)
    k.add_argument(
        "--shift", type=integer(None), nargs=2, default=(9, 17), metavar=("DY", "DX"), help="the shift (9 17)"
    )
    k.add_argument("--channel", type=integer(0), default=0, help="feature channel shown (default 0)")


def _training_args(k) -> None:
    """Arguments of `plot training`: the run."""
    k.add_argument("run_dir", type=PATH, metavar="RUN_DIR", help="a training run's folder")


def _confusion_args(k) -> None:
    """Arguments of `plot confusion`: the run, the data evaluated and the checkpoint."""
    k.add_argument("run_dir", type=PATH, metavar="RUN_DIR", help="a training run's folder")
    k.add_argument("--data", metavar="DATA", help="evaluate on this dataset's test set (default: the run's)")
    k.add_argument("--checkpoint", type=PATH, metavar="DIR", help=_CHECKPOINT_HELP)


def _diagram_args(k) -> None:
    """Arguments of `plot diagram`: model, block, depth and input."""
    k.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    add_model_arg(k)
    k.add_argument(
        "--block",
        metavar="NAME",
        help="draw one block, operator by operator: a module path "
        "(stages.0.0) or class (Bottleneck, InceptionA, SqueezeExcite)",
    )
    k.add_argument(
        "--depth",
        type=integer(1),
        metavar="N",
        help="module depth of a whole-model diagram (default: the deepest that stays readable)",
    )
    k.add_argument("--input", metavar="SHAPE", help="input with batch, e.g. 1x3x224x224")


def _roofline_args(k) -> None:
    """Arguments of `plot roofline`: model, input and the machine's peaks (measured when not given)."""
    k.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    add_model_arg(k)
    k.add_argument("--input", metavar="SHAPE", help="input with batch, e.g. 1x3x224x224")
    add_machine_args(k, "peak compute (default: measured)", "memory bandwidth in GB/s (default: measured)")


# (name, drawing function, help, arguments) of each plot kind, in the order `plot --help` lists them
_KINDS = (
    (
        "rf-growth",
        _rf_growth,
        "receptive field against depth (log scale) for several models, from the analyser",
        _rf_growth_args,
    ),
    ("pareto", _pareto, "published top-1 against measured MACs for the zoo, the Pareto front marked", _pareto_args),
    ("erf", _erf, "effective receptive field heat map beside the analytic field", _erf_args),
    ("feature-maps", _feature_maps, "feature maps of chosen layers for a real image", _feature_maps_args),
    ("filters", _filters, "first-layer filters of a trained checkpoint", _filters_args),
    (
        "equivariance",
        _equivariance,
        "an input, its shift, both feature maps, and the pooled (invariant) output",
        _equivariance_args,
    ),
    ("training", _training, "loss and accuracy curves of a training run", _training_args),
    ("confusion", _confusion, "confusion matrix of a training run on its test set", _confusion_args),
    (
        "diagram",
        _diagram,
        "the architecture from the traced operator graph (Graphviz), shapes, parameters and MACs on the nodes",
        _diagram_args,
    ),
    (
        "roofline",
        _roofline,
        "each operator of a model on this machine's roofline (log-log: attainable FLOP/s against FLOPs per byte)",
        _roofline_args,
    ),
)


def add_parser(sub) -> None:
    """The `plot` command: one sub-command per picture, each with --out and its own arguments."""
    p = sub.add_parser(
        "plot",
        help="draw one picture: rf-growth, pareto, erf, feature-maps, filters, equivariance, "
        "training, confusion, diagram, roofline",
        description="Draw one picture from what cnnatlas measures; --out FILE.png or FILE.svg.",
    )
    p.set_defaults(run=_run, draw=None)
    kinds = p.add_subparsers(dest="kind", metavar="KIND", parser_class=type(p))
    for name, draw, help, add_args in _KINDS:
        k = kinds.add_parser(name, help=help, description=help)
        k.add_argument("--out", type=out_file, required=True, metavar="FILE", help="output file, .png or .svg")
        k.set_defaults(draw=draw)
        add_args(k)
