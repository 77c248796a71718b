"""Inference-time rewriting: fold batch norm into the preceding convolution, run each convolution
and the activation after it as one kernel on the CPU, use the memory layout the convolution kernels
prefer, optionally compile — outputs unchanged (to float rounding).

Folding (Ioffe & Szegedy's BN at inference is an affine map per channel): with
s = γ / sqrt(σ² + ε), a conv followed by BN equals one conv with W' = s·W (per output channel)
and b' = s·(b − μ) + β.

Fusing: oneDNN (the library behind PyTorch's CPU convolutions) applies an activation as a
"post-op" to each block of the convolution's output while it is still in cache, so the activation
costs no second pass over memory.
"""

from __future__ import annotations

import copy
from collections import Counter

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .errors import InvalidArgumentError

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class _CountUses(TorchDispatchMode):
    """Counts, for every live tensor, how many operators take it as an argument. A tensor's count
    starts at zero when an operator creates it (ids of freed tensors are reused)."""

    def __init__(self) -> None:
        super().__init__()
        self.uses: Counter[int] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        for t in tree_flatten((args, kwargs or {}))[0]:
            if isinstance(t, torch.Tensor):
                self.uses[id(t)] += 1
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and not any(t is a for a in tree_flatten((args, kwargs or {}))[0]):
                self.uses[id(t)] = 0
        return out


def _find_followers(model: nn.Module, example_input: torch.Tensor | tuple, first: tuple[type, ...],
                    second: tuple[type, ...]) -> list[tuple[nn.Module, nn.Module, int, int]]:
    """(a, b, reads before b, reads in all) for every module b of the `second` kinds whose input is
    the output of a module a of the `first` kinds, each called once; the reads count the operators
    that took a's output before b ran and over the whole forward. Found by running the model once and
    watching the data flow, so it works inside branches, residual blocks and models we did not write."""
    calls: Counter[nn.Module] = Counter()
    first_out: dict[int, tuple[nn.Module, torch.Tensor]] = {}
    second_in: list[tuple[nn.Module, torch.Tensor, int]] = []  # holding the tensors keeps their ids unique
    counter = _CountUses()

    def on_first(module, args, output):
        calls[module] += 1
        first_out[id(output)] = (module, output)

    def on_second(module, args):
        calls[module] += 1
        if args and isinstance(args[0], torch.Tensor):
            second_in.append((module, args[0], counter.uses[id(args[0])]))

    handles = [m.register_forward_hook(on_first) for m in model.modules() if isinstance(m, first)]
    handles += [m.register_forward_pre_hook(on_second) for m in model.modules() if isinstance(m, second)]
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    try:
        with torch.no_grad(), counter:
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    pairs = []
    for b, source, before in second_in:
        a, output = first_out.get(id(source), (None, None))
        if output is None or output is not source or calls[a] != 1 or calls[b] != 1:
            continue
        pairs.append((a, b, before, counter.uses[id(source)]))
    return pairs


def find_conv_bn_pairs(model: nn.Module, example_input: torch.Tensor | tuple) -> list[tuple[str, str]]:
    """(conv name, bn name) for every batch norm whose only input is a conv's output that nothing
    else reads."""
    names = {m: n for n, m in model.named_modules()}
    return [(names[conv], names[bn]) for conv, bn, _, reads in _find_followers(model, example_input, _CONVS, _NORMS)
            if reads == 1 and bn.running_mean is not None and conv.out_channels == bn.num_features]


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


def fold_batchnorm(model: nn.Module, example_input: torch.Tensor | tuple) -> list[tuple[str, str]]:
    """Fold every foldable conv→BN pair of an eval-mode model in place; returns the pairs folded."""
    pairs = find_conv_bn_pairs(model, example_input)
    for conv_name, bn_name in pairs:
        fold_conv_bn(model.get_submodule(conv_name), model.get_submodule(bn_name))
        _set_module(model, bn_name, nn.Identity())
    return pairs


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
    simple = {nn.SiLU: "swish", nn.Hardswish: "hardswish", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh",
              nn.Hardsigmoid: "hardsigmoid"}
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
        if (_CONV_POINTWISE is not None and x.device.type == "cpu" and x.dtype == torch.float32
                and conv.weight.dtype == torch.float32 and x.dim() == 4
                and not (torch.is_grad_enabled() and (x.requires_grad or conv.weight.requires_grad))
                and not _in_graph_capture()):
            attr, scalars, algorithm = self.post_op
            return _CONV_POINTWISE(x, conv.weight, conv.bias, list(conv.padding), list(conv.stride),
                                   list(conv.dilation), conv.groups, attr, scalars, algorithm)
        return self.act(conv(x))


def fusable_conv(conv: nn.Module) -> bool:
    """A plain 2-D convolution: zero padding given as numbers, the stock forward."""
    return (type(conv) is nn.Conv2d and conv.padding_mode == "zeros" and not isinstance(conv.padding, str))


def fuse_conv_activations(model: nn.Module, example_input: torch.Tensor | tuple) -> list[tuple[str, str]]:
    """Replace every conv whose output only feeds one activation module by a `ConvAct`, and that
    activation by an identity, in place; returns the (conv, activation) names fused."""
    if _CONV_POINTWISE is None:
        return []
    names = {m: n for n, m in model.named_modules()}
    acts = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Sigmoid, nn.Tanh,
            nn.Hardsigmoid)
    # Nothing may read the conv's output before the activation; after it, only an in-place
    # activation makes later readers see the activated values, as they will after fusing.
    pairs = [(conv, act) for conv, act, before, reads in _find_followers(model, example_input, (nn.Conv2d,), acts)
             if before == 0 and (reads == 1 or getattr(act, "inplace", False))
             and fusable_conv(conv) and activation_post_op(act) is not None]
    for conv, act in pairs:
        _set_module(model, names[conv], ConvAct(conv, act))
        _set_module(model, names[act], nn.Identity())
    return [(names[conv], names[act]) for conv, act in pairs]


class OptimizedModel(nn.Module):
    """An inference model: converts its input to the chosen memory format and runs without autograd."""

    def __init__(self, model: nn.Module, memory_format: torch.memory_format, folded: list[tuple[str, str]],
                 fused: list[tuple[str, str]] | None = None) -> None:
        super().__init__()
        self.model = model
        self.memory_format = memory_format
        self.folded = folded
        self.fused = fused or []

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            if self.memory_format is not torch.contiguous_format:
                inputs = tuple(x.contiguous(memory_format=self.memory_format) if x.dim() in (4, 5) else x
                               for x in inputs)
            return self.model(*inputs)

    def extra_repr(self) -> str:
        return (f"folded={len(self.folded)} conv-BN pairs, fused={len(self.fused)} conv-activation pairs, "
                f"memory_format={self.memory_format}")


def optimize(model: nn.Module, *, example_input: torch.Tensor | tuple | None = None, compile: bool = False) -> nn.Module:
    """An inference copy of `model` with identical outputs (to float rounding), usually faster:
    eval mode, every conv→BN pair folded into the conv (also inside branches, residual and SE
    blocks), every 2-D conv→activation pair run as one oneDNN kernel on the CPU (`ConvAct`),
    channels_last memory format for 2-D/3-D convolutional models, and `torch.compile` when
    `compile=True`. The original model is not modified.

    `example_input` is one batch the model accepts; it is needed to follow the data flow. For
    models of the zoo it defaults to one sample of the registered input size.
    """
    if not isinstance(model, nn.Module):
        raise InvalidArgumentError(f"optimize expects an nn.Module; got {type(model).__name__}")
    if example_input is None:
        example_input = _default_input(model)
    model = copy.deepcopy(model).eval()
    param = next(model.parameters(), None)
    if param is not None:
        inputs = example_input if isinstance(example_input, tuple) else (example_input,)
        example_input = tuple(x.to(param.device) for x in inputs)
    folded = fold_batchnorm(model, example_input)
    fused = fuse_conv_activations(model, example_input)
    dims = max((m.weight.dim() - 2 for m in model.modules() if isinstance(m, _CONVS)), default=0)
    memory_format = {2: torch.channels_last, 3: torch.channels_last_3d}.get(dims, torch.contiguous_format)
    if memory_format is not torch.contiguous_format:
        model = model.to(memory_format=memory_format)
    result: nn.Module = OptimizedModel(model, memory_format, folded, fused)
    if compile:
        result = torch.compile(result)
    return result


def _default_input(model: nn.Module) -> torch.Tensor:
    from .registry import _REGISTRY

    for entry in _REGISTRY.values():
        if type(model) is entry.cls and getattr(model, "in_channels", None) is not None:
            size = (model.in_channels,) + entry.input_size[1:]
            return torch.randn((1,) + size)
    raise InvalidArgumentError(
        f"optimize: pass example_input=<one input batch> for {type(model).__name__} "
        "(it is needed to find which batch norms follow which convolutions)"
    )
