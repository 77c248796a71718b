"""`cnnatlas export MODEL --onnx FILE [--torchscript FILE]`."""

from __future__ import annotations

from pathlib import Path

import torch

from ..bench import parse_input
from ..errors import InvalidArgumentError
from ..registry import create_model, get_entry


def _run(args) -> int:
    if not args.onnx and not args.torchscript:
        raise InvalidArgumentError("give --onnx FILE and/or --torchscript FILE")
    for target in (args.onnx, args.torchscript):
        if target and not Path(target).parent.resolve().is_dir():
            raise InvalidArgumentError(f"cannot write {target}: folder {Path(target).parent} does not exist")
    entry = get_entry(args.model)
    model = create_model(args.model).eval()
    if args.weights:
        from safetensors.torch import load_file

        try:
            model.load_state_dict(load_file(args.weights))
        except Exception as err:
            raise InvalidArgumentError(f"could not load weights from {args.weights}: {err}") from None
    sample = parse_input(args.input, model.in_channels, model.dims) if args.input else entry.input_size
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


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="write a model as ONNX and/or TorchScript")
    p.add_argument("model")
    p.add_argument("--onnx", metavar="FILE")
    p.add_argument("--torchscript", metavar="FILE")
    p.add_argument("--input", help="one sample's size: 224, 224x224 or 3x224x224 (default: the model's)")
    p.add_argument("--weights", metavar="FILE", help="a safetensors state dict to load first (default: random weights)")
    p.add_argument("--optimize", action="store_true", help="fold batch norm into the convolutions first")
    p.set_defaults(run=_run)
