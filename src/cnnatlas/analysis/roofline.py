"""The roofline model (Williams, Waterman & Patterson, "Roofline: an insightful visual performance model
for multicore architectures", CACM 2009) applied to each record of an analysis.

For one operator:
    FLOPs      F = 2 × MACs + other FLOPs
    bytes      B = (every input tensor, weights included, + the output) × the dtype's size — each read or
                   written once, no cache reuse across operators
    intensity  I = F / B                      (FLOPs per byte)
    time       t = max(F / P, B / W)          (P peak FLOP/s, W bytes/s of memory)
The operator is *compute-bound* where I ≥ P / W (the ridge point), *memory-bound* below it.

`measure_machine` measures P and W on this machine: P from a large float32 matmul (2·n³ FLOPs), W from
a STREAM-style triad a = b + s·c (3 arrays of n floats moved: two read, one written), each the best of a
few repeats. `measure_layer_times` times each leaf module of a real model with hooks, to check the
predictions: `spearman` gives the rank correlation of predicted against measured times.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import InvalidArgumentError
from .report import LayerRecord, Report


@dataclass(frozen=True)
class Machine:
    """Peak compute (FLOP/s) and memory bandwidth (bytes/s), and how they were obtained."""

    peak_flops: float
    bandwidth: float
    source: str = "given"  # "given" or a sentence saying what was measured how
    threads: int | None = None

    def __post_init__(self) -> None:
        for what, v in (("peak compute", self.peak_flops), ("bandwidth", self.bandwidth)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise InvalidArgumentError(f"roofline: {what} must be a finite number > 0; got {v!r}")

    @property
    def ridge(self) -> float:
        """The intensity (FLOPs/byte) where the two roofs meet: P / W."""
        return self.peak_flops / self.bandwidth

    def as_dict(self) -> dict[str, Any]:
        return {
            "peak_gflops": self.peak_flops / 1e9,
            "bandwidth_gbs": self.bandwidth / 1e9,
            "ridge_flops_per_byte": self.ridge,
            "source": self.source,
            "threads": self.threads,
        }


def _best_of(fn, repeats: int) -> float:
    fn()  # warm-up: allocation, first-call dispatch
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_machine(
    *, matmul_side: int = 1024, triad_floats: int = 1 << 23, repeats: int = 5, threads: int | None = None
) -> Machine:
    """Peak float32 FLOP/s (best of `repeats` n×n matmuls, 2n³ FLOPs each) and memory bytes/s (best of
    `repeats` triads a = b + s·c over `triad_floats` floats: 12 bytes per float), with torch's threads
    (`threads` sets them for the measurement)."""
    saved = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        n = matmul_side
        a, b = torch.randn(n, n), torch.randn(n, n)
        out = torch.empty(n, n)
        t_mm = _best_of(lambda: torch.mm(a, b, out=out), repeats)
        x, y, z = torch.randn(triad_floats), torch.randn(triad_floats), torch.empty(triad_floats)
        t_triad = _best_of(lambda: torch.add(x, y, alpha=3.0, out=z), repeats)
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(saved)
    flops, moved = 2 * n**3, 3 * triad_floats * 4
    source = (
        f"measured with {used} thread(s): float32 {n}×{n} matmul, best of {repeats} "
        f"({t_mm * 1e3:.2f} ms for {flops / 1e9:.2f} GFLOP); triad a = b + 3·c over {triad_floats:,} floats, "
        f"best of {repeats} ({t_triad * 1e3:.2f} ms for {moved / 1e6:.0f} MB read and written)"
    )
    return Machine(flops / t_mm, moved / t_triad, source, used)


def _elements(shape) -> int:
    return math.prod(shape)


def layer_flops(rec: LayerRecord) -> int:
    """FLOPs of one record: 2 × MACs + other FLOPs."""
    return 2 * rec.macs + rec.other_flops


def layer_bytes(rec: LayerRecord, itemsize: int) -> int:
    """Bytes one record moves: its inputs (weights included) and its output, each once; 0 for an operator that
    computes nothing and writes no new tensor."""
    if layer_flops(rec) == 0 and rec.activation_bytes == 0:
        return 0
    return (sum(_elements(s) for s in rec.input_shapes) + _elements(rec.output_shape)) * itemsize


@dataclass(frozen=True)
class LayerRoofline:
    """Where one record sits on the roofline."""

    flops: int
    bytes: int
    intensity: float | None  # None where nothing is moved
    bound: str | None  # "compute", "memory", or None for an operator that costs nothing
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "flops": self.flops,
            "bytes_moved": self.bytes,
            "arithmetic_intensity": self.intensity,
            "bound": self.bound,
            "predicted_seconds": self.seconds,
        }


def itemsize_of(dtype: str) -> int:
    dt = getattr(torch, dtype, None)
    if not isinstance(dt, torch.dtype):
        raise InvalidArgumentError(f"roofline: expected a torch dtype name such as float32; got {dtype!r}")
    return dt.itemsize


def layer_roofline(rec: LayerRecord, machine: Machine, itemsize: int) -> LayerRoofline:
    f, b = layer_flops(rec), layer_bytes(rec, itemsize)
    t_compute, t_memory = f / machine.peak_flops, b / machine.bandwidth
    bound = None if f == 0 and b == 0 else ("compute" if t_compute >= t_memory else "memory")
    return LayerRoofline(f, b, f / b if b else None, bound, max(t_compute, t_memory))


def roofline(report: Report, machine: Machine) -> list[LayerRoofline]:
    """One LayerRoofline per record of `report`, in order."""
    size = itemsize_of(report.dtype)
    return [layer_roofline(rec, machine, size) for rec in report.layers]


def row_roofline(points: list[LayerRoofline]) -> dict[str, Any]:
    """Totals of several records (a row of the summary table): FLOPs, bytes, intensity of the sums, predicted
    time (the sum), and the bound under which most of that time falls."""
    f, b, t = sum(p.flops for p in points), sum(p.bytes for p in points), sum(p.seconds for p in points)
    by_bound = {k: sum(p.seconds for p in points if p.bound == k) for k in ("compute", "memory")}
    bound = None if t == 0 else max(by_bound, key=by_bound.get)
    return {
        "flops": f,
        "bytes_moved": b,
        "arithmetic_intensity": f / b if b else None,
        "bound": bound,
        "predicted_seconds": t,
    }


def predicted_by_module(report: Report, points: list[LayerRoofline]) -> dict[str, float]:
    """Predicted seconds summed by the module each record ran in (its `name`)."""
    out: dict[str, float] = {}
    for rec, p in zip(report.layers, points):
        out[rec.name] = out.get(rec.name, 0.0) + p.seconds
    return out


def measure_layer_times(model: nn.Module, x: torch.Tensor, *, repeats: int = 5, warmup: int = 1) -> dict[str, float]:
    """Wall time of each leaf module of a real model on input `x` (hooks around its forward, every call of it
    summed), the median over `repeats` forward passes after `warmup`; eval mode, no autograd."""
    names = {m: n for n, m in model.named_modules() if n and not any(True for _ in m.children())}
    runs: list[dict[str, float]] = []
    current: dict[str, float] = {}
    started: dict[nn.Module, float] = {}

    def pre(mod, _inp):
        started[mod] = time.perf_counter()

    def post(mod, _inp, _out):
        name = names[mod]
        current[name] = current.get(name, 0.0) + time.perf_counter() - started.pop(mod)

    handles = [m.register_forward_pre_hook(pre) for m in names] + [m.register_forward_hook(post) for m in names]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(warmup + repeats):
                current = {}
                model(x)
                if i >= warmup:
                    runs.append(current)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    keys = set().union(*runs) if runs else set()
    return {k: sorted(r.get(k, 0.0) for r in runs)[len(runs) // 2] for k in keys}


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1  # ties share their mean rank
        i = j + 1
    return ranks


def spearman(a: list[float], b: list[float]) -> float | None:
    """Spearman's rank correlation: Pearson's correlation of the ranks (ties at their mean rank); None where one
    list is constant (no ranking to compare)."""
    if len(a) != len(b) or len(a) < 2:
        raise InvalidArgumentError(f"spearman needs two lists of equal length ≥ 2; got {len(a)} and {len(b)}")
    ra, rb = _ranks(list(a)), _ranks(list(b))
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va, vb = sum((x - ma) ** 2 for x in ra), sum((y - mb) ** 2 for y in rb)
    return cov / math.sqrt(va * vb) if va and vb else None  # type: ignore[return-value]  # a constant list


def check_against_measured(
    model: nn.Module, input_shape: tuple[int, ...], machine: Machine, *, repeats: int = 5, top: int = 10
) -> dict[str, Any]:
    """Predicted against measured time per leaf module of `model` (real weights, CPU, torch's current threads)
    at `input_shape`: the Spearman correlation over every leaf module that costs something, and over the
    `top` slowest measured ones, and how many of the `top` slowest measured are predicted among the `top` slowest
    (a prediction tied with the `top`-th largest counts: ResNet's 3×3 convolutions all cost the same)."""
    from .trace import analyze

    report = analyze(model, input_shape, training_memory=False)
    predicted = predicted_by_module(report, roofline(report, machine))
    measured = measure_layer_times(model, torch.randn(input_shape), repeats=repeats)
    common = sorted(k for k in measured if predicted.get(k, 0.0) > 0)
    p, m = [predicted[k] for k in common], [measured[k] for k in common]
    slow = sorted(common, key=measured.get, reverse=True)[:top]
    cut = sorted(p, reverse=True)[min(top, len(p)) - 1]  # the top-th largest prediction: ties count as in the top
    return {
        "modules": len(common),
        "spearman": spearman(p, m),
        f"spearman_top{top}": spearman([predicted[k] for k in slow], [measured[k] for k in slow]),
        f"top{top}_overlap": sum(predicted[k] >= cut for k in slow),
        "predicted_seconds": sum(p),
        "measured_seconds": sum(m),
        "slowest": [{"module": k, "measured_seconds": measured[k], "predicted_seconds": predicted[k]} for k in slow],
    }
