"""Measuring instruments the claims share: parameter and MAC counts, the receptive field read off
a gradient, relative errors, the digits data."""

from __future__ import annotations

import copy
from functools import cache

import numpy as np
import torch
from torch import nn

from ..analysis import analyze
from ..data.base import fit_to_size
from ..data.digits import digits_arrays


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, str]:
    """(multiply–accumulates of one forward pass, instrument): cnnatlas's analyser."""
    return int(analyze(model, tuple(input_shape), training_memory=False).macs), "cnnatlas.analyze"


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """max|a − b| / max|b| (0 when equal, ~1 when unrelated)."""
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def positive_weights(net: nn.Module) -> nn.Module:
    """A float64 copy of `net` whose conv/linear weights are in [0.5, 1] and biases 0, so that with a
    positive input no two paths cancel and every pixel of the receptive field gets a gradient."""
    net = copy.deepcopy(net).double()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
                m.weight.copy_(0.5 + 0.5 * torch.rand(m.weight.shape, generator=g, dtype=torch.float64))
                if m.bias is not None:
                    m.bias.zero_()
    return net


def field_mask(net: nn.Module, in_channels: int, size: int, unit: tuple[int, int] | None = None) -> np.ndarray:
    """The input pixels (H×W boolean mask) that reach output unit `unit` (default: the centre),
    read off the gradient of that unit with respect to a positive input."""
    net = positive_weights(net)
    x = torch.ones(1, in_channels, size, size, dtype=torch.float64, requires_grad=True)
    y = net(x)
    i, j = unit if unit is not None else (y.shape[-2] // 2, y.shape[-1] // 2)
    y[0, :, i, j].sum().backward()
    return (x.grad[0].abs().sum(0) > 0).numpy()


def field_size(mask: np.ndarray) -> tuple[int, int]:
    """Height and width of the bounding box of a receptive-field mask."""
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


@cache
def digits(size: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's handwritten digits, (train x, train y, test x, test y), x (N, 1, size, size)
    standardised with the training set's mean and std — cnnatlas.data's split."""
    x_tr, y_tr, x_te, y_te = digits_arrays()
    x_tr, x_te = fit_to_size(x_tr, size), fit_to_size(x_te, size)
    mean, std = x_tr.mean(), x_tr.std()
    return (x_tr - mean) / std, y_tr, (x_te - mean) / std, y_te


def fmt_ratio(x: float) -> str:
    return f"{x:,.3g}×" if x < 1000 else f"{x:,.0f}×"
