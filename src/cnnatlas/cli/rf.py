"""`cnnatlas rf MODEL`: the receptive field, module by module (analytic, on meta tensors), and on
request the effective receptive field (Luo et al. 2016, real gradients at small size)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ..analysis import analyze, effective_receptive_field
from ..units import axes_text
from .argtypes import FRACTION, MODEL_HELP, add_model_arg, integer
from .console import NUMBER, command_console, figure_table, print_json
from .inputs import input_arg, parse_inputs
from .output_stride import add_argument, load_requested, run_output_strides, wants_table


def rf_rows(report, depth: int) -> list[dict]:
    rows = []
    for m in report.modules:
        if m.depth == 0 or m.depth > depth:
            continue
        rf = m.receptive_field
        rows.append(
            {
                "name": m.name,
                "module_type": m.module_type,
                "output_shape": list(m.output_shapes[0]) if m.output_shapes else None,
                "receptive_field": None if rf is None else rf.as_dict(),
            }
        )
    return rows


def _print_json(loaded, report, rows: list[dict], fit, erf) -> None:
    """The whole answer as one JSON object."""
    rf = report.receptive_field
    print_json(
        {
            "model": loaded.label,
            "input_shapes": [list(s) for s in report.input_shapes],
            "receptive_field": None if rf is None else rf.as_dict(),
            "receptive_field_layer": report.receptive_field_layer,
            "layers": rows,
            "field_fit": fit.as_dict(),
            "effective_receptive_field": None if erf is None else erf.as_dict(),
        }
    )


def _field_table(label: str, rows: list[dict]) -> Table:
    """One table row per module: output shape and the field's size, stride, start and effective padding."""
    table = figure_table(f"{label}: receptive field of each module's output (input pixels; start = centre of unit 0)")
    for col, kw in (
        ("module", {"overflow": "fold"}),
        ("type", {}),
        ("output", {"no_wrap": True}),
        ("size", NUMBER),
        ("stride", NUMBER),
        ("start", NUMBER),
        ("eff. padding", NUMBER),
        ("", {}),
    ):
        table.add_column(col, **kw)
    for row in rows:
        rf = row["receptive_field"]
        shape = "×".join(map(str, row["output_shape"])) if row["output_shape"] else "—"
        if rf is None:
            table.add_row(row["name"], row["module_type"], shape, "—", "—", "—", "—", "")
            continue
        flags = ("≈ " if not rf["exact"] else "") + ("+global" if rf["global_context"] else "")
        table.add_row(
            row["name"],
            row["module_type"],
            shape,
            axes_text(rf["size"]),
            axes_text(rf["stride"]),
            axes_text(rf["start"]),
            axes_text(rf["padding"]),
            flags,
        )
    return table


def _print_summary(console: Console, report, fit, erf, trained: bool = False) -> None:
    """The lines under the table: the last map's field, what its marks mean, the fit and the effective field."""
    rf = report.receptive_field
    if rf is None:
        console.print("no spatial input axes: no receptive field")
    else:
        console.print(
            f"last spatial feature map{f' ({report.receptive_field_layer})' if report.receptive_field_layer else ''}: "
            f"{rf}; effective padding {axes_text(rf.padding)}"
        )
        if rf.global_context:
            console.print(
                "+global: a path through global pooling (squeeze-and-excitation, attention) lets every unit "
                "see the whole input as well; size/stride/start describe the local paths."
            )
        if not rf.exact:
            console.print("≈: adaptive pooling or upsampling makes the units' fields differ slightly from one another.")
        console.print(f"field against input: {fit}" + (f" [dim]({fit.note})[/]" if fit.note else ""))
    if erf is not None:
        console.print(
            f"effective receptive field of unit {erf.unit} of {erf.where} ({erf.samples} random inputs, "
            f"{'trained weights' if trained else 'weights as built'}): {int(erf.fraction * 100)}% of the gradient "
            f"mass within "
            f"{'×'.join(map(str, erf.size))} {erf.input_units}, against a theoretical "
            f"{'×'.join(map(str, erf.theoretical.size)) if erf.theoretical else '—'}"
        )


def _run(args) -> int:
    """`cnnatlas rf`: analyse the model, then print its fields as a table or JSON."""
    if wants_table(args):
        return run_output_strides(args)
    loaded = load_requested(args, meta=not args.erf)  # the effective field needs real weights
    shapes = parse_inputs(args.input, loaded)
    report = analyze(loaded.model, input_arg(shapes), training_memory=False)
    rows = rf_rows(report, args.depth)
    from ..analysis.field_fit import field_fit

    fit = field_fit(loaded.model, shapes[0], report=report, check=len(shapes) == 1)
    erf = None
    if args.erf:
        erf = effective_receptive_field(loaded.model, shapes[0], fraction=args.fraction, samples=args.samples)
    if args.json:
        _print_json(loaded, report, rows, fit, erf)
        return 0
    console = command_console()
    console.print(_field_table(loaded.label, rows))
    _print_summary(console, report, fit, erf, loaded.trained)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("rf", help="receptive field of every module's output (analytic); --erf for the effective one")
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--input", metavar="SHAPE", help="input shape with batch, e.g. 1x3x224x224")
    p.add_argument("--depth", type=integer(1), default=2, help="module depth of the table (default 2)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--erf", action="store_true", help="also measure the effective receptive field (real gradients)")
    p.add_argument("--samples", type=integer(1), default=8, help="random inputs averaged for --erf (default 8)")
    p.add_argument("--fraction", type=FRACTION, default=0.95, help="gradient mass the --erf size holds (default 0.95)")
    add_argument(p)
    add_model_arg(p)
    p.set_defaults(run=_run)
