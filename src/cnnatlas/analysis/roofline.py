"""The roofline model (Williams, Waterman & Patterson, "Roofline: an insightful visual performance model
for multicore architectures", CACM 2009) applied to each record of an analysis.

For one operator:
    FLOPs      F = 2 × MACs + other FLOPs
    bytes      B = (every input tensor, weights included, + the output) × the dtype's size — each read or
                   written once, no cache reuse across operators
    intensity  I = F / B                      (FLOPs per byte)
    time       t = max(F / P_c, B / W)        (P_c the ceiling of the operator's class, W bytes/s of memory)
The operator is *compute-bound* where I ≥ P_c / W (the ridge point of its ceiling), *memory-bound* below it.

Multiple ceilings (Williams et al. 2009, section "Adding ceilings to the model"): code that cannot use the full
FMA/SIMD width of the machine runs below the peak P, so each operator class has its own compute ceiling P_c ≤ P:
dense convolution and matrix products reach P (a large matmul); depthwise convolution (groups = input channels),
max-pooling, average-pooling and element-wise/normalisation operators have their own ceilings, each measured by a
small kernel of that class. FLOPs follow the analyser (analysis/flops.py): 2 per MAC, a pooling window element one
FLOP per output, one FLOP per element of an element-wise operator. A class without a ceiling uses P.

`measure_machine` measures P and W on this machine: P from a large float32 matmul (2·n³ FLOPs), W from
a STREAM-style triad a = b + s·c (3 arrays of n floats moved: two read, one written), and the class ceilings from
3×3 depthwise convolutions (MobileNet-v2's shapes), a 3×3/2 max-pool and avg-pool (1×64×112×112) and an addition
(1×256×56×56), each the best of a few repeats. `measure_layer_times` times each leaf module of a real model with
hooks, to check the predictions: `spearman` and `kendall_tau_b` give the rank correlation of predicted against
measured times.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from ..errors import InvalidArgumentError
from .report import LayerRecord, Report

# operator classes with a compute ceiling of their own, and the word the bound names them with
CEILING_CLASSES = {
    "depthwise": "depthwise",
    "max_pool": "max-pool",
    "avg_pool": "avg-pool",
    "elementwise": "element-wise",
}


@dataclass(frozen=True)
class Machine:
    """Peak compute (FLOP/s) and memory bandwidth (bytes/s), and how they were obtained; optionally the compute
    ceilings (FLOP/s) of operator classes that run below the peak (None: that class is taken at the peak)."""

    peak_flops: float
    bandwidth: float
    source: str = "given"  # "given" or a sentence saying what was measured how
    threads: int | None = None
    depthwise_flops: float | None = None
    max_pool_flops: float | None = None
    avg_pool_flops: float | None = None
    elementwise_flops: float | None = None

    def __post_init__(self) -> None:
        ceilings = [(f"{c} ceiling", getattr(self, f"{c}_flops")) for c in CEILING_CLASSES]
        for what, v in (("peak compute", self.peak_flops), ("bandwidth", self.bandwidth), *ceilings):
            if what.endswith("ceiling") and v is None:
                continue
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise InvalidArgumentError(f"roofline: {what} must be a finite number > 0; got {v!r}")

    def ceiling(self, op_class: str) -> float:
        """The compute ceiling of an operator class (FLOP/s): its own where known, never above the peak (a
        class kernel measured faster than the matmul says the peak's run was disturbed), else the peak."""
        own = getattr(self, f"{op_class}_flops", None) if op_class in CEILING_CLASSES else None
        return self.peak_flops if own is None else min(own, self.peak_flops)

    def peak_only(self) -> Machine:
        """The same machine without class ceilings: every operator at the peak (the single-roof model)."""
        return replace(self, **{f"{c}_flops": None for c in CEILING_CLASSES})

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
            "ceilings_gflops": {
                c: None if getattr(self, f"{c}_flops") is None else getattr(self, f"{c}_flops") / 1e9
                for c in CEILING_CLASSES
            },
        }


def _best_of(fn, repeats: int) -> float:
    fn()  # warm-up: allocation, first-call dispatch
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


# 3×3 depthwise convolutions of MobileNet-v2's stages (channels, side, stride), timed together for the ceiling
DEPTHWISE_SHAPES = ((32, 112, 1), (96, 112, 2), (144, 56, 1), (192, 28, 1), (384, 14, 1), (960, 7, 1))


def measure_ceilings(repeats: int = 5) -> dict[str, float]:
    """FLOP/s of small kernels per operator class with its own ceiling, FLOPs counted as the analyser counts
    them (best of `repeats`, torch's current threads): 3×3 depthwise convolutions at the shapes of MobileNet-v2
    (DEPTHWISE_SHAPES, padding 1; 2 FLOPs per MAC; their FLOPs summed over their best times summed), a 3×3/2
    max-pool and avg-pool (padding 1) on 1×64×112×112 (9 FLOPs per output: one per window element), and an
    addition of two 1×256×56×56 tensors (1 FLOP per element).

    A tensor larger than any output timed is allocated and freed first: in a model's forward pass freed
    activations are reused, while a kernel timed alone can get a fresh output from the system each call and pay
    its page faults on first touch (glibc maps blocks over its mmap threshold afresh until a freed one raises the
    threshold): on the machine this was written on, that made a 1×144×56×56 depthwise convolution 12× slower."""
    f = torch.nn.functional
    warm = torch.empty(1 << 21)  # 8 MB, larger than every output below
    del warm
    x_pool = torch.randn(1, 64, 112, 112)
    a, b = torch.randn(1, 256, 56, 56), torch.randn(1, 256, 56, 56)
    out = torch.empty_like(a)
    t_dw, f_dw = 0.0, 0
    with torch.no_grad():
        for c, side, stride in DEPTHWISE_SHAPES:
            x, w = torch.randn(1, c, side, side), torch.randn(c, 1, 3, 3)
            t_dw += _best_of(lambda x=x, w=w, c=c, s=stride: f.conv2d(x, w, None, s, 1, 1, c), repeats)
            f_dw += 2 * c * ((side - 1) // stride + 1) ** 2 * 9
        t = {
            "depthwise": t_dw,
            "max_pool": _best_of(lambda: f.max_pool2d(x_pool, 3, 2, 1), repeats),
            "avg_pool": _best_of(lambda: f.avg_pool2d(x_pool, 3, 2, 1), repeats),
            "elementwise": _best_of(lambda: torch.add(a, b, out=out), repeats),
        }
    flops = {"depthwise": f_dw, "max_pool": 9 * 64 * 56 * 56, "avg_pool": 9 * 64 * 56 * 56, "elementwise": a.numel()}
    return {c: flops[c] / t[c] for c in CEILING_CLASSES}


def measure_machine(
    *,
    matmul_side: int = 1024,
    triad_floats: int = 1 << 23,
    repeats: int = 5,
    threads: int | None = None,
    ceilings: bool = True,
) -> Machine:
    """Peak float32 FLOP/s (best of `repeats` n×n matmuls, 2n³ FLOPs each) and memory bytes/s (best of
    `repeats` triads a = b + s·c over `triad_floats` floats: 12 bytes per float), and with `ceilings` the
    class ceilings of `measure_ceilings`, with torch's threads (`threads` sets them for the measurement)."""
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
        classes = measure_ceilings(repeats) if ceilings else {}
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(saved)
    flops, moved = 2 * n**3, 3 * triad_floats * 4
    source = (
        f"measured with {used} thread(s): float32 {n}×{n} matmul, best of {repeats} "
        f"({t_mm * 1e3:.2f} ms for {flops / 1e9:.2f} GFLOP); triad a = b + 3·c over {triad_floats:,} floats, "
        f"best of {repeats} ({t_triad * 1e3:.2f} ms for {moved / 1e6:.0f} MB read and written)"
    )
    if classes:
        source += (
            "; class ceilings, best of "
            f"{repeats}: 3×3 depthwise convs at MobileNet-v2's 6 shapes, 3×3/2 max- and avg-pool 1×64×112×112, add "
            "1×256×56×56"
        )
    return Machine(flops / t_mm, moved / t_triad, source, used, **{f"{c}_flops": v for c, v in classes.items()})


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
    # "compute" (at the peak), "compute (depthwise)" etc. (under that class's ceiling), "memory", or None for an
    # operator that costs nothing
    bound: str | None
    seconds: float
    op_class: str = "dense"  # see operator_class

    def as_dict(self) -> dict[str, Any]:
        return {
            "flops": self.flops,
            "bytes_moved": self.bytes,
            "arithmetic_intensity": self.intensity,
            "bound": self.bound,
            "predicted_seconds": self.seconds,
            "operator_class": self.op_class,
        }


def itemsize_of(dtype: str) -> int:
    dt = getattr(torch, dtype, None)
    if not isinstance(dt, torch.dtype):
        raise InvalidArgumentError(f"roofline: expected a torch dtype name such as float32; got {dtype!r}")
    return dt.itemsize


def operator_class(rec: LayerRecord) -> str:
    """The class whose compute ceiling bounds a record: "depthwise" (a convolution whose groups equal its input
    channels, > 1: weight of shape C_out × 1 × k…), "dense" (other convolutions, linear and matrix products: any
    operator with MACs), "max_pool" / "avg_pool" (window and adaptive pooling), "elementwise" (every other
    operator that computes: activations, additions, normalisation, reductions), "movement" (no FLOPs)."""
    if rec.macs > 0:
        shapes = rec.input_shapes
        if "conv" in rec.op and len(shapes) >= 2 and len(shapes[0]) >= 3 and len(shapes[1]) >= 3:
            if shapes[0][1] > 1 and shapes[1][1] == 1:
                return "depthwise"
        return "dense"
    if "max_pool" in rec.op:
        return "max_pool"
    if "avg_pool" in rec.op:
        return "avg_pool"
    return "elementwise" if layer_flops(rec) > 0 else "movement"


def layer_roofline(rec: LayerRecord, machine: Machine, itemsize: int) -> LayerRoofline:
    """t = max(F / ceiling of the record's class, B / bandwidth); the bound names the ceiling where the class
    has one of its own ("compute (max-pool)"), plain "compute" at the peak."""
    f, b, cls = layer_flops(rec), layer_bytes(rec, itemsize), operator_class(rec)
    t_compute, t_memory = f / machine.ceiling(cls), b / machine.bandwidth
    own = cls in CEILING_CLASSES and getattr(machine, f"{cls}_flops") is not None
    compute = f"compute ({CEILING_CLASSES[cls]})" if own else "compute"
    bound = None if f == 0 and b == 0 else (compute if t_compute >= t_memory else "memory")
    return LayerRoofline(f, b, f / b if b else None, bound, max(t_compute, t_memory), cls)


def roofline(report: Report, machine: Machine) -> list[LayerRoofline]:
    """One LayerRoofline per record of `report`, in order."""
    size = itemsize_of(report.dtype)
    return [layer_roofline(rec, machine, size) for rec in report.layers]


def row_roofline(points: list[LayerRoofline]) -> dict[str, Any]:
    """Totals of several records (a row of the summary table): FLOPs, bytes, intensity of the sums, predicted
    time (the sum), and the bound under which most of that time falls."""
    f, b, t = sum(p.flops for p in points), sum(p.bytes for p in points), sum(p.seconds for p in points)
    by_bound: dict[str, float] = {}
    for p in points:
        if p.bound is not None:
            by_bound[p.bound] = by_bound.get(p.bound, 0.0) + p.seconds
    bound = None if t == 0 or not by_bound else max(by_bound, key=by_bound.get)
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


def kendall_tau_b(a: list[float], b: list[float]) -> float | None:
    """Kendall's τ_b: (concordant − discordant pairs) / √((n₀ − ties in a)(n₀ − ties in b)), n₀ = n(n−1)/2; a pair
    tied in either list counts as neither, so layers predicted alike (same shape) do not count against the order.
    None where one list is constant."""
    if len(a) != len(b) or len(a) < 2:
        raise InvalidArgumentError(f"kendall_tau_b needs two lists of equal length ≥ 2; got {len(a)} and {len(b)}")
    conc = disc = ties_a = ties_b = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            da, db = a[i] - a[j], b[i] - b[j]
            ties_a += da == 0
            ties_b += db == 0
            if da and db:
                conc, disc = conc + (da * db > 0), disc + (da * db < 0)
    n0 = len(a) * (len(a) - 1) // 2
    denom = math.sqrt((n0 - ties_a) * (n0 - ties_b))
    return (conc - disc) / denom if denom else None


def check_against_measured(
    model: nn.Module,
    input_shape: tuple[int, ...],
    machine: Machine,
    *,
    repeats: int = 5,
    top: int = 10,
    measured: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Predicted against measured time per leaf module of `model` (real weights, CPU, torch's current threads)
    at `input_shape`: the Spearman correlation over every leaf module that costs something, over the `top` and the
    2·`top` slowest measured ones, Kendall's τ_b over the `top` slowest (ties in the prediction count neither way),
    how many distinct predictions these `top` have, and how many of the `top` slowest measured are predicted among
    the `top` slowest (a prediction tied with the `top`-th largest counts: ResNet's 3×3 convolutions all cost the
    same). `measured` (module → seconds, from `measure_layer_times`) is used instead of timing the model again."""
    from .trace import analyze

    report = analyze(model, input_shape, training_memory=False)
    predicted = predicted_by_module(report, roofline(report, machine))
    if measured is None:
        measured = measure_layer_times(model, torch.randn(input_shape), repeats=repeats)
    common = sorted(k for k in measured if predicted.get(k, 0.0) > 0)
    p, m = [predicted[k] for k in common], [measured[k] for k in common]
    by_time = sorted(common, key=measured.get, reverse=True)
    slow, slow2 = by_time[:top], by_time[: 2 * top]
    cut = sorted(p, reverse=True)[min(top, len(p)) - 1]  # the top-th largest prediction: ties count as in the top
    return {
        "modules": len(common),
        "spearman": spearman(p, m),
        f"spearman_top{top}": spearman([predicted[k] for k in slow], [measured[k] for k in slow]),
        f"spearman_top{2 * top}": spearman([predicted[k] for k in slow2], [measured[k] for k in slow2]),
        f"kendall_top{top}": kendall_tau_b([predicted[k] for k in slow], [measured[k] for k in slow]),
        f"distinct_predictions_top{top}": len({round(predicted[k], 12) for k in slow}),
        f"top{top}_overlap": sum(predicted[k] >= cut for k in slow),
        "predicted_seconds": sum(p),
        "measured_seconds": sum(m),
        "slowest": [{"module": k, "measured_seconds": measured[k], "predicted_seconds": predicted[k]} for k in slow],
    }
