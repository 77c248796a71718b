"""MobileNet v1 — Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile
Vision Applications", 2017; MobileNet v2 — Sandler et al., "MobileNetV2: Inverted Residuals and
Linear Bottlenecks", CVPR 2018.

v1 replaces every conv after the stem by a depthwise-separable one (K²·C_in + C_in·C_out weights
instead of K²·C_in·C_out, 8–9× cheaper at K = 3) and adds two knobs: the width multiplier α thins
every layer (cost ∝ α²) and the resolution multiplier ρ shrinks the input (cost ∝ ρ²). v2 stacks
inverted residuals: expand by t, depthwise 3×3, project linearly back to a narrow bottleneck, with
the skip between the narrow ends. Stage tables: v1 Table 1, v2 Table 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..layers import ConvNormAct, InvertedResidual, SeparableConv, make_divisible
from ..layers.checks import check_multiplier, check_rate
from ..registry import register_model
from .base import Classifier, FeatureInfo, init_weights
from .stages import BlockSlot, Stages, build_stages

BASE_RESOLUTION = 224  # the input both papers train and report at (ρ = 1)


@dataclass(frozen=True)
class SeparableStage:
    """Consecutive depthwise-separable convs of v1's Table 1 that share one output width."""

    c: int  # output channels of the pointwise convs (before α)
    n: int  # separable convs in the stage
    s: int  # stride of the first depthwise conv


# Table 1 of the v1 paper after the stem conv (3×3, 32, stride 2). The table prints the last
# depthwise conv as "s2", but its output stays 7×7 ("Avg Pool 7×7"): it is stride 1 in the
# official TF-Slim code and in timm, as here.
MOBILENET_V1_STAGES: tuple[SeparableStage, ...] = (
    SeparableStage(64, 1, 1),
    SeparableStage(128, 2, 2),
    SeparableStage(256, 2, 2),
    SeparableStage(512, 6, 2),
    SeparableStage(1024, 2, 2),
)


@dataclass(frozen=True)
class BottleneckStage:
    """One row `t, c, n, s` of v2's Table 2."""

    t: int  # expansion factor of the inverted residuals
    c: int  # output channels (before the width multiplier)
    n: int  # blocks repeated
    s: int  # stride of the first block


# Table 2 of the v2 paper, between the stem (3×3, 32, stride 2) and the last 1×1 conv (1280).
MOBILENET_V2_STAGES: tuple[BottleneckStage, ...] = (
    # t, c, n, s
    BottleneckStage(1, 16, 1, 1),
    BottleneckStage(6, 24, 2, 2),
    BottleneckStage(6, 32, 3, 2),
    BottleneckStage(6, 64, 4, 2),
    BottleneckStage(6, 96, 3, 1),
    BottleneckStage(6, 160, 3, 2),
    BottleneckStage(6, 320, 1, 1),
)


def deepest_per_reduction(stages: Sequence[FeatureInfo]) -> list[FeatureInfo]:
    """timm's convention for feature_info: of the stages at one total stride, the last."""
    return [f for i, f in enumerate(stages) if i + 1 == len(stages) or stages[i + 1].reduction != f.reduction]


def add_mobile_body(
    model: Classifier, stem: nn.Module, built: Stages, head_conv: nn.Module | None, num_features: int, drop_rate: float
) -> None:
    """What the mobile families share after their tables: stem → stages [→ 1×1 head conv], feature_info
    (the deepest stage per stride), then the usual head; the attributes in state-dict order."""
    model.stem = stem
    model.stages = built.stages
    model.feature_info = deepest_per_reduction(built.feature_info)
    if head_conv is not None:
        model.head_conv = head_conv
    model.add_head(num_features, drop_rate)


def _record_multipliers(model: Classifier, width_mult: float, resolution_mult: float, drop_rate: float) -> float:
    """Validate α, ρ and the dropout rate; record α, ρ and the input side 224·ρ; return α."""
    name = type(model).__name__
    alpha = check_multiplier(name, "width_mult", width_mult)
    rho = check_multiplier(name, "resolution_mult", resolution_mult)
    check_rate(name, "drop_rate", drop_rate)
    model.width_mult = alpha
    model.resolution_mult = rho
    side = round(BASE_RESOLUTION * rho)
    model.default_input_size = (model.in_channels, side, side)
    return alpha


def _build_table(
    table: Sequence[SeparableStage | BottleneckStage],
    make_block,
    stem: nn.Module,
    output_stride: int | None = None,
    owner: str = "",
) -> Stages:
    """The stages of a paper's table after the stride-2 stem: row i holds `n` blocks, the first strided by `s`."""
    return build_stages(
        table,
        make_block,
        depths=[row.n for row in table],
        strides=[row.s for row in table],
        in_channels=stem.out_channels,
        reduction=2,
        output_stride=output_stride,
        owner=owner,
    )


class MobileNetV1(Classifier):
    """MobileNet v1: a 3×3 stem conv, then 13 depthwise-separable convs (BN + ReLU6 after both
    the depthwise and the pointwise conv), global average pool, FC.

    Width multiplier α (`width_mult`): every width c becomes make_divisible(α·c, 8) (exact for the
    paper's α = 1, 0.75, 0.5, 0.25); parameters shrink ≈ α². Resolution multiplier ρ
    (`resolution_mult`) changes no layer: the network is the same, only its input is 224·ρ pixels
    (the paper's 224, 192, 160, 128). The model records ρ and `default_input_size`; choosing the
    input size is how ρ is applied. The paper text says ReLU; the official TF-Slim code and timm use
    ReLU6, which is the default here (`act_layer="relu"` for the text's version).
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        width_mult: float = 1.0,
        resolution_mult: float = 1.0,
        drop_rate: float = 0.0,
        act_layer: str = "relu6",
    ) -> None:
        super().__init__(num_classes, in_channels)
        alpha = _record_multipliers(self, width_mult, resolution_mult, drop_rate)

        def make_block(spec: SeparableStage, slot: BlockSlot) -> nn.Module:
            return SeparableConv(
                slot.in_channels, make_divisible(spec.c * alpha), 3, stride=slot.stride, act_layer=act_layer
            )

        stem = ConvNormAct(in_channels, make_divisible(32 * alpha), 3, stride=2, act_layer=act_layer)
        built = _build_table(MOBILENET_V1_STAGES, make_block, stem)
        add_mobile_body(self, stem, built, None, built.channels, drop_rate)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


class MobileNetV2(Classifier):
    """MobileNet v2: a 3×3 stem conv, 17 inverted residuals (ReLU6, linear projections) in the
    seven stages of Table 2, a 1×1 conv to 1280, global average pool, dropout, FC.

    Width multiplier α (`width_mult`): widths become make_divisible(α·c, 8); the last conv keeps
    1280 unless α > 1 (1280·α then), as in the paper and torchvision. `resolution_mult` works as in
    MobileNetV1: recorded, with `default_input_size` = 224·ρ; the layers do not change.
    `output_stride` (2 … 32; None keeps 32) dilates the depthwise convs of the stages past it instead
    of striding, as DeepLab v3 does with this network (8 or 16).
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        width_mult: float = 1.0,
        resolution_mult: float = 1.0,
        drop_rate: float = 0.2,
        output_stride: int | None = None,
    ) -> None:
        super().__init__(num_classes, in_channels)
        alpha = _record_multipliers(self, width_mult, resolution_mult, drop_rate)

        def make_block(spec: BottleneckStage, slot: BlockSlot) -> nn.Module:  # t, c, n, s
            return InvertedResidual(
                slot.in_channels,
                make_divisible(spec.c * alpha),
                3,
                stride=slot.stride,
                expand_ratio=spec.t,
                act_layer="relu6",
                dilation=slot.first_dilation,
            )

        stem = ConvNormAct(in_channels, make_divisible(32 * alpha), 3, stride=2, act_layer="relu6")
        built = _build_table(MOBILENET_V2_STAGES, make_block, stem, output_stride, owner="MobileNetV2")
        num_features = make_divisible(1280 * max(1.0, alpha))
        head_conv = ConvNormAct(built.channels, num_features, 1, act_layer="relu6")
        add_mobile_body(self, stem, built, head_conv, num_features, drop_rate)
        self.output_stride = built.reduction
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_conv(self.stages(self.stem(x)))


register_model("mobilenet_v1", MobileNetV1, family="mobilenet", input_size=(3, 224, 224))
register_model("mobilenet_v2", MobileNetV2, family="mobilenet", input_size=(3, 224, 224), torchvision="mobilenet_v2")
