"""GoogLeNet (Inception-v1) and Inception-v3.

* GoogLeNet — Szegedy et al., "Going deeper with convolutions", CVPR 2015. Nine Inception
  modules stacked on a small conv stem; the 1×1 reductions in front of every 3×3 and 5×5 keep a
  22-layer network at 6.6 M parameters (AlexNet has 61 M). Configuration: Table 1 of the paper.
  `googlenet` is torchvision's form: batch norm after every conv (ε = 0.001), a 3×3 where the
  paper's third branch has a 5×5 (`large_kernel_size=5` builds the paper's), a 2×2 max-pool before
  inception5a, and 6,624,904 parameters without the two auxiliary classifiers.
* Inception-v3 — Szegedy et al., "Rethinking the Inception architecture for computer vision",
  CVPR 2016. Factorised convolutions (5×5 → two 3×3, n×n → 1×n + n×1), grid reductions that
  stride a conv and a pool side by side, batch norm, one auxiliary classifier; 299×299 input.
  `inception_v3` is torchvision's `Inception3` (27,161,264 parameters with its auxiliary head).

Neither model normalises its input internally: torchvision's `transform_input` (re-mapping
ImageNet-normalised inputs to the [−1, 1] range the TensorFlow weights expect) is not built;
compare with torchvision models made with `transform_input=False`.

In training mode with `aux_logits=True`, `forward` returns the auxiliary logits too, as torchvision
does: `GoogLeNetOutputs(logits, aux_logits2, aux_logits1)` and `InceptionOutputs(logits, aux_logits)`.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from dataclasses import astuple, dataclass

import torch
from torch import nn

from ..errors import InputShapeError
from ..layers import ConvNormAct, get_norm_layer
from ..layers.checks import check_rate
from ..layers.inception import (
    INCEPTION_BN_EPS,
    GoogLeNetAux,
    InceptionA,
    InceptionB,
    InceptionC,
    InceptionD,
    InceptionE,
    InceptionModule,
    InceptionV3Aux,
)
from ..registry import register_model
from .base import Classifier, FeatureInfo

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])
InceptionOutputs = namedtuple("InceptionOutputs", ["logits", "aux_logits"])
AUX_MIN_INPUT = 299  # smallest input for which Inception-v3's auxiliary head has a 5×5 map to convolve


@dataclass(frozen=True)
class InceptionSpec:
    """One Inception row of the GoogLeNet paper's Table 1 (output widths of each branch)."""

    ch1x1: int  # "#1×1"
    ch3x3red: int  # "#3×3 reduce"
    ch3x3: int  # "#3×3"
    ch5x5red: int  # "#5×5 reduce"
    ch5x5: int  # "#5×5"
    pool_proj: int  # "pool proj"


# Table 1 of the paper; None marks the max-pools (3×3/2, except torchvision's 2×2/2 before 5a).
GOOGLENET_TABLE: tuple[tuple[str, InceptionSpec | None], ...] = (
    ("inception3a", InceptionSpec(64, 96, 128, 16, 32, 32)),
    ("inception3b", InceptionSpec(128, 128, 192, 32, 96, 64)),
    ("maxpool3", None),
    ("inception4a", InceptionSpec(192, 96, 208, 16, 48, 64)),
    ("inception4b", InceptionSpec(160, 112, 224, 24, 64, 64)),
    ("inception4c", InceptionSpec(128, 128, 256, 24, 64, 64)),
    ("inception4d", InceptionSpec(112, 144, 288, 32, 64, 64)),
    ("inception4e", InceptionSpec(256, 160, 320, 32, 128, 128)),
    ("maxpool4", None),
    ("inception5a", InceptionSpec(256, 160, 320, 32, 128, 128)),
    ("inception5b", InceptionSpec(384, 192, 384, 48, 128, 128)),
)


def _trunc_normal_init(model: nn.Module, std: float) -> None:
    """torchvision's initialisation of both networks: conv and linear weights ~ N(0, std²)
    truncated to [−2, 2], batch norm γ = 1, β = 0; biases keep PyTorch's default."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, mean=0.0, std=std, a=-2.0, b=2.0)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class GoogLeNet(Classifier):
    """GoogLeNet / Inception-v1: stem (7×7/2 conv, pool, 1×1, 3×3, pool) → Inception 3a–3b → pool
    → 4a–4e → pool → 5a–5b → global average → dropout → FC. With `aux_logits`, classifiers on 4a
    and 4d add their losses in training (weighted 0.3 in the paper)."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        aux_logits: bool = False,
        large_kernel_size: int = 3,
        drop_rate: float = 0.2,
        aux_drop_rate: float = 0.7,
    ) -> None:
        super().__init__(num_classes, in_channels)
        check_rate("GoogLeNet", "drop_rate", drop_rate)
        check_rate("GoogLeNet", "aux_drop_rate", aux_drop_rate)
        norm = get_norm_layer("batch", 2, eps=INCEPTION_BN_EPS)
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv1=ConvNormAct(in_channels, 64, 7, stride=2, norm_layer=norm),
            maxpool1=nn.MaxPool2d(3, stride=2, ceil_mode=True),
            conv2=ConvNormAct(64, 64, 1, norm_layer=norm),
            conv3=ConvNormAct(64, 192, 3, norm_layer=norm),
            maxpool2=nn.MaxPool2d(3, stride=2, ceil_mode=True),
        )
        self.feature_info = [FeatureInfo("features.conv1", 64, 2), FeatureInfo("features.conv3", 192, 4)]
        c, reduction, prev = 192, 8, "conv3"
        for name, spec in GOOGLENET_TABLE:
            if spec is None:
                kernel = 2 if name == "maxpool4" else 3
                layers[name] = nn.MaxPool2d(kernel, stride=2, ceil_mode=True)
                self.feature_info.append(FeatureInfo(f"features.{prev}", c, reduction))
                reduction *= 2
                continue
            layers[name] = InceptionModule(c, *astuple(spec), large_kernel_size=large_kernel_size)
            c, prev = layers[name].out_channels, name
        self.feature_info.append(FeatureInfo(f"features.{prev}", c, reduction))
        self.features = nn.Sequential(layers)
        self.aux_logits = aux_logits
        # Auxiliary heads on the outputs of inception4a (512 channels) and inception4d (528).
        self._aux_taps = {"inception4a": "aux1", "inception4d": "aux2"} if aux_logits else {}
        for tap, head in self._aux_taps.items():
            setattr(self, head, GoogLeNetAux(layers[tap].out_channels, num_classes, aux_drop_rate))
        self.add_head(c, drop_rate)
        _trunc_normal_init(self, std=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:
        if not (self.training and self.aux_logits):
            return super().forward(x)
        self.check_input(x)
        aux = {}
        for name, layer in self.features.named_children():
            x = layer(x)
            if name in self._aux_taps:
                aux[self._aux_taps[name]] = getattr(self, self._aux_taps[name])(x)
        return GoogLeNetOutputs(self.forward_head(x), aux["aux2"], aux["aux1"])

    def remap_torchvision_state_dict(self, state_dict: dict) -> dict:
        """Drop torchvision's auxiliary heads when this model was built without them."""
        if self.aux_logits:
            return state_dict
        return {k: v for k, v in state_dict.items() if not k.startswith(("aux1.", "aux2."))}


class InceptionV3(Classifier):
    """Inception-v3: stem of five convs and two pools (299 → 35×35×192) → 3 × InceptionA (35×35)
    → InceptionB (→ 17×17) → 4 × InceptionC → InceptionD (→ 8×8) → 2 × InceptionE (2048) →
    global average → dropout → FC. The auxiliary head reads Mixed_6e. Module names are the
    TensorFlow end-points (Mixed_7c is where receptive-field tables measure)."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        aux_logits: bool = True,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__(num_classes, in_channels)
        check_rate("InceptionV3", "drop_rate", drop_rate)
        norm = get_norm_layer("batch", 2, eps=INCEPTION_BN_EPS)

        def conv(c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0) -> ConvNormAct:
            return ConvNormAct(c_in, c_out, kernel, stride, padding, norm_layer=norm)

        self.features = nn.Sequential(
            OrderedDict(
                Conv2d_1a_3x3=conv(in_channels, 32, 3, stride=2),
                Conv2d_2a_3x3=conv(32, 32, 3),
                Conv2d_2b_3x3=conv(32, 64, 3, padding=1),
                maxpool1=nn.MaxPool2d(3, stride=2),
                Conv2d_3b_1x1=conv(64, 80, 1),
                Conv2d_4a_3x3=conv(80, 192, 3),
                maxpool2=nn.MaxPool2d(3, stride=2),
                Mixed_5b=InceptionA(192, pool_features=32),
                Mixed_5c=InceptionA(256, pool_features=64),
                Mixed_5d=InceptionA(288, pool_features=64),
                Mixed_6a=InceptionB(288),
                Mixed_6b=InceptionC(768, channels_7x7=128),
                Mixed_6c=InceptionC(768, channels_7x7=160),
                Mixed_6d=InceptionC(768, channels_7x7=160),
                Mixed_6e=InceptionC(768, channels_7x7=192),
                Mixed_7a=InceptionD(768),
                Mixed_7b=InceptionE(1280),
                Mixed_7c=InceptionE(2048),
            )
        )
        self.feature_info = [
            FeatureInfo("features.Conv2d_2b_3x3", 64, 2),
            FeatureInfo("features.Conv2d_4a_3x3", 192, 4),
            FeatureInfo("features.Mixed_5d", 288, 8),
            FeatureInfo("features.Mixed_6e", 768, 16),
            FeatureInfo("features.Mixed_7c", 2048, 32),
        ]
        self.aux_logits = aux_logits
        self.AuxLogits = InceptionV3Aux(768, num_classes) if aux_logits else None
        self.add_head(2048, drop_rate)
        _trunc_normal_init(self, std=0.1)
        if self.AuxLogits is not None:  # torchvision's `stddev` attributes on the auxiliary head
            nn.init.trunc_normal_(self.AuxLogits.conv1.conv.weight, std=0.01, a=-2.0, b=2.0)
            nn.init.trunc_normal_(self.AuxLogits.fc.weight, std=0.001, a=-2.0, b=2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor | InceptionOutputs:
        if not (self.training and self.aux_logits):
            return super().forward(x)
        self.check_input(x)
        if min(x.shape[2:]) < AUX_MIN_INPUT:
            if min(x.shape[2:]) < self.min_input_size:
                raise self._too_small(tuple(x.shape[2:]))
            raise InputShapeError(
                f"InceptionV3: in training mode the auxiliary head needs a 17×17 Mixed_6e map, i.e. an input of "
                f"at least {AUX_MIN_INPUT}×{AUX_MIN_INPUT}; got {'×'.join(map(str, x.shape[2:]))} "
                f"(build with aux_logits=False, or call .eval(), for smaller inputs)"
            )
        for name, layer in self.features.named_children():
            x = layer(x)
            if name == "Mixed_6e":
                aux = self.AuxLogits(x)
        return InceptionOutputs(self.forward_head(x), aux)

    def remap_torchvision_state_dict(self, state_dict: dict) -> dict:
        """torchvision registers AuxLogits between Mixed_6e and Mixed_7a; ours follows the trunk.
        Its tensors are moved (or dropped when this model has no auxiliary head)."""
        aux = {k: v for k, v in state_dict.items() if k.startswith("AuxLogits.")}
        fc = {k: v for k, v in state_dict.items() if k.startswith("fc.")}
        trunk = {k: v for k, v in state_dict.items() if k not in aux and k not in fc}
        return {**trunk, **(aux if self.aux_logits else {}), **fc}


register_model("googlenet", GoogLeNet, family="inception", input_size=(3, 224, 224), torchvision="googlenet")
register_model("inception_v3", InceptionV3, family="inception", input_size=(3, 299, 299), torchvision="inception_v3")
