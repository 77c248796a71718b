"""Dense connectivity — Huang, Liu, van der Maaten & Weinberger, "Densely connected convolutional
networks", CVPR 2017.

Inside a dense block, layer ℓ receives the concatenation of the block input and the outputs of
all ℓ − 1 layers before it: x_ℓ = H_ℓ([x_0, x_1, …, x_{ℓ−1}]). Each layer adds only k channels
(the growth rate), so layer ℓ reads k_0 + k·(ℓ − 1) channels and a block of L layers outputs
k_0 + k·L. Features are reused by concatenation, not summed as in ResNet, and every layer has a
direct path to the loss. DenseNet-BC (B: bottleneck, C: compression) puts a 1×1 conv to 4k
channels before each 3×3, and shrinks the channels by θ = 0.5 in the transition between blocks.

The layers are pre-activation (BN → ReLU → conv), as in the paper and torchvision.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .checks import check_dims, check_positive_ints, check_rate
from .conv import conv_layer
from .factories import ActSpec, NormSpec, get_act_layer, get_norm_layer, run_layers

_AVG_POOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}


class DenseLayer(nn.Module):
    """H_ℓ of DenseNet-BC: BN-ReLU-Conv(1×1, b·k) → BN-ReLU-Conv(3×3, k) [→ dropout].

    (N, in_channels, *S) → (N, growth_rate, *S); in a block, in_channels = k_0 + k·(ℓ − 1).
    `bottleneck_factor` b (torchvision's `bn_size`) is 4 in the paper. Parameters, batch norm
    included: 2·C_in + C_in·b·k + 2·b·k + 9·b·k·k (2-D).
    """

    def __init__(
        self,
        in_channels: int,
        growth_rate: int,
        bottleneck_factor: int = 4,
        drop_rate: float = 0.0,
        norm_layer: NormSpec = "batch",
        act_layer: ActSpec = "relu",
        dims: int = 2,
    ) -> None:
        super().__init__()
        check_dims(dims)
        check_positive_ints(
            "DenseLayer", in_channels=in_channels, growth_rate=growth_rate, bottleneck_factor=bottleneck_factor
        )
        check_rate("DenseLayer", "drop_rate", drop_rate)
        norm, act, conv = get_norm_layer(norm_layer, dims), get_act_layer(act_layer), conv_layer(dims)
        width = bottleneck_factor * growth_rate
        self.norm1 = norm(in_channels)
        self.act1 = act()
        self.conv1 = conv(in_channels, width, 1, bias=False)
        self.norm2 = norm(width)
        self.act2 = act()
        self.conv2 = conv(width, growth_rate, 3, padding=1, bias=False)
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.in_channels = in_channels
        self.out_channels = growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_layers(x, self.norm1, self.act1, self.conv1, self.norm2, self.act2, self.conv2, self.drop)


class DenseBlock(nn.Module):
    """L dense layers, each reading everything before it: x ← [x, H_ℓ(x)] for ℓ = 1 … L.

    (N, k_0, *S) → (N, k_0 + k·L, *S); the first k_0 output channels are the input, unchanged.
    Layers are named denselayer1 … denselayerL, as in torchvision.
    """

    def __init__(
        self,
        num_layers: int,
        in_channels: int,
        growth_rate: int,
        bottleneck_factor: int = 4,
        drop_rate: float = 0.0,
        norm_layer: NormSpec = "batch",
        act_layer: ActSpec = "relu",
        dims: int = 2,
    ) -> None:
        super().__init__()
        check_positive_ints("DenseBlock", num_layers=num_layers, in_channels=in_channels, growth_rate=growth_rate)
        for i in range(num_layers):
            self.add_module(
                f"denselayer{i + 1}",
                DenseLayer(
                    in_channels + i * growth_rate,
                    growth_rate,
                    bottleneck_factor,
                    drop_rate,
                    norm_layer,
                    act_layer,
                    dims,
                ),
            )
        self.in_channels = in_channels
        self.growth_rate = growth_rate
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self._modules.values():
            x = torch.cat([x, layer(x)], 1)
        return x


class Transition(nn.Sequential):
    """Between dense blocks: BN → ReLU → 1×1 conv (compression, C → ⌊θ·C⌋) → 2×2 average pool /2.

    (N, in_channels, *S) → (N, out_channels, *S/2). DenseNet-BC uses θ = 0.5.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        norm_layer: NormSpec = "batch",
        act_layer: ActSpec = "relu",
        dims: int = 2,
    ) -> None:
        check_dims(dims)
        check_positive_ints("Transition", in_channels=in_channels, out_channels=out_channels)
        super().__init__(
            OrderedDict(
                norm=get_norm_layer(norm_layer, dims)(in_channels),
                act=get_act_layer(act_layer)(),
                conv=conv_layer(dims)(in_channels, out_channels, 1, bias=False),
                pool=_AVG_POOL[dims](kernel_size=2, stride=2),
            )
        )
        self.in_channels = in_channels
        self.out_channels = out_channels
