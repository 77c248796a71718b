"""LeNet-5 — LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document
recognition", Proc. IEEE 1998.

The template of every later CNN: conv → pool → conv → pool → fully connected. Layers as in the
paper's figure 2 (input 1×32×32): C1 6@28×28 (5×5) → S2 6@14×14 → C3 16@10×10 (5×5) → S4 16@5×5
→ C5 120 (5×5 over the 5×5 map) → F6 84 → 10 outputs. With C3 connected to all six S2 maps and
parameter-free pooling the network has 61,706 parameters (the paper's sparse C3 table and
trainable subsampling give its "60,000").
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..layers import ConvNormAct, get_act_layer
from ..layers.checks import check_choice
from ..registry import register_model
from .base import Classifier, FeatureInfo, init_weights

STYLES = ("classic", "modern")


class LeNet5(Classifier):
    """LeNet-5. `style="classic"`: tanh and average pooling as in 1998; `"modern"`: ReLU and max
    pooling. Inputs larger than 32×32 are accepted: C5's map is then averaged to 1×1."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, style: str = "classic") -> None:
        super().__init__(num_classes, in_channels)
        check_choice("LeNet5", "style", style, STYLES)
        self.style = style
        act = "tanh" if style == "classic" else "relu"
        pool = nn.AvgPool2d if style == "classic" else nn.MaxPool2d

        def conv(c_in: int, c_out: int) -> ConvNormAct:
            return ConvNormAct(c_in, c_out, 5, padding=0, norm_layer="none", act_layer=act)

        self.features = nn.Sequential(
            OrderedDict(
                c1=conv(in_channels, 6),
                s2=pool(2),
                c3=conv(6, 16),
                s4=pool(2),
                c5=conv(16, 120),
            )
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.f6 = nn.Linear(120, 84)
        self.act = get_act_layer(act)()
        self.output = nn.Linear(84, num_classes)
        self.num_features = 120
        self.feature_info = [
            FeatureInfo("features.c1", 6, 1),
            FeatureInfo("features.c3", 16, 2),
            FeatureInfo("features.c5", 120, 4),
        ]
        init_weights(self, linear_std=0.1)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.act(self.f6(self.pool(x).flatten(1)))
        return x if pre_logits else self.output(x)


register_model("lenet5", LeNet5, family="lenet", input_size=(1, 32, 32))
