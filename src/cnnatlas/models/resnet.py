"""ResNet — He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016;
SE-ResNet — Hu, Shen & Sun, "Squeeze-and-Excitation Networks", CVPR 2018.

Beyond ~20 layers a plain stack of convolutions trains *worse* than a shallower one (degradation,
an optimisation failure, not over-fitting). ResNet makes each block learn a correction to the
identity, y = σ(F(x) + x), so ∂y/∂x = ∂F/∂x + I and the gradient always has a path of identities.

Configurations:
* ImageNet (the paper's Table 1): 7×7/2 stem, 3×3/2 max-pool, four stages conv2_x … conv5_x of
  64, 128, 256, 512 channels (×4 in bottleneck blocks) at strides 4, 8, 16, 32; global average
  pool, FC. Blocks per stage: 18 → 2-2-2-2, 34 → 3-4-6-3 (basic); 50 → 3-4-6-3, 101 → 3-4-23-3,
  152 → 3-8-36-3 (bottleneck). Shortcut option B; stride on the 3×3 as torchvision ("v1.5").
* CIFAR (§4.2, Table 6): 3×3 conv of 16 channels, three stages of n basic blocks with 16, 32, 64
  channels on maps of 32, 16, 8 pixels, 6n + 2 weighted layers; option A shortcuts (no parameters).
  `plainN` are the same layers without the identity path, for the degradation experiment.
* SE-ResNet-50: ResNet-50 with squeeze-excitation (r = 16) on every block's residual branch;
  `se_ratio` adds it to any of these models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import InvalidArgumentError
from ..layers import BasicBlock, Bottleneck, ConvNormAct
from ..layers.checks import check_bool, check_choice, check_int, check_rate
from ..layers.residual import SHORTCUTS, STRIDE_ON
from ..registry import register_model
from .base import Classifier, FeatureInfo, init_weights
from .stages import BlockSlot, build_stages


@dataclass(frozen=True)
class StageSpec:
    """One stage of the architecture table (conv2_x … conv5_x of the paper's Table 1)."""

    depth: int  # n: blocks in the stage
    channels: int  # c: width of the 3×3 convs; the stage outputs c·expansion channels
    stride: int  # s: stride of the stage's first block


def imagenet_stages(depths: tuple[int, ...]) -> tuple[StageSpec, ...]:
    """Table 1: widths 64, 128, 256, 512; the first stage follows the max-pool at stride 1."""
    return tuple(StageSpec(n, 64 * 2**i, 1 if i == 0 else 2) for i, n in enumerate(depths))


def cifar_stages(n: int, blocks: tuple[int, ...] | None = None) -> tuple[StageSpec, ...]:
    """§4.2: three stages of n blocks (or `blocks[i]` in stage i), 16/32/64 channels on 32×32, 16×16 and
    8×8 maps."""
    counts = blocks or (n, n, n)
    return tuple(StageSpec(k, c, s) for k, (c, s) in zip(counts, ((16, 1), (32, 2), (64, 2))))


def check_blocks(depth: int, blocks: Sequence[int] | None) -> tuple[int, ...] | None:
    """`blocks` as three counts ≥ 1 whose layers, 2·Σnᵢ + 2, are `depth`'s; None stays None."""
    if blocks is None:
        return None
    ok = isinstance(blocks, (list, tuple)) and len(blocks) == 3
    if not ok or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in blocks):
        raise InvalidArgumentError(
            f"CifarResNet: blocks must be three block counts ≥ 1, one per stage (e.g. (1, 3, 5)); got {blocks!r}"
        )
    if 2 * sum(blocks) + 2 != depth:
        raise InvalidArgumentError(
            f"CifarResNet: blocks {tuple(blocks)} make {2 * sum(blocks) + 2} layers (2·Σ + 2), "
            f"not depth {depth}: their sum must be {(depth - 2) // 2}"
        )
    return tuple(blocks)


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}

# depth → (block, blocks per stage): the paper's Table 1.
IMAGENET_DEPTHS: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}

# stem → (kernel, stride, max-pool after it); its width is the first stage's `channels`.
STEMS: dict[str, tuple[int, int, bool]] = {"imagenet": (7, 2, True), "cifar": (3, 1, False)}


def check_resnet_args(
    name: str,
    stages: tuple[StageSpec, ...],
    block: str,
    stem: str,
    shortcut: str,
    stride_on: str,
    skip: bool,
    drop_path_rate: float,
    drop_rate: float,
) -> None:
    """ResNet's arguments, checked once where the user passes them (the blocks trust them)."""
    check_choice(name, "block", block, BLOCKS)
    check_choice(name, "stem", stem, STEMS)
    check_choice(name, "shortcut", shortcut, SHORTCUTS)
    check_choice(name, "stride_on", stride_on, STRIDE_ON)
    check_rate(name, "drop_path_rate", drop_path_rate)
    check_rate(name, "drop_rate", drop_rate)
    check_bool(name, "skip", skip)
    if drop_path_rate and not skip:
        raise InvalidArgumentError(f"{name}: drop_path_rate needs the identity path; it cannot be used with skip=False")
    if not stages:
        raise InvalidArgumentError(f"{name}: stages must hold at least one StageSpec")
    for spec in stages:
        for field in ("depth", "channels", "stride"):
            check_int(name, f"stage {field}", getattr(spec, field))


class ResNet(Classifier):
    """ResNet: stem → stages of residual blocks y = σ(F(x) + S(x)) → global average pool → FC.

    One class for every depth: `stages` (a table of StageSpec) and `block` ("basic" or
    "bottleneck") fix the architecture; `stem` is "imagenet" (7×7/2 + max-pool) or "cifar" (3×3/1).
    Options: `shortcut` "A"/"B"/"C", `stride_on` "3x3"/"1x1" (bottleneck only), `skip=False` for
    the plain twin, `se_ratio` > 0 for squeeze-excitation (SE width = se_ratio·C; SENet's r = 16 is
    1/16), `drop_path_rate` for stochastic depth rising linearly to that rate at the last block,
    `drop_rate` for dropout before the FC. `output_stride` (4, 8, 16 or 32 with the ImageNet stem; 1,
    2 or 4 with the CIFAR one; None keeps every stride) makes the stages that would shrink the map past it
    keep their resolution and dilate their 3×3s instead (DeepLab; torchvision's
    `replace_stride_with_dilation=[False, True, True]` is output_stride=8): the same parameters,
    a map output_stride times smaller than the input.
    """

    def __init__(
        self,
        stages: tuple[StageSpec, ...] = imagenet_stages((3, 4, 6, 3)),
        block: str = "bottleneck",
        stem: str = "imagenet",
        shortcut: str = "B",
        stride_on: str = "3x3",
        skip: bool = True,
        se_ratio: float = 0.0,
        drop_path_rate: float = 0.0,
        drop_rate: float = 0.0,
        num_classes: int = 1000,
        in_channels: int = 3,
        norm_layer: str = "batch",
        act_layer: str = "relu",
        output_stride: int | None = None,
    ) -> None:
        super().__init__(num_classes, in_channels)
        name = type(self).__name__
        check_resnet_args(name, stages, block, stem, shortcut, stride_on, skip, drop_path_rate, drop_rate)
        block_cls = BLOCKS[block]
        extra = {"stride_on": stride_on} if block_cls is Bottleneck else {}

        def make_block(spec: StageSpec, slot: BlockSlot) -> nn.Module:  # stochastic depth: 0 → rate, linearly
            return block_cls(
                slot.in_channels,
                spec.channels,
                slot.stride,
                shortcut=shortcut,
                skip=skip,
                se_ratio=se_ratio,
                drop_path_rate=drop_path_rate * slot.index / max(slot.total - 1, 1),
                norm_layer=norm_layer,
                act_layer=act_layer,
                dilation=slot.dilation,
                first_dilation=slot.first_dilation,
                **extra,
            )

        width = stages[0].channels
        reduction = self._build_stem(stem, in_channels, width, norm_layer, act_layer)
        built = build_stages(
            stages,
            make_block,
            depths=[s.depth for s in stages],
            strides=[s.stride for s in stages],
            in_channels=width,
            reduction=reduction,
            output_stride=output_stride,
            owner=name,
        )
        self.stages = built.stages
        self.feature_info += built.feature_info

        self.add_head(built.channels, drop_rate)
        self.output_stride = built.reduction
        init_weights(self)

    def _build_stem(self, stem: str, in_channels: int, width: int, norm_layer: str, act_layer: str) -> int:
        """Conv-norm-act (7×7/2 "imagenet", 3×3/1 "cifar") and, for ImageNet, a 3×3/2 max-pool; returns the
        stem's output stride."""
        kernel, stride, pool = STEMS[stem]
        self.stem = ConvNormAct(in_channels, width, kernel, stride, norm_layer=norm_layer, act_layer=act_layer)
        self.stem_pool = nn.MaxPool2d(3, 2, 1) if pool else nn.Identity()
        self.feature_info.append(FeatureInfo("stem", width, stride))
        return stride * (2 if pool else 1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem_pool(self.stem(x)))


class CifarResNet(ResNet):
    """ResNet for 32×32 images (§4.2): 6n + 2 layers — a 3×3 stem, 3 × n basic blocks (16, 32, 64
    channels), average pool, FC; option A shortcuts, so the identity path adds no parameters.

    `blocks=(n1, n2, n3)` spreads the same depth's 3n blocks over the stages unevenly (depth = 2·Σnᵢ + 2):
    fewer blocks on the full-resolution maps, where each costs 4× the memory traffic of one at the last
    stage's, and more where the features name what they see (e.g. `resnet20` with `blocks=(1, 3, 5)`).
    """

    def __init__(
        self,
        depth: int = 20,
        shortcut: str = "A",
        skip: bool = True,
        se_ratio: float = 0.0,
        drop_path_rate: float = 0.0,
        drop_rate: float = 0.0,
        num_classes: int = 10,
        in_channels: int = 3,
        norm_layer: str = "batch",
        act_layer: str = "relu",
        output_stride: int | None = None,
        blocks: Sequence[int] | None = None,
    ) -> None:
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 8 or (depth - 2) % 6:
            raise InvalidArgumentError(
                f"CifarResNet: depth must be 6n + 2 with n ≥ 1 (20, 32, 44, 56, 110 …); got {depth!r}"
            )
        counts = check_blocks(depth, blocks)
        super().__init__(
            cifar_stages((depth - 2) // 6, counts),
            "basic",
            "cifar",
            shortcut,
            "3x3",
            skip,
            se_ratio,
            drop_path_rate,
            drop_rate,
            num_classes,
            in_channels,
            norm_layer,
            act_layer,
            output_stride,
        )
        self.depth = depth
        self.blocks = counts or ((depth - 2) // 6,) * 3


for _depth, (_block, _depths) in IMAGENET_DEPTHS.items():
    register_model(
        f"resnet{_depth}",
        ResNet,
        family="resnet",
        input_size=(3, 224, 224),
        torchvision=f"resnet{_depth}",
        stages=imagenet_stages(_depths),
        block=_block,
        stem="imagenet",
    )

for _depth in (20, 32, 44, 56, 110):
    register_model(f"resnet{_depth}", CifarResNet, family="resnet", input_size=(3, 32, 32), depth=_depth)
    register_model(f"plain{_depth}", CifarResNet, family="plain", input_size=(3, 32, 32), depth=_depth, skip=False)

register_model(
    "seresnet50",
    ResNet,
    family="senet",
    input_size=(3, 224, 224),
    stages=imagenet_stages((3, 4, 6, 3)),
    block="bottleneck",
    stem="imagenet",
    se_ratio=1 / 16,
)
