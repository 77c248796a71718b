"""`cnnatlas export RUN_DIR|MODEL --onnx FILE [--torchscript FILE]`: a trained run's model (built for its
data, with its verified final weights), or a zoo model with random weights or those of --weights."""

from __future__ import annotations

from pathlib import Path

import torch

from ..bench import parse_input
from ..errors import InvalidArgumentError
from ..registry import get_entry
from ..zoo import create_model
from .argtypes import add_model_arg, model_args


def _run(args) -> int:
    if not args.onnx and not args.torchscript:
        raise InvalidArgumentError("give --onnx FILE and/or --torchscript FILE")
    for target in (args.onnx, args.torchscript):
        if target and not Path(target).parent.resolve().is_dir():
            raise InvalidArgumentError(f"cannot write {target}: folder {Path(target).parent} does not exist")
    kwargs = model_args(args.model_arg)
    if Path(args.model).is_dir():  # a run folder (one named as a model too)
        for flag, given in (("--weights", args.weights), ("--model-arg", kwargs)):
            if given:
                raise InvalidArgumentError(f"{flag} is for a zoo model name; {args.model} is a run folder")
        (model, size), default_size = _run_model(args.model), None
    else:
        default_size = get_entry(args.model).input_size  # an unknown name fails here, with its hint
        weighted = _model_with_weights(args.model, args.weights, kwargs) if args.weights else None
        model, size = weighted or (create_model(args.model, **kwargs), None)
        default_size = getattr(model, "default_input_size", None) or default_size  # as built (in_channels=…)
    model.eval()
    sample = (
        parse_input(args.input, model.in_channels, model.dims, batched=False) if args.input else size or default_size
    )
    x = torch.randn((1,) + tuple(sample))
    if args.optimize:
        from ..optimize import optimize

        model = optimize(model, example_input=x).model  # folded, channels_last; plain module for export
    from ..export import export_onnx, export_torchscript

    if args.onnx:
        print(f"wrote {export_onnx(model, args.onnx, x)}")
    if args.torchscript:
        print(f"wrote {export_torchscript(model, args.torchscript, x)}")
    return 0


def _model_with_weights(name: str, weights: str, kwargs: dict) -> tuple[torch.nn.Module, tuple[int, ...] | None]:
    """MODEL with the weights of a run folder (its verified final weights, built for its data), of a
    checkpoint folder, of a .safetensors file a run wrote (checked against the SHA-256 it recorded), or
    its published weights: a tag `cnnatlas info MODEL` lists, or a file in a reference's format (the
    published file itself, a torchvision, timm or PyTorchVideo state dict), as `create_model` loads them."""
    from ..train import fit_weights, load_checkpoint, load_verified_weights
    from ..train.checkpoint import recorded_sha256
    from ..train.folder import is_run_folder

    path = Path(weights)
    if path.is_dir() and is_run_folder(path):
        if kwargs:
            raise InvalidArgumentError(
                f"--model-arg builds a model anew; --weights {weights} is a run, built as trained"
            )
        trained = _trained_model_name(path)
        if trained != name:
            raise InvalidArgumentError(f"--weights {weights}: a run of {trained}; expected one of {name}")
        return _run_model(path)
    if not path.is_dir() and (not path.is_file() or recorded_sha256(path) is None):
        return create_model(name, weights=weights, **kwargs), None  # a published tag or a reference's file
    tensors = load_checkpoint(path).weights if path.is_dir() else load_verified_weights(path)
    model = create_model(name, **kwargs)
    fit_weights(model, tensors, weights, f"{name} as registered (a run folder as --weights builds it for its data)")
    return model, None


def _run_model(run_dir: str | Path) -> tuple[torch.nn.Module, tuple[int, ...]]:
    """A run's model, built for its data with its verified final weights, and one input sample's size."""
    from ..train import load_run_model

    loaded = load_run_model(run_dir)
    return loaded.model, loaded.input_size[1:]


def _trained_model_name(run_dir: str | Path) -> str:
    """The registered model a run folder trained (its config.json)."""
    from ..train import read_run_config

    return read_run_config(Path(run_dir))[0].model


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="write a model as ONNX and/or TorchScript")
    p.add_argument("model", metavar="RUN_DIR|MODEL", help="a run folder, or a zoo model name")
    p.add_argument("--onnx", metavar="FILE", help="write the model as an ONNX graph to FILE")
    p.add_argument("--torchscript", metavar="FILE", help="write the model as TorchScript to FILE")
    p.add_argument("--input", help="one sample's size: 224, 224x224 or 3x224x224 (default: the model's)")
    add_model_arg(p, "the zoo model")
    p.add_argument(
        "--weights",
        metavar="TAG|PATH",
        help="the weights to load first: a run folder, a checkpoint folder, a .safetensors file a run wrote, a "
        "published tag from `cnnatlas info MODEL`, or a torchvision/timm state dict (default: random weights)",
    )
    p.add_argument("--optimize", action="store_true", help="fold batch norm into the convolutions first")
    p.set_defaults(run=_run)
