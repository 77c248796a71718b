"""Video CNNs: inputs (N, C, T, H, W).

* C3D — Tran, Bourdev, Fergus, Torresani & Paluri, "Learning Spatiotemporal Features with 3D
  Convolutional Networks", ICCV 2015. The 2-D VGG recipe one dimension up: eight 3×3×3 convs, five
  max-pools (the first 1×2×2 so early layers keep time), fc6/fc7 of 4,096, trained from scratch on
  Sports-1M (487 classes): 79,991,015 parameters at 3×16×112×112. A k×k×k conv costs k times a
  k×k one at the same widths, which is what inflation and factorisation try to avoid.
* Video ResNets — Tran, Wang, Torresani, Ray, LeCun & Paluri, "A Closer Look at Spatiotemporal
  Convolutions for Action Recognition", CVPR 2018. ResNet-18 with the convolution chosen per stage:
  "3d" 3×3×3 everywhere (R3D), "2d" 1×3×3 after a 3-D first stage (MC3, "mixed convolutions"), or
  "2+1d" a 1×3×3 spatial conv, BN, ReLU, then a 3×1×1 temporal conv, with the middle width M chosen
  so the pair has the parameters of the 3×3×3 it replaces: M = ⌊27·C_in·C_out / (9·C_in + 3·C_out)⌋
  (R(2+1)D, twice the non-linearities). `r3d_18`, `mc3_18`, `r2plus1d_18` equal torchvision's.
* I3D — Carreira & Zisserman, CVPR 2017: GoogLeNet (Inception-v1 with batch norm) inflated
  (`cnnatlas.inflate`): 7×7 → 7×7×7 stride 2, 3×3 → 3×3×3, 1×1 → 1×1×1; the first two max-pools
  1×3×3 (no time pooling), the later ones cubic; global average over time and space.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from ..inflate import TIME_PADDINGS, inflate_
from ..layers import ConvNormAct
from ..layers.checks import check_choice, check_rate
from ..registry import register_model
from .base import Classifier, FeatureInfo, init_weights
from .inception import GoogLeNet
from .stages import BlockSlot, build_stages

# -- C3D ------------------------------------------------------------------------------------------

# (name, output channels) of each 3×3×3 conv, and "pool" marks; Tran et al. 2015 §3.3, figure 3.
C3D_LAYERS: tuple[tuple[str, int], ...] = (
    ("conv1", 64),
    ("pool1", 0),
    ("conv2", 128),
    ("pool2", 0),
    ("conv3a", 256),
    ("conv3b", 256),
    ("pool3", 0),
    ("conv4a", 512),
    ("conv4b", 512),
    ("pool4", 0),
    ("conv5a", 512),
    ("conv5b", 512),
    ("pool5", 0),
)


class C3D(Classifier):
    """C3D: eight 3×3×3 convs (stride 1, "same" padding, ReLU, no norm), max-pools 1×2×2 then
    2×2×2 (pool5 zero-pads space by 1, as the released Sports-1M model), fc6 and fc7 of 4,096 with
    dropout 0.5, fc8. At 16×112×112 the last map is 512×1×4×4 = 8,192 features; other sizes are
    averaged to 1×4×4 first."""

    dims = 3

    def __init__(self, num_classes: int = 487, in_channels: int = 3, drop_rate: float = 0.5) -> None:
        super().__init__(num_classes, in_channels)
        check_rate("C3D", "drop_rate", drop_rate)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        c, reduction = in_channels, 1
        for name, width in C3D_LAYERS:
            if width:
                layers[name] = ConvNormAct(c, width, 3, norm_layer=None, dims=3)
                c, last = width, name
                continue
            kernel = (1, 2, 2) if name == "pool1" else (2, 2, 2)
            layers[name] = nn.MaxPool3d(kernel, kernel, padding=(0, 1, 1) if name == "pool5" else 0)
            self.feature_info.append(FeatureInfo(f"features.{last}", c, reduction))
            reduction *= 2
        self.features = nn.Sequential(layers)
        self.pool = nn.AdaptiveAvgPool3d((1, 4, 4))
        self.fc6 = nn.Linear(c * 16, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(drop_rate)
        self.fc8 = nn.Linear(4096, num_classes)
        self.num_features = 4096
        init_weights(self, linear_std=0.005)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.act(self.fc6(self.pool(x).flatten(1))))
        x = self.drop(self.act(self.fc7(x)))
        return x if pre_logits else self.fc8(x)


# -- video ResNets: R3D, MC3, R(2+1)D ------------------------------------------------------------

CONV_TYPES = ("3d", "2d", "2+1d")


def midplanes(in_channels: int, out_channels: int) -> int:
    """Width M of R(2+1)D's factorised conv: 9·C_in·M + 3·M·C_out ≈ 27·C_in·C_out (Tran et al. 2018 §3.5)."""
    return (in_channels * out_channels * 27) // (in_channels * 9 + 3 * out_channels)


def spatiotemporal_conv(
    conv: str,
    in_channels: int,
    out_channels: int,
    stride: int = 1,
    act_layer: str | None = "relu",
    mid_channels: int | None = None,
) -> nn.Module:
    """One 3×3×3-equivalent conv → BN → activation of the given type, (N, C_in, T, H, W) →
    (N, C_out, T/s_t, H/s, W/s); "2d" never strides time."""
    if conv == "3d":
        return ConvNormAct(in_channels, out_channels, 3, stride, dims=3, act_layer=act_layer)
    if conv == "2d":
        return ConvNormAct(in_channels, out_channels, (1, 3, 3), (1, stride, stride), dims=3, act_layer=act_layer)
    mid = mid_channels or midplanes(in_channels, out_channels)
    return nn.Sequential(
        ConvNormAct(in_channels, mid, (1, 3, 3), (1, stride, stride), dims=3),  # spatial
        ConvNormAct(mid, out_channels, (3, 1, 1), (stride, 1, 1), dims=3, act_layer=act_layer),  # temporal
    )


class VideoBasicBlock(nn.Module):
    """ResNet's basic block with video convs: y = ReLU(F(x) + S(x)), F two convs of type `conv`,
    S the identity or a 1×1×1 projection with the block's stride (1×s×s for "2d")."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, conv: str, stride: int = 1) -> None:
        super().__init__()
        mid = midplanes(in_channels, channels)  # torchvision uses the block's first widths for both convs
        self.conv1 = spatiotemporal_conv(conv, in_channels, channels, stride, mid_channels=mid)
        self.conv2 = spatiotemporal_conv(conv, channels, channels, act_layer=None, mid_channels=mid)
        time_stride = 1 if conv == "2d" else stride
        self.shortcut = (
            ConvNormAct(in_channels, channels, 1, (time_stride, stride, stride), dims=3, act_layer=None)
            if stride != 1 or in_channels != channels
            else nn.Identity()
        )
        self.act = nn.ReLU(inplace=True)
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


@dataclass(frozen=True)
class VideoStageSpec:
    """One stage of the video ResNet: blocks, width, stride, and the conv type of its blocks."""

    depth: int
    channels: int
    stride: int
    conv: str


def video_resnet18_stages(convs: tuple[str, str, str, str]) -> tuple[VideoStageSpec, ...]:
    return tuple(VideoStageSpec(2, 64 * 2**i, 1 if i == 0 else 2, c) for i, c in enumerate(convs))


class VideoResNet(Classifier):
    """Video ResNet-18: stem (3×7×7 conv with stride 1×2×2, or its (2+1)D factorisation 1×7×7 to
    45 channels then 3×1×1) → four stages of basic blocks (64 … 512 channels, strides 1, 2, 2, 2 in
    time and space) → global average over time and space → FC. The conv of each stage is data."""

    dims = 3

    def __init__(
        self,
        stages: tuple[VideoStageSpec, ...] = video_resnet18_stages(("3d",) * 4),
        stem: str = "3d",
        num_classes: int = 400,
        in_channels: int = 3,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__(num_classes, in_channels)
        name = type(self).__name__
        check_choice(name, "stem", stem, ("3d", "2+1d"))
        check_rate(name, "drop_rate", drop_rate)
        for spec in stages:
            check_choice(name, "stage conv", spec.conv, CONV_TYPES)
        if stem == "3d":
            self.stem = ConvNormAct(in_channels, 64, (3, 7, 7), (1, 2, 2), dims=3)
        else:
            self.stem = nn.Sequential(
                ConvNormAct(in_channels, 45, (1, 7, 7), (1, 2, 2), dims=3), ConvNormAct(45, 64, (3, 1, 1), dims=3)
            )
        self.feature_info.append(FeatureInfo("stem", 64, 2))

        def make_block(spec: VideoStageSpec, slot: BlockSlot) -> nn.Module:
            return VideoBasicBlock(slot.in_channels, spec.channels, spec.conv, slot.stride)

        built = build_stages(
            stages,
            make_block,
            depths=[s.depth for s in stages],
            strides=[s.stride for s in stages],
            in_channels=64,
            reduction=2,
        )
        self.stages = built.stages
        self.feature_info += built.feature_info
        self.add_head(built.channels, drop_rate)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


# -- I3D: inflated GoogLeNet ----------------------------------------------------------------------

# Carreira & Zisserman 2017 §2.4 and figure 3: square kernels become cubes, conv1 strides time by 2,
# the first two max-pools keep time (1×3×3), the later ones pool it.
I3D_INFLATION = {"time_kernel": None, "time_stride": "same", "skip_time_pools": 2}


class I3D(GoogLeNet):
    """I3D: GoogLeNet (Inception-v1 with batch norm) inflated to 3-D — 7×7×7/2 conv, 1×3×3/(1,2,2)
    pools, 1×1×1 and 3×3×3 convs, nine Inception modules with 3×3×3 max-pool branches, 3×3×3/2 and
    2×2×2/2 pools, global average over time and space, dropout, FC. `inflate(googlenet)` with
    `I3D_INFLATION` gives the same network with the image weights; `time_padding="replicate"` makes
    it give GoogLeNet's output on a still image repeated over time."""

    dims = 3

    def __init__(
        self, num_classes: int = 400, in_channels: int = 3, drop_rate: float = 0.5, time_padding: str = "zeros"
    ) -> None:
        check_choice("I3D", "time_padding", time_padding, TIME_PADDINGS)
        super().__init__(num_classes, in_channels, aux_logits=False, drop_rate=drop_rate)
        inflate_(self, time_padding=time_padding, **I3D_INFLATION)
        del self.inflation
        self.time_padding = time_padding


register_model("c3d", C3D, family="c3d", input_size=(3, 16, 112, 112))
# (name, each stage's convs, stem) of Tran et al. 2018's ResNet-18 variants, as torchvision names them
for _name, _kinds, _stem in (
    ("r3d_18", ("3d", "3d", "3d", "3d"), "3d"),
    ("mc3_18", ("3d", "2d", "2d", "2d"), "3d"),
    ("r2plus1d_18", ("2+1d",) * 4, "2+1d"),
):
    register_model(
        _name,
        VideoResNet,
        family="video_resnet",
        input_size=(3, 16, 112, 112),
        torchvision=_name,
        stages=video_resnet18_stages(_kinds),
        stem=_stem,
    )
register_model("i3d", I3D, family="i3d", input_size=(3, 64, 224, 224))
