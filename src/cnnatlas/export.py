"""Export a model for deployment: ONNX (for onnxruntime and friends) and TorchScript.

Neither replaces a file it could not have written (a user's notes, or a checkpoint saved with torch.save
under the same name): an existing file is overwritten only where it is itself an ONNX model or a
TorchScript archive. The file is written beside its place and moved there whole, so an export that fails
leaves what was there as it was."""

from __future__ import annotations

import inspect
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .errors import CnnAtlasError, require
from .files import written_whole


class ExportError(CnnAtlasError, RuntimeError):
    """The exporter could not write the model."""


def export_onnx(model: nn.Module, path: str | Path, example_input: torch.Tensor, *, opset: int = 17) -> Path:
    """Write `model` (eval mode) as ONNX with a dynamic batch axis; input "input", output "logits"."""
    require("onnx", "export", "ONNX export")  # torch.onnx writes the file with it
    model = model.eval()
    kwargs = dict(
        input_names=["input"],
        output_names=["logits"],
        opset_version=opset,
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # the TorchScript-based exporter: no extra dependencies, dynamic_axes honoured

    def write(target: Path) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about the input checks, which trace as constants
            torch.onnx.export(model, (example_input,), str(target), **kwargs)

    return _write_whole(Path(path), "ONNX", _is_onnx, write, model)


def export_torchscript(model: nn.Module, path: str | Path, example_input: torch.Tensor) -> Path:
    """Write `model` (eval mode) as a traced TorchScript module, loadable with torch.jit.load."""
    model = model.eval()

    def write(target: Path) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, example_input)
        traced.save(str(target))

    return _write_whole(Path(path), "TorchScript", _is_torchscript, write, model)


def _write_whole(path: Path, kind: str, is_kind: Callable[[Path], bool], write: Callable[[Path], None], model) -> Path:
    """`write` the export to a file beside `path`, then move it to `path` in one step; refused where `path`
    is a folder, or a file that is not already a `kind` model."""
    if path.is_dir():
        raise ExportError(f"{path}: a folder; expected a file name for the {kind} model")
    if path.exists() and not is_kind(path):
        raise ExportError(
            f"{path} exists and is not {'an' if kind[0] in 'AEIOU' else 'a'} {kind} model (a file of yours?); "
            f"expected a new file name, or an earlier {kind} export to replace: choose another name, or move that "
            "file away first"
        )
    try:
        with written_whole(path) as partial:
            write(partial)
    except Exception as err:  # the exporters raise many types; report one clear error
        raise ExportError(f"{kind} export of {type(model).__name__} to {path} failed: {err}") from err
    return path


def _is_onnx(path: Path) -> bool:
    """An ONNX model: the file parses as one, with a graph of at least one node and a producer."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 — anything that does not parse is not one
        return False
    return len(proto.graph.node) > 0 and bool(proto.producer_name)


def _is_torchscript(path: Path) -> bool:
    """A TorchScript archive: a zip whose top folder holds code/ (torch.save's archives have none)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.split("/")[1:2] == ["code"] for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
