"""The loop every staged family shares: a table of stage specs → `nn.Sequential` of stages, each an
`nn.Sequential` of blocks, with `feature_info` recorded as the stages are built (torchvision's
MobileNetV2 `for t, c, n, s in setting`, written once for ResNet, MobileNet v1/v2, EfficientNet and
the video ResNets). A family gives its table and a factory that builds one block where it sits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from torch import nn

from .base import FeatureInfo, dilation_plan


@dataclass(frozen=True)
class BlockSlot:
    """Where one block sits in the network: what the loop hands a family's block factory."""

    in_channels: int
    stride: int  # the stage's stride on its first block, else 1 (also 1 where output_stride dilates instead)
    dilation: int  # of the block's convs after its stride point
    first_dilation: int  # of the conv that carries the stride: the previous stage's in a dilated stage's first block
    index: int  # of the block in the network, 0 … total − 1 (stochastic depth rises with it)
    total: int  # blocks in the network


class Stages(NamedTuple):
    """What `build_stages` returns: the modules, one FeatureInfo per stage, the last width and total stride."""

    stages: nn.Sequential
    feature_info: list[FeatureInfo]
    channels: int
    reduction: int


def build_stages(
    rows: Sequence[Any],
    make_block: Callable[[Any, BlockSlot], nn.Module],
    *,
    depths: Sequence[int],
    strides: Sequence[int],
    in_channels: int,
    reduction: int,
    output_stride: int | None = None,
    owner: str = "",
    prefix: str = "stages",
) -> Stages:
    """Stage i holds depths[i] blocks `make_block(rows[i], slot)`; its first block strides by strides[i]
    unless `output_stride` (DeepLab's rule, `dilation_plan`) trades that stride for dilation. Each block
    must expose `out_channels`, the next block's input. `reduction` is the total stride before the first
    stage; stage i is recorded as FeatureInfo(f"{prefix}.{i}", its channels, its total stride)."""
    plan = dilation_plan(owner, reduction, tuple(strides), output_stride)
    total, index, channels = sum(depths), 0, in_channels
    stages, info = [], []
    for i, (row, depth, (stride, first_dilation, dilation)) in enumerate(zip(rows, depths, plan)):
        blocks = []
        for j in range(depth):
            first = j == 0
            slot = BlockSlot(
                channels, stride if first else 1, dilation, first_dilation if first else dilation, index, total
            )
            blocks.append(make_block(row, slot))
            channels, index = blocks[-1].out_channels, index + 1
        stages.append(nn.Sequential(*blocks))
        reduction *= stride
        info.append(FeatureInfo(f"{prefix}.{i}", channels, reduction))
    return Stages(nn.Sequential(*stages), info, channels, reduction)
