"""The classic roofline picture (Williams et al. 2009): attainable FLOP/s against arithmetic intensity,
log-log, the memory roof (bandwidth × intensity) meeting the compute roof (peak) at the ridge point, and each
operator record of a model as a point at its intensity and the FLOP/s the roofline predicts for it, sized by
its predicted time."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from torch import nn

from ..analysis import analyze
from ..analysis.roofline import CEILING_CLASSES, Machine, measure_machine, roofline
from ..errors import InvalidArgumentError
from ..loading import LoadedModel
from .common import VizError, new_figure, resolve_model, save_figure

COLOURS = {"compute": "#d62728", "memory": "#1f77b4"}


def _draw_roof(ax, machine: Machine, lo: float, hi: float) -> None:
    """The roof itself: the bandwidth slope up to the ridge, then the compute peak; the ridge marked."""
    ax.plot(
        [lo, machine.ridge, hi],
        [machine.bandwidth * lo / 1e9, machine.peak_flops / 1e9, machine.peak_flops / 1e9],
        color="black",
        linewidth=1.6,
    )
    ax.axvline(machine.ridge, color="#999999", linestyle=":", linewidth=0.8)
    ax.annotate(
        f"ridge {machine.ridge:.2g} FLOP/byte",
        (machine.ridge, machine.peak_flops / 1e9),
        fontsize=7,
        textcoords="offset points",
        xytext=(4, 4),
        color="#444444",
    )


def _draw_ceilings(ax, machine: Machine, hi: float) -> None:
    """The class ceilings below the peak (Williams et al.'s "multiple ceilings"): dashed, from where each meets
    the memory roof."""
    for cls, word in CEILING_CLASSES.items():
        if getattr(machine, f"{cls}_flops") is None:
            continue
        c = machine.ceiling(cls)
        ax.plot([c / machine.bandwidth, hi], [c / 1e9, c / 1e9], color="#666666", linestyle="--", linewidth=0.8)
        ax.annotate(f"{word} ceiling", (hi, c / 1e9), fontsize=6, ha="right", va="bottom", color="#444444")


def _draw_operators(ax, pts: list) -> None:
    """One dot per operator, coloured by what bounds it and sized by its share of the time; the 5 slowest named."""
    total = sum(p.seconds for p, _ in pts)
    for bound, colour in COLOURS.items():
        sel = [(p, r) for p, r in pts if p.bound and p.bound.split(" ")[0] == bound]  # "compute (depthwise)" too
        if not sel:
            continue
        ax.scatter(
            [p.intensity for p, _ in sel],
            [p.flops / p.seconds / 1e9 for p, _ in sel],
            s=[8 + 400 * p.seconds / total for p, _ in sel],
            color=colour,
            alpha=0.6,
            edgecolors="none",
            label=f"{bound}-bound: {len(sel)} operators, {sum(p.seconds for p, _ in sel) / total:.0%} of the time",
        )
    for p, rec in sorted(pts, key=lambda t: -t[0].seconds)[:5]:
        ax.annotate(
            rec.name or rec.op,
            (p.intensity, p.flops / p.seconds / 1e9),
            fontsize=6,
            textcoords="offset points",
            xytext=(3, -8),
            color="#333333",
        )


def plot_roofline(
    model: str | nn.Module | LoadedModel,
    input_size: tuple[int, ...] | None = None,
    machine: Machine | None = None,
    out: str | Path | None = None,
) -> Figure:
    """Each record of `model` (at `input_size`, default the model's) on the roofline of `machine` (default:
    measured here by `measure_machine`)."""
    module, label, size = resolve_model(model)
    size = input_size or size
    if size is None:
        raise InvalidArgumentError(f"{label}: no default input size is known; give --input")
    machine = machine or measure_machine()
    report = analyze(module, size, training_memory=False)
    pts = [(p, rec) for p, rec in zip(roofline(report, machine), report.layers) if p.intensity and p.flops]
    if not pts:
        raise VizError(f"{label}: no operator that computes anything")
    fig = new_figure(8.5, 5.4)
    ax = fig.add_subplot()
    xs = [p.intensity for p, _ in pts]
    lo, hi = min(min(xs), machine.ridge) / 4, max(max(xs), machine.ridge) * 4
    _draw_roof(ax, machine, lo, hi)
    _draw_ceilings(ax, machine, hi)
    _draw_operators(ax, pts)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("arithmetic intensity (FLOPs per byte of inputs, weights and outputs)")
    ax.set_ylabel("attainable GFLOP/s (roofline prediction)")
    ax.set_title(
        f"{label} at {'×'.join(map(str, size))} on the roofline: peak {machine.peak_flops / 1e9:.1f} "
        f"GFLOP/s, {machine.bandwidth / 1e9:.1f} GB/s",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, out)
