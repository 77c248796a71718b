"""`cnnatlas summary MODEL`: shapes, parameters, MACs, memory and receptive field of any model.

MODEL is a registry name (`resnet50`), `torchvision:NAME`, `timm:NAME` or `path/to/file.py:factory`
(a function returning an nn.Module). Models are built on the meta device where they allow it, and
analysed on meta tensors: no weights are initialised and no real arithmetic runs.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from ..analysis import Report, analyze
from ..errors import InvalidArgumentError
from ..loading import LoadedModel
from ..units import axes_text, fmt_bytes, fmt_count
from .argtypes import MODEL_HELP, add_model_arg, integer, out_file
from .console import NUMBER, command_console, figure_table, print_json
from .inputs import input_arg, parse_inputs
from .output_stride import add_argument, load_requested, run_output_strides, wants_table
from .roofline import CEILING_FLAGS, add_machine_args


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
    return {
        "params": pub.params,
        "params_agreement": params.status,
        "params_text": params.text,
        "gmacs": pub.gmacs,
        "macs_agreement": None if macs is None else macs.status,
        "macs_text": None if macs is None else macs.text,
        "input_size": list(pub.input_size or []),
        "source": pub.citation,
    }


def machine_of(args):
    """The roofline's machine: --peak-gflops, --bandwidth-gbs and the class ceilings as given, what is missing
    measured here (see cli.roofline.machine_from_args)."""
    from .roofline import machine_from_args

    return machine_from_args(args)


def roofline_rows(report: Report, depth: int, points) -> list[dict[str, Any]]:
    """The roofline of each row of the table at `depth` (rows are consecutive runs of records)."""
    from ..analysis.roofline import row_roofline

    out, first = [], 0
    for row in report.rows(depth):
        out.append(row_roofline(points[first : row["last"] + 1]))
        first = row["last"] + 1
    return out


def _seconds(t: float) -> str:
    return f"{t * 1e6:.1f} µs" if t < 1e-3 else f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s"


def summary_table(report: Report, depth: int, title: str, roofline: list[dict[str, Any]] | None = None) -> Table:
    table = figure_table(title)
    cols = [
        ("layer", {"overflow": "fold"}),
        ("type", {}),
        ("output", {"no_wrap": True}),
        ("params", NUMBER),
        ("MACs", NUMBER),
        ("other\nFLOPs", NUMBER),
        ("RF size/\nstride", NUMBER),
    ]
    if roofline is not None:
        cols += [("FLOP/byte", NUMBER), ("bound", {}), ("pred. time", NUMBER)]
    for col, kw in cols:
        table.add_column(col, **kw)
    for i, row in enumerate(report.rows(depth)):
        name = row["name"] or "(model)"
        indent = "  " * (name.count(".")) if row["name"] else ""
        rf = row["receptive_field"]
        rf_text = "—" if rf is None else f"{axes_text(rf.size)}/{axes_text(rf.stride)}" + ("" if rf.exact else "≈")
        extra = []
        if roofline is not None:
            r = roofline[i]
            extra = [
                "" if r["arithmetic_intensity"] is None else f"{r['arithmetic_intensity']:.3g}",
                r["bound"] or "",
                _seconds(r["predicted_seconds"]) if r["predicted_seconds"] else "",
            ]
        table.add_row(
            indent + name.rsplit(".", 1)[-1] if row["name"] else name,
            row["module_type"],
            "×".join(map(str, row["output_shape"])),
            f"{row['params']:,}" if row["params"] else "",
            fmt_count(row["macs"]) if row["macs"] else "",
            fmt_count(row["other_flops"]) if row["other_flops"] else "",
            rf_text,
            *extra,
        )
    return table


def print_totals(console: Console, report: Report, check: dict[str, Any] | None) -> None:
    console.print(
        f"input {', '.join('×'.join(map(str, s)) for s in report.input_shapes)} ({report.dtype}) → "
        f"output {', '.join('×'.join(map(str, s)) for s in report.output_shapes)}"
    )
    console.print(
        f"parameters: {report.params:,} ({report.trainable_params:,} trainable"
        + (f"; {report.unused_params:,} not used by this forward" if report.unused_params else "")
        + ")"
    )
    console.print(
        f"MACs: {report.macs:,} ({report.macs / 1e9:.3f} G) — FLOPs = 2 × MACs = {fmt_count(report.flops)}; "
        f"other FLOPs (norm, activations, pooling, element-wise): {fmt_count(report.other_flops)}"
    )
    console.print(
        f"memory: parameters {fmt_bytes(report.param_bytes)}, buffers {fmt_bytes(report.buffer_bytes)}, "
        f"forward activations {fmt_bytes(report.activation_bytes)}, saved for backward "
        f"{fmt_bytes(report.saved_activation_bytes)}; training step ≈ {fmt_bytes(report.training_peak_bytes)} "
        "(params + grads + saved activations, optimizer state not included)"
    )
    rf = report.receptive_field
    if rf is not None:
        where = f" at {report.receptive_field_layer}" if report.receptive_field_layer else ""
        console.print(
            f"receptive field{where} ({'×'.join(rf.axes)}): {rf}; effective padding {axes_text(rf.padding)}"
            + ("; every unit also sees the whole input through a global path" if rf.global_context else "")
        )
    if report.unsupported_ops:
        console.print(
            "[yellow]operators without a cost formula (not counted): "
            + ", ".join(f"{k} ×{v}" for k, v in report.unsupported_ops.items())
            + "[/]"
        )
    if check:
        if check["macs_agreement"] is not None:
            colour = "green" if check["macs_agreement"] == "exact" else "red"
            console.print(
                f"published MACs {check['gmacs']} G at {'×'.join(map(str, check['input_size']))}: "
                f"[{colour}]{check['macs_text']}[/]"
            )
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
        raise InvalidArgumentError(
            f"--sweep: expected sizes separated by commas such as 128,224,320; got {text!r}"
        ) from None
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


def _sweep_rows(loaded, shapes: list, sizes) -> list[dict]:
    """--sweep: analyse the model at each side of the first input, the other inputs kept."""
    rows = []
    for size in sizes:
        inputs = [resized(shapes[0], size)] + shapes[1:]
        r = analyze(loaded.model, input_arg(inputs))
        rows.append(
            {
                "input": [list(s) for s in inputs],
                "macs": r.macs,
                "flops": r.flops,
                "other_flops": r.other_flops,
                "activation_bytes": r.activation_bytes,
                "training_peak_bytes": r.training_peak_bytes,
                "seconds": r.seconds,
                "output_shapes": [list(s) for s in r.output_shapes],
            }
        )
    return rows


def _run_sweep(args, loaded, shapes: list) -> int:
    """--sweep: the cost against input size, as a table or JSON."""
    rows = _sweep_rows(loaded, shapes, sweep_sizes(args.sweep))
    if args.json:
        print_json({"model": loaded.label, "sweep": rows})
        return 0
    table = figure_table(f"{loaded.label}: cost against input size")
    for col in ("input", "MACs", "other FLOPs", "activations", "training step", "trace"):
        table.add_column(col, **(NUMBER if col != "input" else {"no_wrap": True}))
    for row in rows:
        table.add_row(
            ", ".join("×".join(map(str, s)) for s in row["input"]),
            fmt_count(row["macs"]),
            fmt_count(row["other_flops"]),
            fmt_bytes(row["activation_bytes"]),
            fmt_bytes(row["training_peak_bytes"]),
            f"{row['seconds'] * 1000:.0f} ms",
        )
    command_console().print(table)
    return 0


def _print_json(loaded, report: Report, check, machine, points) -> None:
    """The report as JSON, with the published check and, when asked, each layer's roofline point."""
    data = report.to_dict()
    data["model"] = loaded.label
    data["published"] = check
    if points is not None:
        for layer, p in zip(data["layers"], points):
            layer.update(p.as_dict())
        data["roofline"] = {**machine.as_dict(), "predicted_seconds": sum(p.seconds for p in points)}
    print_json(data)


def _print_roofline_line(console: Console, report: Report, machine, points) -> None:
    """The machine's peaks and ridge, and the forward time the roofline predicts."""
    total = sum(p.seconds for p in points)
    console.print(
        f"roofline: peak {machine.peak_flops / 1e9:.1f} GFLOP/s, bandwidth {machine.bandwidth / 1e9:.1f} GB/s, "
        f"ridge {machine.ridge:.2f} FLOP/byte ({machine.source}); predicted forward {_seconds(total)}; "
        f"FLOP/byte = (2·MACs + other FLOPs) / bytes of inputs, weights and outputs at {report.dtype}"
    )


def _run(args) -> int:
    """`cnnatlas summary`: one model's cost table, a sweep over input sizes, JSON, CSV or the roofline."""
    if wants_table(args):
        return run_output_strides(args)
    loaded = load_requested(args)
    shapes = parse_inputs(args.input, loaded)
    given = [args.peak_gflops, args.bandwidth_gbs] + [getattr(args, c + "_gflops") for c in CEILING_FLAGS]
    use_roofline = args.roofline or any(v is not None for v in given)
    if args.sweep is not None and (use_roofline or args.csv):
        raise InvalidArgumentError(
            "--roofline, --peak-gflops, --bandwidth-gbs and --csv describe one input; got them with --sweep"
        )
    if args.sweep is not None:
        return _run_sweep(args, loaded, shapes)
    report = analyze(loaded.model, input_arg(shapes))
    check = published_check(loaded, report)
    machine = points = None
    if use_roofline:
        from ..analysis.roofline import roofline

        machine = machine_of(args)
        points = roofline(report, machine)
    if args.csv:
        write_csv_file(report, args.csv, points)
    if args.json:
        _print_json(loaded, report, check, machine, points)
        return 0
    console = command_console()
    rows = None if points is None else roofline_rows(report, args.depth, points)
    title = f"{loaded.label} ({report.model}) — modules to depth {args.depth}"
    console.print(summary_table(report, args.depth, title, rows))
    print_totals(console, report, check)
    if machine is not None:
        _print_roofline_line(console, report, machine, points)
    if args.csv:
        console.print(f"wrote {args.csv} ({len(report.layers)} rows, one per operator record)")
    return 0


def write_csv_file(report: Report, path: str, points) -> None:
    """--csv: the per-record table, through a file beside it renamed whole; a file there that is not such a
    table (a CSV of the user's) is left alone and named, and a write the system refuses ends as one line."""
    from pathlib import Path

    from ..analysis.table_csv import COLUMNS, write_csv
    from ..files import written_whole

    target = Path(path)
    if target.is_file():
        with open(target, encoding="utf-8", errors="replace") as f:
            ours = f.readline().startswith(",".join(COLUMNS))
        if not ours:
            raise InvalidArgumentError(
                f"--csv {path}: a file that is not a table summary wrote (a file of yours?); expected a new file "
                "name, or an earlier --csv table to replace: choose another name, or move that file away first"
            )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with written_whole(target) as partial, open(partial, "w", newline="", encoding="utf-8") as f:
            write_csv(report, f, points)
    except OSError as err:
        raise InvalidArgumentError(
            f"--csv: expected a file this user can write; could not write {path!r} ({err.strerror or err})"
        ) from None


def add_parser(sub) -> None:
    p = sub.add_parser("summary", help="shapes, parameters, MACs, memory and receptive field of any model")
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument(
        "--input", metavar="SHAPE", help="input shape with batch, e.g. 1x3x224x224; several inputs: 1x3x224x224,1x10"
    )
    p.add_argument("--depth", type=integer(0), default=2, help="module depth of the table (default 2)")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.add_argument("--sweep", metavar="SIZES", help="MACs and memory at several input sizes, e.g. 128,224,320")
    p.add_argument("--csv", type=out_file, metavar="FILE", help="also write one row per operator record, every column")
    p.add_argument(
        "--roofline",
        action="store_true",
        help="arithmetic intensity, bound and predicted time of each "
        "layer on this machine's roofline (measured unless given)",
    )
    add_machine_args(
        p,
        "peak compute for --roofline instead of measuring it",
        "memory bandwidth in GB/s for --roofline instead of measuring it",
    )
    add_argument(p)
    add_model_arg(p)
    p.set_defaults(run=_run)
