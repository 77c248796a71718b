"""DenseNet — Huang, Liu, van der Maaten & Weinberger, "Densely connected convolutional networks",
CVPR 2017.

Within a dense block every layer takes the concatenation of all earlier outputs, x_ℓ =
H_ℓ([x_0, …, x_{ℓ−1}]), and adds k new channels (the growth rate). The concatenation (where ResNet
adds) gives every layer the features of all layers before it and a short path to the loss, so a
DenseNet needs few channels per layer: DenseNet-121 has 8 M parameters to ResNet-50's 25.6 M.

The ImageNet models are DenseNet-BC (Table 1 of the paper): a 7×7/2 conv with 2k channels and a
3×3/2 max-pool, four dense blocks of bottleneck layers (BN-ReLU-1×1 to 4k, BN-ReLU-3×3 to k)
joined by transitions that halve channels (θ = 0.5) and the grid, a final BN-ReLU, global
average pooling and one FC layer. DenseNet-161 (k = 48, 96 stem channels) is not in the paper:
it comes from the authors' released Torch models. Configurations: torchvision's `_densenet(k,
blocks, init features)`, as collected in PUBLISHED.md.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import InvalidArgumentError
from ..layers import ConvNormAct, DenseBlock, Transition
from ..layers.checks import check_int, check_rate
from ..registry import register_model
from .base import Classifier, FeatureInfo


@dataclass(frozen=True)
class DenseNetConfig:
    """One column of the paper's Table 1."""

    growth_rate: int  # k: channels each dense layer adds
    block_config: tuple[int, ...]  # layers per dense block
    num_init_features: int  # channels of the stem conv (2k)


DENSENET_CONFIGS: dict[str, DenseNetConfig] = {
    "densenet121": DenseNetConfig(32, (6, 12, 24, 16), 64),
    "densenet161": DenseNetConfig(48, (6, 12, 36, 24), 96),
    "densenet169": DenseNetConfig(32, (6, 12, 32, 32), 64),
    "densenet201": DenseNetConfig(32, (6, 12, 48, 32), 64),
}


class DenseNet(Classifier):
    """DenseNet-BC: stem (7×7/2 conv-BN-ReLU, 3×3/2 max-pool) → [dense block → transition] × 3 →
    dense block → BN-ReLU → global average → FC. Channels after block b:
    c_b = c_{b−1}' + k·L_b, and the transition makes c_b' = ⌊θ·c_b⌋."""

    def __init__(
        self,
        config: DenseNetConfig = DENSENET_CONFIGS["densenet121"],
        num_classes: int = 1000,
        in_channels: int = 3,
        bottleneck_factor: int = 4,
        compression: float = 0.5,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__(num_classes, in_channels)
        check_int("DenseNet", "bottleneck_factor", bottleneck_factor)
        check_rate("DenseNet", "drop_rate", drop_rate)
        if not isinstance(compression, (int, float)) or isinstance(compression, bool) or not 0 < compression <= 1:
            raise InvalidArgumentError(f"DenseNet: compression θ must be in (0, 1]; got {compression!r}")
        k, c = config.growth_rate, config.num_init_features
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv0=ConvNormAct(in_channels, c, 7, stride=2),
            pool0=nn.MaxPool2d(3, stride=2, padding=1),
        )
        self.feature_info = [FeatureInfo("features.conv0", c, 2)]
        reduction = 4
        for b, num_layers in enumerate(config.block_config, start=1):
            block = DenseBlock(num_layers, c, k, bottleneck_factor, drop_rate)
            layers[f"denseblock{b}"] = block
            c = block.out_channels
            if b < len(config.block_config):
                self.feature_info.append(FeatureInfo(f"features.denseblock{b}", c, reduction))
                layers[f"transition{b}"] = Transition(c, int(compression * c))
                c, reduction = int(compression * c), reduction * 2
        layers["norm5"] = nn.Sequential(OrderedDict(norm=nn.BatchNorm2d(c), act=nn.ReLU(inplace=True)))
        self.feature_info.append(FeatureInfo("features.norm5", c, reduction))
        self.features = nn.Sequential(layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)
        self.num_features = c
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's ("from the torch repo"): He normal (fan-in) convs, BN γ = 1, β = 0, FC bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pool(x).flatten(1)
        return x if pre_logits else self.classifier(x)


for _name, _config in DENSENET_CONFIGS.items():
    register_model(_name, DenseNet, family="densenet", input_size=(3, 224, 224), torchvision=_name, config=_config)
