"""`cnnatlas summary MODEL`: shapes, parameters, MACs, memory and receptive field of any model.

MODEL is a registry name (`resnet50`), `torchvision:NAME`, `timm:NAME` or `path/to/file.py:factory`
(a function returning an nn.Module). Models are built on the meta device where they allow it, and
analysed on meta tensors: no weights are initialised and no real arithmetic runs.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from ..analysis import Report, analyze
from ..errors import CnnAtlasError, InvalidArgumentError, UnknownModelError, did_you_mean, require
from .argtypes import integer

_VIDEO_TV = {"r3d_18", "mc3_18", "r2plus1d_18", "s3d", "mvit_v1_b", "mvit_v2_s", "swin3d_t", "swin3d_s", "swin3d_b"}


@dataclass
class LoadedModel:
    model: torch.nn.Module
    label: str
    input_size: tuple[int, ...] | None  # full input shape with batch 1, when known
    registry_name: str | None = None


def _build(factory, label: str, meta: bool = True) -> torch.nn.Module:
    """Build on the meta device (no memory, no initialisation); fall back to the CPU if the
    constructor needs real values. meta=False builds with real, initialised weights."""
    if not meta:
        return factory()
    try:
        with torch.device("meta"):
            return factory()
    except CnnAtlasError:
        raise
    except Exception:  # noqa: BLE001 — some constructors compute with tensor values
        return factory()


def load_model(spec: str, meta: bool = True) -> LoadedModel:
    """Resolve MODEL: registry name, torchvision:NAME, timm:NAME or path/to/file.py:factory.
    meta=True builds on the meta device where the constructor allows it."""
    if spec.startswith("torchvision:"):
        return _torchvision(spec.split(":", 1)[1], meta)
    if spec.startswith("timm:"):
        return _timm(spec.split(":", 1)[1], meta)
    if re.search(r"\.py:[A-Za-z_][A-Za-z0-9_]*$", spec):
        return _from_file(spec, meta)
    from ..registry import create_model, get_entry, list_models

    if spec not in list_models():
        raise UnknownModelError(
            f"unknown model {spec!r}.{did_you_mean(spec, list_models())} Use a registry name (`cnnatlas models`), "
            "torchvision:NAME, timm:NAME or path/to/file.py:factory.")
    entry = get_entry(spec)
    pub = entry.published
    size = pub.input_size if pub.input_size and len(pub.input_size) == len(entry.input_size) else entry.input_size
    return LoadedModel(_build(lambda: create_model(spec), spec, meta), spec, (1,) + tuple(size), spec)


def _torchvision(name: str, meta: bool) -> LoadedModel:
    import torchvision

    available = torchvision.models.list_models()
    if name not in available:
        raise UnknownModelError(f"torchvision has no model {name!r}.{did_you_mean(name, available)}")
    model = _build(lambda: torchvision.models.get_model(name), f"torchvision:{name}", meta)
    size: tuple[int, ...] = (1, 3, 224, 224)
    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        crop = weights.transforms().crop_size
        crop = list(crop) * (2 // len(crop)) if len(crop) < 2 else list(crop)
        size = (1, 3, 16, *crop) if name in _VIDEO_TV else (1, 3, *crop)
    except Exception:  # noqa: BLE001 — no weights metadata: keep the ImageNet default
        if name in _VIDEO_TV:
            size = (1, 3, 16, 112, 112)
    return LoadedModel(model, f"torchvision:{name}", size)


def _timm(name: str, meta: bool) -> LoadedModel:
    timm = require("timm", "timm", "timm:NAME")
    if name not in timm.list_models():
        raise UnknownModelError(f"timm has no model {name!r}.{did_you_mean(name, timm.list_models())}")
    model = _build(lambda: timm.create_model(name, pretrained=False), f"timm:{name}", meta)
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = (1, *cfg["input_size"]) if cfg.get("input_size") else None
    return LoadedModel(model, f"timm:{name}", size)


def _from_file(spec: str, meta: bool) -> LoadedModel:
    path_str, factory_name = spec.rsplit(":", 1)
    path = Path(path_str)
    if not path.is_file():
        raise InvalidArgumentError(f"{spec}: no file {path_str!r}")
    module_spec = importlib.util.spec_from_file_location(f"_cnnatlas_user_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 — the user's file: say where it failed
        raise InvalidArgumentError(f"{spec}: importing {path_str} failed: {type(err).__name__}: {err}") from err
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        names = [n for n in vars(module) if callable(vars(module)[n]) and not n.startswith("_")]
        raise InvalidArgumentError(f"{spec}: {path_str} has no callable {factory_name!r}.{did_you_mean(factory_name, names)}")
    model = _build(factory, spec, meta)
    if not isinstance(model, torch.nn.Module):
        raise InvalidArgumentError(f"{spec}: {factory_name}() returned {type(model).__name__}, not an nn.Module")
    size = getattr(module, "INPUT_SIZE", None)
    return LoadedModel(model, spec, tuple(size) if size else None)


def parse_shape(text: str) -> tuple[int, ...]:
    """'1x3x224x224' → (1, 3, 224, 224); several inputs separated by commas."""
    try:
        shape = tuple(int(p) for p in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise InvalidArgumentError(f"--input: expected sizes joined by 'x' such as 1x3x224x224; got {text!r}") from None
    if not shape or any(d < 1 for d in shape):
        raise InvalidArgumentError(f"--input: every size must be ≥ 1; got {text!r}")
    return shape


def parse_inputs(text: str | None, loaded: LoadedModel) -> list[tuple[int, ...]]:
    if text is None:
        if loaded.input_size is None:
            raise InvalidArgumentError(f"{loaded.label}: no default input size is known; give one with --input 1x3x224x224")
        return [loaded.input_size]
    return [parse_shape(part) for part in text.split(",")]


def _input_arg(shapes: list[tuple[int, ...]]) -> Any:
    return shapes[0] if len(shapes) == 1 else shapes


def fmt_count(n: float) -> str:
    """1234567 → '1.23 M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3f} {unit}" if unit == "G" else f"{n / scale:.2f} {unit}"
    return f"{n:g}"


def fmt_bytes(n: float) -> str:
    for unit, scale in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


def published_check(loaded: LoadedModel, report: Report) -> dict[str, Any] | None:
    """Measured MACs and parameters against the registry's published figures, when the input is theirs."""
    if loaded.registry_name is None:
        return None
    from ..registry import get_entry

    pub = get_entry(loaded.registry_name).published
    if pub.params is None and pub.gmacs is None:
        return None
    same_input = pub.input_size is not None and report.input_shapes == [(1, *pub.input_size)]
    macs = pub.macs_agreement(report.macs) if pub.gmacs is not None and same_input else None
    params = pub.params_agreement(report.params)
    return {"params": pub.params, "params_agreement": params.status, "params_text": params.text,
            "gmacs": pub.gmacs, "macs_agreement": None if macs is None else macs.status,
            "macs_text": None if macs is None else macs.text, "input_size": list(pub.input_size or []),
            "source": pub.citation}


def summary_table(report: Report, depth: int, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col, kw in (("layer", {"overflow": "fold"}), ("type", {}), ("output", {"no_wrap": True}),
                    ("params", {"justify": "right"}), ("MACs", {"justify": "right"}),
                    ("other FLOPs", {"justify": "right"}), ("RF size/stride", {"justify": "right"})):
        table.add_column(col, **kw)
    for row in report.rows(depth):
        name = row["name"] or "(model)"
        indent = "  " * (name.count(".")) if row["name"] else ""
        rf = row["receptive_field"]
        rf_text = "—" if rf is None else f"{_axes(rf.size)}/{_axes(rf.stride)}" + ("" if rf.exact else "≈")
        table.add_row(indent + name.rsplit(".", 1)[-1] if row["name"] else name, row["module_type"],
                      "×".join(map(str, row["output_shape"])), f"{row['params']:,}" if row["params"] else "",
                      fmt_count(row["macs"]) if row["macs"] else "", fmt_count(row["other_flops"]) if row["other_flops"] else "",
                      rf_text)
    return table


def _axes(v: tuple) -> str:
    return str(v[0]) if len(set(v)) == 1 else "×".join(map(str, v))


def print_totals(console: Console, report: Report, check: dict[str, Any] | None) -> None:
    console.print(f"input {', '.join('×'.join(map(str, s)) for s in report.input_shapes)} ({report.dtype}) → "
                  f"output {', '.join('×'.join(map(str, s)) for s in report.output_shapes)}")
    console.print(f"parameters: {report.params:,} ({report.trainable_params:,} trainable"
                  + (f"; {report.unused_params:,} not used by this forward" if report.unused_params else "") + ")")
    console.print(f"MACs: {report.macs:,} ({report.macs / 1e9:.3f} G) — FLOPs = 2 × MACs = {fmt_count(report.flops)}; "
                  f"other FLOPs (norm, activations, pooling, element-wise): {fmt_count(report.other_flops)}")
    console.print(f"memory: parameters {fmt_bytes(report.param_bytes)}, buffers {fmt_bytes(report.buffer_bytes)}, "
                  f"forward activations {fmt_bytes(report.activation_bytes)}, saved for backward "
                  f"{fmt_bytes(report.saved_activation_bytes)}; training step ≈ {fmt_bytes(report.training_peak_bytes)} "
                  "(params + grads + saved activations, optimizer state not included)")
    rf = report.receptive_field
    if rf is not None:
        where = f" at {report.receptive_field_layer}" if report.receptive_field_layer else ""
        console.print(f"receptive field{where} ({'×'.join(rf.axes)}): {rf}; effective padding {_axes(rf.padding)}"
                      + ("; every unit also sees the whole input through a global path" if rf.global_context else ""))
    if report.unsupported_ops:
        console.print("[yellow]operators without a cost formula (not counted): "
                      + ", ".join(f"{k} ×{v}" for k, v in report.unsupported_ops.items()) + "[/]")
    if check:
        if check["macs_agreement"] is not None:
            colour = "green" if check["macs_agreement"] == "exact" else "red"
            console.print(f"published MACs {check['gmacs']} G at {'×'.join(map(str, check['input_size']))}: "
                          f"[{colour}]{check['macs_text']}[/]")
        if check["params"] is not None:
            colour = {"exact": "green", "approx": "yellow"}.get(check["params_agreement"], "red")
            console.print(f"published parameters {check['params']:,}: [{colour}]{check['params_text']}[/]")
        if check["source"]:
            console.print(f"[dim]source: {check['source']}[/]")
    console.print(f"[dim]traced on meta tensors in {report.seconds * 1000:.0f} ms[/]")


def sweep_sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise InvalidArgumentError(f"--sweep: expected sizes separated by commas such as 128,224,320; got {text!r}") from None
    if not sizes:
        raise InvalidArgumentError(f"--sweep: expected sizes separated by commas such as 128,224,320; got {text!r}")
    if any(s < 1 for s in sizes):
        raise InvalidArgumentError(f"--sweep: sizes must be ≥ 1; got {text!r}")
    return sizes


def resized(shape: tuple[int, ...], size: int) -> tuple[int, ...]:
    """The input with its spatial sides set to `size` (H, W of images and videos; L of audio)."""
    if len(shape) <= 2:
        raise InvalidArgumentError(f"--sweep needs an input with spatial axes; got {'×'.join(map(str, shape))}")
    if len(shape) == 5:  # (N, C, T, H, W): time stays
        return shape[:3] + (size, size)
    return shape[:2] + (size,) * (len(shape) - 2)


def _run(args) -> int:
    from . import output_stride as os_

    strides = os_.output_strides(args.output_stride) if args.output_stride else []
    if len(strides) > 1:
        return os_.run_output_strides(args)
    loaded = os_.load_strided(args.model, strides[0]) if strides else load_model(args.model)
    shapes = parse_inputs(args.input, loaded)
    if args.sweep is not None:
        sizes = sweep_sizes(args.sweep)
        rows = []
        for size in sizes:
            inputs = [resized(shapes[0], size)] + shapes[1:]
            r = analyze(loaded.model, _input_arg(inputs))
            rows.append({"input": [list(s) for s in inputs], "macs": r.macs, "flops": r.flops,
                         "other_flops": r.other_flops, "activation_bytes": r.activation_bytes,
                         "training_peak_bytes": r.training_peak_bytes, "seconds": r.seconds,
                         "output_shapes": [list(s) for s in r.output_shapes]})
        if args.json:
            print(json.dumps({"model": loaded.label, "sweep": rows}, indent=1))
            return 0
        table = Table(title=f"{loaded.label}: cost against input size", title_justify="left")
        for col in ("input", "MACs", "other FLOPs", "activations", "training step", "trace"):
            table.add_column(col, justify="right" if col != "input" else "left")
        for row in rows:
            table.add_row(", ".join("×".join(map(str, s)) for s in row["input"]), fmt_count(row["macs"]),
                          fmt_count(row["other_flops"]), fmt_bytes(row["activation_bytes"]),
                          fmt_bytes(row["training_peak_bytes"]), f"{row['seconds'] * 1000:.0f} ms")
        Console().print(table)
        return 0
    report = analyze(loaded.model, _input_arg(shapes))
    check = published_check(loaded, report)
    if args.json:
        data = report.to_dict()
        data["model"] = loaded.label
        data["published"] = check
        print(json.dumps(data, indent=1))
        return 0
    console = Console()
    console.print(summary_table(report, args.depth, f"{loaded.label} ({report.model}) — modules to depth {args.depth}"))
    print_totals(console, report, check)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("summary", help="shapes, parameters, MACs, memory and receptive field of any model")
    p.add_argument("model", metavar="MODEL", help="registry name, torchvision:NAME, timm:NAME or path/to/file.py:factory")
    p.add_argument("--input", metavar="SHAPE", help="input shape with batch, e.g. 1x3x224x224; several inputs: 1x3x224x224,1x10")
    p.add_argument("--depth", type=integer(0), default=2, help="module depth of the table (default 2)")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.add_argument("--sweep", metavar="SIZES", help="MACs and memory at several input sizes, e.g. 128,224,320")
    from .output_stride import add_argument

    add_argument(p)
    p.set_defaults(run=_run)
