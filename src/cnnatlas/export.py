"""Export a model for deployment: ONNX (for onnxruntime and friends) and TorchScript."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import torch
from torch import nn

from .errors import CnnAtlasError, require


class ExportError(CnnAtlasError, RuntimeError):
    """The exporter could not write the model."""


def export_onnx(model: nn.Module, path: str | Path, example_input: torch.Tensor, *, opset: int = 17) -> Path:
    """Write `model` (eval mode) as ONNX with a dynamic batch axis; input "input", output "logits"."""
    require("onnx", "export", "ONNX export")  # torch.onnx writes the file with it
    path = Path(path)
    model = model.eval()
    kwargs = dict(
        input_names=["input"],
        output_names=["logits"],
        opset_version=opset,
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # the TorchScript-based exporter: no extra dependencies, dynamic_axes honoured
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about the input checks, which trace as constants
            torch.onnx.export(model, (example_input,), str(path), **kwargs)
    except Exception as err:  # the exporter raises many types; report one clear error
        raise ExportError(f"ONNX export of {type(model).__name__} to {path} failed: {err}") from err
    return path


def export_torchscript(model: nn.Module, path: str | Path, example_input: torch.Tensor) -> Path:
    """Write `model` (eval mode) as a traced TorchScript module, loadable with torch.jit.load."""
    path = Path(path)
    model = model.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, example_input)
        traced.save(str(path))
    except Exception as err:
        raise ExportError(f"TorchScript export of {type(model).__name__} to {path} failed: {err}") from err
    return path
