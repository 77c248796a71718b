"""The analyser's section of `cnnatlas tour`: MACs and receptive field of every registered model,
measured on meta tensors, beside the published figures."""

from __future__ import annotations

import time

import torch
from rich.console import Console
from rich.table import Table

from ..analysis import analyze
from ..registry import get_entry, list_models
from ..zoo import create_model
from .console import NUMBER, figure_table

# google-research/receptive_field, receptive_field/RECEPTIVE_FIELD_TABLE.md at f12ae8e (PUBLISHED.md §1.2):
# (RF, effective stride, effective padding) of TF-Slim networks whose layout ours follows. The
# padding is the odd-input-size column (321), where TF 'SAME' padding is symmetric like ours.
RF_TABLE_SOURCE = "google-research/receptive_field RECEPTIVE_FIELD_TABLE.md (f12ae8e)"
RF_TABLE = {
    "vgg16": ("vgg_16 pool5", 212, 32, 90),
    "vgg11": ("vgg_a pool5", 150, 32, 59),
    "inception_v3": ("inception_v3 Mixed_7c", 1311, 32, 618),
    "mobilenet_v1": ("mobilenet_v1 Conv2d_13_pointwise", 315, 32, 157),
}


def _input(name: str) -> tuple[int, ...]:
    entry = get_entry(name)
    pub = entry.published
    size = pub.input_size if pub.input_size and len(pub.input_size) == len(entry.input_size) else entry.input_size
    return (1, *size)


def _macs_as_published(name: str, model: torch.nn.Module, shape: tuple[int, ...], report) -> int:
    """The MACs to set beside the published figure. torchvision counts the segmentation models'
    auxiliary FCN head, which it runs in eval too; ours runs it in training only, so their count is
    traced there (at batch 2, as ASPP's pooled batch norm needs two samples, then halved)."""
    if get_entry(name).family != "segmentation":
        return report.macs
    return analyze(model, (2, *shape[1:]), training=True, training_memory=False).macs // 2


def _macs_table() -> Table:
    """The empty table of the section: one row per model will follow."""
    table = figure_table("MACs and receptive field, measured by the analyser (meta tensors) vs published")
    for col, kw in (
        ("model", {"no_wrap": True}),
        ("input", {"no_wrap": True}),
        ("MACs", NUMBER),
        ("published", NUMBER),
        ("agreement", {}),
        ("RF size/stride", NUMBER),
        ("trace", NUMBER),
    ):
        table.add_column(col, **kw)
    return table


def _macs_agreement(
    name: str, model, shape, report, sources: dict[str, str], failures: list[str], flagged: list[str]
) -> tuple[str, str]:
    """(agreement, published) cells; a torchvision figure missed joins `failures`, a paper's joins `flagged`."""
    pub = get_entry(name).published
    if pub.gmacs is None:
        return "[dim]no published figure[/]", "—"
    a = pub.macs_agreement(_macs_as_published(name, model, shape, report))
    published = f"{pub.gmacs:g} G"
    sources.setdefault(pub.source, pub.citation)
    if a.status == "exact":
        agreement = f"[green]{a.text}[/] [dim]{pub.source}[/]"
    elif pub.source and pub.source.startswith("torchvision"):
        agreement = f"[red]{a.text}[/] [dim]{pub.source}[/]"
        failures.append(name)
    else:  # a paper's figure: other conventions or another variant of the architecture
        agreement = f"[yellow]{a.text}[/] [dim]{pub.source}[/]"
        flagged.append(f"{name} ({pub.note})" if pub.note else name)
    return agreement, published


def _rf_text(rf) -> str:
    """The field's size/stride, ≈ when units differ, +global when a path sees the whole input."""
    if rf is None:
        return "—"
    return (
        f"{_axes(rf.size)}/{_axes(rf.stride)}"
        + (" ≈" if not rf.exact else "")
        + (" +global" if rf.global_context else "")
    )


def _print_rf_checks(console: Console, rf_checks: list, failures: list[str]) -> None:
    """Each field of RF_TABLE against its published size, stride and padding; a difference joins `failures`."""
    for name, rf in rf_checks:
        label, size, stride, padding = RF_TABLE[name]
        ok = rf.size[0] == size and rf.stride[0] == stride and rf.padding[0] == padding
        colour = "green" if ok else "red"
        console.print(
            f"receptive field of {name}: {rf.size[0]} / {rf.stride[0]} / effective padding {rf.padding[0]}; "
            f"published {label}: {size} / {stride} / {padding} [{colour}]{'agrees' if ok else 'differs'}[/] "
            f"[dim]({RF_TABLE_SOURCE})[/]"
        )
        if not ok:
            failures.append(f"{name} receptive field")


def _print_verdict(console: Console, flagged: list[str], failures: list[str]) -> None:
    """The closing lines: the papers' figures that differ, then torchvision's agreement or what disagrees."""
    if flagged:
        console.print(
            "[yellow]Differs from a paper's figure (rounded, counted another way, or another variant "
            f"of the architecture): {'; '.join(flagged)}[/]"
        )
    if failures:
        console.print(f"[red]Disagreeing with torchvision's published figures: {', '.join(failures)}[/]")
    else:
        console.print("[green]Every MAC count torchvision publishes is reproduced to all its digits.[/]")


def analysis_section(console: Console) -> bool:
    """Every registered model traced once; MACs against published, receptive field of the last map."""
    table = _macs_table()
    failures: list[str] = []
    flagged: list[str] = []
    rf_checks = []
    sources: dict[str, str] = {}
    start = time.perf_counter()
    for name in list_models():
        shape = _input(name)
        with torch.device("meta"):
            model = create_model(name)
        report = analyze(model, shape, training_memory=False)
        agreement, published = _macs_agreement(name, model, shape, report, sources, failures, flagged)
        rf = report.receptive_field
        table.add_row(
            name,
            "×".join(map(str, shape[1:])),
            f"{report.macs / 1e9:.3f} G",
            published,
            agreement,
            _rf_text(rf),
            f"{report.seconds * 1000:.0f} ms",
        )
        if name in RF_TABLE and rf is not None:
            rf_checks.append((name, rf))
    console.print(table)
    console.print(
        f"{len(list_models())} models traced in {time.perf_counter() - start:.1f} s (building included). "
        "MACs count multiply–accumulates of convolutions, linear layers and matrix products — torchvision's "
        "'GFLOPS'; FLOPs = 2 × MACs. '+global': squeeze-and-excitation lets every unit see the whole input too."
    )
    for key, citation in sources.items():
        console.print(f"[dim]{key}: {citation}[/]")
    _print_rf_checks(console, rf_checks, failures)
    _print_verdict(console, flagged, failures)
    return not failures


def _axes(v: tuple) -> str:
    return str(v[0]) if len(set(v)) == 1 else "×".join(map(str, v))
