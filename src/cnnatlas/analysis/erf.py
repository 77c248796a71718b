"""Effective receptive field — Luo, Li, Urtasun & Zemel, "Understanding the effective receptive
field in deep convolutional neural networks", NeurIPS 2016.

Set the gradient of one unit (the centre of a feature map, all channels) to 1, backpropagate to the
input, and average |∂y/∂x| over random inputs. The theoretical field bounds where this map can be
non-zero; the mass concentrates in a Gaussian-like centre that is much smaller — the effective field.
This runs real arithmetic (it needs gradients), so keep inputs small; it works at initialisation or
with whatever weights the model holds.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import InvalidArgumentError, did_you_mean
from .report import ReceptiveField, Report
from .trace import analyze


@dataclass(frozen=True)
class EffectiveReceptiveField:
    """Gradient-magnitude map of one unit (normalised to sum 1) and the size holding `fraction` of it."""

    grad: torch.Tensor  # spatial map over the input: (L,), (H, W) or (T, H, W)
    layer: str  # the module whose output holds the unit ("" for the model's own output, a dense model's)
    unit: tuple[int, ...]  # its position in that feature map
    centre: tuple[float, ...]  # centre of its theoretical field, in input pixels
    fraction: float
    size: tuple[int, ...]  # per axis: the smallest interval around `centre` holding `fraction` of the mass
    theoretical: ReceptiveField | None
    samples: int

    @property
    def where(self) -> str:
        """The map's name as a sentence gives it: the module, or "the model's output"."""
        return self.layer or "the model's output"

    @property
    def input_units(self) -> str:
        """What the sizes count: "samples" of a one-dimensional input (sound), else "pixels"."""
        return "samples" if self.grad.dim() == 1 else "pixels"

    def as_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "unit": list(self.unit),
            "centre": list(self.centre),
            "fraction": self.fraction,
            "size": list(self.size),
            "samples": self.samples,
            "theoretical": None if self.theoretical is None else self.theoretical.as_dict(),
        }


def gradient_map(model: nn.Module, x: torch.Tensor, layer: str, unit: tuple[int, ...] | None = None) -> torch.Tensor:
    """|∂(Σ_c y[n, c, unit])/∂x|, summed over input channels, one map per sample: (N, *spatial).
    `unit` defaults to the centre of the feature map."""
    modules = dict(model.named_modules())
    if layer not in modules:
        raise InvalidArgumentError(
            f"{type(model).__name__} has no module {layer!r}."
            + (did_you_mean(layer, modules) or " `cnnatlas rf MODEL` lists the path of each module.")
        )
    captured: list[torch.Tensor] = []
    handle = modules[layer].register_forward_hook(
        lambda m, a, out: captured.append(out if isinstance(out, torch.Tensor) else out[0])
    )
    x = x.detach().clone().requires_grad_(True)
    try:
        model(x)
    finally:
        handle.remove()
    if not captured:
        raise InvalidArgumentError(f"module {layer!r} did not run in {type(model).__name__}'s forward")
    y = captured[0]
    spatial = tuple(y.shape[2:])
    pos = tuple(s // 2 for s in spatial) if unit is None else tuple(unit)
    if len(pos) != len(spatial) or any(not 0 <= p < s for p, s in zip(pos, spatial)):
        raise InvalidArgumentError(f"unit {pos} is outside the {layer!r} feature map of size {spatial}")
    y[(slice(None), slice(None)) + pos].sum().backward()
    return x.grad.abs().sum(1)


def _check_memory(samples: int, per_sample: int, device: torch.device) -> None:
    """Refuse, before allocating, a probe whose forward and backward (about the activations of one sample plus
    its input and gradient, times `samples`) needs more than this machine's memory."""
    if device.type != "cpu" or not hasattr(os, "sysconf"):
        return
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return
    need = samples * per_sample
    if need > total:
        raise InvalidArgumentError(
            f"the effective receptive field at this input needs about {need / 2**30:,.1f} GiB "
            f"({samples} samples); expected at most this machine's "
            f"{total / 2**30:,.1f} GiB — give a smaller input or fewer samples"
        )


def _mass_interval(marginal: torch.Tensor, centre: float, fraction: float) -> int:
    """Number of pixels in the smallest window around `centre` that holds `fraction` of the mass."""
    n = marginal.numel()
    pos = torch.arange(n, dtype=torch.float64)
    dist = (pos - centre).abs()
    order = torch.argsort(dist, stable=True)
    cum = torch.cumsum(marginal.double()[order], 0)
    k = int(torch.searchsorted(cum, torch.tensor(fraction * float(cum[-1]), dtype=torch.float64)))
    return min(k + 1, n)


def _checked_input_size(
    model: nn.Module,
    input_size: tuple[int, ...],
    layer: str | None,
    unit: tuple[int, ...] | None,
    fraction: float,
    samples: int,
    seed: int,
) -> tuple[int, ...]:
    """effective_receptive_field's arguments checked, one line per mistake; the input shape as a tuple."""
    if not isinstance(model, nn.Module):
        raise InvalidArgumentError(f"effective_receptive_field expects a torch.nn.Module; got {type(model).__name__}")
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 < fraction <= 1:
        raise InvalidArgumentError(f"fraction must be a number in (0, 1]; got {fraction!r}")
    for key, value in (("samples", samples), ("seed", seed)):
        if not isinstance(value, int) or isinstance(value, bool) or value < (1 if key == "samples" else 0):
            raise InvalidArgumentError(f"{key} must be an integer ≥ {1 if key == 'samples' else 0}; got {value!r}")
    if layer is not None and not isinstance(layer, str):
        raise InvalidArgumentError(f"layer must be a module name such as 'features.3'; got {layer!r}")
    if unit is not None and (
        not isinstance(unit, (tuple, list)) or not all(isinstance(i, int) and not isinstance(i, bool) for i in unit)
    ):
        raise InvalidArgumentError(f"unit must be a tuple of integers, one per spatial axis; got {unit!r}")
    shape = tuple(input_size) if isinstance(input_size, (tuple, list, torch.Size)) else None
    if (
        shape is None
        or len(shape) < 3
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)
    ):
        raise InvalidArgumentError(f"input_size must be (N, C, *spatial) with positive whole sizes; got {input_size!r}")
    return shape


def _target_layer(model: nn.Module, probe: Report, layer: str | None) -> str:
    """The module whose centre unit is studied: `layer`, else the one giving the last spatial map."""
    name = layer if layer is not None else probe.receptive_field_layer
    if name is None and probe.receptive_field is not None:
        name = ""  # the output itself is the last spatial map (a segmentation model's scores)
    if name is None:
        raise InvalidArgumentError(
            f"{type(model).__name__}: no module outputs the last spatial feature map; name one with layer=..."
        )
    return name


def _mean_gradient_in_eval(model: nn.Module, x: torch.Tensor, name: str, unit: tuple[int, ...] | None) -> torch.Tensor:
    """gradient_map averaged over the samples, with the model in eval mode; each module's mode put back."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        return gradient_map(model, x, name, unit).mean(0).detach().cpu()
    finally:
        for m, mode in modes:
            m.training = mode


def effective_receptive_field(
    model: nn.Module,
    input_size: tuple[int, ...],
    *,
    layer: str | None = None,
    unit: tuple[int, ...] | None = None,
    fraction: float = 0.95,
    samples: int = 16,
    seed: int = 0,
) -> EffectiveReceptiveField:
    """Effective receptive field of the centre unit of `layer` (default: the last spatial feature
    map, as in `analyze(...).receptive_field`), averaged over `samples` Gaussian inputs of
    `input_size` (N, C, *spatial) — N is replaced by `samples`. The model is evaluated in eval
    mode with its current weights and left as it was."""
    shape = _checked_input_size(model, input_size, layer, unit, fraction, samples, seed)
    probe = analyze(model, (1,) + shape[1:], training_memory=False)
    sample_shape = shape[1:]
    name = _target_layer(model, probe, layer)
    theoretical = probe.receptive_field_of(name)
    param = next(iter(model.parameters()), None)
    device, dtype = (param.device, param.dtype) if param is not None else (torch.device("cpu"), torch.float32)
    _check_memory(samples, probe.activation_bytes + 2 * math.prod(sample_shape) * 4, device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn((samples,) + sample_shape, generator=gen).to(device=device, dtype=dtype)
    grads = _mean_gradient_in_eval(model, x, name, unit)
    total = float(grads.sum())
    grads = grads / total if total > 0 else grads
    out_spatial = next(m.output_shapes[0][2:] for m in probe.modules if m.name == name)
    pos = tuple(s // 2 for s in out_spatial) if unit is None else tuple(unit)
    if theoretical is not None:
        along = theoretical.unit_index(pos)  # the unit's place along each input axis
        centre = tuple(float(c + i * j) for c, j, i in zip(theoretical.start, theoretical.stride, along))
    else:
        centre = tuple((s - 1) / 2 for s in grads.shape)
    sizes = []
    for axis in range(grads.dim()):
        others = [d for d in range(grads.dim()) if d != axis]
        marginal = grads.sum(dim=others) if others else grads
        sizes.append(_mass_interval(marginal, centre[axis], fraction) if total > 0 else 0)
    return EffectiveReceptiveField(grads, name, pos, centre, fraction, tuple(sizes), theoretical, samples)
