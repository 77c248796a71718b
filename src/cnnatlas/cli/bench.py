"""`cnnatlas bench MODEL`: inference speed of any model (a registry name, torchvision:NAME, timm:NAME, a file's
factory or a training run folder), a registry model optionally against torchvision's same architecture."""

from __future__ import annotations

import math

import torch

from ..bench import inference_runner, parse_input, parse_sizes, summarize, time_alternately
from ..errors import CnnAtlasError, InvalidArgumentError
from ..loading import LoadedModel
from ..registry import get_entry
from ..train import load_run_or_model
from .argtypes import MODEL_HELP, add_model_arg, model_args
from .console import NUMBER, command_console, figure_table, print_json

MAX_ROUNDS = 10_000  # timed or warm-up runs: more measures nothing new, and a typo of 10**20 never ends
MAX_INPUT_GIB = 16  # float32 input batch


def _torchvision_twin(model: str, entry, ours):
    """--vs: torchvision's model of the same name, holding our weights."""
    if entry is None:
        raise InvalidArgumentError(f"--vs torchvision times a registry model against torchvision's; got {model}")
    if not entry.torchvision:
        raise InvalidArgumentError(f"{model} has no torchvision counterpart to compare with")
    import torchvision

    from ..weights import load_torchvision_weights

    theirs = getattr(torchvision.models, entry.torchvision)(**_tv_kwargs(entry.torchvision)).eval()
    load_torchvision_weights(ours, theirs.state_dict())
    return theirs


def _time_batches(args, entry, label: str, ours, theirs, sample, batches, device, autocast) -> list:
    """Time each batch size, the models alternating; with --vs, ours against torchvision's as a ratio."""
    rows = []
    for batch in batches:
        x = torch.randn((batch,) + tuple(sample), device=device)
        runners = {label: inference_runner(ours, x, autocast=autocast)}
        if theirs is not None:
            runners[f"torchvision {entry.torchvision}"] = inference_runner(theirs, x, autocast=autocast)
        times = time_alternately(runners, warmup=args.warmup, repeats=args.repeats)
        results = [summarize(name, batch, secs) for name, secs in times.items()]
        if theirs is not None:
            results[0].ratio_vs = results[0].images_per_s / results[1].images_per_s
        rows.extend(results)
    return rows


def _print_table(rows: list, sample, device: torch.device) -> None:
    """The timings as a table titled with the input and where they were measured."""
    where = (
        f"{torch.cuda.get_device_name(device)}, float16 autocast"
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    table = figure_table(f"Inference, eval mode, input {'×'.join(map(str, sample))}, {where}, measured here")
    for col in ("model", "batch", "images/s", "p50 ms", "p95 ms", "ratio"):
        table.add_column(col, **({"no_wrap": True} if col == "model" else NUMBER))
    for r in rows:
        table.add_row(
            r.model,
            str(r.batch),
            f"{r.images_per_s:.1f}",
            f"{r.latency_ms_p50:.1f}",
            f"{r.latency_ms_p95:.1f}",
            "" if r.ratio_vs is None else f"{r.ratio_vs:.2f}×",
        )
    command_console().print(table)


def _run(args) -> int:
    """`cnnatlas bench`: check the rounds and input size, build the model(s), time them, print JSON or a table."""
    batches = parse_sizes(args.batch, "--batch")
    if not 1 <= args.repeats <= MAX_ROUNDS or not 0 <= args.warmup <= MAX_ROUNDS:
        raise InvalidArgumentError(
            f"--repeats must be ≥ 1 and --warmup ≥ 0, both at most {MAX_ROUNDS}; got {args.repeats} and {args.warmup}"
        )
    device = _device(args.device)
    autocast = torch.float16 if device.type == "cuda" else None  # GPUs run under float16 autocast
    loaded = load_run_or_model(args.model, meta=False, model_args=model_args(args.model_arg))  # from seed 0
    entry = get_entry(loaded.registry_name) if loaded.registry_name else None
    sample = _sample(args.input, loaded, entry)
    gib = max(batches) * math.prod(sample) * 4 / 2**30
    if gib > MAX_INPUT_GIB:  # refused before torch.randn asks the system for it
        raise InvalidArgumentError(
            f"--batch {max(batches)} of {'×'.join(map(str, sample))} inputs takes "
            f"{gib:,.1f} GiB; expected at most {MAX_INPUT_GIB} GiB of input"
        )
    ours = loaded.model.eval()
    theirs = _torchvision_twin(loaded.label, entry, ours) if args.vs else None
    label = loaded.label
    ours = ours.to(device)
    theirs = theirs.to(device) if theirs is not None else None
    _runs_once(ours, label, sample, device, autocast)
    if args.optimize:
        from ..optimize import optimize

        ours = optimize(ours, example_input=torch.randn((1,) + tuple(sample), device=device))
        label += " (optimized)"
    rows = _time_batches(args, entry, label, ours, theirs, sample, batches, device, autocast)
    if args.json:
        print_json([r.as_dict() for r in rows])
        return 0
    _print_table(rows, sample, device)
    return 0


def _runs_once(model, label: str, sample: tuple[int, ...], device: torch.device, autocast) -> None:
    """Run the model once on one sample, so that an input it cannot take is named in one line."""
    try:
        inference_runner(model, torch.randn((1, *sample), device=device), autocast=autocast)()
    except CnnAtlasError:
        raise
    except Exception as err:  # noqa: BLE001 — any model's forward: say what failed, in one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise InvalidArgumentError(
            f"{label} does not run on a {'×'.join(map(str, sample))} input: {type(err).__name__}: {first}"
        ) from None


def _sample(text: str | None, loaded: LoadedModel, entry) -> tuple[int, ...]:
    """One input sample's shape: --input, read against the model's own input (a registry model's, a run's
    or a torchvision/timm model's), or that input itself."""
    own = tuple(entry.input_size) if entry else (tuple(loaded.input_size[1:]) if loaded.input_size else None)
    if own is not None:
        return parse_input(text, own[0], len(own) - 1) if text is not None else own
    sizes = (text or "").lower().split("x")
    if len(sizes) < 2:
        raise InvalidArgumentError(
            f"{loaded.label} does not say what input it takes; give one sample's channels and sizes, "
            f"e.g. --input 3x224x224{f'; got {text!r}' if text else ''}"
        )
    return parse_input(text, 0, len(sizes) - 1)


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError("--device cuda: no CUDA GPU is visible to torch (use --device cpu or auto)")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def _tv_kwargs(name: str) -> dict:
    # GoogLeNet and Inception-v3 would otherwise transform their inputs and build auxiliary heads
    return (
        {"init_weights": True, "transform_input": False, "aux_logits": False}
        if name in ("googlenet", "inception_v3")
        else {}
    )


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="inference images/s and latency, optionally against torchvision")
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--batch", default="1,16", help="comma-separated batch sizes (default 1,16)")
    p.add_argument("--input", help="one sample's size: 224, 224x224 or 3x224x224 (default: the model's)")
    add_model_arg(p)
    p.add_argument("--vs", choices=["torchvision"], help="also time torchvision's same architecture, alternately")
    p.add_argument("--optimize", action="store_true", help="time cnnatlas.optimize(model) instead of the plain model")
    p.add_argument("--repeats", type=int, default=10, help="timed rounds after warm-up (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    p.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="where to run: the GPU under float16 autocast when present (auto), or as named",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_run)
