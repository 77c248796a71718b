"""What an analysis returns: totals, one record per operator, one per module call, the receptive field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgumentError, did_you_mean
from .receptive_field import Layout, spatial_fields

AXIS_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("T", "H", "W")}


def _num(v: float) -> int | float:
    """2.0 → 2; 15.5 stays 15.5 (fields live on a half-pixel grid)."""
    return int(v) if float(v).is_integer() else round(float(v), 6)


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of the units of one feature map, per input axis (H, W; T, H, W; or L).

    `size`: input pixels one unit sees; `stride`: distance between neighbouring units (the jump);
    `start`: centre of unit 0's field, in input pixel coordinates (pixel 0 is centred at 0). Unit i
    sees [start + i·stride − (size − 1)/2, start + i·stride + (size − 1)/2]. `padding` is the
    "effective padding" of google-research/receptive_field: (size − 1)/2 − start. `exact` is False
    where the units' fields are not exact translates of each other (adaptive pooling with a ratio
    that is not an integer, upsampling); `global_context` is True where some path (squeeze-and-
    excitation, attention, training-mode batch statistics) lets every unit see the whole input as well.
    `dims`: the feature map's dimension that runs along each input axis (a spectrogram CNN's map
    (N, C, mel, time) runs along the waveform's L in dimension 3 only); () where not known.
    """

    size: tuple[int | float, ...]
    stride: tuple[int | float, ...]
    start: tuple[int | float, ...]
    axes: tuple[str, ...] = ()
    exact: bool = True
    global_context: bool = False
    dims: tuple[int, ...] = field(default=(), compare=False)

    def unit_index(self, unit: tuple[int, ...]) -> tuple[int, ...]:
        """A unit's position along each input axis, from its position in the map's spatial dimensions
        (those after N and C): its index in the dimension each axis runs along."""
        if not self.dims:
            return tuple(unit)
        return tuple(unit[d - 2] for d in self.dims)

    @property
    def padding(self) -> tuple[int | float, ...]:
        return tuple(_num((s - 1) / 2 - c) for s, c in zip(self.size, self.start))

    def span(self, index: tuple[int, ...] | int = 0) -> tuple[tuple[float, float], ...]:
        """Input interval [first, last] pixel seen by unit `index`, per axis (unclipped)."""
        idx = (index,) * len(self.size) if isinstance(index, int) else tuple(index)
        return tuple(
            (c + i * j - (s - 1) / 2, c + i * j + (s - 1) / 2)
            for s, j, c, i in zip(self.size, self.stride, self.start, idx)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "size": list(self.size),
            "stride": list(self.stride),
            "start": list(self.start),
            "padding": list(self.padding),
            "axes": list(self.axes),
            "exact": self.exact,
            "global_context": self.global_context,
        }

    def __str__(self) -> str:
        def fmt(v):
            return "×".join(str(x) for x in v) if len(set(v)) > 1 else str(v[0])

        flags = ("" if self.exact else " ≈") + (" +global" if self.global_context else "")
        return f"size {fmt(self.size)}, stride {fmt(self.stride)}, start {fmt(self.start)}{flags}"


_FIELDS: dict[tuple[int, int], tuple[Layout, ReceptiveField | None]] = {}


def field_from_layout(layout: Layout | None, n_axes: int) -> ReceptiveField | None:
    """The receptive field a layout describes; computed once per layout object (consecutive
    operators such as conv → norm → activation share one)."""
    key = (id(layout), n_axes)
    hit = _FIELDS.get(key)
    if hit is not None and hit[0] is layout:  # the layout is held here, so its id is not reused
        return hit[1]
    field = _field_from_layout(layout, n_axes)
    if len(_FIELDS) >= 4096:
        _FIELDS.clear()
    _FIELDS[key] = (layout, field)
    return field


def _field_from_layout(layout: Layout | None, n_axes: int) -> ReceptiveField | None:
    fields = spatial_fields(layout, n_axes)
    if fields is None:
        return None
    return ReceptiveField(
        size=tuple(_num(f.size) for f in fields),
        stride=tuple(_num(abs(f.jump)) for f in fields),
        start=tuple(_num(f.start) for f in fields),
        axes=AXIS_NAMES.get(n_axes, tuple(f"axis{i}" for i in range(n_axes))),
        exact=all(f.exact for f in fields),
        global_context=layout.global_context,
        dims=tuple(next(d for d, e in enumerate(layout.dims) if e is f) for f in fields),
    )


@dataclass(slots=True)
class LayerRecord:
    """One operator call: where it ran (module path), what it was, its shapes and its cost."""

    index: int
    name: str  # dotted path of the innermost module running it ("" for the model's own forward)
    module_type: str
    op: str  # the ATen operator, e.g. "convolution", "addmm", "add_"
    input_shapes: list[tuple[int, ...]]
    output_shape: tuple[int, ...]
    params: int  # parameters this operator uses for the first time in the trace
    macs: int
    other_flops: int
    activation_bytes: int  # bytes of the new tensor it writes (0 for in-place operators)
    inputs: list[int] = field(default_factory=list, repr=False)  # producing records (-1: a model input)
    layout: Layout | None = field(default=None, repr=False)
    n_axes: int = field(default=0, repr=False)
    # how its output size was learnt: "meta" (from the shapes), "cpu-run" (a run on values, forced by another
    # operator) or "measured" (the size depends on values: nonzero, nms, unique), see Report.sizing
    sizing: str = "meta"
    output_stride: tuple[int, ...] = ()  # the strides of its output tensor (its memory layout)
    backward_macs: int = 0  # MACs of its gradients in a training step (see Report.backward_macs)

    @property
    def receptive_field(self) -> ReceptiveField | None:
        return field_from_layout(self.layout, self.n_axes)

    def as_dict(self) -> dict[str, Any]:
        rf = self.receptive_field
        return {
            "name": self.name,
            "op": self.op,
            "module_type": self.module_type,
            "input_shapes": [list(s) for s in self.input_shapes],
            "output_shape": list(self.output_shape),
            "params": self.params,
            "macs": self.macs,
            "other_flops": self.other_flops,
            "activation_bytes": self.activation_bytes,
            "receptive_field": None if rf is None else rf.as_dict(),
            "sizing": self.sizing,
        }


@dataclass(slots=True)
class ModuleRecord:
    """One call of a module: the operators it ran (records first..last) and its output."""

    name: str
    module_type: str
    depth: int
    output_shapes: list[tuple[int, ...]]
    first: int
    last: int
    layout: Layout | None = field(default=None, repr=False)
    n_axes: int = field(default=0, repr=False)

    @property
    def receptive_field(self) -> ReceptiveField | None:
        return field_from_layout(self.layout, self.n_axes)


@dataclass
class Report:
    """The analysis of one model at one input size. MACs count multiply–accumulates (the "GFLOPS"
    of torchvision's tables); `flops` = 2 × `macs`; `other_flops` are stated apart (normalisation,
    activations, pooling, element-wise). Memory is in bytes."""

    model: str
    input_shapes: list[tuple[int, ...]]
    output_shapes: list[tuple[int, ...]]
    dtype: str
    params: int
    trainable_params: int
    param_bytes: int
    buffer_bytes: int
    macs: int
    other_flops: int
    activation_bytes: int
    saved_activation_bytes: int | None  # None: analysed with training_memory=False
    gradient_bytes: int
    receptive_field: ReceptiveField | None
    layers: list[LayerRecord]
    modules: list[ModuleRecord]
    unsupported_ops: dict[str, int]
    unused_params: int = 0
    receptive_field_layer: str | None = None  # the outermost module whose output is that map
    seconds: float = 0.0
    # {} when every output size followed from shapes on meta tensors. A model that reads values (nonzero, nms,
    # .item(): detection) runs once for real on the CPU, on a seeded random input of the requested shape
    # (made-up weights where the model is on meta): then "*" → "cpu-run" and each operator whose output size
    # depends on the values (e.g. "aten.nonzero", "torchvision.nms") → "measured" — true of that input only.
    sizing: dict[str, str] = field(default_factory=dict)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def backward_macs(self) -> int:
        """Multiply–accumulates of the backward pass, by the convention of `macs` (convolutions, linear
        layers, matrix products and attention; nothing else): for each such product, its forward MACs once
        for the gradient of its input (dX = dY ⋆ Wᵀ) if that input needs one, and once for the gradient of
        its weight (dW = Xᵀ ⋆ dY) if the weight is trainable — 2 × forward for a conv or linear layer
        inside the network, 1 × for the first layer (the model's input needs no gradient) and for a layer
        whose input comes only from frozen layers, 0 for a frozen layer that nothing trainable precedes.
        Bias gradients (sums) and the backward of everything else are not counted, as in `macs`."""
        return sum(r.backward_macs for r in self.layers)

    @property
    def training_step_flops(self) -> int:
        """FLOPs of one training step's forward and backward products: 2 × (macs + backward_macs), the
        convention of torch.utils.flop_counter.FlopCounterMode around a forward and `loss.backward()`
        (2 FLOPs a MAC; normalisation, activations, the loss and the optimizer update not included)."""
        return 2 * (self.macs + self.backward_macs)

    @property
    def training_peak_bytes(self) -> int | None:
        """Estimated peak of one training step: parameters and buffers, their gradients, and the
        activations autograd saves for backward (optimizer state not included)."""
        if self.saved_activation_bytes is None:
            return None
        return self.param_bytes + self.buffer_bytes + self.gradient_bytes + self.saved_activation_bytes

    def receptive_field_of(self, name: str) -> ReceptiveField | None:
        """Receptive field of the output of the module `name` (dotted path; its first call)."""
        for m in self.modules:
            if m.name == name:
                return m.receptive_field
        raise InvalidArgumentError(
            f"{self.model} has no module {name!r} that ran in the trace."
            f"{did_you_mean(name, [m.name for m in self.modules])}"
        )

    def rows(self, depth: int) -> list[dict[str, Any]]:
        """Per-module totals at a depth of the module tree (1: the model's children). Operators of a
        module deeper than `depth` are added to its ancestor at `depth`; operators that run directly
        in a shallower module's forward get a row of their own under that module's name."""
        out: list[dict[str, Any]] = []
        index: dict[str, dict[str, Any]] = {}
        for rec in self.layers:
            parts = rec.name.split(".") if rec.name else []
            key = ".".join(parts[:depth])
            row = index.get(key)
            if row is None or out[-1] is not row:
                row = {
                    "name": key,
                    "module_type": None,
                    "params": 0,
                    "macs": 0,
                    "other_flops": 0,
                    "activation_bytes": 0,
                    "output_shape": rec.output_shape,
                    "ops": 0,
                    "last": rec.index,
                }
                out.append(row)
                index[key] = row
            row["params"] += rec.params
            row["macs"] += rec.macs
            row["other_flops"] += rec.other_flops
            row["activation_bytes"] += rec.activation_bytes
            row["output_shape"] = rec.output_shape
            row["ops"] += 1
            row["last"] = rec.index
        types = {m.name: m.module_type for m in self.modules}
        for row in out:
            row["module_type"] = types.get(row["name"], self.model if not row["name"] else "")
            row["receptive_field"] = self.layers[row["last"]].receptive_field
        return out

    def to_dict(self, layers: bool = True) -> dict[str, Any]:
        rf = self.receptive_field
        d = {
            "model": self.model,
            "input_shapes": [list(s) for s in self.input_shapes],
            "output_shapes": [list(s) for s in self.output_shapes],
            "dtype": self.dtype,
            "params": self.params,
            "trainable_params": self.trainable_params,
            "macs": self.macs,
            "flops": self.flops,
            "other_flops": self.other_flops,
            "param_bytes": self.param_bytes,
            "buffer_bytes": self.buffer_bytes,
            "activation_bytes": self.activation_bytes,
            "saved_activation_bytes": self.saved_activation_bytes,
            "training_peak_bytes": self.training_peak_bytes,
            "backward_macs": self.backward_macs,
            "training_step_flops": self.training_step_flops,
            "receptive_field": None if rf is None else rf.as_dict(),
            "unsupported_ops": dict(self.unsupported_ops),
            "unused_params": self.unused_params,
            "receptive_field_layer": self.receptive_field_layer,
            "sizing": dict(self.sizing),
        }
        if layers:
            d["layers"] = [r.as_dict() for r in self.layers]
        return d
