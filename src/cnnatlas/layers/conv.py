"""The convolution–normalisation–activation block every model in cnnatlas is built from."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import InvalidArgumentError
from .checks import check_dims, check_positive_ints
from .factories import ActSpec, NormSpec, get_act_layer, get_norm_layer, run_layers

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_Size = int | Sequence[int]


def conv_layer(dims: int) -> type[nn.Module]:
    """nn.Conv1d, nn.Conv2d or nn.Conv3d."""
    return _CONV[check_dims(dims)]


def same_padding(kernel_size: _Size, dilation: _Size = 1) -> int | tuple[int, ...]:
    """Padding that keeps the size at stride 1 for odd kernels: P = D·(K − 1)/2."""
    if isinstance(kernel_size, int) and isinstance(dilation, int):
        return dilation * (kernel_size - 1) // 2
    ks = (kernel_size,) if isinstance(kernel_size, int) else tuple(kernel_size)
    ds = (dilation,) * len(ks) if isinstance(dilation, int) else tuple(dilation)
    return tuple(d * (k - 1) // 2 for k, d in zip(ks, ds))


class ConvNormAct(nn.Sequential):
    """conv → norm → activation, for 1-D (audio), 2-D (image) or 3-D (video) inputs.

    Input (N, C_in, *S) → output (N, C_out, *S') with S' = floor((S + 2P − D(K − 1) − 1)/stride) + 1.
    Padding defaults to "same" (D(K − 1)/2). The conv has a bias only when there is no norm after
    it (a bias before batch norm is cancelled by the mean subtraction). Parameters:
    (K^d · C_in/G + bias)·C_out, plus 2·C_out for an affine norm.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _Size = 3,
        stride: _Size = 1,
        padding: _Size | None = None,
        dilation: _Size = 1,
        groups: int = 1,
        bias: bool | None = None,
        norm_layer: NormSpec = "batch",
        act_layer: ActSpec = "relu",
        dims: int = 2,
    ) -> None:
        check_dims(dims)
        check_positive_ints("ConvNormAct", in_channels=in_channels, out_channels=out_channels, groups=groups)
        if in_channels % groups or out_channels % groups:
            raise InvalidArgumentError(
                f"ConvNormAct: groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}"
            )
        norm = get_norm_layer(norm_layer, dims)(out_channels)
        has_norm = not isinstance(norm, nn.Identity)
        super().__init__()
        self.conv = _CONV[dims](
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=same_padding(kernel_size, dilation) if padding is None else padding,
            dilation=dilation,
            groups=groups,
            bias=(not has_norm) if bias is None else bias,
        )
        self.norm = norm
        self.act = get_act_layer(act_layer)()
        self.in_channels = in_channels
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_layers(x, *self)  # conv → norm → act, less the absent ones (or those `optimize` folded)
