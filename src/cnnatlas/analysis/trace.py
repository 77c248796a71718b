"""Trace any nn.Module on meta tensors: one record per ATen operator, named by the module running it.

The model runs once with its parameters and inputs replaced by meta tensors (shape and dtype only,
no storage), under a `TorchDispatchMode` — the mechanism of `torch.utils.flop_counter` — that sees
every operator, including the functional calls module hooks miss (`F.relu`, `torch.cat`, `x + y`,
`@`). Each module's forward is wrapped for the trace to keep the stack of running modules, so each
operator gets the dotted path of the innermost one. No real arithmetic runs and no activation memory
is allocated: the cost of a trace does not depend on the input size. By default autograd stays on so
that `saved_tensors_hooks` can tell which activations a training step keeps for backward; without
it, standard leaf modules (convolution, eval batch norm, activations) are recorded straight from the
one ATen call they make (`fastmeta.MODULE_CALLS`), without running their forward.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from ..errors import CnnAtlasError, InvalidArgumentError
from . import _fast
from .fastmeta import FAST, module_call
from .flops import cost_for, is_pointwise
from .receptive_field import RULES, Layout, elementwise, input_layout
from .report import LayerRecord, ModuleRecord, Report, field_from_layout

META = torch.device("meta")
aten = torch.ops.aten

# Operators that neither compute nor produce a tensor anyone should see as a layer.
_HIDDEN = {
    aten.detach,
    aten.alias,
    aten.lift_fresh,
    aten.empty,
    aten.empty_like,
    aten.empty_strided,
    aten._unsafe_view,
    aten._reshape_alias,
    aten.reshape,
    aten.as_strided_,
    aten.view_copy,
}


_CREATE = {aten.empty.memory_format, aten.empty_strided.default}


class _Plan(NamedTuple):
    """What the tracer needs to know about one operator overload, worked out on its first call."""

    name: str  # e.g. "convolution", "add_"
    hidden: bool  # a view or alias: passes its producer on, no record
    inplace: bool  # writes into its first argument
    pointwise: bool
    rule: Any  # the receptive-field rule, or None for the element-wise union
    cost: Any  # (args, kwargs, outs) → (MACs, other FLOPs, supported)
    tensor_args: tuple[tuple[int, bool], ...]  # positions of tensor arguments (True: a list of them)


_PLANS: dict[Any, _Plan] = {}
_TENSOR_TYPES = {"Tensor", "Optional[Tensor]", "List[Tensor]", "List[Optional[Tensor]]"}


def _plan(func) -> _Plan:
    plan = _PLANS.get(func)
    if plan is None:
        schema = func._schema
        inplace = (
            bool(schema.arguments)
            and schema.arguments[0].alias_info is not None
            and schema.arguments[0].alias_info.is_write
        )
        packet = func.overloadpacket
        tensor_args = tuple(
            (i, str(a.type).startswith("List"))
            for i, a in enumerate(schema.arguments)
            if not a.kwarg_only and str(a.type) in _TENSOR_TYPES
        )
        plan = _Plan(
            packet.__name__,
            func.is_view or packet in _HIDDEN,
            inplace,
            is_pointwise(func),
            RULES.get(packet),
            cost_for(func),
            tensor_args,
        )
        _PLANS[func] = plan
    return plan


class AnalysisError(CnnAtlasError, RuntimeError):
    """The model could not be traced on meta tensors."""


# -- value-dependent operators -----------------------------------------------------------------
# Their output's size (nonzero, unique, masked_select, torchvision's nms) or a Python value the model
# reads (.item(), `if tensor:`) depends on the tensor's values, which meta tensors do not have.

_VALUE_TAGS = {
    t
    for t in (getattr(torch.Tag, "dynamic_output_shape", None), getattr(torch.Tag, "data_dependent_output", None))
    if t is not None
}
_VALUE_OPS = {
    "nms",
    "_local_scalar_dense",
    "is_nonzero",
    "item",
    "equal",
    "nonzero",
    "_unique2",
    "unique_dim",
    "unique_consecutive",
    "masked_select",
    "repeat_interleave",
    "bincount",
    "histc",
}
META_SIZED = "meta"  # shapes follow from the shapes: the trace ran on meta tensors
CPU_RUN = "cpu-run"  # a CPU run (the model reads values); the shape follows from the shapes all the same
MEASURED = "measured"  # the output's size depends on values: measured on that CPU run


# which tensor arguments (by position among the operator's tensor arguments) each product differentiates
_PRODUCT_OPERANDS = {
    "convolution": (0, 1),
    "_convolution": (0, 1),
    "mm": (0, 1),
    "addmm": (1, 2),
    "bmm": (0, 1),
    "baddbmm": (1, 2),
    "mv": (0, 1),
    "dot": (0, 1),
}


def backward_macs(op: str, macs: int, needs_grad: list[bool]) -> int:
    """MACs of the backward of one product (conv, linear, matmul) of `macs` forward MACs: the gradient of
    each operand that needs one is another product of the same size (dX = dY ⋆ Wᵀ, dW = Xᵀ ⋆ dY), so
    macs for the input's gradient plus macs for the weight's. Fused attention: 2 × forward (dQ, dK, dV and
    dP, as FlopCounterMode counts them) where any of Q, K, V needs a gradient."""
    operands = _PRODUCT_OPERANDS.get(op)
    if operands is None:
        return 2 * macs if any(needs_grad[:3]) else 0
    return sum(macs for i in operands if i < len(needs_grad) and needs_grad[i])


def _op_name(func) -> str:
    packet = func.overloadpacket
    ns = getattr(func, "namespace", "aten")
    return f"{ns}.{packet.__name__}"


def value_sized(func) -> bool:
    """Whether an operator's output *size* depends on values (nonzero, unique, nms): the trigger of a CPU
    run. A forward that only reads a value to branch on (`if x.sum() > 0`) stays an error: its analysis
    would depend on the made-up input."""
    if func is None:
        return False
    try:
        return _SIZE_TAG in func.tags or func.overloadpacket.__name__ in ("nms", "nonzero", "_unique2")
    except AttributeError:
        return False


_SIZE_TAG = getattr(torch.Tag, "dynamic_output_shape", None)


def data_dependent(func) -> bool:
    """Whether an operator's output size, or the value it returns to Python, depends on values."""
    if func is None:
        return False
    try:
        return bool(_VALUE_TAGS.intersection(func.tags)) or func.overloadpacket.__name__ in _VALUE_OPS
    except AttributeError:
        return False


# -- inputs ------------------------------------------------------------------------------------


def _is_shape(v: Any) -> bool:
    return (
        isinstance(v, (tuple, list, torch.Size))
        and len(v) > 0
        and all(isinstance(d, int) and not isinstance(d, bool) for d in v)
    )


def _flat_shape(spec: Any, where: str) -> tuple[int, ...] | None:
    """A flat sequence meant as a shape whose sizes are not all Python ints: its sizes as ints where they
    are whole numbers of another type (numpy), else an error naming the size at fault; None when `spec`
    is no flat sequence (then it may be a list of inputs)."""
    if (
        not isinstance(spec, (tuple, list, torch.Size))
        or not spec
        or any(isinstance(d, (tuple, list, torch.Size, torch.Tensor, Mapping)) for d in spec)
    ):
        return None
    for d in spec:
        if isinstance(d, bool) or not hasattr(d, "__index__"):
            raise InvalidArgumentError(
                f"{where}: expected a shape of whole numbers such as (1, 3, 224, 224); got "
                f"{tuple(spec)!r}, in which {d!r} is not a whole number"
            )
    return tuple(d.__index__() for d in spec)


def _meta_input(spec: Any, dtype: torch.dtype, where: str) -> torch.Tensor:
    if isinstance(spec, torch.Tensor):
        return torch.empty(spec.shape, dtype=spec.dtype, device=META)
    shape = spec if _is_shape(spec) else _flat_shape(spec, where)
    if shape is not None:
        if any(d < 1 for d in shape):
            raise InvalidArgumentError(f"{where}: every dimension must be ≥ 1; got {tuple(shape)}")
        try:
            return torch.empty(tuple(shape), dtype=dtype, device=META)
        except (RuntimeError, TypeError, OverflowError) as err:  # more elements than a tensor can index
            raise InvalidArgumentError(
                f"{where}: expected a shape a tensor can have; got {tuple(shape)}, which is "
                f"too large ({str(err).splitlines()[0][:80]})"
            ) from None
    raise InvalidArgumentError(f"{where}: expected a shape such as (1, 3, 224, 224) or a tensor; got {spec!r}")


def make_inputs(input_size: Any, dtype: torch.dtype) -> tuple[tuple, dict]:
    """A shape, a tensor, a sequence of them (several positional inputs) or a mapping (keywords)."""
    if isinstance(input_size, Mapping):
        return (), {k: _meta_input(v, dtype, f"input {k!r}") for k, v in input_size.items()}
    if isinstance(input_size, torch.Tensor) or _is_shape(input_size) or _flat_shape(input_size, "input_size"):
        return (_meta_input(input_size, dtype, "input_size"),), {}
    if isinstance(input_size, Sequence) and not isinstance(input_size, str) and input_size:
        return tuple(_meta_input(s, dtype, f"input {i}") for i, s in enumerate(input_size)), {}
    raise InvalidArgumentError(
        "input_size: expected a shape such as (1, 3, 224, 224), a tensor, a list of those (one per "
        f"input) or a dict of them (keyword inputs); got {input_size!r}"
    )


# -- the tracer --------------------------------------------------------------------------------


class _Trace(TorchDispatchMode):
    """Sees every operator; keeps records, layouts and the producer graph."""

    def __init__(
        self,
        module_names: dict[int, str],
        param_ids: dict[int, Any],
        n_axes: int,
        param_storages: set[int],
        real: bool = False,
    ) -> None:
        super().__init__()
        self.real = real  # tensors hold values (a CPU run): operators run as they are, nothing goes to meta
        self.failed: Any = None  # the operator that raised, if one did
        self.measured: Counter[str] = Counter()  # value-dependent operators of a CPU run, by name
        self.names = module_names
        self.param_of = param_ids  # id(tensor) → parameter tensor (parameters and views of them)
        self.n_axes = n_axes
        self.param_storages = param_storages
        self.stack: list[tuple[str, str]] = [("", "")]
        self.records: list[LayerRecord] = []
        self.modules: list[ModuleRecord] = []
        self.open: list[int] = []
        self.layouts: dict[int, Layout | None] = {}
        self.producer: dict[int, int] = {}
        self.keep: list[Any] = []  # keep every traced tensor alive so that ids stay unique
        self.used: set[int] = set()
        # ids of tensors autograd would differentiate: trainable parameters, inputs that require grad and
        # whatever is computed from them (whether or not the trace itself runs with autograd)
        self.grad: set[int] = {i for i, p in param_ids.items() if p.requires_grad}
        self.autograd = False  # True while autograd runs through the trace (then requires_grad tells)
        self.unsupported: Counter[str] = Counter()
        self.saved_storages: set[int] = set()
        self.saved_bytes = 0
        self._layout_of = lambda t, get=self.layouts.get: get(id(t))
        self._clone_src: torch.Tensor | None = None
        self._clone_outs: list[torch.Tensor] = []

    # the module stack ------------------------------------------------------------------------
    def watch_forwards(self, modules: list[nn.Module]) -> Callable[[], None]:
        """Wrap each module's forward (an attribute of the instance, removed by the returned undo) to
        keep the stack of running modules. A module hook would do the same, but any global hook sends
        every module call through nn.Module's slow path. Modules built during the forward are not
        wrapped: their operators count for the module that runs them."""
        wrapped: list[tuple[nn.Module, Any]] = []
        for m in modules:
            d = m.__dict__
            before = d.get("forward", _ABSENT)
            wrapped.append((m, before))
            shortcut = module_call(type(m)) if before is _ABSENT and self.fast else None
            d["forward"] = self._watched(
                m.forward, self.names[id(m)], type(m).__name__, None if shortcut is None else (m, shortcut)
            )

        def undo() -> None:
            for m, before in wrapped:
                if before is _ABSENT:
                    del m.__dict__["forward"]
                else:
                    m.__dict__["forward"] = before

        return undo

    def _watched(self, forward: Callable, name: str, mtype: str, shortcut: tuple | None = None) -> Callable:
        stack, open_calls, records = self.stack, self.open, self.records
        entry = (name, mtype)  # this module on the stack of running modules

        def watched_forward(*args, **kwargs):
            if shortcut is not None and len(args) == 1 and not kwargs:
                output = self._shortcut(shortcut, args[0], entry)
                if output is not None:
                    return output
            stack.append(entry)
            open_calls.append(len(records))
            try:
                output = forward(*args, **kwargs)
            except BaseException:  # a model may catch it and go on: keep the stack right
                stack.pop()
                open_calls.pop()
                raise
            self._close(entry, output)
            return output

        return watched_forward

    def _shortcut(self, shortcut: tuple, x: Any, entry: tuple[str, str]) -> torch.Tensor | None:
        """Record the one ATen call of a standard leaf module (fastmeta.MODULE_CALLS) without running
        its forward; None where that is not possible (autograd on, an unusual input or module)."""
        if type(x) is not torch.Tensor or not x.is_meta or torch.is_grad_enabled():
            return None
        module, call = shortcut
        made = call(module, x)
        if made is None:
            return None
        func, args = made
        with _fast.outside_mode():  # as inside __torch_dispatch__: the mode skips its own tensors
            out = FAST[func](args, {})
            if out is None:
                return None
            self.stack.append(entry)
            self.open.append(len(self.records))
            self._record(func, args, {}, out)
        output = out[0] if isinstance(out, tuple) else out
        self._close(entry, output)
        return output

    def _close(self, entry: tuple[str, str], output: Any) -> None:
        self.stack.pop()
        first = self.open.pop()
        name, mtype = entry
        depth = name.count(".") + 1 if name else 0
        if isinstance(output, torch.Tensor):
            self.modules.append(
                ModuleRecord(
                    name,
                    mtype,
                    depth,
                    [tuple(output.shape)],
                    first,
                    len(self.records) - 1,
                    self.layouts.get(id(output)),
                    self.n_axes,
                )
            )
            return
        if isinstance(output, (tuple, list)):
            outs = [o for o in output if isinstance(o, torch.Tensor)]
        else:
            outs = []
        self.modules.append(
            ModuleRecord(
                name,
                mtype,
                depth,
                [tuple(o.shape) for o in outs],
                first,
                len(self.records) - 1,
                self.layouts.get(id(outs[0])) if outs else None,
                self.n_axes,
            )
        )

    # saved tensors --------------------------------------------------------------------------
    def pack(self, t: torch.Tensor) -> torch.Tensor:
        if id(t) in self.param_of:  # a parameter (or a view of one): not activation memory
            return t
        try:
            storage = t.untyped_storage()
        except (RuntimeError, NotImplementedError):
            return t
        key = id(storage)  # a storage keeps its one Python object while it lives (the trace keeps them all)
        if key not in self.saved_storages and key not in self.param_storages:
            self.saved_storages.add(key)
            self.saved_bytes += storage.nbytes()
        return t

    # operators ------------------------------------------------------------------------------
    fast = False  # the public path: PyTorch's own meta kernels, every module's forward run

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _CREATE:  # a fresh tensor that depends on nothing: nothing to record
            return func(*args, **kwargs)
        if self.real:
            out = func(*args, **kwargs)
            n = len(self.records)
            self._record(func, args, kwargs, out)
            if data_dependent(func):
                self.measured[_op_name(func)] += 1
                if len(self.records) > n:
                    self.records[-1].sizing = MEASURED
            elif len(self.records) > n:
                self.records[-1].sizing = CPU_RUN
            return out
        return self._on_meta(func, args, kwargs)

    def _on_meta(self, func, args, kwargs):
        """`func` run on meta copies of its arguments and recorded; the operator that fails is kept in `failed`."""
        args, kwargs = _to_meta(args, kwargs)
        try:
            out = func(*args, **kwargs)
        except Exception:
            self.failed = func
            raise
        self._record(func, args, kwargs, out)
        return out

    def _record(self, func, args, kwargs, out) -> None:
        """One operator: its outputs' layouts, then (unless it is a view or alias) its LayerRecord with its
        cost, the parameters it reads first and its producers."""
        plan = _PLANS.get(func) or _plan(func)
        tin: list[torch.Tensor] = []
        n_args = len(args)
        for i, is_list in plan.tensor_args:
            if i < n_args:
                a = args[i]
                if is_list:
                    tin.extend(t for t in a if isinstance(t, torch.Tensor))
                elif isinstance(a, torch.Tensor):
                    tin.append(a)
        if isinstance(out, torch.Tensor):
            louts = [out]
        else:
            louts = [o for o in out if isinstance(o, torch.Tensor)] if isinstance(out, (tuple, list)) else []
            if not louts:
                return
        self._set_layouts(plan, args, kwargs, out, tin, louts)
        if plan.hidden:
            self._pass_through(tin, louts)
            return
        records, producer = self.records, self.producer
        if plan.inplace and records and tin and records[-1].op == "clone":
            self._drop_autograd_clone(tin[0])
        macs, other, ok = plan.cost(args, kwargs, out)
        if not ok:
            self.unsupported[f"{getattr(func, 'namespace', 'aten')}.{plan.name}"] += 1
        tids = [id(t) for t in tin]
        o0 = louts[0]
        new = not plan.inplace and id(o0) not in tids
        index = len(records)
        name, mtype = self.stack[-1]
        records.append(
            LayerRecord(
                index,
                name,
                mtype,
                plan.name,
                [tuple(t.shape) for t in tin],
                tuple(o0.shape),
                self._first_use_params(tids),
                macs,
                other,
                o0.numel() * o0.element_size() if new else 0,
                [producer.get(tid, -1) for tid in tids],
                self.layouts.get(id(o0)),
                self.n_axes,
                META_SIZED,
                o0.stride(),
                self._backward(plan.name, macs, tin, tids, louts),
            )
        )
        for o in louts:
            producer[id(o)] = index
        if plan.name == "clone":
            self._clone_src, self._clone_outs = (tin[0] if tin else None), louts

    def _set_layouts(self, plan: _Plan, args, kwargs, out, tin: list, louts: list) -> None:
        """Each output's receptive-field layout, by the operator's rule (else the element-wise union of its
        inputs'); a rule that fails or loses count gives an unknown layout where an input had one. The
        outputs are kept alive, so that their ids stay unique."""
        layouts, keep = self.layouts, self.keep
        try:
            if plan.rule is not None:
                lay = plan.rule(args, kwargs, out, self._layout_of)
            else:
                lay = elementwise(out, self._layout_of, tin, plan.pointwise)
        except (IndexError, TypeError, ValueError, ZeroDivisionError):
            lay = Layout(tuple([None] * louts[0].dim()), True) if any(layouts.get(id(t)) for t in tin) else None
        if isinstance(lay, list):
            for o, lo in zip(louts, lay):
                if lo is not None and len(lo.dims) != o.dim():  # a rule that lost count: stay safe
                    lo = Layout(tuple([None] * o.dim()), True)
                layouts[id(o)] = lo
                keep.append(o)
        else:
            for o in louts:
                lo = lay
                if lo is not None and len(lo.dims) != o.dim():
                    lo = Layout(tuple([None] * o.dim()), True)
                layouts[id(o)] = lo
                keep.append(o)

    def _pass_through(self, tin: list, louts: list) -> None:
        """A view or alias, not a layer: its outputs take the producer, the need of a gradient and the
        parameter of its first input."""
        producer, param_of = self.producer, self.param_of
        src = producer.get(id(tin[0]), -1) if tin else -1
        for o in louts:
            producer[id(o)] = src
        if tin and not self.autograd and id(tin[0]) in self.grad:
            self.grad.update([id(o) for o in louts])
        if tin and id(tin[0]) in param_of:
            for o in louts:
                param_of[id(o)] = param_of[id(tin[0])]

    def _drop_autograd_clone(self, target: torch.Tensor) -> None:
        """Autograd copied `target` to save it before the in-place operator overwrites it: memory of
        training only (counted in the saved bytes), not a layer — the clone's record goes."""
        prev = self.records[-1]
        if prev.inputs and self._clone_src is target:
            self.records.pop()
            for o in self._clone_outs:
                self.producer[id(o)] = prev.inputs[0]

    def _first_use_params(self, tids: list[int]) -> int:
        """Elements of the parameters among the inputs that no earlier operator read (each counted once)."""
        params = 0
        param_of, used = self.param_of, self.used
        for tid in tids:
            p = param_of.get(tid)
            if p is not None and id(p) not in used:
                used.add(id(p))
                params += p.numel()
        return params

    def _backward(self, op: str, macs: int, tin: list, tids: list[int], louts: list) -> int:
        """MACs of the operator's backward, for the inputs that need a gradient; without autograd, its
        outputs are marked as needing one when an input does."""
        if self.autograd:  # autograd runs through the trace: it knows which inputs need a gradient
            return backward_macs(op, macs, [t.requires_grad for t in tin]) if macs else 0
        grad = self.grad
        for tid in tids:
            if tid in grad:
                backward = backward_macs(op, macs, [t in grad for t in tids]) if macs else 0
                if len(louts) == 1:
                    grad.add(id(louts[0]))
                else:
                    grad.update([id(o) for o in louts])
                return backward
        return 0


_ABSENT = object()


def _fast_dispatch(self, func, types, args=(), kwargs=None):
    """The fast path's __torch_dispatch__: fastmeta's shape arithmetic first, the meta kernel where it
    declines."""
    kwargs = kwargs or {}
    if func in _CREATE:  # a fresh tensor that depends on nothing: nothing to record
        return func(*args, **kwargs)
    fast = FAST.get(func)
    out = fast(args, kwargs) if fast is not None else None
    if out is None:
        return self._on_meta(func, args, kwargs)
    self._record(func, args, kwargs, out)
    return out


_FastTrace = _fast.fast_mode_class(_Trace, _fast_dispatch) if _fast.AVAILABLE else _Trace
_FastTrace.fast = _fast.AVAILABLE


def _unpack(t: torch.Tensor) -> torch.Tensor:
    return t


def _off_meta(a) -> bool:
    if isinstance(a, torch.Tensor):
        return a.device.type != "meta"
    if isinstance(a, (list, tuple)):
        return any(isinstance(t, torch.Tensor) and t.device.type != "meta" for t in a)
    return False


def _to_meta(args, kwargs):
    """Tensors the model keeps outside its parameters and buffers (plain attributes) go to meta too."""
    if not any(_off_meta(a) for a in args) and not any(_off_meta(v) for v in kwargs.values()):
        return args, kwargs

    def conv(a):
        if isinstance(a, torch.Tensor) and a.device.type != "meta":
            return a.to(META)
        if isinstance(a, (list, tuple)) and any(isinstance(t, torch.Tensor) and t.device.type != "meta" for t in a):
            return type(a)(conv(t) for t in a)
        return a

    return tuple(conv(a) for a in args), {k: conv(v) for k, v in kwargs.items()}


# -- the analysis ------------------------------------------------------------------------------


_OWN_CLASS: dict[type, bool] = {}  # module class → defined outside torch.nn (may cache tensors in attributes)


class _MetaSwap:
    """Replace every parameter and buffer by a meta tensor of the same shape, dtype and
    requires_grad (one per shared tensor), and put them back afterwards — what
    `torch.func.functional_call` does, in one pass over the modules. Also sets train/eval mode."""

    def __init__(
        self,
        model: nn.Module,
        training: bool,
        dtype: torch.dtype | None = None,
        device: torch.device = META,
        fast: bool = False,
    ) -> None:
        self.model = model
        self.fast = fast  # write modules' dictionaries directly (_fast); else through nn.Module's setattr
        self.device = device  # META, or the CPU for a run on values (copies of the weights; made-up where meta)
        self.training = training
        self.dtype = dtype  # floating-point parameters and buffers take this dtype
        self.names: dict[int, str] = {}
        self.params: dict[int, torch.Tensor] = {}  # id(meta parameter) → meta parameter
        self.buffers: list[torch.Tensor] = []
        self.saved: list[tuple[nn.Module, bool, dict, dict]] = []
        self.attributes: list[dict] = []  # each module's attributes as they were (see restore_attributes)

    def restore_attributes(self) -> None:
        """Put back plain attributes the forward replaced (torchvision's anchor generator caches its
        anchors moved to the input's device: meta), so that a second run finds the model as it was.
        PyTorch's own modules (torch.nn) keep no such cache and are not copied."""
        for (m, *_), before in zip(self.saved, self.attributes):
            if before is None:
                continue
            d = m.__dict__
            for k, v in before.items():
                if d.get(k, _ABSENT) is not v and k not in ("forward", "training"):
                    d[k] = v

    def __enter__(self) -> "_MetaSwap":
        copies: dict[int, torch.Tensor] = {}
        training = self.training
        names, saved = self.names, self.saved
        fast = self.fast
        set_attr = _fast.set_plain_attribute if fast else setattr
        for name, m in _walk(self.model) if fast else self.model.named_modules():
            if isinstance(m, torch.jit.ScriptModule):  # its parameters and code are out of the trace's reach
                self.__exit__()  # put back what is already swapped: the model is left as it was
                raise _torchscript_refused(name, m)
            names[id(m)] = name
            if fast:
                mp, mb = _fast.parameters(m), _fast.buffers(m)
            else:
                mp = dict(m.named_parameters(recurse=False, remove_duplicate=False))
                mb = dict(m.named_buffers(recurse=False, remove_duplicate=False))
            saved.append((m, m.training, dict(mp) if mp else None, dict(mb) if mb else None))
            cls = type(m)
            own = _OWN_CLASS.get(cls)
            if own is None:
                own = _OWN_CLASS[cls] = not cls.__module__.startswith("torch.nn.")
            self.attributes.append(m.__dict__.copy() if own else None)
            if m.training != training:
                set_attr(m, "training", training)
            for slots, is_param in ((mp, True), (mb, False)):
                for k, t in slots.items():
                    if t is None:
                        continue
                    meta = copies.get(id(t))
                    if meta is None:
                        meta = copies[id(t)] = self._stand_in(k, t, is_param)
                    if fast:
                        slots[k] = meta
                    else:
                        setattr(m, k, meta)
        return self

    def _stand_in(self, name: str, t: torch.Tensor, is_param: bool) -> torch.Tensor:
        """What the trace sees for a parameter or buffer: an empty meta tensor (a CPU copy on the CPU), in
        `dtype` if floating; a parameter's keeps requires_grad, is an nn.Parameter on the public path and is
        listed in `params`, a buffer's in `buffers`."""
        dt = self.dtype if self.dtype is not None and t.is_floating_point() else t.dtype
        on_meta = self.device is META
        if not is_param:
            meta = torch.empty_like(t, dtype=dt, device=META) if on_meta else _cpu_copy(name, t, dt)
            self.buffers.append(meta)
            return meta
        if on_meta:
            meta = torch.empty_like(t, dtype=dt, device=META, requires_grad=t.requires_grad)
        else:
            meta = _cpu_copy(name, t, dt).requires_grad_(t.requires_grad)
        if not self.fast:
            meta = nn.Parameter(meta, requires_grad=t.requires_grad)
        self.params[id(meta)] = meta
        return meta

    def __exit__(self, *exc: Any) -> None:
        fast = self.fast
        set_attr = _fast.set_plain_attribute if fast else setattr
        for m, mode, params, buffers in self.saved:
            if m.training != mode:
                set_attr(m, "training", mode)
            if fast:
                if params:
                    _fast.parameters(m).update(params)
                if buffers:
                    _fast.buffers(m).update(buffers)
                continue
            for k, v in (params or {}).items():
                setattr(m, k, v)
            for k, v in (buffers or {}).items():
                setattr(m, k, v)

    @property
    def param_storages(self) -> set[int]:
        return {id(t.untyped_storage()) for t in self.params.values()}


def _torchscript_refused(name: str, m: nn.Module) -> InvalidArgumentError:
    """The error for a TorchScript module found in the model (named `name`)."""
    where = f"module {name!r} is" if name else "got"
    return InvalidArgumentError(
        f"analyze expects an eager nn.Module; {where} a TorchScript module "
        f"({type(m).__name__}), whose parameters and code the meta trace "
        "cannot swap or see: pass the model before torch.jit.script/trace"
    )


def _cpu_copy(name: str, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A CPU copy of a weight for a run on values; a weight built on meta gets made-up values that keep
    activations in range: 1/√fan-in normal matrices, ones for 1-D weights and variances, zeros elsewhere."""
    if t.device.type != "meta":
        return t.detach().to("cpu", dtype, copy=True)
    out = torch.zeros(t.shape, dtype=dtype)
    if not out.is_floating_point():
        return out
    if "var" in name or (out.dim() <= 1 and name.endswith("weight")):
        out.fill_(1.0)
    elif out.dim() >= 2 and out.numel():
        out.normal_(0.0, (out.numel() // out.shape[0]) ** -0.5, generator=torch.Generator().manual_seed(out.numel()))
    return out


def _cpu_inputs(inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Random inputs in [0, 1) of the requested shapes and dtypes (zeros for integers), seeded."""
    gen = torch.Generator().manual_seed(0)
    return [
        torch.rand(x.shape, dtype=x.dtype, generator=gen)
        if x.is_floating_point()
        else torch.zeros(x.shape, dtype=x.dtype)
        for x in inputs
    ]


def _walk(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(dotted name, module) for every module once, named and ordered as by `named_modules` (pre-order,
    a shared module under the name of its first visit), without its nested generators."""
    seen: set[int] = set()
    out = []
    stack = [("", model)]
    while stack:
        name, m = stack.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        out.append((name, m))
        children = _fast.children(m)
        if children:
            prefix = name + "." if name else ""
            stack.extend([(prefix + k, c) for k, c in reversed(children.items()) if c is not None])
    return out


def _spatial_dims(x: torch.Tensor | None, spatial_dims: Sequence[int] | None) -> tuple[int, ...]:
    if x is None:
        return ()
    if spatial_dims is not None:
        if not isinstance(spatial_dims, Sequence) or not all(
            isinstance(d, int) and not isinstance(d, bool) and -x.dim() <= d < x.dim() for d in spatial_dims
        ):
            raise InvalidArgumentError(
                f"spatial_dims must be dimensions of the {x.dim()}-D input (integers from "
                f"{-x.dim()} to {x.dim() - 1}); got {spatial_dims!r}"
            )
        dims = tuple(d % x.dim() for d in spatial_dims)
        if len(set(dims)) != len(dims):
            raise InvalidArgumentError(f"spatial_dims must be distinct dimensions; got {tuple(spatial_dims)}")
        return dims
    return tuple(range(2, x.dim())) if x.dim() >= 3 else ()


def analyze(
    model: nn.Module,
    input_size: Any,
    *,
    dtype: torch.dtype = torch.float32,
    training: bool = False,
    spatial_dims: Sequence[int] | None = None,
    rf_input: int = 0,
    training_memory: bool = True,
) -> Report:
    """Shapes, parameters, MACs, memory and receptive field of `model` at `input_size`.

    `input_size` is the full input shape, batch included — (1, 3, 224, 224) — or a tensor (its
    shape and dtype are used), or a list of them for a model with several inputs, or a dict for
    keyword inputs. `dtype` is that of the inputs given as shapes and of the model's floating-point
    parameters and buffers (so float16 halves every byte count). The model runs once on meta
    tensors in eval mode (`training=True` traces the
    training forward: batch statistics, dropout, auxiliary heads) and is left as it was.
    The receptive field is tracked along `spatial_dims` of input number `rf_input` (default: every
    dimension after batch and channels).
    `training_memory=False` skips the estimate of what autograd saves for backward: the trace then
    runs without autograd and records standard convolution, eval batch-norm and activation modules
    from their one ATen call without running their forward (1.3–1.7× faster on torchvision's CNNs);
    `saved_activation_bytes` and `training_peak_bytes` are None, everything else is the same.
    A model with an operator whose output size depends on values (nonzero, nms, unique: detection)
    is traced once for real on the CPU instead, on a seeded random input of the shape: see
    `Report.sizing`.
    """
    _check_flags(model, dtype, training, training_memory)
    args, kwargs = make_inputs(input_size, dtype)
    inputs = list(args) + list(kwargs.values())
    if not isinstance(rf_input, int) or isinstance(rf_input, bool) or not 0 <= rf_input < len(inputs):
        raise InvalidArgumentError(f"rf_input must index one of the {len(inputs)} inputs; got {rf_input}")
    sdims = _spatial_dims(inputs[rf_input], spatial_dims)
    start = time.perf_counter()
    output, tracer, swap = _trace_forward(
        model, args, kwargs, inputs, rf_input, sdims, training, dtype, training_memory
    )
    seconds = time.perf_counter() - start
    return _report(model, inputs, output, tracer, swap, dtype, len(sdims), training_memory, seconds)


def _check_flags(model: Any, dtype: Any, training: Any, training_memory: Any) -> None:
    """analyze's model, dtype and flags checked before anything runs."""
    if not isinstance(model, nn.Module):
        hint = (
            f" {model!r}: build the model first, analyze(create_model({model!r}), …)" if isinstance(model, str) else ""
        )
        raise InvalidArgumentError(f"analyze expects a torch.nn.Module; got {type(model).__name__}{hint}")
    for flag, value in (("training", training), ("training_memory", training_memory)):
        if not isinstance(value, bool):
            raise InvalidArgumentError(f"{flag} must be True or False; got {value!r}")
    if not isinstance(dtype, torch.dtype):
        raise InvalidArgumentError(f"dtype must be a torch.dtype such as torch.float32; got {dtype!r}")


def _trace_forward(model, args, kwargs, inputs, rf_input, sdims, training, dtype, training_memory):
    """(output, tracer, swap) of one trace on meta tensors; any failure explained, except where the
    forward reads values (nonzero, nms, .item()): then it runs for real on the CPU, on a random input."""
    state: dict[str, Any] = {}
    try:
        return _run(model, args, kwargs, inputs, rf_input, sdims, training, dtype, training_memory, META, state)
    except CnnAtlasError:
        raise
    except Exception as err:  # noqa: BLE001 — any failure of the user's forward, explained
        if not value_sized(state.get("failed")):
            raise _explain(model, inputs, err) from err
        return _run_on_cpu(model, args, kwargs, inputs, rf_input, sdims, training, dtype, training_memory, state)


def _run_on_cpu(model, args, kwargs, inputs, rf_input, sdims, training, dtype, training_memory, state):
    """The forward run for real on the CPU, on seeded random inputs of the requested shapes (see `_run`)."""
    real = _cpu_inputs(inputs)
    it = iter(real)
    rargs, rkwargs = tuple(next(it) for _ in args), {k: next(it) for k in kwargs}
    cpu = torch.device("cpu")
    try:
        return _run(model, rargs, rkwargs, real, rf_input, sdims, training, dtype, training_memory, cpu, state)
    except CnnAtlasError:
        raise
    except Exception as err2:  # noqa: BLE001
        raise _explain(model, inputs, err2) from err2


def _report(model, inputs, output, tracer: _Trace, swap: _MetaSwap, dtype, n_axes, training_memory, seconds) -> Report:
    """The Report of a finished trace: totals over its records and the model's (meta) parameters and
    buffers, and the receptive field of the last spatial map on a path to an output."""
    outputs = [t for t in _flatten(output) if isinstance(t, torch.Tensor)]
    records = tracer.records
    params_all = list(swap.params.values())  # one meta copy per parameter, in the analysed dtype
    buffers_all = [b for b in swap.buffers if b is not None]
    param_bytes = sum(p.numel() * p.element_size() for p in params_all)
    trainable = [p for p in params_all if p.requires_grad]
    used = sum(r.params for r in records)
    total_params = sum(p.numel() for p in params_all)
    rf_index = _last_spatial_map(records, [tracer.producer.get(id(o), -1) for o in outputs], n_axes)
    rf_layout = records[rf_index].layout if rf_index is not None else None
    rf_module = None
    if rf_index is not None:
        owners = [m for m in tracer.modules if m.last == rf_index and m.layout is rf_layout and m.name]
        rf_module = min(owners, key=lambda m: m.depth).name if owners else None
    return Report(
        model=type(model).__name__,
        input_shapes=[tuple(x.shape) for x in inputs],
        output_shapes=[tuple(o.shape) for o in outputs],
        dtype=str(dtype).replace("torch.", ""),
        params=total_params,
        trainable_params=sum(p.numel() for p in trainable),
        param_bytes=param_bytes,
        buffer_bytes=sum(b.numel() * b.element_size() for b in buffers_all),
        macs=sum(r.macs for r in records),
        other_flops=sum(r.other_flops for r in records),
        activation_bytes=sum(r.activation_bytes for r in records),
        saved_activation_bytes=tracer.saved_bytes if training_memory else None,
        gradient_bytes=sum(p.numel() * p.element_size() for p in trainable),
        receptive_field=field_from_layout(rf_layout, n_axes),
        layers=records,
        modules=tracer.modules,
        unsupported_ops=dict(tracer.unsupported.most_common()),
        unused_params=total_params - used,
        receptive_field_layer=rf_module,
        seconds=seconds,
        sizing=_sizing(tracer),
    )


def _sizing(tracer: _Trace) -> dict[str, str]:
    """How the trace learnt each operator's output size: {} when all from shapes on meta tensors; after a
    CPU run, each value-dependent operator → "measured", and "*" (every other one) → "cpu-run"."""
    if not tracer.real:
        return {}
    return {"*": CPU_RUN, **{name: MEASURED for name in sorted(tracer.measured)}}


def _run(model, args, kwargs, inputs, rf_input, sdims, training, dtype, training_memory, device, state):
    """One trace of the forward, on meta tensors or (device CPU) on values; `state["failed"]` names the
    operator that raised, if one did."""
    real = device is not META
    fast = _fast.enabled()
    with (
        _fast.cyclic_gc_paused() if fast else contextlib.nullcontext(),
        _MetaSwap(model, training, dtype if dtype.is_floating_point else None, device, fast) as swap,
    ):
        mode = _FastTrace if fast and not real else _Trace
        tracer = mode(
            swap.names, dict(swap.params), len(sdims), swap.param_storages if training_memory else set(), real
        )  # only pack() reads them
        for i, x in enumerate(inputs):
            tracer.layouts[id(x)] = input_layout(x.dim(), sdims) if i == rf_input and sdims else None
            if x.requires_grad:
                tracer.grad.add(id(x))
            tracer.producer[id(x)] = -1
            tracer.keep.append(x)
        unwatch = tracer.watch_forwards([m for m, *_ in swap.saved])
        tracer.autograd = training_memory
        try:
            if training_memory:
                with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(tracer.pack, _unpack), tracer:
                    output = model(*args, **kwargs)
            else:
                with torch.no_grad(), tracer:
                    output = model(*args, **kwargs)
        except BaseException:
            state["failed"] = tracer.failed
            if value_sized(tracer.failed):
                swap.restore_attributes()
            raise
        finally:
            unwatch()
    return output, tracer, swap


def _flatten(obj: Any) -> list[Any]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, Mapping):
        return [t for v in obj.values() for t in _flatten(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _flatten(v)]
    return []


def _last_spatial_map(records: list[LayerRecord], out_producers: list[int], n_axes: int) -> int | None:
    """The layout of the last spatial feature map on a path to an output: the map a unit of the
    network's output sees the input through, before global pooling or flatten collapses space."""
    if n_axes == 0:
        return None
    seen = set()
    stack = [p for p in out_producers if p >= 0]
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        stack.extend(p for p in records[i].inputs if p >= 0 and p not in seen)
    for i in sorted(seen, reverse=True):
        rec = records[i]
        if field_from_layout(rec.layout, n_axes) is not None:
            return i
    return None


_QUANTIZED = (
    "torch.ao.nn.quantized",
    "torch.nn.quantized",
    "torch.ao.nn.intrinsic.quantized",
    "torch.ao.nn.intrinsic.qat",
    "torch.ao.nn.qat",
    "torch.ao.quantization",
)


def _quantized_module(model: nn.Module) -> tuple[str, nn.Module] | None:
    """The first module of a quantized (or prepared-for-quantization) model, by its class's package."""
    for name, m in model.named_modules():
        if type(m).__module__.startswith(_QUANTIZED):
            return name, m
    return None


def _explain(model: nn.Module, inputs: list[torch.Tensor], err: Exception) -> AnalysisError:
    shapes = ", ".join("×".join(map(str, x.shape)) for x in inputs)
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    quantized = _quantized_module(model)
    if quantized is not None:  # its forward reads scales and zero points (.item()), and int8 kernels have no meta form
        name, m = quantized
        return AnalysisError(
            f"analyze expects a floating-point model; got a quantized one ({name or 'the model'} is "
            f"{type(m).__module__}.{type(m).__name__}), which cannot run on meta tensors: analyse the model before "
            f"quantization (prepare/convert, quantize_dynamic). The trace stopped at {type(err).__name__}: {text}"
        )
    hint = ""
    low = text.lower()
    if "meta" in low and any(w in low for w in ("item", "data-dependent", "nonzero", "is_nonzero", "cannot copy out")):
        hint = (
            " The forward reads tensor values (.item(), a data-dependent `if`, nonzero), which a "
            "trace on meta tensors cannot know."
        )
    elif any(w in low for w in ("should be the same", "same dtype", "expected scalar type", "expected both")):
        dtypes = ", ".join(sorted({str(x.dtype).replace("torch.", "") for x in inputs}))
        hint = (
            f" The inputs are {dtypes}: give the dtype the model computes in (analyze(..., dtype=...) casts "
            "inputs given as shapes and floating-point weights to it)."
        )
    return AnalysisError(
        f"could not trace {type(model).__name__} at input {shapes}: {type(err).__name__}: {text.rstrip('.')}.{hint}"
    )
