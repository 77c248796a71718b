"""An exponential moving average of a model's weights, the weights a run evaluates and keeps.

After optimiser step n (counted from 1) every floating-point tensor of the model's state — weights and
batch-norm statistics — is averaged as

    θ̄ ← d_n·θ̄ + (1 − d_n)·θ,   d_n = min(decay, (1 + n) / (10 + n))

(Polyak & Juditsky 1992; the warm-up of d_n is TensorFlow's `ExponentialMovingAverage(num_updates=n)`,
so early steps are not outweighed by the random initial weights); integer tensors (batch-norm step
counters) are copied. The average smooths the noisy steps of a high learning rate, which is why
EfficientNet (Tan & Le 2019) and timm evaluate it; where a schedule anneals the rate to zero, the last
steps average the weights themselves and the two end close (benchmarks/RESULTS-segmentation.md).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay(decay: float, step: int) -> float:
    """d_n of the average after step n (from 1): the warmed-up decay, never above `decay`."""
    return min(decay, (1 + step) / (10 + step))


class WeightAverage:
    """θ̄ of a model: a copy of it kept in eval mode, updated by `update(model, step)` after each step."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """θ̄ ← d·θ̄ + (1 − d)·θ with d = ema_decay(decay, step); integer tensors copied."""
        d = ema_decay(self.decay, step)
        current = model.state_dict()
        for name, mean in self.module.state_dict().items():
            if mean.is_floating_point():
                mean.lerp_(current[name].detach(), 1.0 - d)
            else:
                mean.copy_(current[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()
