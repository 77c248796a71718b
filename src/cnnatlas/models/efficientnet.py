"""EfficientNet — Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
Networks", ICML 2019.

One baseline, B0 (found by architecture search; the paper's Table 1), scaled in depth, width and
resolution together by a single coefficient φ: depth d = α^φ, width w = β^φ, resolution r = γ^φ with
α = 1.2, β = 1.1, γ = 1.15 (α·β²·γ² ≈ 2, so FLOPs grow ≈ 2^φ). Blocks are MBConv: MobileNet v2's
inverted residual with squeeze-excitation (squeeze to ¼ of the block's input) and SiLU (swish),
stochastic depth on the skip rising linearly from 0 to 0.2 over the blocks.

The released B1–B7 do not use α^φ, β^φ, γ^φ exactly: their coefficients are the hand-set table
OFFICIAL_SCALING below, which torchvision copies (width, depth, dropout). `efficientnet_b0` …
`efficientnet_b7` use that table and equal torchvision's models; `create_model("efficientnet",
phi=...)` applies the rule to any φ, fractional included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from ..errors import InvalidArgumentError
from ..layers import ConvNormAct, InvertedResidual, get_norm_layer, make_divisible
from ..layers.checks import check_number, check_rate
from ..registry import register_model
from .base import Classifier, init_weights
from .mobilenet import BASE_RESOLUTION, add_mobile_body
from .stages import BlockSlot, build_stages


@dataclass(frozen=True)
class MBConvStage:
    """One MBConv row of the paper's Table 1: n blocks of MBConv-t, k×k, c output channels."""

    t: int  # expansion ratio (MBConv1, MBConv6)
    k: int  # depthwise kernel size
    s: int  # stride of the stage's first block
    c: int  # output channels Ĉ_i
    n: int  # layers L̂_i


# EfficientNet-B0, Table 1 stages 2–8 (stage 1 is a 3×3 stem conv to 32 channels, stride 2;
# stage 9 a 1×1 conv to 1280, pooling and FC). Same rows as torchvision's `_efficientnet_conf`
# and the official block strings (r1_k3_s11_e1_i32_o16_se0.25, ...).
B0_STAGES: tuple[MBConvStage, ...] = (
    # t, k, s,   c, n
    MBConvStage(1, 3, 1, 16, 1),
    MBConvStage(6, 3, 2, 24, 2),
    MBConvStage(6, 5, 2, 40, 2),
    MBConvStage(6, 3, 2, 80, 3),
    MBConvStage(6, 5, 1, 112, 3),
    MBConvStage(6, 5, 2, 192, 4),
    MBConvStage(6, 3, 1, 320, 1),
)
B0_STEM_CHANNELS = 32
B0_HEAD_CHANNELS = 1280
SE_RATIO = 0.25  # squeeze channels = max(1, int(0.25 · block input channels))


@dataclass(frozen=True)
class Scaling:
    """How far one EfficientNet is scaled from B0: (width, depth, resolution, dropout)."""

    width: float  # w: channel multiplier
    depth: float  # d: layer multiplier
    resolution: int  # input side in pixels
    dropout: float  # before the final FC


OFFICIAL_SCALING_SOURCE = (
    "tensorflow/tpu models/official/efficientnet/efficientnet_builder.py, efficientnet_params() "
    "(width_coefficient, depth_coefficient, resolution, dropout_rate), commit 082b2267ba0672b21e7f4b55832248de0ec59745"
)
OFFICIAL_SCALING: dict[str, Scaling] = {
    "b0": Scaling(1.0, 1.0, 224, 0.2),
    "b1": Scaling(1.0, 1.1, 240, 0.2),
    "b2": Scaling(1.1, 1.2, 260, 0.3),
    "b3": Scaling(1.2, 1.4, 300, 0.3),
    "b4": Scaling(1.4, 1.8, 380, 0.4),
    "b5": Scaling(1.6, 2.2, 456, 0.4),
    "b6": Scaling(1.8, 2.6, 528, 0.5),
    "b7": Scaling(2.0, 3.1, 600, 0.5),
}


class CompoundScale(NamedTuple):
    """Multipliers of compound scaling: depth d = α^φ, width w = β^φ, resolution r = γ^φ."""

    depth: float
    width: float
    resolution: float

    @property
    def flops_factor(self) -> float:
        """FLOPs relative to the baseline, d·w²·r² (= (α·β²·γ²)^φ)."""
        return self.depth * self.width**2 * self.resolution**2


PHI_RANGE = (-5.0, 15.0)  # B7 is φ ≈ 7; φ = 15 already has 1.28 billion parameters, φ = −5 1.8 million


def compound_scale(phi: float, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15) -> CompoundScale:
    """EfficientNet's compound scaling (Tan & Le 2019, eq. 3): (d, w, r) = (α^φ, β^φ, γ^φ), with
    α, β, γ ≥ 1; the defaults are the grid-search result for B0 (α·β²·γ² = 1.92 ≈ 2)."""
    phi = check_number("compound_scale", "phi", phi, *PHI_RANGE)
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        check_number("compound_scale", name, value, 1.0, 10.0)
    return CompoundScale(alpha**phi, beta**phi, gamma**phi)


def scaling_for_phi(phi: float) -> Scaling:
    """The Scaling the α/β/γ rule gives for φ: resolution 224·γ^φ rounded; dropout rising linearly
    from 0.2 at φ = 0 to 0.5 at φ = 7, as the paper describes for B0 → B7 (held outside [0, 7])."""
    d, w, r = compound_scale(phi)
    return Scaling(w, d, round(BASE_RESOLUTION * r), 0.2 + 0.3 * min(max(phi, 0.0), 7.0) / 7.0)


def _scaling_of(phi: float | None, scaling: Scaling | None) -> Scaling:
    """The Scaling asked for: `scaling` as given, else the α/β/γ rule's for `phi` (B0 when neither is given)."""
    if phi is not None and scaling is not None:
        raise InvalidArgumentError(
            "EfficientNet: give phi or scaling, not both (efficientnet_b0 … b7 fix the scaling of the "
            "official table; use create_model('efficientnet', phi=...) for the α/β/γ rule)"
        )
    if scaling is None:
        return scaling_for_phi(0.0 if phi is None else check_number("EfficientNet", "phi", phi, *PHI_RANGE))
    if not isinstance(scaling, Scaling):
        raise InvalidArgumentError(f"EfficientNet: scaling must be a Scaling; got {type(scaling).__name__}")
    return scaling


class EfficientNet(Classifier):
    """EfficientNet: 3×3 stem conv, the seven MBConv stages of B0's Table 1 scaled in width and
    depth, 1×1 conv to 1280·w, global average pool, dropout, FC. SiLU throughout.

    Scaling (torchvision's and the official rounding): stage depth ⌈n·d⌉; every width
    make_divisible(c·w, 8); the expanded width make_divisible(t·C_in, 8). Give `phi` (the α/β/γ rule)
    or a `scaling` (the efficientnet_b* names fix it to the official table); neither means B0.
    `drop_rate` defaults to the scaling's dropout. Block i of N drops its residual branch with
    probability drop_path_rate·i/N. The model records `scaling` and `default_input_size`.
    BN ε and momentum default to PyTorch's (torchvision's B0–B4); torchvision's B5–B7 use ε = 1e-3,
    momentum 0.01 (TensorFlow's 0.99), which those names fix. `output_stride` (2 … 32; None keeps
    32) dilates the depthwise convs of the stages past it instead of striding (DeepLab's rule).
    """

    def __init__(
        self,
        phi: float | None = None,
        scaling: Scaling | None = None,
        num_classes: int = 1000,
        in_channels: int = 3,
        drop_rate: float | None = None,
        drop_path_rate: float = 0.2,
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
        output_stride: int | None = None,
    ) -> None:
        super().__init__(num_classes, in_channels)
        scaling = _scaling_of(phi, scaling)
        drop_rate = scaling.dropout if drop_rate is None else drop_rate
        check_rate("EfficientNet", "drop_rate", drop_rate)
        check_rate("EfficientNet", "drop_path_rate", drop_path_rate)
        check_number("EfficientNet", "norm_eps", norm_eps, 0.0, 1.0)
        check_number("EfficientNet", "norm_momentum", norm_momentum, 0.0, 1.0)
        self.phi = phi
        self.scaling = scaling
        self.default_input_size = (in_channels, scaling.resolution, scaling.resolution)
        norm = get_norm_layer("batch", eps=norm_eps, momentum=norm_momentum)
        w, d = scaling.width, scaling.depth

        def make_block(spec: MBConvStage, slot: BlockSlot) -> nn.Module:  # drop path rises 0 → rate over the blocks
            return InvertedResidual(
                slot.in_channels,
                make_divisible(spec.c * w),
                spec.k,
                stride=slot.stride,
                expand_ratio=spec.t,
                se_ratio=SE_RATIO,
                drop_path_rate=drop_path_rate * slot.index / slot.total,
                expanded_channels=make_divisible(slot.in_channels * spec.t),
                norm_layer=norm,
                act_layer="silu",
                dilation=slot.first_dilation,
            )

        stem = ConvNormAct(
            in_channels, make_divisible(B0_STEM_CHANNELS * w), 3, stride=2, norm_layer=norm, act_layer="silu"
        )
        built = build_stages(
            B0_STAGES,
            make_block,
            depths=[int(math.ceil(s.n * d)) for s in B0_STAGES],
            strides=[s.s for s in B0_STAGES],
            in_channels=stem.out_channels,
            reduction=2,
            output_stride=output_stride,
            owner="EfficientNet",
        )
        num_features = make_divisible(B0_HEAD_CHANNELS * w)
        head_conv = ConvNormAct(built.channels, num_features, 1, norm_layer=norm, act_layer="silu")
        add_mobile_body(self, stem, built, head_conv, num_features, drop_rate)
        self.output_stride = built.reduction
        init_weights(self)
        bound = 1.0 / math.sqrt(num_classes)  # torchvision's FC init: U(−1/√classes, 1/√classes)
        nn.init.uniform_(self.fc.weight, -bound, bound)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_conv(self.stages(self.stem(x)))


register_model("efficientnet", EfficientNet, family="efficientnet", input_size=(3, 224, 224))
for _variant, _scaling in OFFICIAL_SCALING.items():
    _tf_bn = {"norm_eps": 1e-3, "norm_momentum": 0.01} if _variant in ("b5", "b6", "b7") else {}
    register_model(
        f"efficientnet_{_variant}",
        EfficientNet,
        family="efficientnet",
        input_size=(3, _scaling.resolution, _scaling.resolution),
        torchvision=f"efficientnet_{_variant}",
        scaling=_scaling,
        phi=None,
        **_tf_bn,
    )
