"""Helpers for "same network as the reference" tests: random but non-trivial norm statistics, and
the output comparison used throughout (max |Δ| ≤ tol × output scale)."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def randomize_norm_stats(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every batch norm random running statistics and affine parameters, so that a loader
    that mixes up norm tensors cannot pass an equality test by luck (the defaults are 0/1)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            if m.affine:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model


def max_relative_difference(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """max |ours − theirs| divided by the output scale max |theirs|."""
    assert ours.shape == theirs.shape, f"shapes differ: {tuple(ours.shape)} vs {tuple(theirs.shape)}"
    scale = theirs.abs().max().clamp_min(1e-12)
    return float((ours - theirs).abs().max() / scale)


def assert_same_outputs(ours: nn.Module, theirs: nn.Module, x: torch.Tensor, tol: float = 1e-5) -> None:
    """Both models in eval mode give the same output on x, within tol × output scale."""
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        a, b = ours(x), theirs(x)
    diff = max_relative_difference(a, b)
    assert diff <= tol, f"outputs differ: max |Δ| = {diff:.3g} × output scale (tolerance {tol})"
