"""The blocks of the mobile networks: depthwise-separable convolution (MobileNet v1, Howard et al.
2017) and the inverted residual with linear bottleneck (MobileNet v2, Sandler et al. 2018), which
with squeeze-excitation and stochastic depth is the MBConv of EfficientNet (Tan & Le 2019)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import InvalidArgumentError
from .checks import check_number
from .conv import ConvNormAct
from .drop_path import drop_path_layer
from .factories import ActSpec, NormSpec, run_layers
from .squeeze_excite import SqueezeExcite


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Round a channel count `v` to the nearest multiple of `divisor`, at least `min_value`
    (default: `divisor`), and never more than 10% below `v` — the rule of the TensorFlow MobileNet
    and EfficientNet code (`round_filters`), torchvision's `_make_divisible` and timm's."""
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < 1:
        raise InvalidArgumentError(f"make_divisible: divisor must be a positive integer; got {divisor!r}")
    if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
        raise InvalidArgumentError(f"make_divisible: v must be a positive number; got {v!r}")
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


class SeparableConv(nn.Sequential):
    """Depthwise-separable convolution: a K×K depthwise conv (groups = C_in, one filter per input
    channel) then a 1×1 pointwise conv that mixes channels, each followed by norm and activation.

    (N, C_in, H, W) → (N, C_out, H', W'), H' = floor((H + 2P − K)/S) + 1.
    Weights: K²·C_in + C_in·C_out instead of K²·C_in·C_out for a standard K×K conv, a ratio of
    1/C_out + 1/K² (≈ 1/9 for K = 3 and many channels; 8–9× fewer weights and multiply–accumulates,
    which are H'·W' times the weights). MobileNet v1 §3.1.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        bias: bool | None = None,
        norm_layer: NormSpec = "batch",
        act_layer: ActSpec = "relu",
        dims: int = 2,
    ) -> None:
        super().__init__()
        self.dw = ConvNormAct(
            in_channels,
            in_channels,
            kernel_size,
            stride,
            dilation=dilation,
            groups=in_channels,
            bias=bias,
            norm_layer=norm_layer,
            act_layer=act_layer,
            dims=dims,
        )
        self.pw = ConvNormAct(
            in_channels, out_channels, 1, bias=bias, norm_layer=norm_layer, act_layer=act_layer, dims=dims
        )
        self.in_channels = in_channels
        self.out_channels = out_channels


class InvertedResidual(nn.Module):
    """Inverted residual with linear bottleneck (MobileNet v2 §3.3); with `se_ratio` and
    `drop_path_rate` it is EfficientNet's MBConv.

    1×1 expand C_in → t·C_in (skipped when t = 1) → K×K depthwise (stride S) → optional
    squeeze-excitation → 1×1 *linear* projection to C_out (norm, no activation: a ReLU on the
    narrow bottleneck would destroy information). The input is added back, y = x + F(x), only
    when S = 1 and C_in = C_out, i.e. when the shapes allow; DropPath then drops F(x) per sample.
    (N, C_in, H, W) → (N, C_out, H/S, W/S).

    `expanded_channels` overrides the expanded width t·C_in (EfficientNet rounds it to a multiple of 8).
    `se_ratio` sizes the squeeze relative to the block's *input*, as EfficientNet does:
    squeeze_channels = max(1, int(C_in · se_ratio)); 0 means no squeeze-excitation. `dilation`
    spaces the depthwise taps (a dilated stage of a segmentation backbone).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        expand_ratio: float = 6,
        se_ratio: float = 0.0,
        drop_path_rate: float = 0.0,
        expanded_channels: int | None = None,
        norm_layer: NormSpec = "batch",
        act_layer: ActSpec = "relu6",
        dims: int = 2,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        check_number("InvertedResidual", "expand_ratio", expand_ratio, 1, math.inf)
        check_number("InvertedResidual", "se_ratio", se_ratio, 0, 1)
        hidden = int(round(in_channels * expand_ratio)) if expanded_channels is None else expanded_channels
        self.expand = (
            nn.Identity()
            if hidden == in_channels
            else ConvNormAct(in_channels, hidden, 1, norm_layer=norm_layer, act_layer=act_layer, dims=dims)
        )
        self.dw = ConvNormAct(
            hidden,
            hidden,
            kernel_size,
            stride,
            dilation=dilation,
            groups=hidden,
            norm_layer=norm_layer,
            act_layer=act_layer,
            dims=dims,
        )
        self.se = (
            SqueezeExcite(hidden, squeeze_channels=max(1, int(in_channels * se_ratio)), act_layer=act_layer, dims=dims)
            if se_ratio > 0
            else nn.Identity()
        )
        self.project = ConvNormAct(hidden, out_channels, 1, norm_layer=norm_layer, act_layer=None, dims=dims)
        self.has_skip = stride == 1 and in_channels == out_channels
        self.drop_path = drop_path_layer(drop_path_rate, self.has_skip)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.expanded_channels = hidden

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """F(x): expand → depthwise → squeeze-excite → linear projection (absent parts are skipped)."""
        return run_layers(x, self.expand, self.dw, self.se, self.project)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.residual(x)
        if self.has_skip:  # y = x + DropPath(F(x)), in place as torchvision's MBConv (out is a fresh tensor)
            out = run_layers(out, self.drop_path)
            out += x
        return out
