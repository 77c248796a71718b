"""`cnnatlas eval RUN_DIR`: test accuracy, top-5 and the confusion matrix of a trained run; for a
segmentation run, the pixel accuracy, mean IoU and per-class IoU (every test pixel one prediction),
with --shift-average of the prediction averaged over one-pixel shifts of each image (`ShiftAveraged`).
`cnnatlas eval MODEL`: a zoo model's published weights measured on a test set cnnatlas reads, beside
the accuracy published for them (`cnnatlas.predict.zoo_evaluation`)."""

from __future__ import annotations

import math

from rich.table import Table

from ..errors import InvalidArgumentError
from .argtypes import names_a_zoo_model
from .console import NUMBER, command_console, figure_table, print_json

CONFUSION_TABLE_CLASSES = 30  # past this many categories (ImageNet's 1000) the matrix is left to --json


def confusion_table(confusion, classes: tuple[str, ...]) -> Table:
    """Rows: true class; columns: predicted class; the diagonal in green."""
    short = [c[:7] for c in classes]
    table = figure_table("Confusion matrix (rows: true class, columns: predicted)")
    table.add_column("true \\ predicted", no_wrap=True)
    for name in short:
        table.add_column(name, **NUMBER)
    table.add_column("recall", **NUMBER)
    for i, row in enumerate(confusion.tolist()):
        total = sum(row)
        cells = [f"[green]{v}[/]" if i == j else (f"[red]{v}[/]" if v else "[dim]0[/]") for j, v in enumerate(row)]
        table.add_row(classes[i], *cells, f"{row[i] / total:.1%}" if total else "—")
    return table


def _run(args) -> int:
    """Load the run, evaluate it on its test set (or --data's), then print the report or its JSON."""
    from ..models.segmentation import ONE_PIXEL_SHIFTS
    from ..train import load_run

    if names_a_zoo_model(args.run_dir):
        return _run_zoo(args)
    if args.weights is not None:
        raise InvalidArgumentError(f"--weights is for a zoo model name; {args.run_dir} is a run folder")
    run = load_run(args.run_dir, args.checkpoint)
    spec = args.data or run.data_spec
    result, data = run.evaluate(spec, shift_average=args.shift_average)
    if args.json:
        report = _report(run, spec, data, result)
        if args.shift_average:
            report["shift_average"] = [list(s) for s in ONE_PIXEL_SHIFTS]
        print_json(report)
        return 0
    _print_report(run, data, result, args.shift_average)
    return 0


def _run_zoo(args) -> int:
    """A zoo model's published weights on a test set: measured accuracy beside the published one."""
    from ..predict import zoo_evaluation
    from ..train import top_k

    for flag, given in (("--checkpoint", args.checkpoint), ("--shift-average", args.shift_average)):
        if given:
            raise InvalidArgumentError(f"{flag} is for a run folder; {args.run_dir} is a zoo model name")
    measured = zoo_evaluation(args.run_dir, args.data, args.weights)
    result, w = measured.result, measured.weights
    published = {k: v for k, v in (w.metrics or {}).items() if k in ("top1", "top5", "dataset")}
    if args.json:
        report = {
            "model": args.run_dir,
            "weights": w.tag,
            "data": measured.data,
            "images": result.count,
            "test_acc": result.acc,
            "test_top5": result.top5,
            "test_loss": result.loss,
            "published": published or None,
            "classes": list(w.categories),
            "confusion": result.confusion.tolist(),
        }
        print_json(report)
        return 0
    console = command_console()
    console.print(f"[bold]{args.run_dir}[/] with its {w.tag} weights ({w.source}) on {measured.source}")
    k = top_k(len(w.categories))
    console.print(
        f"accuracy [bold]{result.acc:.2%}[/]   top-{k} {result.top5:.2%}   loss {result.loss:.4f}   "
        f"({result.count:,} test images)"
    )
    if "top1" in published:
        console.print(
            f"published: top-1 {published['top1']}%, top-5 {published['top5']}% on {published['dataset']} "
            f"({w.source_ref})"
        )
    if len(w.categories) <= CONFUSION_TABLE_CLASSES:
        console.print(confusion_table(result.confusion, w.categories))
    else:
        console.print(f"confusion matrix ({len(w.categories)} × {len(w.categories)} categories): in --json")
    return 0


def add_shift_average_flag(parser) -> None:
    """--shift-average, as eval and predict take it (`TrainedRun.shift_averaged`)."""
    parser.add_argument(
        "--shift-average",
        action="store_true",
        help="segmentation: average the softmax over each image as it is and moved one pixel down, "
        "right and both (each prediction moved back)",
    )


def _report(run, spec: str, data, result) -> dict:
    """The --json report: accuracy, top-5, loss and confusion matrix; pixel accuracy and IoU for segmentation."""
    info = run.info
    report = {
        "run_dir": str(run.path),
        "weights": str(run.weights_from),
        "data": spec,
        "images": result.count,
        "test_acc": result.acc,
        "test_top5": result.top5,
        "test_loss": result.loss,
        "classes": list(info.classes),
        "confusion": result.confusion.tolist(),
    }
    if info.task == "segmentation":
        report.update(
            {
                "task": "segmentation",
                "pixels": result.count,
                "images": len(data.test),
                "test_pixel_acc": result.acc,
                "test_miou": result.miou,
                "test_iou": {c: (None if math.isnan(v) else v) for c, v in zip(info.classes, result.iou)},
            }
        )
    return report


def _print_report(run, data, result, shift_averaged: bool = False) -> None:
    """The report as text: the headline figures, IoU per class for segmentation, the confusion matrix."""
    from ..train import top_k

    info = run.info
    console = command_console()
    console.print(f"[bold]{run.config.model}[/] from {run.weights_from} on {data.source}")
    if shift_averaged:
        console.print("prediction averaged over the input as it is and moved one pixel down, right and both")
    if info.task == "segmentation":
        console.print(
            f"mean IoU [bold]{result.miou:.2%}[/]   pixel accuracy {result.acc:.2%}   "
            f"loss {result.loss:.4f}   "
            f"({len(data.test):,} test images, {result.count:,} pixels)"
        )
        table = figure_table("IoU per class")
        table.add_column("class")
        table.add_column("IoU", **NUMBER)
        for name, value in zip(info.classes, result.iou):
            table.add_row(name, "—" if math.isnan(value) else f"{value:.1%}")
        console.print(table)
    else:
        console.print(
            f"accuracy [bold]{result.acc:.2%}[/]   top-{top_k(info.num_classes)} {result.top5:.2%}   "
            f"loss {result.loss:.4f}   ({result.count:,} test {_items(run)})"
        )
    console.print(confusion_table(result.confusion, info.classes))


def _items(run) -> str:
    """What a run's test set holds: recordings (a 1-D model), clips (3-D) or images."""
    return {1: "recordings", 3: "clips"}.get(getattr(run.model, "dims", 2), "images")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="accuracy, top-5 and confusion matrix of a trained run, or of a zoo model's published weights "
        "(pixel accuracy and IoU for segmentation)",
    )
    p.add_argument(
        "run_dir",
        metavar="RUN_DIR|MODEL",
        help="a run folder, or a zoo model name (its published weights, measured on --data's test set)",
    )
    p.add_argument(
        "--data",
        metavar="DATA",
        help="evaluate on this dataset's test set (default: the run's, from the folder it recorded, else found "
        "or downloaded as --data NAME would; for a zoo model, the dataset its weights publish accuracy on). A "
        "run reads a folder without train/ and test/ (or val/) as training does: its 20%% held out, the same "
        "images in a copy of the run's own folder; a zoo model reads such a folder whole",
    )
    p.add_argument("--checkpoint", metavar="DIR", help="a checkpoint folder instead of the final weights")
    p.add_argument(
        "--weights",
        metavar="TAG|PATH",
        help="a zoo model's weights: a tag from `cnnatlas info MODEL` or a file (default: its published default)",
    )
    add_shift_average_flag(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_run)
