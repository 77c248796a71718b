"""`--output-stride` of `cnnatlas summary` and `cnnatlas rf`: a zoo model built with its last stages
dilated instead of strided (DeepLab), one stride or several side by side.

`cnnatlas summary resnet50 --output-stride 8` analyses that one model as usual; a list,
`--output-stride 8,16,32`, prints one row per stride: the last spatial map, parameters (the same for
all: dilation adds none), MACs, activation memory and the receptive field of that map — the
resolution a dense head gets against what it costs.
"""

from __future__ import annotations

from ..analysis import Report, analyze
from ..errors import InvalidArgumentError
from ..loading import LoadedModel, load_model, model_args_text
from ..units import axes_text, fmt_bytes, fmt_count
from .argtypes import model_args
from .console import NUMBER, command_console, figure_table, print_json
from .inputs import parse_inputs


def output_strides(text: str) -> list[int]:
    """'8' → [8]; '8,16,32' → [8, 16, 32]."""
    try:
        strides = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise InvalidArgumentError(
            f"--output-stride: expected integers separated by commas such as 8,16,32; got {text!r}"
        ) from None
    if not strides or any(s < 1 for s in strides):
        raise InvalidArgumentError(f"--output-stride: strides must be ≥ 1; got {text!r}")
    return strides


def wants_table(args) -> bool:
    """Several --output-stride values: the side-by-side table instead of one analysis."""
    return bool(args.output_stride) and len(output_strides(args.output_stride)) > 1


def load_requested(args, meta: bool = True) -> LoadedModel:
    """MODEL as `summary` and `rf` analyse it: built with the one --output-stride given and the
    --model-arg pairs, else as named; a training run folder as it was trained (`load_run_or_model`)."""
    from ..train import is_run_folder, load_run_or_model

    if args.output_stride:
        if is_run_folder(args.model):
            raise InvalidArgumentError(
                f"--output-stride builds a registry model anew; {args.model} is a training run folder"
            )
        return load_strided(args.model, output_strides(args.output_stride)[0], meta, model_args(args.model_arg))
    return load_run_or_model(args.model, meta=meta, model_args=model_args(args.model_arg))


def load_strided(spec: str, stride: int, meta: bool = True, kwargs: dict | None = None) -> LoadedModel:
    """Registry model `spec` built with output_stride=`stride` and `kwargs` (no published figure applies
    to it)."""
    from ..registry import get_entry, list_models

    takes = [n for n in list_models() if "output_stride" in get_entry(n).accepted_kwargs()]
    if spec not in takes:
        raise InvalidArgumentError(
            f"--output-stride: {spec!r} is not a registry model with an output_stride; "
            f"those that have one: {', '.join(takes)}"
        )
    if "output_stride" in (kwargs or {}):
        raise InvalidArgumentError("give the output stride once: --output-stride S, or --model-arg output_stride=S")
    return load_model(spec, meta, {**(kwargs or {}), "output_stride": stride})


def _last_map(report: Report) -> tuple[int, ...]:
    """Shape of the module whose output is the last spatial map (where the receptive field is taken),
    or of the model's output when that map is the output itself (a segmentation model's)."""
    for m in report.modules:
        if report.receptive_field_layer and m.name == report.receptive_field_layer and m.output_shapes:
            return m.output_shapes[0]
    return report.output_shapes[0]


def stride_rows(spec: str, strides: list[int], input_text: str | None, kwargs: dict | None = None) -> list[dict]:
    """One analysis per output stride, at the same input (the model built with `kwargs` besides)."""
    rows = []
    for stride in strides:
        loaded = load_strided(spec, stride, kwargs=kwargs)
        shapes = parse_inputs(input_text, loaded)
        report = analyze(loaded.model, shapes[0] if len(shapes) == 1 else shapes)
        rf = report.receptive_field
        rows.append(
            {
                "output_stride": stride,
                "input": list(shapes[0]),
                "last_map_layer": report.receptive_field_layer,
                "last_map": list(_last_map(report)),
                "params": report.params,
                "macs": report.macs,
                "activation_bytes": report.activation_bytes,
                "receptive_field": None if rf is None else rf.as_dict(),
            }
        )
    return rows


def run_output_strides(args) -> int:
    """The side-by-side table of `summary`/`rf` MODEL --output-stride S1,S2,…"""
    kwargs = model_args(args.model_arg)
    rows = stride_rows(args.model, output_strides(args.output_stride), args.input, kwargs)
    label = f"{args.model}({model_args_text(kwargs)})" if kwargs else args.model
    if args.json:
        print_json({"model": args.model, **({"model_args": kwargs} if kwargs else {}), "output_strides": rows})
        return 0
    params = {row["params"] for row in rows}  # dilation adds no parameter: one value, shown once
    table = figure_table(
        f"{label} at input {'×'.join(map(str, rows[0]['input']))}: output stride against cost "
        "and receptive field (dilation instead of stride past it)"
    )
    columns = (
        ["output stride", "map H×W"]
        + (["params"] if len(params) > 1 else [])
        + ["MACs", "activations", "RF size", "RF stride"]
    )
    for col in columns:
        table.add_column(col, **NUMBER)
    for row in rows:
        rf = row["receptive_field"]
        table.add_row(
            str(row["output_stride"]),
            "×".join(map(str, row["last_map"][2:])) or "—",
            *([f"{row['params']:,}"] if len(params) > 1 else []),
            fmt_count(row["macs"]),
            fmt_bytes(row["activation_bytes"]),
            "—" if rf is None else axes_text(tuple(rf["size"])),
            "—" if rf is None else axes_text(tuple(rf["stride"])),
        )
    console = command_console()
    console.print(table)
    console.print(
        f"[dim]map: the output of {rows[0]['last_map_layer'] or 'the model'} "
        f"({'×'.join(map(str, rows[0]['last_map'][1:2]))} channels); the receptive field is that map's, in "
        "input pixels"
        + (
            f"; parameters {params.pop():,} at every stride: dilation trades the stride for resolution and pays in MACs"
            if len(params) == 1
            else ""
        )
        + ".[/]"
    )
    return 0


def add_argument(parser) -> None:
    parser.add_argument(
        "--output-stride",
        metavar="S[,S…]",
        help="build the model with output_stride=S (last stages dilated instead of strided); "
        "several, e.g. 8,16,32: compare them side by side",
    )
