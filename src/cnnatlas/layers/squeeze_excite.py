"""Squeeze-and-excitation — Hu, Shen & Sun, "Squeeze-and-Excitation Networks", CVPR 2018."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InvalidArgumentError
from .factories import ActSpec, get_act_layer


class SqueezeExcite(nn.Module):
    """Channel attention: s = σ(W₂·δ(W₁·GAP(x))), y_c = s_c·x_c.

    W₁: C → C/r and W₂: C/r → C are 1×1 convolutions with bias, so the block adds
    2·C·(C/r) + C/r + C ≈ 2C²/r parameters. `squeeze_channels` overrides C/r (EfficientNet
    squeezes relative to the block's input, not its expanded width). Works for 1-, 2- and 3-D maps.
    """

    def __init__(
        self,
        channels: int,
        ratio: float = 16,
        squeeze_channels: int | None = None,
        act_layer: ActSpec = "relu",
        gate_layer: ActSpec = "sigmoid",
        dims: int = 2,
    ) -> None:
        super().__init__()
        if squeeze_channels is None:
            if not ratio or ratio <= 0:
                raise InvalidArgumentError(f"SqueezeExcite: ratio must be > 0; got {ratio!r}")
            squeeze_channels = max(1, int(channels // ratio))
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
        self.fc1 = conv(channels, squeeze_channels, 1)
        self.act = get_act_layer(act_layer)()
        self.fc2 = conv(squeeze_channels, channels, 1)
        self.gate = get_act_layer(gate_layer)()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=tuple(range(2, 2 + self.dims)), keepdim=True)  # squeeze: global average pool
        s = self.gate(self.fc2(self.act(self.fc1(s))))  # excite
        return x * s
