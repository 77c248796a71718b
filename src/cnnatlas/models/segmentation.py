"""Dense prediction: a class score for every pixel.

FCN — Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic Segmentation", CVPR
2015; DeepLab v3 — Chen, Papandreou, Schroff & Adam, "Rethinking Atrous Convolution for Semantic
Image Segmentation", 2017.

A classifier's global average pool throws away *where* things are; a segmentation network keeps the
map. It takes a classifier's stages (the backbone, its pool and FC dropped), puts a convolutional
head on the last feature map — FCN's 3×3 + 1×1, or DeepLab v3's atrous spatial pyramid pooling
(ASPP) — and upsamples the class scores bilinearly to the input's size. The backbone's last stages
dilate instead of striding (`output_stride`, DeepLab §3.1), so the map keeps 1/8 or 1/16 of the
input's resolution while the receptive field still grows.

`fcn_resnet50` and `deeplabv3_resnet50` are torchvision's models (ResNet-50 at output stride 8, ASPP
rates 12/24/36, 256 channels; with `aux_loss` an FCN head on the third stage, as their COCO weights
carry). `fcn` and `deeplabv3` build the same heads on any zoo classifier (`backbone="resnet20"`,
`"mobilenet_v2"`, …), small enough for the CPU.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from ..errors import InvalidArgumentError
from ..layers import DeepLabHead, DeepLabV3PlusHead, FCNHead
from ..layers.checks import check_int
from ..layers.segmentation import upsample
from ..registry import build_model, get_entry, register_model
from .base import Classifier, FeatureInfo

# In training mode with an auxiliary head, forward returns both maps, as torchvision's dict {"out", "aux"}.
SegmentationOutputs = namedtuple("SegmentationOutputs", ["out", "aux"])

# DeepLab's rates are (6, 12, 18) at output stride 16 on 513-pixel crops: taps 96, 192 and 288 pixels
# apart in the input (19%, 37%, 56% of it). The small models keep those fractions of a 64-pixel input.
SMALL_RATE_PIXELS = (12, 24, 36)


def strip_head(model: Classifier) -> int:
    """Replace the classifier's top-level modules that `forward_features` never calls (pool, dropout,
    FC, auxiliary classifiers) by nn.Identity, found by running it once on meta tensors; returns the
    channels of `forward_features`' output."""
    called: set[str] = set()
    hooks = [
        child.register_forward_hook(lambda m, a, o, n=name: called.add(n)) for name, child in model.named_children()
    ]
    state = {k: torch.empty_like(v, device="meta") for k, v in model.state_dict(keep_vars=True).items()}
    size = getattr(model, "default_input_size", None) or (model.in_channels, 224, 224)
    training = model.training
    try:
        model.eval()
        out = functional_call(
            _FeaturesOnly(model), {f"inner.{k}": v for k, v in state.items()}, (torch.empty((2, *size), device="meta"),)
        )
    finally:
        model.train(training)
        for h in hooks:
            h.remove()
    for name, _ in list(model.named_children()):
        if name not in called:
            setattr(model, name, nn.Identity())
    return out.shape[1]


class _FeaturesOnly(nn.Module):
    """Calls `forward_features` of the classifier it wraps (functional_call needs a module's forward)."""

    def __init__(self, inner: Classifier) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.forward_features(x)


class SegmentationModel(Classifier):
    """backbone (a zoo classifier without its head) → head on the last map → bilinear upsampling.

    `forward(x)` gives (N, num_classes, H, W) logits at the input's size; in training mode with
    `aux_loss` it gives `SegmentationOutputs(out, aux)`, aux from an FCN head on the stage before
    the last (torchvision adds 0.5 × its loss). `forward_features(x)` returns [last map] followed
    by the maps of the stages the model taps (the auxiliary map, DeepLab v3+'s low-level map);
    `forward_head(features, size=None)` the scores at the map's resolution, upsampled to `size` when given.
    """

    def __init__(
        self,
        backbone: str,
        num_classes: int,
        in_channels: int,
        output_stride: int | None,
        aux_loss: bool,
        backbone_args: dict[str, Any] | None,
    ) -> None:
        super().__init__(num_classes, in_channels)
        name = type(self).__name__
        if not isinstance(backbone, str):
            raise InvalidArgumentError(f"{name}: backbone must be the name of a zoo classifier; got {backbone!r}")
        if not isinstance(aux_loss, bool):
            raise InvalidArgumentError(f"{name}: aux_loss must be True or False; got {aux_loss!r}")
        if backbone_args is not None and not isinstance(backbone_args, dict):
            raise InvalidArgumentError(
                f"{name}: backbone_args must be a dict of the backbone's arguments (e.g. {{'blocks': (1, 3, 5)}}); "
                f"got {backbone_args!r}"
            )
        entry = get_entry(backbone)
        if entry.family == "segmentation" or len(entry.input_size) != 3:
            raise InvalidArgumentError(
                f"{name}: backbone must be an image classifier of the zoo; got {backbone!r} ({entry.family})"
            )
        args = dict(backbone_args or {})
        if output_stride is not None:
            if "output_stride" not in entry.accepted_kwargs():
                raise InvalidArgumentError(
                    f"{name}: backbone {backbone!r} has no output_stride (the ResNets, "
                    "MobileNet-v2 and EfficientNet have); leave output_stride=None"
                )
            args["output_stride"] = output_stride
        try:
            net = build_model(backbone, num_classes=1, in_channels=in_channels, **args)
        except InvalidArgumentError as err:  # the backbone's own words, with the model that asked for it
            raise InvalidArgumentError(f"{name} with backbone {backbone!r}: {err}") from None
        self.num_features = strip_head(net)
        self.backbone = net
        info = list(net.feature_info)
        self.backbone_name = backbone
        self.output_stride = getattr(net, "output_stride", info[-1].reduction)
        self.feature_info = [FeatureInfo(f"backbone.{f.name}", f.channels, f.reduction) for f in info]
        self.aux_loss = aux_loss
        self._aux_stage = info[-2] if len(info) > 1 else None
        if aux_loss and self._aux_stage is None:
            raise InvalidArgumentError(f"{name}: backbone {backbone!r} has one stage only: no map for aux_loss")
        self._taps: list[str] = []  # backbone stages whose maps forward_features returns after the last one
        self._maps: dict[str, torch.Tensor] = {}  # their outputs, kept during one forward only
        if aux_loss:
            self._tap(self._aux_stage.name)

    def _tap(self, stage: str) -> None:
        """Keep the output of the backbone's `stage` during each forward: `forward_features` returns it
        after the last map, in the order the stages were tapped."""
        self._taps.append(stage)
        self.backbone.get_submodule(stage).register_forward_hook(partial(self._keep, stage))

    def _keep(self, stage: str, module: nn.Module, args: Any, output: torch.Tensor) -> None:
        self._maps[stage] = output

    def _build_heads(self, head: nn.Module) -> None:
        """Register the head, then the auxiliary head: torchvision's order (classifier, aux_classifier)."""
        self.head = head
        self.aux_head = FCNHead(self._aux_stage.channels, self.num_classes) if self.aux_loss else None

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[last map, then the tapped stages' maps]: the auxiliary map with aux_loss, …"""
        self._maps = {}
        out = self.backbone.forward_features(x)
        maps, self._maps = self._maps, {}
        return [out, *(maps[stage] for stage in self._taps)]

    def forward_head(
        self, x: list[torch.Tensor], pre_logits: bool = False, size: Sequence[int] | None = None
    ) -> torch.Tensor:
        out = self.head[:-1](x[0]) if pre_logits else self.head(x[0])
        return out if size is None else upsample(out, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor | SegmentationOutputs:
        self.check_input(x)
        size = x.shape[-2:]
        try:
            features = self.forward_features(x)
            out = self.forward_head(features, size=size)
        except (RuntimeError, ValueError):
            if min(size) < self.min_input_size:
                raise self._too_small(tuple(size)) from None
            raise
        if self.training and self.aux_head is not None:
            return SegmentationOutputs(out, upsample(self.aux_head(features[1]), size))
        return out

    def remap_torchvision_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Drop torchvision's auxiliary classifier when this model was built without one."""
        if self.aux_loss:
            return state_dict
        return {k: v for k, v in state_dict.items() if not k.startswith("aux_classifier.")}


def small_rates(output_stride: int) -> tuple[int, ...]:
    """ASPP rates of the small models: SMALL_RATE_PIXELS / output_stride, rounded half up, at least 1."""
    return tuple(max(1, int(p / output_stride + 0.5)) for p in SMALL_RATE_PIXELS)


class FCN(SegmentationModel):
    """FCN: a zoo classifier's stages → 3×3 conv (C/4 channels) + BN + ReLU, dropout 0.1, 1×1 conv
    to the classes → bilinear upsampling to the input (torchvision's FCN; the paper's skip layers
    are replaced by a dilated backbone). `output_stride` dilates the backbone where it can;
    `backbone_args` go to its constructor."""

    def __init__(
        self,
        backbone: str = "resnet20",
        num_classes: int = 21,
        in_channels: int = 3,
        output_stride: int | None = None,
        aux_loss: bool = False,
        backbone_args: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(backbone, num_classes, in_channels, output_stride, aux_loss, backbone_args)
        self._build_heads(FCNHead(self.num_features, num_classes))


class DeepLabV3(SegmentationModel):
    """DeepLab v3: a zoo classifier's stages, dilated to `output_stride` → ASPP (a 1×1 conv, one
    3×3 conv per atrous rate, image pooling; each to `channels`, concatenated, projected) → 3×3
    conv + BN + ReLU → 1×1 conv to the classes → bilinear upsampling to the input.

    `atrous_rates` default: for the small models, SMALL_RATE_PIXELS / output_stride (3, 6, 9 at
    stride 4), i.e. taps as far apart, in input pixels, relative to a 64-pixel input as DeepLab's
    (6, 12, 18) at stride 16 are on its 513-pixel crops; `deeplabv3_resnet50` fixes (12, 24, 36).
    `drop_rate`: the dropout after ASPP (0.5, DeepLab's and torchvision's; 0 for none).
    """

    def __init__(
        self,
        backbone: str = "resnet20",
        num_classes: int = 21,
        in_channels: int = 3,
        output_stride: int | None = None,
        atrous_rates: Sequence[int] | None = None,
        channels: int = 64,
        aux_loss: bool = False,
        backbone_args: dict[str, Any] | None = None,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__(backbone, num_classes, in_channels, output_stride, aux_loss, backbone_args)
        check_int(type(self).__name__, "channels", channels)
        rates = small_rates(self.output_stride) if atrous_rates is None else atrous_rates
        self._build_heads(DeepLabHead(self.num_features, num_classes, rates, channels, drop_rate=drop_rate))
        self.atrous_rates = self.head.aspp.atrous_rates


class DeepLabV3Plus(SegmentationModel):
    """DeepLab v3+ (Chen et al., ECCV 2018): DeepLab v3's dilated backbone and ASPP as the encoder, and a
    decoder that brings back the detail a coarse map loses — the ASPP output, upsampled to the
    `low_level_stride` stage of the backbone, concatenated with that stage's features reduced to
    `low_level_reduced` channels, refined by two 3×3 convs (`decoder_channels`, by default `channels`)
    and classified; then bilinear upsampling to the input (`DeepLabV3PlusHead`).

    `low_level_stride` default: output_stride / 4 (the paper's output stride 16 encoder with stride 4
    features), at least 1; the backbone must have a stage at that stride. `atrous_rates` default as
    DeepLab v3's small models (`small_rates`). The paper's separable convolutions and Xception backbone
    are not used: the encoder is the zoo backbone's. `drop_rate`: the dropout after ASPP, as DeepLab v3's.
    """

    def __init__(
        self,
        backbone: str = "resnet20",
        num_classes: int = 21,
        in_channels: int = 3,
        output_stride: int | None = None,
        atrous_rates: Sequence[int] | None = None,
        channels: int = 64,
        low_level_stride: int | None = None,
        low_level_reduced: int = 16,
        decoder_channels: int | None = None,
        aux_loss: bool = False,
        backbone_args: dict[str, Any] | None = None,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__(backbone, num_classes, in_channels, output_stride, aux_loss, backbone_args)
        name = type(self).__name__
        check_int(name, "channels", channels)
        check_int(name, "low_level_reduced", low_level_reduced)
        if decoder_channels is not None:
            check_int(name, "decoder_channels", decoder_channels)
        stride = max(1, self.output_stride // 4) if low_level_stride is None else low_level_stride
        check_int(name, "low_level_stride", stride)
        at_stride = [f for f in self.backbone.feature_info if f.reduction == stride]
        if not at_stride:
            strides = sorted({f.reduction for f in self.backbone.feature_info})
            raise InvalidArgumentError(
                f"{name}: backbone {backbone!r} has no stage at low_level_stride {stride}; "
                f"its stages have strides {strides}"
            )
        self._low_stage = at_stride[-1]
        self._tap(self._low_stage.name)  # after the auxiliary map: forward_features()[-1]
        rates = small_rates(self.output_stride) if atrous_rates is None else atrous_rates
        self._build_heads(
            DeepLabV3PlusHead(
                self.num_features,
                self._low_stage.channels,
                num_classes,
                rates,
                channels,
                low_level_reduced,
                decoder_channels,
                drop_rate=drop_rate,
            )
        )
        self.atrous_rates = self.head.aspp.atrous_rates
        self.low_level_stride = stride

    def forward_head(
        self, x: list[torch.Tensor], pre_logits: bool = False, size: Sequence[int] | None = None
    ) -> torch.Tensor:
        out = self.head(x[0], x[-1], pre_logits=pre_logits)
        return out if size is None else upsample(out, size)


class FCNResNet50(FCN):
    """FCN-ResNet50 as torchvision builds it: ResNet-50 dilated to output stride 8 (stages 3 and 4 at
    dilations 2 and 4), an FCN head on its 2048-channel map and, with `aux_loss` (default True, as
    torchvision's COCO weights carry it), an FCN head on the 1024-channel third stage."""

    def __init__(self, num_classes: int = 21, in_channels: int = 3, aux_loss: bool = True) -> None:
        super().__init__("resnet50", num_classes, in_channels, 8, aux_loss)


class DeepLabV3ResNet50(DeepLabV3):
    """DeepLab v3-ResNet50 as torchvision builds it: ResNet-50 dilated to output stride 8, ASPP with
    rates 12/24/36 and 256 channels, and with `aux_loss` (default True, as torchvision's COCO
    weights carry it) an FCN head on the 1024-channel third stage."""

    def __init__(self, num_classes: int = 21, in_channels: int = 3, aux_loss: bool = True) -> None:
        super().__init__("resnet50", num_classes, in_channels, 8, (12, 24, 36), 256, aux_loss)


# -- test-time shift averaging ----------------------------------------------------------------------

# The input as it is and moved one pixel down, right, and both: a model that predicts at 1/4 or 1/8 of the
# resolution and upsamples sees each pixel at another phase of its coarse grid.
ONE_PIXEL_SHIFTS = ((0, 0), (0, 1), (1, 0), (1, 1))


def shifted(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """x (…, H, W) with its content moved down `rows` and right `cols` pixels (negative: up, left), the
    edge pixels repeated into the place it leaves."""
    pad = max(abs(rows), abs(cols))
    if pad == 0:
        return x
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="replicate")
    return padded[..., pad - rows : pad - rows + h, pad - cols : pad - cols + w]


class ShiftAveraged(nn.Module):
    """Test-time shift averaging of a dense model: log of the mean over `shifts` of the softmax of the
    model on the input moved by (rows, cols), each moved back — p = (1/S) Σ_s shift_{-s}(softmax f(shift_s x)).
    Its output is log-probabilities of the model's shape, so argmax and the cross-entropy read it as logits."""

    def __init__(self, model: nn.Module, shifts: Sequence[tuple[int, int]] = ONE_PIXEL_SHIFTS) -> None:
        super().__init__()
        if not shifts:
            raise ValueError("ShiftAveraged needs at least one (rows, cols) shift; got none")
        self.model, self.shifts = model, tuple((int(r), int(c)) for r, c in shifts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = sum(shifted(self.model(shifted(x, r, c)).float().softmax(1), -r, -c) for r, c in self.shifts)
        return (total / len(self.shifts)).log()


register_model("fcn", FCN, family="segmentation", input_size=(3, 64, 64))
register_model("deeplabv3", DeepLabV3, family="segmentation", input_size=(3, 64, 64))
register_model("deeplabv3plus", DeepLabV3Plus, family="segmentation", input_size=(3, 64, 64))
# torchvision's builders measure and publish at 520×520 (their weights' resize).
register_model("fcn_resnet50", FCNResNet50, family="segmentation", input_size=(3, 520, 520), torchvision="fcn_resnet50")
register_model(
    "deeplabv3_resnet50",
    DeepLabV3ResNet50,
    family="segmentation",
    input_size=(3, 520, 520),
    torchvision="deeplabv3_resnet50",
)
