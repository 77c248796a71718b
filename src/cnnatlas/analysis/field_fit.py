"""The analytic receptive field against the input: from which layer on the field is larger than the input,
and the smallest input side at which the field of the last spatial map's centre unit fits inside it.

Along one axis the units of a feature map have fields of size r, spaced j apart, unit i centred at c + i·j
(`ReceptiveField`: size, stride, start; input pixel 0 is centred at 0, so an input of side L spans [0, L − 1]).
Unit i sees [c + i·j − (r − 1)/2, c + i·j + (r − 1)/2].

*The field exceeds the input* at a layer where r > L on some axis: no unit of that layer can see only real
pixels; part of every field lies in the padding.

*The centre unit* is the unit whose field centre is nearest the input centre (L − 1)/2:
    i* = ((L − 1)/2 − c) / j rounded to a whole number ≥ 0 (at a tie, either of the two);
its field *fits* when c + i*·j − (r − 1)/2 ≥ 0 and c + i*·j + (r − 1)/2 ≤ L − 1. This depends on padding
through c: with "same" padding (c = 0) the grid of unit centres starts at pixel 0, so the fit needs L ≥ r and a
unit centre within the slack (L − r)/2 of the middle; without padding (c = (r − 1)/2) unit 0 already fits once
L ≥ r. The smallest fitting side is found from (r, j, c) alone, by trying L = ⌈r⌉, ⌈r⌉ + 1, … (it lies below
r + 2j + 2|p| + 2, p = (r − 1)/2 − c the effective padding). A unit whose whole field lies inside the input is
computed by every convolution and pooling layer on the way, so the centre unit exists at that side. Where the
field itself changes with the input (adaptive pooling, upsampling: `exact` False), `field_fit` traces the model
again at the side found and repeats until the side no longer moves, and says whether that trace confirms the fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import CnnAtlasError, InvalidArgumentError
from .report import ReceptiveField, Report


def _centre_units(side: int, start: float, jump: float) -> list[int]:
    x = ((side - 1) / 2 - start) / jump
    lo, hi = math.floor(x), math.ceil(x)
    near = [lo, hi] if (x - lo) == (hi - x) else [lo if x - lo < hi - x else hi]
    return sorted({max(0, i) for i in near})


def centre_fits(side: int, size: float, jump: float, start: float) -> bool:
    """Does the field of a centre unit along one axis lie inside an input of `side` pixels?"""
    half = (size - 1) / 2
    return any(
        start + i * jump - half >= 0 and start + i * jump + half <= side - 1 for i in _centre_units(side, start, jump)
    )


def smallest_fitting_side(size: float, jump: float, start: float) -> int:
    """The smallest input side at which a centre unit's field (size, jump, start) lies inside the input."""
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (size, jump, start)) or size <= 0 or jump <= 0:
        raise InvalidArgumentError(f"a receptive field needs size > 0 and stride > 0; got {size}, {jump}")
    padding = (size - 1) / 2 - start
    first = max(1, math.ceil(size))
    for side in range(first, first + math.ceil(2 * jump + 2 * abs(padding)) + 3):
        if centre_fits(side, size, jump, start):
            return side
    # not reached: past the bound the centre unit always fits
    raise InvalidArgumentError(f"no input side fits a field of size {size}, stride {jump}, start {start}")


@dataclass(frozen=True)
class FieldFit:
    """The field of a model against its input (spatial sides `input_sides`, one per axis)."""

    input_sides: tuple[int, ...]
    field: ReceptiveField | None  # of the last spatial map
    field_layer: str | None
    exceeds_from: str | None  # first module (in execution order) whose output's field is larger than the input
    exceeds_op: str | None
    fits: bool | None  # does the last map's centre unit field fit the given input?
    min_side: tuple[int, ...] | None  # smallest input side, per axis, at which it fits
    checked: bool | None = None  # a trace at min_side confirms the fit (None: not checked)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "input_sides": list(self.input_sides),
            "field": None if self.field is None else self.field.as_dict(),
            "field_layer": self.field_layer,
            "exceeds_from": self.exceeds_from,
            "exceeds_op": self.exceeds_op,
            "fits": self.fits,
            "min_side": None if self.min_side is None else list(self.min_side),
            "checked": self.checked,
            "note": self.note,
        }

    def __str__(self) -> str:
        sides = "×".join(map(str, self.input_sides))
        if self.field is None:
            return f"no spatial receptive field at input {sides}"
        where = (
            f"the field exceeds the {sides} input from {self.exceeds_from or '(model)'} ({self.exceeds_op}) on"
            if self.exceeds_op is not None
            else f"the field stays within the {sides} input"
        )
        need = "×".join(map(str, self.min_side or ()))
        return (
            f"{where}; the centre unit's field of the last map ({'×'.join(map(str, self.field.size))}) "
            f"{'fits' if self.fits else 'does not fit'} at {sides}; smallest input it fits: {need}"
            + ("" if self.checked is None else f" ({'confirmed' if self.checked else 'NOT confirmed'} by a trace)")
        )


def _fit_of(rf: ReceptiveField, sides: tuple[int, ...]) -> tuple[bool, tuple[int, ...]]:
    fits = all(centre_fits(L, r, j, c) for L, r, j, c in zip(sides, rf.size, rf.stride, rf.start))
    return fits, tuple(smallest_fitting_side(r, j, c) for r, j, c in zip(rf.size, rf.stride, rf.start))


def fit_from_report(report: Report, sides: tuple[int, ...] | None = None) -> FieldFit:
    """The field against the input of `report` (its first input's spatial sides, unless `sides` is given);
    no further trace."""
    sides = tuple(sides or report.input_shapes[0][2:])
    rf = report.receptive_field
    if rf is None or len(rf.size) != len(sides):
        return FieldFit(sides, None, None, None, None, None, None, note="no spatial receptive field")
    first = next(
        (
            rec
            for rec in report.layers
            if (f := rec.receptive_field) is not None
            and len(f.size) == len(sides)
            and any(r > L for r, L in zip(f.size, sides))
        ),
        None,
    )
    fits, need = _fit_of(rf, sides)
    return FieldFit(
        sides,
        rf,
        report.receptive_field_layer,
        None if first is None else first.name,
        None if first is None else first.op,
        fits,
        need,
        note="local paths only; a global path (+global) sees the whole input" if rf.global_context else "",
    )


def field_fit(
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    check: bool = True,
    traces: int = 64,
    report: Report | None = None,
) -> FieldFit:
    """`fit_from_report` at `input_shape`; with `check`, the model is traced again at the side found (other axes
    of the input kept), and where the field there differs so that the centre unit does not fit (adaptive pooling,
    upsampling), at larger sides in turn — the side the field there asks for, at least one more — until one fits
    (at most `traces` traces; never past the given input when that fits): `checked` says whether one did.
    `report`: the analysis at `input_shape` when already made."""
    from .trace import analyze

    input_shape = tuple(input_shape)
    report = report or analyze(model, input_shape, training_memory=False)
    fit = fit_from_report(report)
    if not check or fit.min_side is None:
        return fit
    given = fit.input_sides if fit.fits else None
    need, confirmed, note = fit.min_side, None, fit.note
    for _ in range(traces):
        if given is not None and all(n >= g for n, g in zip(need, given)):
            need, confirmed = given, True  # the first trace already showed the fit here
            break
        try:
            rf = analyze(model, tuple(input_shape[:2]) + need, training_memory=False).receptive_field
        except CnnAtlasError:
            note = (note + "; " if note else "") + f"not checked: the model does not run at {'×'.join(map(str, need))}"
            confirmed = None
            break
        if rf is None or len(rf.size) != len(need):
            confirmed = False
            break
        ok, again = _fit_of(rf, need)
        confirmed = ok
        if ok:
            break
        need = tuple(max(n + 1, a) for n, a in zip(need, again))
    if confirmed is False:
        need = fit.min_side
        note = (note + "; " if note else "") + "the field changes with the input: no side confirmed by a trace"
    return FieldFit(
        fit.input_sides, fit.field, fit.field_layer, fit.exceeds_from, fit.exceeds_op, fit.fits, need, confirmed, note
    )
