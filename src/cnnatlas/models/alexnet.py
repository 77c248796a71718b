"""AlexNet — Krizhevsky, Sutskever & Hinton, "ImageNet classification with deep convolutional
neural networks", NeurIPS 2012.

Five convolutions and three fully connected layers; what made it win ILSVRC-2012 was ReLU,
dropout in the FC layers, data augmentation and training split over two GPUs. Two forms:

* `alexnet_2012` — the paper's two-tower network (section 3.5, figure 2): 96-256-384-384-256
  kernels, conv2/conv4/conv5 grouped in two (each tower sees only its own half of the maps),
  local response normalisation after conv1 and conv2 (k=2, n=5, α=1e-4, β=0.75), 227×227 input.
* `alexnet` — torchvision's single-tower form from Krizhevsky's "One weird trick" (2014):
  64-192-384-256-256 kernels, no LRN, 224×224 input.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from ..layers import ConvNormAct
from ..layers.checks import check_rate
from ..registry import register_model
from .base import Classifier, FeatureInfo, init_weights


@dataclass(frozen=True)
class AlexNetConfig:
    """The five convolutions: output channels, groups, conv1's padding, and whether LRN is used."""

    channels: tuple[int, int, int, int, int]
    groups: tuple[int, int, int, int, int]
    conv1_padding: int
    lrn: bool


ONE_WEIRD_TRICK = AlexNetConfig((64, 192, 384, 256, 256), (1, 1, 1, 1, 1), conv1_padding=2, lrn=False)
TWO_TOWER_2012 = AlexNetConfig((96, 256, 384, 384, 256), (1, 2, 1, 2, 2), conv1_padding=0, lrn=True)


class AlexNet(Classifier):
    """AlexNet: conv1 11×11/4 → pool → conv2 5×5 → pool → conv3..5 3×3 → pool → fc6, fc7 (4096,
    dropout) → fc8. The last pool is followed by an adaptive 6×6 average so other sizes work."""

    def __init__(
        self,
        config: AlexNetConfig = ONE_WEIRD_TRICK,
        num_classes: int = 1000,
        in_channels: int = 3,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__(num_classes, in_channels)
        check_rate("AlexNet", "drop_rate", drop_rate)
        c, g = config.channels, config.groups

        def conv(i: int, c_in: int, kernel: int, stride: int = 1, padding: int | None = None) -> ConvNormAct:
            return ConvNormAct(c_in, c[i], kernel, stride, padding, groups=g[i], norm_layer="none")

        def lrn() -> nn.Module:
            return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0) if config.lrn else nn.Identity()

        self.features = nn.Sequential(
            OrderedDict(
                conv1=conv(0, in_channels, 11, stride=4, padding=config.conv1_padding),
                norm1=lrn(),
                pool1=nn.MaxPool2d(3, 2),
                conv2=conv(1, c[0], 5),
                norm2=lrn(),
                pool2=nn.MaxPool2d(3, 2),
                conv3=conv(2, c[1], 3),
                conv4=conv(3, c[2], 3),
                conv5=conv(4, c[3], 3),
                pool5=nn.MaxPool2d(3, 2),
            )
        )
        self.pool = nn.AdaptiveAvgPool2d((6, 6))
        self.head = nn.Sequential(
            OrderedDict(
                drop6=nn.Dropout(drop_rate),
                fc6=nn.Linear(c[4] * 6 * 6, 4096),
                act6=nn.ReLU(inplace=True),
                drop7=nn.Dropout(drop_rate),
                fc7=nn.Linear(4096, 4096),
                act7=nn.ReLU(inplace=True),
            )
        )
        self.fc8 = nn.Linear(4096, num_classes)
        self.num_features = 4096
        self.feature_info = [
            FeatureInfo("features.conv1", c[0], 4),
            FeatureInfo("features.conv2", c[1], 8),
            FeatureInfo("features.conv5", c[4], 16),
        ]
        init_weights(self)
        if config.lrn:  # section 5: biases of conv2, conv4, conv5 and the hidden FC layers start at 1
            for m in (
                self.features.conv2.conv,
                self.features.conv4.conv,
                self.features.conv5.conv,
                self.head.fc6,
                self.head.fc7,
            ):
                nn.init.ones_(m.bias)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head(self.pool(x).flatten(1))
        return x if pre_logits else self.fc8(x)


register_model(
    "alexnet", AlexNet, family="alexnet", input_size=(3, 224, 224), torchvision="alexnet", config=ONE_WEIRD_TRICK
)
register_model("alexnet_2012", AlexNet, family="alexnet", input_size=(3, 227, 227), config=TWO_TOWER_2012)
