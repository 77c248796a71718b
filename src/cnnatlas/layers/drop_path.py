"""Stochastic depth — Huang et al., "Deep Networks with Stochastic Depth", ECCV 2016."""

from __future__ import annotations

import torch
from torch import nn

from .checks import check_rate


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Zero each sample's residual branch with probability `rate`, scale survivors by 1/(1 − rate)."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    """Stochastic depth on a residual branch: identity at eval, random per-sample drop in training."""

    def __init__(self, rate: float = 0.0) -> None:
        super().__init__()
        self.rate = check_rate("DropPath", "rate", rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.rate, self.training)

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


def drop_path_layer(rate: float, active: bool = True) -> nn.Module:
    """DropPath(rate), or an nn.Identity placeholder where it would never drop anything (rate 0, or
    `active=False`: no identity path to fall back on); the rate is checked either way."""
    layer = DropPath(rate)
    return layer if active and layer.rate > 0 else nn.Identity()
