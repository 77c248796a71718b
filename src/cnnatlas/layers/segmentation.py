"""Heads for dense prediction: FCN's (Long, Shelhamer & Darrell, "Fully Convolutional Networks for
Semantic Segmentation", CVPR 2015), DeepLab v3's atrous spatial pyramid pooling (Chen,
Papandreou, Schroff & Adam, "Rethinking Atrous Convolution for Semantic Image Segmentation", 2017)
and DeepLab v3+'s decoder (`DeepLabV3PlusHead`).

Both map a feature map (N, C, h, w) to per-pixel class scores (N, classes, h, w) at the same
resolution; the model upsamples them to the input's. Layer order and widths are torchvision's
(`torchvision.models.segmentation.fcn.FCNHead`, `deeplabv3.ASPP`, `DeepLabHead`), so their weights
load in order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InvalidArgumentError
from .checks import check_rate
from .conv import ConvNormAct
from .factories import NormSpec


class _GradInLayoutOf(torch.autograd.Function):
    """Identity whose backward hands on the incoming gradient in the forward output's memory format.

    A `torch.cat` hands each input a channel slice of its gradient; on the CPU, bilinear upsampling's
    backward falls to a slow path (about 6× slower here) on such a strided gradient, a tenth of a small
    DeepLab v3+ training step. One copy into the layout it expects is cheaper."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.memory_format = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else None
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous(memory_format=ctx.memory_format or torch.contiguous_format)


def upsample(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of a map (N, C, h, w) to `size` (align_corners=False), as torchvision's models do;
    `x` itself when it already has that size (the resize would be the identity)."""
    size = tuple(size)
    if tuple(x.shape[-2:]) == size:
        return x
    y = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    if y.requires_grad and not (torch.jit.is_tracing() or torch.jit.is_scripting()):
        y = _GradInLayoutOf.apply(y)
    return y


def _check_rates(owner: str, atrous_rates: Sequence[int]) -> tuple[int, ...]:
    rates = tuple(atrous_rates) if isinstance(atrous_rates, (list, tuple)) else ()
    if not rates or any(not isinstance(r, int) or isinstance(r, bool) or r < 1 for r in rates):
        raise InvalidArgumentError(
            f"{owner}: atrous_rates must be a non-empty sequence of integers ≥ 1; got {atrous_rates!r}"
        )
    return rates


class FCNHead(nn.Sequential):
    """FCN's classifier on a feature map: 3×3 conv C → C/4, BN, ReLU, dropout 0.1, 1×1 conv to the
    classes. (N, C, h, w) → (N, classes, h, w); parameters 9·C·C/4 + C/2 + (C/4 + 1)·classes.
    Also DeepLab's and torchvision's auxiliary head on the third stage."""

    def __init__(
        self, in_channels: int, num_classes: int, drop_rate: float = 0.1, norm_layer: NormSpec = "batch"
    ) -> None:
        channels = in_channels // 4
        if channels < 1:
            raise InvalidArgumentError(f"FCNHead: in_channels must be at least 4; got {in_channels!r}")
        super().__init__()
        self.conv = ConvNormAct(in_channels, channels, 3, norm_layer=norm_layer)
        self.drop = nn.Dropout(drop_rate)
        self.classifier = nn.Conv2d(channels, num_classes, 1)


class ASPPPooling(nn.Module):
    """ASPP's image-level branch: global average pool, 1×1 conv + BN + ReLU, then bilinear
    upsampling back to (h, w) — a constant map that carries the whole image's context (§3.3: at
    large rates the 3×3 filters degenerate to their centre tap, so global context comes from here)."""

    def __init__(self, in_channels: int, out_channels: int, norm_layer: NormSpec = "batch") -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = ConvNormAct(in_channels, out_channels, 1, norm_layer=norm_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample(self.conv(self.pool(x)), x.shape[-2:])


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLab v3 §3.3): parallel branches on one map — a 1×1 conv,
    one 3×3 conv per rate r (dilation r, padding r: the size is kept) and the image pooling —
    each to `out_channels`, concatenated and projected by a 1×1 conv + BN + ReLU, then dropout
    (`drop_rate`, 0.5 as DeepLab and torchvision; none at 0).

    (N, C, h, w) → (N, out_channels, h, w). A 3×3 at rate r sees a (2r + 1)² window with 9 weights.
    The paper's rates are (6, 12, 18) at output stride 16, doubled to (12, 24, 36) at 8.
    """

    def __init__(
        self,
        in_channels: int,
        atrous_rates: Sequence[int] = (12, 24, 36),
        out_channels: int = 256,
        drop_rate: float = 0.5,
        norm_layer: NormSpec = "batch",
    ) -> None:
        super().__init__()
        rates = _check_rates("ASPP", atrous_rates)
        check_rate("ASPP", "drop_rate", drop_rate)
        branches: list[nn.Module] = [ConvNormAct(in_channels, out_channels, 1, norm_layer=norm_layer)]
        branches += [ConvNormAct(in_channels, out_channels, 3, dilation=r, norm_layer=norm_layer) for r in rates]
        branches.append(ASPPPooling(in_channels, out_channels, norm_layer))
        self.convs = nn.ModuleList(branches)
        self.project = ConvNormAct(len(branches) * out_channels, out_channels, 1, norm_layer=norm_layer)
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.atrous_rates = rates
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.project(torch.cat([branch(x) for branch in self.convs], dim=1)))


class DeepLabHead(nn.Sequential):
    """DeepLab v3's classifier: ASPP → 3×3 conv + BN + ReLU → 1×1 conv to the classes.
    (N, C, h, w) → (N, classes, h, w)."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        atrous_rates: Sequence[int] = (12, 24, 36),
        channels: int = 256,
        norm_layer: NormSpec = "batch",
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__()
        self.aspp = ASPP(in_channels, atrous_rates, channels, drop_rate, norm_layer)
        self.conv = ConvNormAct(channels, channels, 3, norm_layer=norm_layer)
        self.classifier = nn.Conv2d(channels, num_classes, 1)


class DeepLabV3PlusHead(nn.Module):
    """DeepLab v3+'s encoder head and decoder (Chen, Zhu, Papandreou, Schroff & Adam, "Encoder-Decoder
    with Atrous Separable Convolution for Semantic Image Segmentation", ECCV 2018, §3.1 and Fig. 2):
    ASPP on the deep map, upsampled bilinearly to the low-level map's size; the low-level features
    reduced by a 1×1 conv + BN + ReLU to `low_level_reduced` channels (48 in the paper) so they do not
    outweigh the encoder's; both concatenated, refined by two 3×3 convs + BN + ReLU (`decoder_channels`,
    by default `channels`: 256 in the paper), and a 1×1 conv to the classes. `drop_rate` is ASPP's.

    forward(deep (N, C, h, w), low (N, C_low, H', W')) → (N, classes, H', W').
    """

    def __init__(
        self,
        in_channels: int,
        low_level_channels: int,
        num_classes: int,
        atrous_rates: Sequence[int] = (6, 12, 18),
        channels: int = 256,
        low_level_reduced: int = 48,
        decoder_channels: int | None = None,
        norm_layer: NormSpec = "batch",
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__()
        decoder = channels if decoder_channels is None else decoder_channels
        self.aspp = ASPP(in_channels, atrous_rates, channels, drop_rate, norm_layer)
        self.reduce = ConvNormAct(low_level_channels, low_level_reduced, 1, norm_layer=norm_layer)
        self.refine = nn.Sequential(
            ConvNormAct(channels + low_level_reduced, decoder, 3, norm_layer=norm_layer),
            ConvNormAct(decoder, decoder, 3, norm_layer=norm_layer),
        )
        self.classifier = nn.Conv2d(decoder, num_classes, 1)

    def forward(self, x: torch.Tensor, low: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = upsample(self.aspp(x), low.shape[-2:])
        x = self.refine(torch.cat([x, self.reduce(low)], dim=1))
        return x if pre_logits else self.classifier(x)
