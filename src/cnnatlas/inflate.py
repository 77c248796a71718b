"""Inflation — Carreira & Zisserman, "Quo Vadis, Action Recognition? A New Model and the Kinetics
Dataset", CVPR 2017 (I3D), §2.4.

`inflate(model_2d)` turns an image network into a video network with the same layers one
dimension up. Every 2-D filter W of size k_h×k_w becomes a 3-D filter of size T×k_h×k_w made of T
copies of W divided by T:

    W_3d[:, :, t] = W_2d / T,   t = 0 … T − 1.

On a "boring video" — one image repeated over time — each output frame of the 3-D conv is then
Σ_t W/T · x = W · x, the 2-D output: the inflated network starts from what the image network knew.
That holds exactly at every frame when time is padded by repeating the end frames
(`time_padding="replicate"`: a boring video stays boring through every layer, so the whole network
gives the 2-D model's output) and at the frames whose temporal receptive field stays inside the clip
when time is zero-padded (`time_padding="zeros"`, I3D's own choice).

The rule, layer by layer (kernel k, stride s, padding p of the 2-D layer):

* Conv2d → Conv3d with time kernel T = `time_kernel` (None: T = k for a square k×k kernel — I3D's
  7×7 → 7×7×7, 3×3 → 3×3×3 — and 1 otherwise; an int: that T for every kernel larger than 1×1;
  a callable (name, conv) → T for full control), time padding (T − 1)//2 (length kept at stride 1),
  time stride s when `time_stride="same"`, else 1. Groups, dilation in space and bias are kept.
* MaxPool2d/AvgPool2d → 3-D pools k×k×k with stride s and padding p in time (`time_stride="same"`),
  except the first `skip_time_pools` strided pools, which pool in space only (1×k×k, stride 1 in
  time) — I3D keeps time whole in its first two pools (skip_time_pools=2). With `time_stride=1`
  no pool touches time.
* Adaptive pools to o_h×o_w → 1×o_h×o_w: the head averages over time as well.
* BatchNorm2d, InstanceNorm2d, Dropout2d → their 3-D twins with the same state; GroupNorm,
  Linear, activations and every dimension-free operation are kept as they are.
* cnnatlas's parameter-free option-A shortcut and squeeze-excitation are made 3-D.

A `Classifier` of the zoo becomes one for (N, C, T, H, W) inputs (`dims = 3`). Layers with a
2-D-only meaning cnnatlas cannot inflate (transposed convs, a 2-D layer it does not know) raise
`InvalidArgumentError` naming them; functional 2-D code inside a custom `forward` is not seen.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .errors import InvalidArgumentError
from .layers.residual import ZeroPadShortcut
from .layers.squeeze_excite import SqueezeExcite

TIME_PADDINGS = ("zeros", "replicate")
TimeKernel = int | Callable[[str, nn.Conv2d], int] | None


class _ReplicateTime:
    """Mixin: pad the time axis by repeating the first and last frames before the layer runs (the
    layer itself pads only space)."""

    time_pad: int = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_pad:
            x = F.pad(x, (0, 0, 0, 0, self.time_pad, self.time_pad), mode="replicate")
        return super().forward(x)  # type: ignore[misc]

    def extra_repr(self) -> str:
        return super().extra_repr() + f", time_pad={self.time_pad} (replicate)"  # type: ignore[misc]


class ReplicateTimeConv3d(_ReplicateTime, nn.Conv3d):
    """Conv3d whose time axis is padded by repeating the end frames; space is zero-padded."""


class ReplicateTimeAvgPool3d(_ReplicateTime, nn.AvgPool3d):
    """AvgPool3d whose time axis is padded by repeating the end frames."""


class ZeroPadShortcut3d(ZeroPadShortcut):
    """Option A on video: S(x) = pad_C(x[:, :, ::s_t, ::s, ::s]); no parameters."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, time_stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, stride)
        self.time_stride = time_stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.time_stride, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, 0, 0, self.out_channels - self.in_channels))


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


class _Inflater:
    """One pass over a model's modules, replacing each 2-D layer by its inflated twin."""

    def __init__(self, time_kernel: TimeKernel, time_padding: str, time_stride: str | int, skip_time_pools: int):
        self.time_kernel = time_kernel
        self.replicate = time_padding == "replicate"
        self.stride_time = time_stride == "same"
        self.pools_left_to_skip = skip_time_pools

    # -- the rule for each kind of layer ----------------------------------------------------

    def kernel_t(self, name: str, conv: nn.Conv2d) -> int:
        kh, kw = conv.kernel_size
        if callable(self.time_kernel):
            t = self.time_kernel(name, conv)
            if not isinstance(t, int) or isinstance(t, bool) or not 1 <= t <= MAX_TIME_KERNEL:
                raise InvalidArgumentError(
                    f"inflate: time_kernel({name!r}, conv) must return an integer from 1 to "
                    f"{MAX_TIME_KERNEL}; got {t!r}"
                )
            return t
        if self.time_kernel is None:
            return kh if kh == kw else 1
        return self.time_kernel if (kh, kw) != (1, 1) else 1

    def time_step(self, stride: tuple[int, int]) -> int:
        return stride[0] if self.stride_time and stride[0] == stride[1] else 1

    def conv(self, name: str, m: nn.Conv2d) -> nn.Conv3d:
        if isinstance(m.padding, str):
            raise InvalidArgumentError(f"inflate: {name} has padding={m.padding!r}; give the 2-D conv numeric padding")
        t = self.kernel_t(name, m)
        pt = (t - 1) // 2
        replicate = self.replicate and pt > 0 and m.padding_mode == "zeros"
        cls = ReplicateTimeConv3d if replicate else nn.Conv3d
        new = cls(
            m.in_channels,
            m.out_channels,
            (t, *m.kernel_size),
            stride=(self.time_step(m.stride), *m.stride),
            padding=(0 if replicate else pt, *m.padding),
            dilation=(1, *m.dilation),
            groups=m.groups,
            bias=m.bias is not None,
            padding_mode=m.padding_mode,
            device=m.weight.device,
            dtype=m.weight.dtype,
        )
        if replicate:
            new.time_pad = pt
        with torch.no_grad():  # W_3d[:, :, t] = W_2d / T
            new.weight.copy_(m.weight.unsqueeze(2).expand_as(new.weight) / t)
            if m.bias is not None:
                new.bias.copy_(m.bias)
        new.train(m.training)
        return new

    def pool(self, name: str, m: nn.MaxPool2d | nn.AvgPool2d) -> nn.Module:
        k, s, p = _pair(m.kernel_size), _pair(m.stride), _pair(m.padding)
        pools_time = self.stride_time and k[0] == k[1] and s[0] == s[1]
        if pools_time and s[0] > 1 and self.pools_left_to_skip > 0:
            self.pools_left_to_skip -= 1
            pools_time = False
        kt, st, pt = (k[0], s[0], p[0]) if pools_time else (1, 1, 0)
        if isinstance(m, nn.MaxPool2d):
            # Max over a padded window always includes the end frame, so −∞ padding and repeated
            # end frames give the same result: max pools need no special case for "replicate".
            return nn.MaxPool3d(
                (kt, *k),
                (st, *s),
                (pt, *p),
                dilation=(1, *_pair(m.dilation)),
                return_indices=m.return_indices,
                ceil_mode=m.ceil_mode,
            )
        divisor = None if m.divisor_override is None else m.divisor_override * kt
        if self.replicate and pt:
            new = ReplicateTimeAvgPool3d((kt, *k), (st, *s), (0, *p), m.ceil_mode, m.count_include_pad, divisor)
            new.time_pad = pt
            return new
        return nn.AvgPool3d((kt, *k), (st, *s), (pt, *p), m.ceil_mode, m.count_include_pad, divisor)

    def shortcut(self, m: ZeroPadShortcut) -> ZeroPadShortcut3d:
        return ZeroPadShortcut3d(m.in_channels, m.out_channels, m.stride, m.stride if self.stride_time else 1)

    def replace(self, name: str, m: nn.Module) -> nn.Module | None:
        """The 3-D twin of `m`, or None when `m` has no 2-D meaning of its own."""
        if isinstance(m, nn.Conv2d):
            return self.conv(name, m)
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            return self.pool(name, m)
        if isinstance(m, nn.AdaptiveAvgPool2d):
            return nn.AdaptiveAvgPool3d((1, *_pair(m.output_size)))
        if isinstance(m, nn.AdaptiveMaxPool2d):
            return nn.AdaptiveMaxPool3d((1, *_pair(m.output_size)), m.return_indices)
        if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)):
            cls = nn.BatchNorm3d if isinstance(m, nn.BatchNorm2d) else nn.InstanceNorm3d
            state = m.state_dict()
            ref = next((v for v in state.values() if v.is_floating_point()), torch.empty(0))
            new = cls(
                m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats, device=ref.device, dtype=ref.dtype
            )
            new.load_state_dict(state)
            new.train(m.training)
            return new
        if isinstance(m, nn.Dropout2d):
            return nn.Dropout3d(m.p, m.inplace)
        if type(m) is ZeroPadShortcut:
            return self.shortcut(m)
        if isinstance(m, SqueezeExcite):
            m.dims = 3  # its two 1×1 convs are inflated as children
            return None
        if isinstance(m, (nn.ConvTranspose2d, nn.Conv1d, nn.Conv3d, nn.MaxPool3d, nn.AvgPool3d, nn.BatchNorm3d)) or (
            not list(m.children()) and "2d" in type(m).__name__.lower()
        ):
            raise InvalidArgumentError(
                f"inflate: cannot inflate {name or 'the model'} ({type(m).__name__}); "
                "inflate takes 2-D models built from Conv2d, pools, norms and Linear"
            )
        return None

    def run(self, module: nn.Module, prefix: str = "") -> None:
        for child_name, child in list(module.named_children()):
            name = f"{prefix}{child_name}"
            new = self.replace(name, child)
            if new is not None:
                setattr(module, child_name, new)
            else:
                self.run(child, name + ".")


def _takes_two(fn: Callable) -> bool:
    try:
        inspect.signature(fn).bind("name", None)
    except TypeError:
        return False
    except ValueError:  # no signature to read (a builtin): let the call tell
        pass
    return True


MAX_TIME_KERNEL = 1024  # frames; I3D uses 3 to 7, and every 3-D filter holds time_kernel copies of the 2-D one


def inflate(
    model_2d: nn.Module,
    time_kernel: TimeKernel = None,
    time_padding: str = "zeros",
    time_stride: str | int = "same",
    skip_time_pools: int = 0,
) -> nn.Module:
    """A 3-D copy of `model_2d` whose filters are the 2-D ones repeated T times along time and
    divided by T (I3D inflation; the rule for each layer is in this module's docstring).

    The 2-D model is left unchanged. A boring video (one image repeated over time) gives the 2-D
    model's output: everywhere with `time_padding="replicate"`, at frames whose temporal field
    stays inside the clip with `"zeros"`.

    >>> video_net = inflate(create_model("resnet18"), time_padding="replicate")
    >>> video_net(torch.randn(1, 3, 8, 112, 112)).shape
    torch.Size([1, 1000])
    """
    if not isinstance(model_2d, nn.Module):
        raise InvalidArgumentError(f"inflate expects a torch.nn.Module; got {type(model_2d).__name__}")
    if time_padding not in TIME_PADDINGS:
        raise InvalidArgumentError(f"inflate: time_padding must be 'zeros' or 'replicate'; got {time_padding!r}")
    if time_stride not in ("same", 1):
        raise InvalidArgumentError(
            f"inflate: time_stride must be 'same' (stride time as space) or 1; got {time_stride!r}"
        )
    if not (time_kernel is None or callable(time_kernel)) and (
        not isinstance(time_kernel, int) or isinstance(time_kernel, bool) or not 1 <= time_kernel <= MAX_TIME_KERNEL
    ):
        raise InvalidArgumentError(
            f"inflate: time_kernel must be None, an integer from 1 to {MAX_TIME_KERNEL} or a "
            f"callable; got {time_kernel!r}"
        )
    if callable(time_kernel) and not _takes_two(time_kernel):
        raise InvalidArgumentError(f"inflate: a callable time_kernel must take (name, conv2d); got {time_kernel!r}")
    if not isinstance(skip_time_pools, int) or isinstance(skip_time_pools, bool) or skip_time_pools < 0:
        raise InvalidArgumentError(f"inflate: skip_time_pools must be an integer ≥ 0; got {skip_time_pools!r}")
    if getattr(model_2d, "dims", 2) != 2:
        raise InvalidArgumentError(
            f"inflate: {type(model_2d).__name__} is a {model_2d.dims}-D model; inflate turns 2-D models into 3-D ones"
        )
    model = copy.deepcopy(model_2d)
    inflate_(model, time_kernel, time_padding, time_stride, skip_time_pools)
    return model


def inflate_(
    model: nn.Module,
    time_kernel: TimeKernel = None,
    time_padding: str = "zeros",
    time_stride: str | int = "same",
    skip_time_pools: int = 0,
) -> nn.Module:
    """`inflate`, in place (what `I3D` uses on the GoogLeNet it has just built)."""
    _Inflater(time_kernel, time_padding, time_stride, skip_time_pools).run(model)
    if hasattr(model, "dims"):
        model.dims = 3
    if hasattr(model, "_min_size"):
        model._min_size = None
    size = getattr(model, "default_input_size", None)
    if size is not None and len(size) == 3:
        model.default_input_size = (size[0], 16, *size[1:])
    model.inflation = {
        "time_kernel": time_kernel,
        "time_padding": time_padding,
        "time_stride": time_stride,
        "skip_time_pools": skip_time_pools,
    }
    return model
