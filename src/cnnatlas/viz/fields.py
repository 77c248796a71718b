"""Plots of what the analyser measures: receptive-field growth with depth, accuracy against MACs
(the Pareto front of the zoo), and the effective receptive field beside the analytic one.

Every number comes from `cnnatlas.analyze` (shapes, MACs, analytic receptive field: Araujo et al.,
Distill 2019), `cnnatlas.effective_receptive_field` (Luo et al., NeurIPS 2016) or the registry's
published figures, which name their source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.transforms import Bbox
from torch import nn

from ..analysis import Report, analyze, effective_receptive_field
from ..errors import InvalidArgumentError
from ..loading import LoadedModel
from ..train.folder import is_run_folder
from .common import (
    VizError,
    capped_input,
    family_colour,
    model_family,
    new_figure,
    resolve_model,
    save_figure,
    set_title,
)

RF_GROWTH_MODELS = ("vgg16", "resnet50", "inception_v3", "densenet121", "mobilenet_v2", "efficientnet_b0")


# -- receptive-field growth ---------------------------------------------------------------------


def _grows_field(op: str) -> bool:
    """Operators with a kernel: convolutions and pooling (what the recurrence r' = r + d(k−1)·j counts)."""
    return op.startswith(("convolution", "conv", "_conv")) or "pool" in op


def rf_growth_data(report: Report) -> list[tuple[int, float]]:
    """(depth, receptive field) after each depth of the longest path from the input, where depth
    counts the convolution and pooling operators on that path; the field is the largest over the
    axes and over the operators at that depth (branches meet by union)."""
    depth: dict[int, int] = {}
    best: dict[int, float] = {}
    for rec in report.layers:
        d = max((depth.get(i, 0) for i in rec.inputs if i >= 0), default=0)
        rf = rec.receptive_field
        if _grows_field(rec.op) and rf is not None:
            d += 1
            best[d] = max(best.get(d, 0.0), float(max(rf.size)))
        depth[rec.index] = d
    return sorted(best.items())


@dataclass
class _Curve:
    label: str
    family: str
    points: list[tuple[int, float]]
    input_side: int


def plot_rf_growth(
    models: Sequence[str | nn.Module] = RF_GROWTH_MODELS,
    out: str | Path | None = None,
    reports: dict[str, Report] | None = None,
) -> Figure:
    """Receptive field (input pixels, log scale) against depth for several models, each traced by
    the analyser at its default input. `reports` may hold analyses already made (label → Report)."""
    if not models:
        raise InvalidArgumentError("rf-growth needs at least one model")
    curves = []
    for m in models:
        label = m if isinstance(m, str) else type(m).__name__
        report = (reports or {}).get(label)
        if report is None:
            module, label, size = resolve_model(m)
            if size is None:
                raise InvalidArgumentError(f"{label}: no default input size is known")
            report = analyze(module, size, training_memory=False)
        points = rf_growth_data(report)
        if not points:
            raise VizError(f"{label}: no convolution or pooling layer with a spatial receptive field")
        curves.append(_Curve(label, model_family(label), points, max(report.input_shapes[0][2:])))
    fig = new_figure(8.5, 5.2)
    ax = fig.add_subplot()
    seen_colours: dict[str, int] = {}
    styles = ("-", "--", ":", "-.")
    for c in curves:
        colour = family_colour(c.family) if c.family else None
        k = seen_colours.get(c.family, 0)
        seen_colours[c.family] = k + 1
        xs, ys = zip(*c.points)
        ax.plot(
            xs,
            ys,
            styles[k % len(styles)],
            marker="o",
            markersize=2.5,
            color=colour,
            linewidth=1.6,
            label=f"{c.label} ({c.input_side} px input, field {ys[-1]:g})",
        )
    sides = sorted({c.input_side for c in curves})
    for side in sides:
        ax.axhline(side, color="#999999", linewidth=0.8, linestyle=":")
        ax.annotate(
            f"input side {side} px",
            (0.995, side),
            xycoords=("axes fraction", "data"),
            ha="right",
            va="bottom",
            fontsize=7,
            color="#666666",
        )
    ax.set_yscale("log")
    ax.set_xlabel("depth: convolution and pooling layers on the longest path from the input")
    ax.set_ylabel("receptive field (input pixels, log scale)")
    ax.set_title("Receptive field growth with depth (analytic, from the traced graph)")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, out)


# -- accuracy against MACs: the Pareto front ----------------------------------------------------


@dataclass(frozen=True)
class ParetoPoint:
    name: str
    family: str
    macs: int  # measured by the analyser at the published input size
    top1: float  # published
    source: str
    on_front: bool


def pareto_points(
    names: Sequence[str] | None = None, dataset: str = "ImageNet-1K", macs: dict[str, int] | None = None
) -> list[ParetoPoint]:
    """Every registry model with a published top-1 on `dataset`, its MACs measured by the analyser
    (or taken from `macs`, name → measured MACs), and whether it is on the Pareto front (no other
    model is at least as accurate with fewer MACs)."""
    from ..registry import get_entry, list_models

    rows = []
    for name in names if names is not None else list_models():
        entry = get_entry(name)
        pub = entry.published
        if pub.top1 is None or pub.dataset != dataset:
            continue
        measured = (macs or {}).get(name)
        if measured is None:
            module, _, size = resolve_model(name)
            measured = analyze(module, size, training_memory=False).macs
        rows.append((name, entry.family, int(measured), float(pub.top1), pub.source or ""))
    rows.sort(key=lambda r: (r[2], -r[3]))
    points, best = [], -np.inf
    for name, family, m, top1, source in rows:
        on_front = top1 > best
        best = max(best, top1)
        points.append(ParetoPoint(name, family, m, top1, source, on_front))
    return points


def _place_labels(fig: Figure, ax, points: list[ParetoPoint]) -> None:
    """Label each point at the nearby offset that overlaps least with labels and markers already placed."""
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    renderer = fig.canvas.get_renderer()
    markers = [ax.transData.transform((p.macs / 1e9, p.top1)) for p in points]
    placed = []
    offsets = [
        (6, 4),
        (6, -10),
        (-6, 4),
        (-6, -10),
        (8, -3),
        (-8, -3),
        (0, 8),
        (0, -13),
        (14, 10),
        (-14, -16),
        (14, -18),
        (-14, 10),
        (20, 0),
        (-20, 0),
    ]
    for p in points:
        best = None
        for dx, dy in offsets:
            text = ax.annotate(
                p.name,
                (p.macs / 1e9, p.top1),
                xytext=(dx, dy),
                textcoords="offset points",
                fontsize=7,
                ha="left" if dx >= 0 else "right",
                color="#222222",
            )
            box = text.get_window_extent(renderer).expanded(1.05, 1.1)
            cost = sum(box.overlaps(b) for b in placed) * 3
            cost += sum(box.overlaps(Bbox.from_extents(x - 5, y - 5, x + 5, y + 5)) for (x, y) in markers)
            cost += 0 if ax.bbox.contains(box.x0, box.y0) and ax.bbox.contains(box.x1, box.y1) else 5
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, text, box)
            else:
                text.remove()
            if cost == 0:
                break
        placed.append(best[2])


def _pareto_families(ax, points: list[ParetoPoint]) -> None:
    """One coloured scatter per family; the EfficientNet points joined in order of cost."""
    families = sorted({p.family for p in points})
    for fam in families:
        fp = [p for p in points if p.family == fam]
        ax.scatter(
            [p.macs / 1e9 for p in fp],
            [p.top1 for p in fp],
            s=28,
            color=family_colour(fam),
            label=fam,
            zorder=3,
            edgecolors="white",
            linewidths=0.5,
        )
    eff = sorted((p for p in points if p.family == "efficientnet"), key=lambda p: p.macs)
    if len(eff) > 1:
        ax.plot(
            [p.macs / 1e9 for p in eff],
            [p.top1 for p in eff],
            color=family_colour("efficientnet"),
            linewidth=1,
            alpha=0.6,
            zorder=2,
        )


def _pareto_front(ax, points: list[ParetoPoint]) -> None:
    """The Pareto front as a dashed step line, its points ringed."""
    front = [p for p in points if p.on_front]
    xs, ys = [front[0].macs / 1e9], [front[0].top1]
    for p in front[1:]:
        xs += [p.macs / 1e9, p.macs / 1e9]
        ys += [ys[-1], p.top1]
    ax.plot(xs, ys, color="#222222", linewidth=1.2, linestyle="--", label="Pareto front", zorder=2)
    ax.scatter(
        [p.macs / 1e9 for p in front],
        [p.top1 for p in front],
        s=90,
        facecolors="none",
        edgecolors="#222222",
        linewidths=1.0,
        zorder=4,
    )


def plot_pareto(
    names: Sequence[str] | None = None, out: str | Path | None = None, macs: dict[str, int] | None = None
) -> Figure:
    """Published ImageNet top-1 against analyser-measured MACs (log scale) for the zoo, the Pareto
    front drawn as a step line, each point labelled; EfficientNet B0–B7 joined (compound scaling)."""
    points = pareto_points(names, macs=macs)
    if len(points) < 2:
        raise VizError("pareto needs at least two models with a published ImageNet-1K top-1")
    fig = new_figure(10, 6.2)
    ax = fig.add_subplot()
    _pareto_families(ax, points)
    _pareto_front(ax, points)
    ax.set_xscale("log")
    ax.set_xlabel("multiply–accumulates per image (GMACs, measured by the analyser, log scale)")
    ax.set_ylabel("published ImageNet-1K top-1 accuracy (%)")
    sources = sorted({p.source for p in points})
    set_title(fig, "Accuracy against cost: the zoo and its Pareto front", fontsize=12)
    ax.set_title(
        f"top-1 as published (sources in published.json: {', '.join(sources)}); MACs measured here",
        fontsize=8,
        color="#555555",
    )
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="lower right", ncol=2)
    _place_labels(fig, ax, points)
    return save_figure(fig, out)


# -- effective receptive field ------------------------------------------------------------------


def _erf_line(fig: Figure, grad: np.ndarray, erf, theo) -> None:
    """A one-dimensional field (audio, text): the gradient share along the input, the analytic span shaded."""
    ax = fig.add_subplot()
    ax.plot(np.arange(grad.size), grad, color="#b2182b", label="|∂y/∂x| (normalised)")
    if theo is not None:
        (lo, hi) = theo.span(theo.unit_index(tuple(erf.unit)))[-1]
        ax.axvspan(lo, hi, color="#2166ac", alpha=0.12, label=f"analytic field ({theo.size[-1]:g})")
    ax.set_xlabel("input position (samples)")
    ax.set_ylabel("gradient share")
    ax.legend(fontsize=8)


def _erf_heat_map(fig: Figure, ax, grad: np.ndarray, erf, theo, axes_note: str) -> tuple[float, float] | None:
    """The 2-D heat map with the analytic field's square and the mass square; returns the analytic x span."""
    h, w = grad.shape
    im = ax.imshow(grad, cmap="magma", origin="upper", extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    fig.colorbar(im, ax=ax, shrink=0.8, label="share of |∂y/∂x|")
    cy, cx = erf.centre[-2:]
    x_span = None
    if theo is not None:
        (y0, y1), (x0, x1) = theo.span(theo.unit_index(tuple(erf.unit)))[-2:]
        x_span = (x0, x1)
        beyond = x0 < 0 or y0 < 0 or x1 > w - 1 or y1 > h - 1
        ax.add_patch(
            Rectangle(
                (x0 - 0.5, y0 - 0.5),
                x1 - x0 + 1,
                y1 - y0 + 1,
                fill=False,
                edgecolor="#4dac26",
                linewidth=2.5,
                label=f"analytic field {theo.size[-2]:g}×{theo.size[-1]:g}"
                + (" (reaches beyond the input)" if beyond else ""),
            )
        )
    eh, ew = erf.size[-2:]
    ax.add_patch(
        Rectangle(
            (cx - ew / 2, cy - eh / 2),
            ew,
            eh,
            fill=False,
            edgecolor="#00bfff",
            linestyle="--",
            linewidth=1.4,
            label=f"{erf.fraction:.0%} of the mass: {eh}×{ew}",
        )
    )
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_xlabel("input x (pixels)")
    ax.set_ylabel("input y (pixels)")
    ax.legend(fontsize=7.5, loc="upper left", framealpha=0.85)
    ax.set_title(f"heat map{axes_note}", fontsize=9)
    return x_span


def _erf_profile(prof, grad: np.ndarray, erf, x_span: tuple[float, float] | None) -> None:
    """The horizontal profile: the gradient summed over rows, the analytic and mass spans shaded."""
    w = grad.shape[1]
    cx = erf.centre[-1]
    ew = erf.size[-1]
    row = grad.sum(0)
    prof.plot(
        np.arange(w), row / row.max() if row.max() > 0 else row, color="#b2182b", label="gradient, summed over rows"
    )
    if x_span is not None:
        prof.axvspan(*x_span, color="#4dac26", alpha=0.15, label="analytic field")
    prof.axvspan(cx - ew / 2, cx + ew / 2, color="#00bfff", alpha=0.15, label=f"{erf.fraction:.0%} of the mass")
    prof.set_xlim(-0.5, w - 0.5)
    prof.set_xlabel("input x (pixels)")
    prof.set_ylabel("relative gradient")
    prof.set_title("horizontal profile", fontsize=9)
    prof.legend(fontsize=7.5)


def plot_erf(
    model: str | nn.Module | LoadedModel,
    input_size: tuple[int, ...] | None = None,
    *,
    samples: int = 8,
    fraction: float = 0.95,
    cap: int | None = 224,
    seed: int = 0,
    layer: str | None = None,
    out: str | Path | None = None,
    erf=None,
    label: str | None = None,
) -> Figure:
    """The effective receptive field (mean |∂y/∂x| of the centre unit over `samples` Gaussian inputs)
    as a heat map, with the analytic field's square and the square holding `fraction` of the mass.
    A name is built with initialised weights; the input is the model's default, each side capped at
    `cap`. `erf` may be an EffectiveReceptiveField already measured."""
    module, found, default = resolve_model(model, meta=False)
    label = label or found
    if erf is None:
        size = tuple(input_size) if input_size is not None else default
        if size is None:
            raise InvalidArgumentError(f"{label}: no default input size is known; pass input_size")
        size = capped_input(size, cap if input_size is None else None)
        erf = effective_receptive_field(module, size, layer=layer, samples=samples, fraction=fraction, seed=seed)
    grad = erf.grad.numpy().astype(np.float64)
    theo = erf.theoretical
    if grad.ndim == 3:  # video: (T, H, W) → the spatial field, summed over time
        grad, axes_note = grad.sum(0), " (summed over time)"
    else:
        axes_note = ""
    weights = (
        "the run's trained weights"
        if is_run_folder(model) or (isinstance(model, LoadedModel) and model.trained)
        else "weights as built (initialisation)"
        if isinstance(model, (str, LoadedModel))
        else "the model's weights"
    )
    fig = new_figure(11, 4.6)
    if grad.ndim == 1:
        _erf_line(fig, grad, erf, theo)
    else:
        ax, prof = fig.subplots(1, 2, width_ratios=[1.15, 1])
        x_span = _erf_heat_map(fig, ax, grad, erf, theo, axes_note)
        _erf_profile(prof, grad, erf, x_span)
    shape = "×".join(str(s) for s in erf.grad.shape)
    set_title(
        fig,
        f"{label}: effective receptive field of unit {tuple(erf.unit)} of {erf.where} — input {shape}, "
        f"{erf.samples} random inputs, {weights}",
        fontsize=10,
    )
    return save_figure(fig, out)
