"""Inference-time rewriting: fold batch norm into the preceding convolution, use the memory
layout the CPU and GPU convolution kernels prefer, optionally compile — outputs unchanged.

Folding (Ioffe & Szegedy's BN at inference is an affine map per channel): with
s = γ / sqrt(σ² + ε), a conv followed by BN equals one conv with W' = s·W (per output channel)
and b' = s·(b − μ) + β.
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


def find_conv_bn_pairs(model: nn.Module, example_input: torch.Tensor | tuple) -> list[tuple[str, str]]:
    """(conv name, bn name) for every batch norm whose only input is a conv's output that nothing
    else reads — found by running the model once and watching the data flow, so it works inside
    branches, residual blocks and models we did not write."""
    names = {m: n for n, m in model.named_modules()}
    calls: Counter[nn.Module] = Counter()
    conv_out: dict[int, tuple[nn.Module, torch.Tensor]] = {}
    bn_in: list[tuple[nn.Module, torch.Tensor]] = []  # holding the tensors keeps their ids unique

    def on_conv(module, args, output):
        calls[module] += 1
        conv_out[id(output)] = (module, output)

    def on_bn(module, args):
        calls[module] += 1
        bn_in.append((module, args[0]))

    handles = [m.register_forward_hook(on_conv) for m in model.modules() if isinstance(m, _CONVS)]
    handles += [m.register_forward_pre_hook(on_bn) for m in model.modules() if isinstance(m, _NORMS)]
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    counter = _CountUses()
    try:
        with torch.no_grad(), counter:
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    pairs = []
    for bn, source in bn_in:
        conv, output = conv_out.get(id(source), (None, None))
        if output is not source or calls[conv] != 1 or calls[bn] != 1 or counter.uses[id(source)] != 1:
            continue
        if bn.running_mean is None or conv.out_channels != bn.num_features:
            continue
        pairs.append((names[conv], names[bn]))
    return pairs


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


class OptimizedModel(nn.Module):
    """An inference model: converts its input to the chosen memory format and runs without autograd."""

    def __init__(self, model: nn.Module, memory_format: torch.memory_format, folded: list[tuple[str, str]]) -> None:
        super().__init__()
        self.model = model
        self.memory_format = memory_format
        self.folded = folded

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            if self.memory_format is not torch.contiguous_format:
                inputs = tuple(x.contiguous(memory_format=self.memory_format) if x.dim() in (4, 5) else x
                               for x in inputs)
            return self.model(*inputs)

    def extra_repr(self) -> str:
        return f"folded={len(self.folded)} conv-BN pairs, memory_format={self.memory_format}"


def optimize(model: nn.Module, *, example_input: torch.Tensor | tuple | None = None, compile: bool = False) -> nn.Module:
    """An inference copy of `model` with identical outputs (to float rounding), usually faster:
    eval mode, every conv→BN pair folded into the conv (also inside branches, residual and SE
    blocks), channels_last memory format for 2-D/3-D convolutional models, and `torch.compile`
    when `compile=True`. The original model is not modified.

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
    dims = max((m.weight.dim() - 2 for m in model.modules() if isinstance(m, _CONVS)), default=0)
    memory_format = {2: torch.channels_last, 3: torch.channels_last_3d}.get(dims, torch.contiguous_format)
    if memory_format is not torch.contiguous_format:
        model = model.to(memory_format=memory_format)
    result: nn.Module = OptimizedModel(model, memory_format, folded)
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
