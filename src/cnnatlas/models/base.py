"""What every classifier of the zoo shares: the forward_features → forward_head split with the usual
head (pool → dropout → FC), input checks that name the smallest valid input, the dilation plan of
segmentation backbones and the default initialisation. Argument checks live in `layers.checks`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from ..errors import InputShapeError, InvalidArgumentError
from ..layers.checks import check_int

_AXES = {1: "length", 2: "height × width", 3: "time × height × width"}


@dataclass(frozen=True)
class FeatureInfo:
    """One stage output a user can take features from: its name, channels and total stride."""

    name: str
    channels: int
    reduction: int


class Classifier(nn.Module):
    """Base of every classifier: logits = forward_head(forward_features(x)).

    Subclasses build their layers and fill `feature_info`. The defaults: `forward_features` (input →
    last feature map) runs `self.features`; `forward_head` is global average pool → `self.drop` →
    `self.fc` (`pre_logits=True` stops before the FC), the layers `add_head` builds. A family with
    another trunk or head overrides them.
    `forward` checks the input's rank and channels first and, when the network cannot take an
    input that small, raises an error naming the smallest size it can.
    """

    dims: int = 2  # spatial dimensions of the input: 1 audio, 2 image, 3 video

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        check_int(type(self).__name__, "num_classes", num_classes)
        check_int(type(self).__name__, "in_channels", in_channels)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.feature_info: list[FeatureInfo] = []
        self._min_size: int | None = None

    def add_head(self, num_features: int, drop_rate: float) -> None:
        """The usual head on `num_features` channels: global average pool, dropout, FC."""
        self.pool = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)[self.dims - 1](1)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(num_features, self.num_classes)
        self.num_features = num_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.pool(x).flatten(1))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        try:
            return self.forward_head(self.forward_features(x))
        except (RuntimeError, ValueError):
            spatial = tuple(x.shape[2:])
            if spatial and min(spatial) < self.min_input_size:
                raise self._too_small(spatial) from None
            raise

    # -- input checks -------------------------------------------------------------------------

    def check_input(self, x: torch.Tensor) -> None:
        """Rank and channels, checked before any arithmetic."""
        name = type(self).__name__
        if not isinstance(x, torch.Tensor):
            raise InputShapeError(f"{name} expects a torch.Tensor; got {type(x).__name__}")
        want = self.dims + 2
        if x.dim() != want:
            layout = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, T, H, W)"}[self.dims]
            raise InputShapeError(
                f"{name} expects a {want}-D input {layout}; got shape {tuple(x.shape)}"
                + (" (add a batch dimension with x.unsqueeze(0))" if x.dim() == want - 1 else "")
            )
        if x.shape[1] != self.in_channels:
            raise InputShapeError(
                f"{name} was built with in_channels={self.in_channels} but the input has "
                f"{x.shape[1]} channels (shape {tuple(x.shape)})"
            )

    @property
    def min_input_size(self) -> int:
        """Smallest spatial size (per axis) the network accepts, found by tracing on meta tensors."""
        if self._min_size is None:
            self._min_size = smallest_input_size(self)
        return self._min_size

    def _too_small(self, spatial: tuple[int, ...]) -> InputShapeError:
        m = self.min_input_size
        smallest = "×".join([str(m)] * self.dims)
        return InputShapeError(
            f"{type(self).__name__}: input {_AXES[self.dims]} {'×'.join(map(str, spatial))} is too small; "
            f"the smallest input this network accepts is {smallest}"
        )


def _refuse_empty(module: nn.Module, args: object, output: object) -> None:
    """Forward hook of the meta trace: a module whose output has a zero-length axis did not run on its
    input. Some torch versions' meta kernels give such a map where the real kernel raises (a 5×5
    convolution on a 7×4 map)."""
    outputs = output if isinstance(output, (tuple, list)) else (output,)
    if any(isinstance(t, torch.Tensor) and t.numel() == 0 for t in outputs):
        raise ValueError(f"{type(module).__name__} gives an empty map")


def _runs_on_meta(model: Classifier, size: int) -> bool:
    """Does the model's forward succeed on a meta tensor of this spatial size (no real arithmetic), with
    no module's output empty? Evaluated in eval mode with a batch of 2, so batch-norm statistics never
    decide the answer."""
    state = {k: torch.empty_like(v, device="meta") for k, v in model.state_dict(keep_vars=True).items()}
    x = torch.empty((2, model.in_channels) + (size,) * model.dims, device="meta")

    class _Unchecked(nn.Module):
        def __init__(self, inner: Classifier) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner.forward_head(self.inner.forward_features(x))

    wrapper = _Unchecked(model)
    modes = {m: m.training for m in model.modules()}
    hooks = [m.register_forward_hook(_refuse_empty) for m in model.modules()]
    model.eval()
    try:
        functional_call(wrapper, {f"inner.{k}": v for k, v in state.items()}, (x,))
        return True
    except (RuntimeError, ValueError, IndexError):
        return False
    finally:
        for hook in hooks:
            hook.remove()
        for m, mode in modes.items():
            m.training = mode


def smallest_input_size(model: Classifier, limit: int = 4096) -> int:
    """Binary search for the smallest square/cubic input the model runs on (meta tensors only).
    The search starts below the model's registered input size when it has one."""
    hi = max(getattr(model, "default_input_size", (limit,))[1:] or (limit,))
    if not _runs_on_meta(model, hi):
        hi = limit
        if not _runs_on_meta(model, limit):
            raise InputShapeError(f"{type(model).__name__} does not run at any input size up to {limit}")
    lo = 1  # invariant: hi runs
    if _runs_on_meta(model, lo):
        return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _runs_on_meta(model, mid):
            hi = mid
        else:
            lo = mid
    return hi


# -- dilated stages -------------------------------------------------------------------------------


def dilation_plan(
    owner: str, reduction: int, strides: tuple[int, ...], output_stride: int | None
) -> list[tuple[int, int, int]]:
    """(stride, first_dilation, dilation) of each stage so the last map is `output_stride` times
    smaller than the input: a stage that would go past it keeps its resolution (stride 1) and
    multiplies the dilation by its stride instead — DeepLab's rule (Chen et al. 2017, §3.1;
    torchvision's `replace_stride_with_dilation`). The first block of such a stage still uses the
    previous dilation, the others the new one. `reduction` is the total stride before the first
    stage; `output_stride=None` keeps every stride.
    """
    reachable = [reduction]
    for s in strides:
        reachable.append(reachable[-1] * s)
    if output_stride is None:
        output_stride = reachable[-1]
    if not isinstance(output_stride, int) or isinstance(output_stride, bool) or output_stride not in reachable:
        choices = ", ".join(map(str, sorted(set(reachable))))
        raise InvalidArgumentError(
            f"{owner}: output_stride must be one of {choices} (or None: {reachable[-1]}); got {output_stride!r}"
        )
    plan, dilation = [], 1
    for s in strides:
        if reduction * s > output_stride:
            plan.append((1, dilation, dilation * s))
            dilation *= s
        else:
            reduction *= s
            plan.append((s, dilation, dilation))
    return plan


# -- initialisation -------------------------------------------------------------------------------


def init_weights(model: nn.Module, linear_std: float = 0.01) -> None:
    """He (Kaiming) normal for convolutions (fan-out, ReLU gain), N(0, linear_std²) for linear
    layers, zero biases, unit/zero affine norms — torchvision's default for these families."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters, each shared tensor counted once."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():  # parameters() already yields a shared tensor once
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def flat_features(x: torch.Tensor) -> int:
    """Number of features per sample once flattened."""
    return math.prod(x.shape[1:])
