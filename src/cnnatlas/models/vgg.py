"""VGG — Simonyan & Zisserman, "Very deep convolutional networks for large-scale image
recognition", ICLR 2015.

Only 3×3 convolutions (stride 1, padding 1) in five stages, each closed by a 2×2 max-pool, then
three fully connected layers. Two stacked 3×3 convs see a 5×5 field with 18C² instead of 25C²
weights and one more non-linearity. Most of the parameters sit in the FC head (fc6 alone is
25088×4096). Stage tables: the paper's Table 1, configurations A (11 layers), B (13), D (16), E (19).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..layers import ConvNormAct
from ..layers.checks import check_rate
from ..registry import register_model
from .base import Classifier, FeatureInfo, init_weights

# Output channels of each 3×3 conv, stage by stage (Table 1 of the paper).
VGG_STAGES: dict[str, tuple[tuple[int, ...], ...]] = {
    "A": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "B": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    "D": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "E": ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
}


class VGG(Classifier):
    """VGG: five stages of 3×3 convs, each ending in a 2×2 max-pool; an adaptive 7×7 average
    (identity at 224×224); fc6 4096 → fc7 4096 (ReLU, dropout) → fc8. With `batch_norm` every conv
    is followed by BN (the conv keeps its bias, as in torchvision)."""

    def __init__(
        self,
        stages: tuple[tuple[int, ...], ...] = VGG_STAGES["D"],
        batch_norm: bool = False,
        num_classes: int = 1000,
        in_channels: int = 3,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__(num_classes, in_channels)
        check_rate("VGG", "drop_rate", drop_rate)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        c_in = in_channels
        for s, widths in enumerate(stages, start=1):
            for i, c_out in enumerate(widths, start=1):
                layers[f"conv{s}_{i}"] = ConvNormAct(
                    c_in, c_out, 3, bias=True, norm_layer="batch" if batch_norm else "none"
                )
                c_in = c_out
            layers[f"pool{s}"] = nn.MaxPool2d(2, 2)
            self.feature_info.append(FeatureInfo(f"features.conv{s}_{len(widths)}", c_out, 2 ** (s - 1)))
        self.features = nn.Sequential(layers)
        self.pool = nn.AdaptiveAvgPool2d((7, 7))
        self.head = nn.Sequential(
            OrderedDict(
                fc6=nn.Linear(c_in * 7 * 7, 4096),
                act6=nn.ReLU(inplace=True),
                drop6=nn.Dropout(drop_rate),
                fc7=nn.Linear(4096, 4096),
                act7=nn.ReLU(inplace=True),
                drop7=nn.Dropout(drop_rate),
            )
        )
        self.fc8 = nn.Linear(4096, num_classes)
        self.num_features = 4096
        init_weights(self)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head(self.pool(x).flatten(1))
        return x if pre_logits else self.fc8(x)


for _depth, _cfg in ((11, "A"), (13, "B"), (16, "D"), (19, "E")):
    for _bn in (False, True):
        _name = f"vgg{_depth}" + ("_bn" if _bn else "")
        register_model(
            _name,
            VGG,
            family="vgg",
            input_size=(3, 224, 224),
            torchvision=_name,
            stages=VGG_STAGES[_cfg],
            batch_norm=_bn,
        )
