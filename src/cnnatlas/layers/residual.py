"""Residual blocks — He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.

A block learns a correction F to the identity: y = σ(F(x) + S(x)), where S is the identity when
the shapes agree and a shortcut that matches them otherwise. With `skip=False` the same layers
form the paper's "plain" network, y = σ(F(x)), used to show that deep plain nets degrade.

Shortcuts when the shape changes (the paper's §3.3 and §4.2):
  "A"  parameter-free: subsample by the stride, zero-pad the new channels (the CIFAR nets);
  "B"  1×1 convolution with the stride, then BN — only where the shape changes (ImageNet nets);
  "C"  the same projection on every block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InvalidArgumentError
from .checks import check_choice, check_number
from .conv import ConvNormAct
from .drop_path import drop_path_layer
from .factories import ActSpec, NormSpec, get_act_layer, run_layers
from .squeeze_excite import SqueezeExcite

SHORTCUTS = ("A", "B", "C")
STRIDE_ON = ("3x3", "1x1")


class ZeroPadShortcut(nn.Module):
    """Option A: S(x) = pad_C(x[:, :, ::s, ::s]) — subsample by the stride s, append zero channels.

    (N, C_in, H, W) → (N, C_out, ⌈H/s⌉, ⌈W/s⌉) with C_out ≥ C_in; no parameters.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise InvalidArgumentError(
                f"ZeroPadShortcut: option A can only add channels; got {in_channels} → {out_channels}"
            )
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.out_channels - self.in_channels))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


def make_shortcut(
    in_channels: int, out_channels: int, stride: int, kind: str, norm_layer: NormSpec = "batch"
) -> nn.Module:
    """S(x) of a residual block: identity when the shape is kept (options A, B), else the shortcut
    of option `kind`; option C projects always."""
    check_choice("make_shortcut", "shortcut", kind, SHORTCUTS)
    same_shape = stride == 1 and in_channels == out_channels
    if kind == "A":
        return nn.Identity() if same_shape else ZeroPadShortcut(in_channels, out_channels, stride)
    if kind == "B" and same_shape:
        return nn.Identity()
    return ConvNormAct(in_channels, out_channels, 1, stride, norm_layer=norm_layer, act_layer=None)


class _ResidualBlock(nn.Module):
    """What both blocks share: y = σ(DropPath(SE(F(x))) + S(x)). A subclass builds the branch F
    (`residual`) first, then adds the rest with `_add_skip_path` — in that order, so the state-dict
    keys read conv1 … convN, se, shortcut as in torchvision."""

    expansion: int = 1

    def _add_skip_path(
        self,
        *,
        in_channels: int,
        out_channels: int,
        stride: int,
        shortcut: str,
        skip: bool,
        se_ratio: float,
        drop_path_rate: float,
        norm_layer: NormSpec,
        act_layer: ActSpec,
    ) -> None:
        name = type(self).__name__
        check_number(name, "se_ratio", se_ratio, 0, 1)
        if drop_path_rate and not skip:
            raise InvalidArgumentError(
                f"{name}: drop_path_rate={drop_path_rate} needs the identity path; a plain block (skip=False) "
                "would drop its whole output"
            )
        # SE on the residual branch, before the addition (SENet fig. 3, timm's SE-ResNet).
        self.se = (
            SqueezeExcite(out_channels, squeeze_channels=max(1, int(out_channels * se_ratio)), act_layer=act_layer)
            if se_ratio
            else nn.Identity()
        )
        self.drop_path = drop_path_layer(drop_path_rate)
        self.shortcut = make_shortcut(in_channels, out_channels, stride, shortcut, norm_layer) if skip else None
        self.act = get_act_layer(act_layer)()
        self.in_channels, self.out_channels, self.stride, self.skip = in_channels, out_channels, stride, skip

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """F(x): the branch, without the shortcut and final activation."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = run_layers(self.residual(x), self.se, self.drop_path)  # DropPath(SE(F(x)))
        if self.shortcut is not None:
            out += run_layers(x, self.shortcut)  # + S(x), in place as torchvision: no new activation-sized buffer
        return self.act(out)


class BasicBlock(_ResidualBlock):
    """Two 3×3 convolutions: y = ReLU(BN(W₂·ReLU(BN(W₁·x))) + S(x)) — ResNet-18/34 and the CIFAR nets.

    (N, C_in, H, W) → (N, C, ⌈H/s⌉, ⌈W/s⌉); the stride s sits on the first 3×3. Parameters:
    9·C_in·C + 9·C² + 4C, plus the shortcut's. In a dilated stage (DeepLab), `dilation` spaces the
    taps of the 3×3s after the stride point and `first_dilation` (default: the same) those of the
    conv that carries the stride: the first block of a stage that trades its stride for dilation
    keeps the previous stage's there, so the dilated net computes the strided one's map densely.
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        shortcut: str = "B",
        skip: bool = True,
        se_ratio: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_layer: NormSpec = "batch",
        act_layer: ActSpec = "relu",
        dilation: int = 1,
        first_dilation: int | None = None,
    ) -> None:
        super().__init__()
        first_dilation = dilation if first_dilation is None else first_dilation
        self.conv1 = ConvNormAct(
            in_channels, channels, 3, stride, dilation=first_dilation, norm_layer=norm_layer, act_layer=act_layer
        )
        self.conv2 = ConvNormAct(channels, channels, 3, dilation=dilation, norm_layer=norm_layer, act_layer=None)
        self._add_skip_path(
            in_channels=in_channels,
            out_channels=channels,
            stride=stride,
            shortcut=shortcut,
            skip=skip,
            se_ratio=se_ratio,
            drop_path_rate=drop_path_rate,
            norm_layer=norm_layer,
            act_layer=act_layer,
        )

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class Bottleneck(_ResidualBlock):
    """1×1 reduce → 3×3 → 1×1 expand (×4): y = ReLU(BN(W₃·ReLU(BN(W₂·ReLU(BN(W₁·x))))) + S(x)).

    (N, C_in, H, W) → (N, 4C, ⌈H/s⌉, ⌈W/s⌉) — ResNet-50/101/152. The stride s sits on the 3×3
    (`stride_on="3x3"`, torchvision's "v1.5") or on the first 1×1 (`"1x1"`, the paper and the
    original Caffe model, which skips three quarters of the input in that 1×1). Parameters:
    C_in·C + 9C² + 4C² + 12C (BN), plus the shortcut's. `dilation` and `first_dilation` space the
    3×3's taps in a dilated stage as in BasicBlock (torchvision's Bottleneck, stride on the 3×3,
    takes the previous dilation in a stage's first block).
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        shortcut: str = "B",
        skip: bool = True,
        se_ratio: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_layer: NormSpec = "batch",
        act_layer: ActSpec = "relu",
        stride_on: str = "3x3",
        dilation: int = 1,
        first_dilation: int | None = None,
    ) -> None:
        super().__init__()
        check_choice("Bottleneck", "stride_on", stride_on, STRIDE_ON)
        s1, s3 = (stride, 1) if stride_on == "1x1" else (1, stride)
        out_channels = channels * self.expansion
        self.conv1 = ConvNormAct(in_channels, channels, 1, s1, norm_layer=norm_layer, act_layer=act_layer)
        # the 3×3 carries the stride ("3x3") or comes after it ("1x1"): see BasicBlock on dilation
        d3 = dilation if first_dilation is None or stride_on == "1x1" else first_dilation
        self.conv2 = ConvNormAct(channels, channels, 3, s3, dilation=d3, norm_layer=norm_layer, act_layer=act_layer)
        self.conv3 = ConvNormAct(channels, out_channels, 1, norm_layer=norm_layer, act_layer=None)
        self.stride_on = stride_on
        self._add_skip_path(
            in_channels=in_channels,
            out_channels=out_channels,
            stride=stride,
            shortcut=shortcut,
            skip=skip,
            se_ratio=se_ratio,
            drop_path_rate=drop_path_rate,
            norm_layer=norm_layer,
            act_layer=act_layer,
        )

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.conv2(self.conv1(x)))
