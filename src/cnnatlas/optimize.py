"""Inference-time rewriting: fold batch norm into the preceding convolution, run each convolution
and the activation after it as one kernel on the CPU, use the memory layout the convolution kernels
prefer, optionally compile — outputs unchanged (to float rounding), or the model left as it was.

Folding (Ioffe & Szegedy's BN at inference is an affine map per channel): with
s = γ / sqrt(σ² + ε), a conv followed by BN equals one conv with W' = s·W (per output channel)
and b' = s·(b − μ) + β.

Fusing: oneDNN (the library behind PyTorch's CPU convolutions) applies an activation as a
"post-op" to each block of the convolution's output while it is still in cache, so the activation
costs no second pass over memory.

Exact or not at all: a pair is rewritten only where one forward, watched operator by operator,
shows that the rewrite cannot change the output — the conv's weight belongs to it alone and is read
by its convolution only, the batch norm is a plain one fed by that conv alone, no hooks or
parametrizations recompute either. A model whose operators depend on the input's values (Python
control flow on a tensor) is left as it is, with an `OptimizeWarning`; so is one whose rewritten
output differs from the original's on the example input.
"""

from __future__ import annotations

import copy
import sys
import warnings
from collections import Counter
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .errors import InvalidArgumentError
from .registry import registered_input_size

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
# The batch-norm operators an eval-mode F.batch_norm reaches; each takes (input, weight, bias,
# running_mean, running_var, ...) and has ε as its last argument; those of _BN_EVAL_OPS have no
# `training` flag (the others have it sixth).
_BN_EVAL_OPS = {"_native_batch_norm_legit_no_training", "_batch_norm_no_update"}
_BN_OPS = {"native_batch_norm", "cudnn_batch_norm", "miopen_batch_norm"} | _BN_EVAL_OPS


class OptimizeWarning(UserWarning):
    """`optimize` left (part of) a model as it was, to keep its outputs exact."""


def _storage_key(t: torch.Tensor) -> tuple[str, int] | None:
    """Where a tensor's memory lies, shared by all its views; None when it has none (empty, meta)."""
    try:
        ptr = t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        return None
    return (str(t.device), ptr) if ptr else None


@dataclass
class _Op:
    """One operator call of interest: its name, arguments (tensors kept, so ids stay unique) and first output."""

    name: str
    args: tuple
    out: torch.Tensor


class _Watch(TorchDispatchMode):
    """Watches one forward at the operator level. For every live tensor, how many operators took it as
    an argument (a tensor's count starts at zero when an operator creates it: ids of freed tensors
    are reused); how many operators read each parameter's memory (views included); the convolution
    and batch-norm calls with their outputs; the operators that turned a tensor's value into a
    Python number (what `if x.sum() > 0:` does); and the sequence of operators, each with the
    parameters it read, to compare two forwards."""

    def __init__(self, param_storages: dict, keep_producers: bool = True) -> None:
        super().__init__()
        self.param_storages = param_storages  # storage key -> index
        self.keep_producers = keep_producers  # False: only count and list, holding no tensors
        self.uses: Counter[int] = Counter()
        self.storage_reads: Counter[int] = Counter()
        self.producers: dict[int, _Op] = {}  # id(output) -> the convolution or batch norm that made it
        self.value_reads: list[str] = []
        self.sequence: list[tuple[str, tuple[int, ...]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        read = []
        for t in inputs:
            self.uses[id(t)] += 1
            index = self.param_storages.get(_storage_key(t))
            if index is not None:
                self.storage_reads[index] += 1
                read.append(index)
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        self.sequence.append((name, tuple(read)))
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if inputs and not outs:  # a tensor's value became a Python number or bool
            self.value_reads.append(name)
        for t in outs:
            if not any(t is a for a in inputs):
                self.uses[id(t)] = 0
        if self.keep_producers and outs and (name == "convolution" or name in _BN_OPS):
            self.producers[id(outs[0])] = _Op(name, tuple(args), outs[0])
        return out


def _param_storages(model: nn.Module) -> tuple[dict, Counter]:
    """An index for the memory of every parameter and buffer of the model, and how many parameter or
    buffer slots (over all modules) hold each: a count above 1 is a tied weight."""
    index: dict = {}
    slots: Counter = Counter()
    for module in model.modules():
        for t in list(module._parameters.values()) + list(module._buffers.values()):
            key = _storage_key(t) if t is not None else None
            if key is not None:
                index.setdefault(key, len(index))
                slots[index[key]] += 1
    return index, slots


def _hook_free(module: nn.Module) -> bool:
    """No hooks and no parametrization: calling the module runs its own forward and nothing else."""
    return not (module._forward_hooks or module._forward_pre_hooks or parametrize.is_parametrized(module))


@dataclass
class _Follower:
    """Module b takes module a's output (each called once); `before`: the operators that read that
    output before b ran, `reads`: over the whole forward."""

    a: nn.Module
    b: nn.Module
    before: int
    reads: int
    a_out: torch.Tensor
    b_out: object
    a_touched: int  # operators that read a's output inside a (an in-place op after its convolution)
    b_touched: int  # the same for b's output inside b


@dataclass
class _Trace:
    """What one watched forward showed."""

    followers: list[_Follower]
    watch: _Watch
    storages: dict
    slots: Counter
    hook_free: dict
    output: object


def _clone(inputs: tuple) -> tuple:
    """A copy of the inputs, so that a model that writes into its input does not change the next run's."""
    return tuple(x.clone() if isinstance(x, torch.Tensor) else x for x in inputs)


def _trace(
    model: nn.Module, example_input: torch.Tensor | tuple, first: tuple[type, ...], second: tuple[type, ...]
) -> _Trace:
    """Run the model once, watching every module b of the `second` kinds whose input is the output of
    a module a of the `first` kinds, and every operator (`_Watch`). Found from the data flow, so it
    works inside branches, residual blocks and models we did not write."""
    calls: Counter[nn.Module] = Counter()
    first_out: dict[int, tuple[nn.Module, torch.Tensor, int]] = {}
    second_in: list[tuple[nn.Module, torch.Tensor, int]] = []  # holding the tensors keeps their ids unique
    second_out: dict[nn.Module, tuple[object, int]] = {}
    storages, slots = _param_storages(model)
    watch = _Watch(storages)
    watched = [m for m in model.modules() if isinstance(m, first) or isinstance(m, second)]
    hook_free = {m: _hook_free(m) for m in watched}  # before ours are added

    def on_first(module, args, output):
        calls[module] += 1
        first_out[id(output)] = (module, output, watch.uses[id(output)])

    def on_second(module, args):
        calls[module] += 1
        if args and isinstance(args[0], torch.Tensor):
            second_in.append((module, args[0], watch.uses[id(args[0])]))

    def after_second(module, args, output):
        touched = watch.uses[id(output)] if isinstance(output, torch.Tensor) else 0
        second_out[module] = (output, touched)

    handles = [m.register_forward_hook(on_first) for m in model.modules() if isinstance(m, first)]
    handles += [m.register_forward_pre_hook(on_second) for m in model.modules() if isinstance(m, second)]
    handles += [m.register_forward_hook(after_second) for m in model.modules() if isinstance(m, second)]
    inputs = _clone(example_input if isinstance(example_input, tuple) else (example_input,))
    try:
        with torch.no_grad(), watch:
            output = model(*inputs)
    finally:
        for h in handles:
            h.remove()
    followers = []
    for b, source, before in second_in:
        a, a_out, a_touched = first_out.get(id(source), (None, None, 0))
        if a_out is None or a_out is not source or calls[a] != 1 or calls[b] != 1:
            continue
        b_out, b_touched = second_out.get(b, (None, 0))
        followers.append(_Follower(a, b, before, watch.uses[id(source)], a_out, b_out, a_touched, b_touched))
    return _Trace(followers, watch, storages, slots, hook_free, output)


def _own_convolution(conv: nn.Module, follower: _Follower, trace: _Trace) -> bool:
    """The conv's output is a convolution with its own weight and bias, which no other parameter slot
    holds and no other operator reads, and no hook or parametrization recomputes: scaling them in
    place then scales this one output and nothing else."""
    output = follower.a_out
    op = trace.watch.producers.get(id(output))
    if (
        not trace.hook_free[conv]
        or follower.a_touched
        or "weight" not in conv._parameters
        or op is None
        or op.out is not output
        or op.name != "convolution"
        or op.args[1] is not conv.weight
        or op.args[2] is not conv.bias
    ):
        return False
    for t in (conv.weight, conv.bias):
        if t is None:
            continue
        index = trace.storages.get(_storage_key(t))
        if index is None or trace.slots[index] != 1 or trace.watch.storage_reads[index] != 1:
            return False
    return True


def _own_batch_norm(op: _Op | None, bn: nn.Module, source: torch.Tensor) -> bool:
    """The operator is one eval-mode batch norm of `source` with the module's own statistics, affine
    parameters and ε."""
    if op is None or op.name not in _BN_OPS or len(op.args) < 7:
        return False
    a = op.args
    training = False if op.name in _BN_EVAL_OPS else a[5]
    return (
        a[0] is source
        and a[1] is bn.weight
        and a[2] is bn.bias
        and a[3] is bn.running_mean
        and a[4] is bn.running_var
        and training is False
        and float(a[-1]) == bn.eps
    )


def _timm_norm_act(bn: nn.Module) -> bool:
    """timm's BatchNormAct2d itself (timm.layers.norm_act), whose forward is act(drop(batch_norm(x)))."""
    norm_act = sys.modules.get("timm.layers.norm_act")
    return norm_act is not None and type(bn) is getattr(norm_act, "BatchNormAct2d", None)


def _batch_norm_replacement(bn: nn.Module, follower: _Follower, trace: _Trace) -> nn.Module | None:
    """What takes the batch norm's place once it is folded into the conv before it: an identity where
    its output is its own eval-mode batch norm of its input and nothing else; for timm's
    BatchNormAct2d, its dropout and activation; None where folding could change the output (an
    activation or anything else inside a batch-norm subclass, a hook)."""
    if not trace.hook_free[bn]:
        return None
    out = follower.b_out
    op = trace.watch.producers.get(id(out)) if isinstance(out, torch.Tensor) else None
    if op is not None and op.out is out and not follower.b_touched and _own_batch_norm(op, bn, follower.a_out):
        return nn.Identity()
    if _timm_norm_act(bn) and _hook_free(bn.drop) and _hook_free(bn.act):
        ops = [op for op in trace.watch.producers.values() if op.name in _BN_OPS and op.args[0] is follower.a_out]
        if len(ops) == 1 and _own_batch_norm(ops[0], bn, follower.a_out):
            return nn.Sequential(bn.drop, bn.act)
    return None


def _foldable(trace: _Trace) -> list[tuple[nn.Module, nn.Module, nn.Module]]:
    """(conv, bn, what replaces bn) for every batch norm whose only input is a conv's output that
    nothing else reads, where folding provably leaves the output unchanged."""
    found = []
    for f in trace.followers:
        if (
            f.reads == 1
            and f.b.running_mean is not None
            and f.b.running_var is not None
            and f.a.out_channels == f.b.num_features
            and _own_convolution(f.a, f, trace)
        ):
            replacement = _batch_norm_replacement(f.b, f, trace)
            if replacement is not None:
                found.append((f.a, f.b, replacement))
    return found


def find_conv_bn_pairs(model: nn.Module, example_input: torch.Tensor | tuple) -> list[tuple[str, str]]:
    """(conv name, bn name) for every batch norm whose only input is a conv's output that nothing
    else reads, where folding the two provably changes no output (see `_foldable`)."""
    names = {m: n for n, m in model.named_modules()}
    return [(names[conv], names[bn]) for conv, bn, _ in _foldable(_trace(model, example_input, _CONVS, _NORMS))]


@torch.no_grad()
def fold_conv_bn(conv: nn.Module, bn: nn.Module) -> None:
    """Fold an eval-mode batch norm into the conv before it, in place: W' = s·W, b' = s·(b − μ) + β."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1 / torch.sqrt(bn.running_var + bn.eps)
    shift = (bn.bias if bn.affine else 0) - bn.running_mean * scale
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.weight.mul_(scale.reshape((-1,) + (1,) * (conv.weight.dim() - 1)))
    new_bias = bias * scale + shift
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias)
    else:
        conv.bias.copy_(new_bias)


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def _fold(model: nn.Module, pairs: list[tuple[nn.Module, nn.Module, nn.Module]]) -> list[tuple[str, str]]:
    names = {m: n for n, m in model.named_modules()}
    for conv, bn, replacement in pairs:
        fold_conv_bn(conv, bn)
        _set_module(model, names[bn], replacement)
    return [(names[conv], names[bn]) for conv, bn, _ in pairs]


def fold_batchnorm(model: nn.Module, example_input: torch.Tensor | tuple) -> list[tuple[str, str]]:
    """Fold every provably foldable conv→BN pair of an eval-mode model in place; returns the pairs folded."""
    return _fold(model, _foldable(_trace(model, example_input, _CONVS, _NORMS)))


def _pointwise_conv_op():
    try:
        return torch.ops.mkldnn._convolution_pointwise.default if torch.backends.mkldnn.is_available() else None
    except (AttributeError, RuntimeError):  # a build without oneDNN's fused convolutions
        return None


_CONV_POINTWISE = _pointwise_conv_op()


def activation_post_op(act: nn.Module) -> tuple[str, list[float], str] | None:
    """oneDNN's name, scalars and algorithm for an activation module it can fuse, or None."""
    kind = type(act)
    if kind is nn.ReLU:
        return "relu", [], ""
    if kind in (nn.ReLU6, nn.Hardtanh):
        return "hardtanh", [float(act.min_val), float(act.max_val)], ""
    if kind is nn.LeakyReLU:
        return "leaky_relu", [float(act.negative_slope)], ""
    if kind is nn.GELU:
        return "gelu", [], act.approximate
    simple = {
        nn.SiLU: "swish",
        nn.Hardswish: "hardswish",
        nn.Sigmoid: "sigmoid",
        nn.Tanh: "tanh",
        nn.Hardsigmoid: "hardsigmoid",
    }
    return (simple[kind], [], "") if kind in simple else None


def _in_graph_capture() -> bool:
    """Tracing, ONNX export or torch.compile: they need the plain operators."""
    compiling = getattr(getattr(torch, "compiler", None), "is_compiling", lambda: False)
    return torch.jit.is_scripting() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or compiling()


class ConvAct(nn.Module):
    """y = act(conv(x)) as one oneDNN convolution with the activation as a post-op — on the CPU, in
    float32, without autograd. Anywhere else (a GPU, another dtype, gradients, tracing or export) it
    runs the convolution and then the activation, the same modules as before."""

    def __init__(self, conv: nn.Conv2d, act: nn.Module) -> None:
        super().__init__()
        post_op = activation_post_op(act)
        if post_op is None or not fusable_conv(conv):
            raise InvalidArgumentError(f"ConvAct cannot fuse {type(conv).__name__} with {type(act).__name__}")
        self.conv, self.act = conv, act
        self.post_op = post_op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        if (
            _CONV_POINTWISE is not None
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and conv.weight.dtype == torch.float32
            and x.dim() == 4
            and not (torch.is_grad_enabled() and (x.requires_grad or conv.weight.requires_grad))
            and not _in_graph_capture()
        ):
            attr, scalars, algorithm = self.post_op
            return _CONV_POINTWISE(
                x,
                conv.weight,
                conv.bias,
                list(conv.padding),
                list(conv.stride),
                list(conv.dilation),
                conv.groups,
                attr,
                scalars,
                algorithm,
            )
        return self.act(conv(x))


def fusable_conv(conv: nn.Module) -> bool:
    """A plain 2-D convolution: zero padding given as numbers, the stock forward."""
    return type(conv) is nn.Conv2d and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)


_ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.Hardtanh,
    nn.LeakyReLU,
    nn.GELU,
    nn.SiLU,
    nn.Hardswish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardsigmoid,
)


def fuse_conv_activations(model: nn.Module, example_input: torch.Tensor | tuple) -> list[tuple[str, str]]:
    """Replace every conv whose output only feeds one activation module by a `ConvAct`, and that
    activation by an identity, in place; returns the (conv, activation) names fused."""
    if _CONV_POINTWISE is None:
        return []
    names = {m: n for n, m in model.named_modules()}
    trace = _trace(model, example_input, (nn.Conv2d,), _ACTIVATIONS)
    # Nothing may read the conv's output before the activation; after it, only an in-place
    # activation makes later readers see the activated values, as they will after fusing. Neither
    # module may have hooks: `ConvAct` calls neither.
    pairs = [
        (f.a, f.b)
        for f in trace.followers
        if f.before == 0
        and (f.reads == 1 or getattr(f.b, "inplace", False))
        and fusable_conv(f.a)
        and activation_post_op(f.b) is not None
        and trace.hook_free[f.a]
        and trace.hook_free[f.b]
    ]
    for conv, act in pairs:
        _set_module(model, names[conv], ConvAct(conv, act))
        _set_module(model, names[act], nn.Identity())
    return [(names[conv], names[act]) for conv, act in pairs]


class OptimizedModel(nn.Module):
    """An inference model: converts its input to the chosen memory format and runs without autograd —
    unless an input requires gradients, when it runs with them (and `ConvAct` takes the plain
    operators), so that gradients flow as through the original model."""

    def __init__(
        self,
        model: nn.Module,
        memory_format: torch.memory_format,
        folded: list[tuple[str, str]],
        fused: list[tuple[str, str]] | None = None,
        refused: str | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.memory_format = memory_format
        self.folded = folded
        self.fused = fused or []
        self.refused = refused  # why nothing was folded or fused, when so

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and any(isinstance(x, torch.Tensor) and x.requires_grad for x in inputs):
            return self._run(inputs)
        with torch.no_grad():
            return self._run(inputs)

    def _run(self, inputs: tuple) -> torch.Tensor:
        if self.memory_format is not torch.contiguous_format:
            inputs = tuple(
                x.contiguous(memory_format=self.memory_format)
                if isinstance(x, torch.Tensor) and x.dim() in (4, 5)
                else x
                for x in inputs
            )
        return self.model(*inputs)

    def extra_repr(self) -> str:
        refused = f", left as it was: {self.refused}" if self.refused else ""
        return (
            f"folded={len(self.folded)} conv-BN pairs, fused={len(self.fused)} conv-activation pairs, "
            f"memory_format={self.memory_format}{refused}"
        )


def _copy(model: nn.Module) -> nn.Module:
    """A deep copy. Tensors that are computed attributes with a graph behind them (the `weight` that
    torch.nn.utils.weight_norm's hook recomputes before each call), which deepcopy refuses, are
    copied detached."""
    memo = {}
    for module in model.modules():
        for value in vars(module).values():
            if isinstance(value, torch.Tensor) and value.grad_fn is not None:
                memo[id(value)] = value.detach().clone()
    return copy.deepcopy(model, memo)


def _input_dependence(model: nn.Module, inputs: tuple, trace: _Trace) -> str | None:
    """Why which operators run may depend on the input's values, or None: the forward turned a tensor's
    value into a Python number (`if x.sum() > 0:`), or another input (the example negated) runs
    another sequence of operators or reads other parameters."""
    if trace.watch.value_reads:
        ops = ", ".join(sorted(set(trace.watch.value_reads)))
        return f"its forward reads tensor values into Python ({ops}), so its path may depend on the input"
    other = tuple(-x if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in inputs)
    watch = _Watch(trace.storages, keep_producers=False)
    try:
        with torch.no_grad(), watch:
            model(*other)
    except Exception:  # the model refuses a negated input: the first check stands alone
        return None
    if watch.sequence != trace.watch.sequence:
        return "its forward runs other operators on another input (control flow on the input's values)"
    return None


def _max_relative_difference(got: object, expected: object) -> float:
    """max |got − expected| / max |expected| over the output's tensors; inf where the structure differs."""
    got_leaves, got_spec = tree_flatten(got)
    expected_leaves, expected_spec = tree_flatten(expected)
    if got_spec != expected_spec:
        return float("inf")
    worst = 0.0
    for a, b in zip(got_leaves, expected_leaves):
        if not isinstance(b, torch.Tensor):
            try:
                same = a is b or bool(a == b)
            except Exception:  # an array or another object without one truth value
                same = False
            worst = worst if same else float("inf")
            continue
        if not isinstance(a, torch.Tensor) or a.shape != b.shape:
            return float("inf")
        if not b.is_floating_point():
            worst = worst if torch.equal(a, b) else float("inf")
            continue
        a, b = a.double(), b.double()
        finite = b[b.isfinite()]
        scale = finite.abs().max().clamp_min(1e-12) if finite.numel() else torch.tensor(1.0, dtype=b.dtype)
        diff = torch.where(a.isnan() & b.isnan(), 0.0, (a - b).abs())
        rel = float(diff.max() / scale) if diff.numel() else 0.0
        worst = max(worst, rel if rel == rel else float("inf"))
    return worst


def _tolerance(param: torch.Tensor | None) -> float:
    """How far (× the output's scale) a rewritten output may be from the original's: float rounding,
    in TF32 for the convolutions of NVIDIA GPUs (10 bits of mantissa) and in half precision."""
    if param is None or param.dtype == torch.float64:
        return 1e-6
    if param.dtype != torch.float32:
        return 3e-2
    return 1e-2 if param.device.type == "cuda" else 1e-3


def _memory_format(model: nn.Module) -> torch.memory_format:
    dims = max((m.weight.dim() - 2 for m in model.modules() if isinstance(m, _CONVS)), default=0)
    return {2: torch.channels_last, 3: torch.channels_last_3d}.get(dims, torch.contiguous_format)


def optimize(
    model: nn.Module, *, example_input: torch.Tensor | tuple | None = None, compile: bool = False
) -> nn.Module:
    """An inference copy of `model` with identical outputs (to float rounding), usually faster:
    eval mode, every conv→BN pair folded into the conv (also inside branches, residual and SE
    blocks), every 2-D conv→activation pair run as one oneDNN kernel on the CPU (`ConvAct`),
    channels_last memory format for 2-D/3-D convolutional models, and `torch.compile` when
    `compile=True`. The original model is not modified.

    Exact or not at all: only pairs where the rewrite provably changes no output are rewritten; a
    model whose path depends on the input's values, or whose rewritten output differs from the
    original's on the example input, is left as it was (still eval mode and channels_last) with an
    `OptimizeWarning`.

    `example_input` is one batch the model accepts, used to follow the data flow. By default, one
    sample of the model's `default_input_size`, of its timm configuration's input size, or 224×224
    with the first convolution's input channels for 2-D convolutional models.
    """
    if not isinstance(model, nn.Module):
        raise InvalidArgumentError(f"optimize expects an nn.Module; got {type(model).__name__}")
    if example_input is None:
        example_input = _default_input(model)
    original = model
    model = _copy(model).eval()
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    param = next(model.parameters(), None)
    if param is not None:
        inputs = tuple(x.to(param.device) if isinstance(x, torch.Tensor) else x for x in inputs)
    trace = _trace(model, inputs, _CONVS, _NORMS)
    # Without a convolution there is nothing to rewrite, so nothing to refuse either.
    has_conv = any(isinstance(m, _CONVS) for m in model.modules())
    refused = _input_dependence(model, _clone(inputs), trace) if has_conv else None
    reference, pairs = trace.output, _foldable(trace) if refused is None else []
    del trace  # the activations it holds
    folded, fused = [], []
    if refused is None:
        folded = _fold(model, pairs)
        fused = fuse_conv_activations(model, inputs)
    memory_format = _memory_format(model)
    if memory_format is not torch.contiguous_format:
        model = model.to(memory_format=memory_format)
    result = OptimizedModel(model, memory_format, folded, fused, refused)
    if refused is None and (folded or fused):
        difference = _max_relative_difference(result(*_clone(inputs)), reference)
        if not difference <= _tolerance(param):
            refused = (
                f"its rewritten output differed from the original's by {difference:.3g} × the output's "
                f"scale on the example input"
            )
            plain = _copy(original).eval().to(memory_format=memory_format)
            result = OptimizedModel(plain, memory_format, [], [], refused)
    if refused is not None:
        warnings.warn(
            f"optimize: {type(original).__name__} left unfused and unfolded: {refused}", OptimizeWarning, stacklevel=2
        )
    if compile:
        result = torch.compile(result)
    return result


def _default_input(model: nn.Module) -> torch.Tensor:
    """One sample the model takes: its `default_input_size` (the zoo's models), its registered input
    size, its timm configuration's `input_size`, or 3×224×224-like for a 2-D convolutional model (the
    first convolution's input channels)."""
    size = getattr(model, "default_input_size", None)
    registered = registered_input_size(type(model))
    if size is None and registered is not None and getattr(model, "in_channels", None) is not None:
        size = (model.in_channels,) + tuple(registered[1:])
    if size is None:
        config = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
        size = config.get("input_size") if isinstance(config, dict) else None
    if size is None:
        first = next((m for m in model.modules() if isinstance(m, _CONVS)), None)
        if isinstance(first, nn.Conv2d):
            size = (first.in_channels, 224, 224)
    if size is None:
        raise InvalidArgumentError(
            f"optimize: pass example_input=<one input batch> for {type(model).__name__} (it has no "
            "default_input_size and no 2-D convolution to guess one from; the input is needed to find "
            "which batch norms follow which convolutions)"
        )
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else None
    return torch.randn((1,) + tuple(int(s) for s in size), dtype=dtype)
