"""Inception modules — Szegedy et al., "Going deeper with convolutions" (GoogLeNet, CVPR 2015) and
"Rethinking the Inception architecture for computer vision" (Inception-v3, CVPR 2016).

An Inception module runs several convolutions of different kernel sizes side by side on the same
input and concatenates their outputs along the channels: C_out = Σ branch widths. What keeps it
affordable is the 1×1 *reduction* placed BEFORE each expensive k×k conv. A k×k conv from C_in to
C_out straight on the input costs K²·C_in·C_out weights; squeezing to r channels first costs
C_in·r + K²·r·C_out. In GoogLeNet's inception3a (C_in = 192) the 5×5 branch goes 192 → 16 → 32:
192·16 + 25·16·32 = 15,872 weights instead of 25·192·32 = 153,600, about ten times fewer.

Inception-v3 goes further: a 5×5 becomes two stacked 3×3s (18 vs 25 weights per channel pair),
and an n×n becomes a 1×n followed by an n×1 (2n vs n²). Grid reductions (modules B and D) stride
a conv branch and a max-pool branch side by side, so the width grows while the grid shrinks.
The v3 modules here are torchvision's `InceptionA`–`InceptionE`, with its widths and ordering.

Batch norm uses ε = 0.001, as in the networks ported from TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import InvalidArgumentError
from .checks import check_dims, check_positive_ints
from .conv import ConvNormAct
from .factories import ActSpec, NormSpec, get_norm_layer

INCEPTION_BN_EPS = 1e-3

_MAX_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}


class InceptionModule(nn.Module):
    """GoogLeNet's Inception module (figure 2b): four branches concatenated on the channels.

    1×1 | 1×1 reduce → 3×3 | 1×1 reduce → K×K | 3×3 max-pool (stride 1) → 1×1 projection.
    Output (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, *S) for input (N, in_channels, *S).

    `large_kernel_size` is the K of the third branch: 5 in the paper, 3 in torchvision's
    `googlenet` (a known slip kept for weight compatibility, pytorch/vision#906).
    `reduce=False` builds the paper's naive module (figure 2a): the 3×3 and K×K convs read the
    input directly and the pool branch has no projection, so it passes all `in_channels` through
    (the *red and pool_proj widths are then unused). `dims` gives 1-, 2- or 3-D modules.
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        large_kernel_size: int = 5,
        reduce: bool = True,
        norm_layer: NormSpec = "batch",
        act_layer: ActSpec = "relu",
        norm_eps: float = INCEPTION_BN_EPS,
        dims: int = 2,
    ) -> None:
        super().__init__()
        check_dims(dims)
        check_positive_ints(
            "InceptionModule",
            in_channels=in_channels,
            ch1x1=ch1x1,
            ch3x3red=ch3x3red,
            ch3x3=ch3x3,
            ch5x5red=ch5x5red,
            ch5x5=ch5x5,
            pool_proj=pool_proj,
        )
        if not isinstance(large_kernel_size, int) or large_kernel_size < 1 or large_kernel_size % 2 == 0:
            raise InvalidArgumentError(
                f"InceptionModule: large_kernel_size must be a positive odd integer; got {large_kernel_size!r}"
            )
        norm = get_norm_layer(norm_layer, dims, eps=norm_eps)

        def conv(c_in: int, c_out: int, k: int) -> ConvNormAct:
            return ConvNormAct(c_in, c_out, k, norm_layer=norm, act_layer=act_layer, dims=dims)

        pool = _MAX_POOL[dims](kernel_size=3, stride=1, padding=1, ceil_mode=True)
        self.branch1 = conv(in_channels, ch1x1, 1)
        if reduce:
            self.branch2 = nn.Sequential(conv(in_channels, ch3x3red, 1), conv(ch3x3red, ch3x3, 3))
            self.branch3 = nn.Sequential(conv(in_channels, ch5x5red, 1), conv(ch5x5red, ch5x5, large_kernel_size))
            self.branch4 = nn.Sequential(pool, conv(in_channels, pool_proj, 1))
        else:
            self.branch2 = nn.Sequential(conv(in_channels, ch3x3, 3))
            self.branch3 = nn.Sequential(conv(in_channels, ch5x5, large_kernel_size))
            self.branch4 = nn.Sequential(pool)
        self.in_channels = in_channels
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + (pool_proj if reduce else in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class GoogLeNetAux(nn.Module):
    """GoogLeNet's auxiliary classifier (section 5), used only in training: adaptive 4×4 average
    pool → 1×1 conv to 128 → FC 2048 → 1024 (ReLU, dropout) → FC to classes. (N, C, H, W) → (N, classes)."""

    def __init__(
        self, in_channels: int, num_classes: int, drop_rate: float = 0.7, norm_eps: float = INCEPTION_BN_EPS
    ) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d((4, 4))
        self.conv = ConvNormAct(in_channels, 128, 1, norm_layer=get_norm_layer("batch", 2, eps=norm_eps))
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(drop_rate)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.pool(x)).flatten(1)
        return self.fc2(self.drop(self.act(self.fc1(x))))


# -- Inception-v3 ---------------------------------------------------------------------------------


class _V3Module(nn.Module):
    """Shared by the Inception-v3 modules: a conv factory (BN ε = 0.001, ReLU) and the concatenation."""

    def __init__(self, in_channels: int, norm_layer: NormSpec, act_layer: ActSpec, norm_eps: float) -> None:
        super().__init__()
        check_positive_ints(type(self).__name__, in_channels=in_channels)
        self._norm = get_norm_layer(norm_layer, 2, eps=norm_eps)
        self._act = act_layer
        self.in_channels = in_channels

    def conv(
        self, c_in: int, c_out: int, kernel_size: int | tuple[int, int], stride: int = 1, padding: int | None = None
    ) -> ConvNormAct:
        """ConvNormAct with "same" padding unless `padding` is given (0 for the paper's VALID convs)."""
        return ConvNormAct(c_in, c_out, kernel_size, stride, padding, norm_layer=self._norm, act_layer=self._act)

    def branches(self) -> list[nn.Module]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches()], 1)


class FactorisedFork(nn.Module):
    """Inception-v3's expanded filter bank (figure 7): a 1×n and an n×1 conv side by side on the
    same input, concatenated — (N, C, H, W) → (N, 2·out_channels, H, W)."""

    def __init__(self, make_conv: Callable[..., nn.Module], in_channels: int, out_channels: int, n: int = 3) -> None:
        super().__init__()
        self.conv_1xn = make_conv(in_channels, out_channels, (1, n))
        self.conv_nx1 = make_conv(in_channels, out_channels, (n, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv_1xn(x), self.conv_nx1(x)], 1)


class InceptionA(_V3Module):
    """35×35 module (figure 5): 1×1 (64) | 1×1 (48) → 5×5 (64) | 1×1 (64) → 3×3 (96) → 3×3 (96) |
    3×3 avg-pool → 1×1 (pool_features). Output 224 + pool_features channels, same grid.
    torchvision keeps a 5×5 branch here where the paper factorises it into two 3×3s."""

    def __init__(
        self,
        in_channels: int,
        pool_features: int,
        norm_layer: NormSpec = "batch",
        act_layer: ActSpec = "relu",
        norm_eps: float = INCEPTION_BN_EPS,
    ) -> None:
        super().__init__(in_channels, norm_layer, act_layer, norm_eps)
        c = self.conv
        self.branch1x1 = c(in_channels, 64, 1)
        self.branch5x5 = nn.Sequential(c(in_channels, 48, 1), c(48, 64, 5))
        self.branch3x3dbl = nn.Sequential(c(in_channels, 64, 1), c(64, 96, 3), c(96, 96, 3))
        self.branch_pool = nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), c(in_channels, pool_features, 1))
        self.out_channels = 64 + 64 + 96 + pool_features

    def branches(self) -> list[nn.Module]:
        return [self.branch1x1, self.branch5x5, self.branch3x3dbl, self.branch_pool]


class InceptionB(_V3Module):
    """Grid reduction 35 → 17 (figure 10): 3×3/2 (384) | 1×1 (64) → 3×3 (96) → 3×3/2 (96) |
    3×3/2 max-pool. Output 480 + in_channels channels."""

    def __init__(
        self,
        in_channels: int,
        norm_layer: NormSpec = "batch",
        act_layer: ActSpec = "relu",
        norm_eps: float = INCEPTION_BN_EPS,
    ) -> None:
        super().__init__(in_channels, norm_layer, act_layer, norm_eps)
        c = self.conv
        self.branch3x3 = c(in_channels, 384, 3, stride=2, padding=0)
        self.branch3x3dbl = nn.Sequential(c(in_channels, 64, 1), c(64, 96, 3), c(96, 96, 3, stride=2, padding=0))
        self.branch_pool = nn.MaxPool2d(3, stride=2)
        self.out_channels = 384 + 96 + in_channels

    def branches(self) -> list[nn.Module]:
        return [self.branch3x3, self.branch3x3dbl, self.branch_pool]


class InceptionC(_V3Module):
    """17×17 module with factorised 7×7s (figure 6): 1×1 (192) | 1×1 (c7) → 1×7 → 7×1 (192) |
    1×1 (c7) → 7×1 → 1×7 → 7×1 → 1×7 (192) | avg-pool → 1×1 (192). Output 768 channels.
    A 1×7 then a 7×1 sees 7×7 with 14 instead of 49 weights per channel pair."""

    def __init__(
        self,
        in_channels: int,
        channels_7x7: int,
        norm_layer: NormSpec = "batch",
        act_layer: ActSpec = "relu",
        norm_eps: float = INCEPTION_BN_EPS,
    ) -> None:
        super().__init__(in_channels, norm_layer, act_layer, norm_eps)
        check_positive_ints("InceptionC", channels_7x7=channels_7x7)
        c, c7 = self.conv, channels_7x7
        self.branch1x1 = c(in_channels, 192, 1)
        self.branch7x7 = nn.Sequential(c(in_channels, c7, 1), c(c7, c7, (1, 7)), c(c7, 192, (7, 1)))
        self.branch7x7dbl = nn.Sequential(
            c(in_channels, c7, 1), c(c7, c7, (7, 1)), c(c7, c7, (1, 7)), c(c7, c7, (7, 1)), c(c7, 192, (1, 7))
        )
        self.branch_pool = nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), c(in_channels, 192, 1))
        self.out_channels = 4 * 192

    def branches(self) -> list[nn.Module]:
        return [self.branch1x1, self.branch7x7, self.branch7x7dbl, self.branch_pool]


class InceptionD(_V3Module):
    """Grid reduction 17 → 8: 1×1 (192) → 3×3/2 (320) | 1×1 (192) → 1×7 → 7×1 → 3×3/2 (192) |
    3×3/2 max-pool. Output 512 + in_channels channels."""

    def __init__(
        self,
        in_channels: int,
        norm_layer: NormSpec = "batch",
        act_layer: ActSpec = "relu",
        norm_eps: float = INCEPTION_BN_EPS,
    ) -> None:
        super().__init__(in_channels, norm_layer, act_layer, norm_eps)
        c = self.conv
        self.branch3x3 = nn.Sequential(c(in_channels, 192, 1), c(192, 320, 3, stride=2, padding=0))
        self.branch7x7x3 = nn.Sequential(
            c(in_channels, 192, 1), c(192, 192, (1, 7)), c(192, 192, (7, 1)), c(192, 192, 3, stride=2, padding=0)
        )
        self.branch_pool = nn.MaxPool2d(3, stride=2)
        self.out_channels = 320 + 192 + in_channels

    def branches(self) -> list[nn.Module]:
        return [self.branch3x3, self.branch7x7x3, self.branch_pool]


class InceptionE(_V3Module):
    """8×8 module with expanded filter banks (figure 7): 1×1 (320) | 1×1 (384) → [1×3 | 3×1] (2·384) |
    1×1 (448) → 3×3 (384) → [1×3 | 3×1] (2·384) | avg-pool → 1×1 (192). Output 2048 channels."""

    def __init__(
        self,
        in_channels: int,
        norm_layer: NormSpec = "batch",
        act_layer: ActSpec = "relu",
        norm_eps: float = INCEPTION_BN_EPS,
    ) -> None:
        super().__init__(in_channels, norm_layer, act_layer, norm_eps)
        c = self.conv
        self.branch1x1 = c(in_channels, 320, 1)
        self.branch3x3 = nn.Sequential(c(in_channels, 384, 1), FactorisedFork(c, 384, 384))
        self.branch3x3dbl = nn.Sequential(c(in_channels, 448, 1), c(448, 384, 3), FactorisedFork(c, 384, 384))
        self.branch_pool = nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), c(in_channels, 192, 1))
        self.out_channels = 320 + 2 * 384 + 2 * 384 + 192

    def branches(self) -> list[nn.Module]:
        return [self.branch1x1, self.branch3x3, self.branch3x3dbl, self.branch_pool]


class InceptionV3Aux(nn.Module):
    """Inception-v3's auxiliary classifier on the 17×17 grid (section 4, "a regulariser"):
    5×5/3 average pool → 1×1 conv (128) → 5×5 conv (768, VALID) → global average → FC.
    Needs a 17×17 input (299×299 images) to leave a 1×1 map; (N, C, 17, 17) → (N, classes)."""

    def __init__(self, in_channels: int, num_classes: int, norm_eps: float = INCEPTION_BN_EPS) -> None:
        super().__init__()
        norm = get_norm_layer("batch", 2, eps=norm_eps)
        self.pool = nn.AvgPool2d(5, stride=3)
        self.conv0 = ConvNormAct(in_channels, 128, 1, norm_layer=norm)
        self.conv1 = ConvNormAct(128, 768, 5, padding=0, norm_layer=norm)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.gap(self.conv1(self.conv0(self.pool(x)))).flatten(1))
