"""The closed forms of FORMULAS.md as calculators. Each is tested against the analyser on a real module.

Symbols: K kernel size, S stride, P padding, D dilation, C_in/C_out channels, G groups, r SE
reduction, k growth rate, φ compound coefficient.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import InvalidArgumentError


def _pos(name: str, value: object, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidArgumentError(f"{name} must be an integer ≥ {minimum}; got {value!r}")
    return value


def _per_axis(name: str, value: int | Sequence[int], dims: int) -> tuple[int, ...]:
    _pos("dims", dims)
    if not isinstance(value, (int, Sequence)) or isinstance(value, str):
        raise InvalidArgumentError(f"{name} must be an integer or one integer per spatial axis; got {value!r}")
    vals = (value,) * dims if isinstance(value, int) else tuple(value)
    if len(vals) != dims:
        raise InvalidArgumentError(f"{name} needs {dims} values (one per spatial axis); got {value!r}")
    return tuple(_pos(name, v) for v in vals)


# -- convolution layer ---------------------------------------------------------------------------


def conv_params(
    kernel_size: int | Sequence[int],
    in_channels: int,
    out_channels: int,
    *,
    groups: int = 1,
    bias: bool = True,
    dims: int = 2,
) -> int:
    """(K^d · C_in/G + 1) · C_out — the +1 is the bias. Independent of H and W."""
    k = _per_axis("kernel_size", kernel_size, dims)
    _pos("in_channels", in_channels), _pos("out_channels", out_channels), _pos("groups", groups)
    if in_channels % groups or out_channels % groups:
        raise InvalidArgumentError(
            f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}"
        )
    return (math.prod(k) * in_channels // groups + (1 if bias else 0)) * out_channels


def dense_params(height: int, width: int, in_channels: int, out_channels: int) -> int:
    """A fully connected layer between two H×W×C maps: (H·W·C_in)·(H·W·C_out) weights."""
    _pos("height", height), _pos("width", width)
    return height * width * _pos("in_channels", in_channels) * height * width * _pos("out_channels", out_channels)


def conv_output_size(input_size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """O = floor((I + 2P − D·(K−1) − 1)/S) + 1."""
    _pos("input_size", input_size), _pos("kernel_size", kernel_size), _pos("stride", stride)
    _pos("padding", padding, 0), _pos("dilation", dilation)
    out = (input_size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1
    if out < 1:
        raise InvalidArgumentError(
            f"a {kernel_size}-wide kernel (dilation {dilation}) does not fit an input of {input_size} "
            f"with padding {padding}"
        )
    return out


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """ "Same" padding at stride 1, odd K: P = D·(K−1)/2."""
    if _pos("kernel_size", kernel_size) % 2 == 0:
        raise InvalidArgumentError(f"symmetric 'same' padding needs an odd kernel; got {kernel_size}")
    return _pos("dilation", dilation) * (kernel_size - 1) // 2


def conv_macs(
    output_size: int | Sequence[int],
    kernel_size: int | Sequence[int],
    in_channels: int,
    out_channels: int,
    *,
    groups: int = 1,
    batch: int = 1,
    dims: int = 2,
) -> int:
    """H_out·W_out·C_out·K·K·C_in/G multiply–accumulates (per sample; × batch). FLOPs ≈ 2 × MACs."""
    out = _per_axis("output_size", output_size, dims)
    k = _per_axis("kernel_size", kernel_size, dims)
    _pos("in_channels", in_channels), _pos("out_channels", out_channels), _pos("groups", groups)
    if in_channels % groups or out_channels % groups:
        raise InvalidArgumentError(
            f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}"
        )
    return _pos("batch", batch) * math.prod(out) * out_channels * math.prod(k) * in_channels // groups


# -- receptive field -----------------------------------------------------------------------------


def stacked_receptive_field(n: int, kernel_size: int = 3) -> int:
    """n stacked K×K convs at stride 1: RF = n·(K−1) + 1 (two 3×3 → 5, three → 7, five → 11)."""
    return _pos("n", n, 0) * (_pos("kernel_size", kernel_size) - 1) + 1


@dataclass(frozen=True)
class FieldStep:
    """Receptive field after one layer of a stack: size r, jump j, start c (centre of unit 0)."""

    size: float
    jump: float
    start: float


def receptive_field_stack(layers: Sequence[Sequence[int]]) -> list[FieldStep]:
    """The recurrence over layers (k, s[, p[, d]]): j_l = j_{l−1}·s_l, r_l = r_{l−1} + d_l(k_l−1)·j_{l−1},
    c_l = c_{l−1} + (d_l(k_l−1)/2 − p_l)·j_{l−1}; with r_0 = 1, j_0 = 1, c_0 = 0. Pooling layers count
    as layers with their own k and s. Returns the field after every layer."""
    if not isinstance(layers, Sequence) or isinstance(layers, str):
        raise InvalidArgumentError(f"layers must be a list of (k, s[, p[, d]]); got {layers!r}")
    r, j, c = 1.0, 1.0, 0.0
    steps = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, Sequence) or isinstance(layer, str) or not 1 <= len(layer) <= 4:
            raise InvalidArgumentError(f"layer {i}: expected (k, s[, p[, d]]); got {layer!r}")
        k, s, p, d = (*layer, *(1, 1, 0, 1)[len(layer) :])
        _pos(f"layer {i} kernel", k), _pos(f"layer {i} stride", s), _pos(f"layer {i} padding", p, 0)
        _pos(f"layer {i} dilation", d)
        ext = d * (k - 1)
        r, c, j = r + ext * j, c + (ext / 2 - p) * j, j * s
        steps.append(FieldStep(r, j, c))
    return steps


def dilated_kernel_size(kernel_size: int, dilation: int) -> int:
    """K_eff = K + (K−1)(D−1): a 3×3 with D = 2 covers 5×5 with 9 weights."""
    k = _pos("kernel_size", kernel_size)
    return k + (k - 1) * (_pos("dilation", dilation) - 1)


# -- cost comparisons ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """Two ways to do the same job: their weight counts and the ratio second/first."""

    first: int
    second: int

    @property
    def ratio(self) -> float:
        return self.second / self.first

    @property
    def saving(self) -> float:
        return 1 - self.ratio


def stacked_vs_single(channels: int, kernel_size: int = 3, n: int = 2) -> Comparison:
    """n stacked K×K convs (no bias) against one conv with the same field, K' = n(K−1)+1, at C channels:
    n·K²·C² vs K'²·C² (two 3×3 vs one 5×5: 18C² vs 25C², 28% fewer; three: 27C² vs 49C²)."""
    c, n = _pos("channels", channels), _pos("n", n)  # n = 0 would compare nothing against a 1×1 conv
    single = stacked_receptive_field(n, kernel_size)
    return Comparison(first=single * single * c * c, second=n * kernel_size * kernel_size * c * c)


def pointwise_vs_kxk(in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = True) -> Comparison:
    """1×1 conv: C_in·C_out (+C_out) weights, against a K×K conv at the same widths (9× more for K = 3)."""
    return Comparison(
        first=conv_params(kernel_size, in_channels, out_channels, bias=bias),
        second=conv_params(1, in_channels, out_channels, bias=bias),
    )


def separable_vs_standard(kernel_size: int, in_channels: int, out_channels: int) -> Comparison:
    """Standard K²·C_in·C_out vs depthwise + pointwise K²·C_in + C_in·C_out (no bias); ratio
    1/C_out + 1/K² (K = 3, C_in = C_out = 256: 589,824 vs 67,840, 8.7× cheaper)."""
    k = _pos("kernel_size", kernel_size)
    cin, cout = _pos("in_channels", in_channels), _pos("out_channels", out_channels)
    return Comparison(first=k * k * cin * cout, second=k * k * cin + cin * cout)


def separable_ratio(kernel_size: int, out_channels: int) -> float:
    """The closed form of the ratio: 1/C_out + 1/K²."""
    return 1 / _pos("out_channels", out_channels) + 1 / _pos("kernel_size", kernel_size) ** 2


def se_params(channels: int, reduction: int = 16, bias: bool = True) -> int:
    """Squeeze-and-excitation W_1: C → C/r, W_2: C/r → C: 2C²/r weights (+ C/r + C biases)."""
    c, r = _pos("channels", channels), _pos("reduction", reduction)
    hidden = max(1, c // r)
    return 2 * c * hidden + ((hidden + c) if bias else 0)


def densenet_input_channels(initial_channels: int, growth_rate: int, layer: int) -> int:
    """Layer l of a dense block reads [x_0, …, x_{l−1}]: k_0 + k·(l−1) channels."""
    return _pos("initial_channels", initial_channels) + _pos("growth_rate", growth_rate) * (_pos("layer", layer) - 1)


@dataclass(frozen=True)
class CompoundScale:
    """EfficientNet scaling at coefficient φ: depth α^φ, width β^φ, resolution γ^φ; FLOPs × (αβ²γ²)^φ."""

    depth: float
    width: float
    resolution: float
    flops: float


def compound_scaling(phi: float, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15) -> CompoundScale:
    """d = α^φ, w = β^φ, r = γ^φ; a plain CNN's FLOPs scale as d·w²·r² = (αβ²γ²)^φ ≈ 2^φ."""
    for name, v in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not _real(v) or not 1 <= v <= sys.float_info.max:
            raise InvalidArgumentError(f"{name} must be a finite number ≥ 1; got {v!r}")
    if not _real(phi) or not -math.inf < phi < math.inf:
        raise InvalidArgumentError(f"phi must be a finite number; got {phi!r}")
    log_base = math.log(alpha) + 2 * math.log(beta) + 2 * math.log(gamma)  # ln(α·β²·γ²): α·β²·γ² may overflow
    limit = 0.99 * math.log(sys.float_info.max) / log_base if log_base > 0 else math.inf
    if abs(phi) >= limit:  # beyond, d·w²·r² overflows to inf (or underflows to 0)
        raise InvalidArgumentError(
            f"phi must be a finite number with |phi| < {limit:.4g} at α = {alpha:g}, "
            f"β = {beta:g}, γ = {gamma:g} (FLOPs scale by (α·β²·γ²)^φ); got {phi!r}"
        )
    d, w, r = alpha**phi, beta**phi, gamma**phi
    return CompoundScale(d, w, r, d * w * w * r * r)


def _real(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def inflation_cost(kernel_time: int, kernel_size: int, in_channels: int, out_channels: int) -> Comparison:
    """A k_t×k×k 3D conv against the k×k 2D conv it inflates, per output position: k_t× the MACs
    (and weights); I3D initialises it with W_3d[:, :, t] = W_2d / k_t."""
    return Comparison(
        first=conv_params(kernel_size, in_channels, out_channels, bias=False),
        second=conv_params((kernel_time, kernel_size, kernel_size), in_channels, out_channels, bias=False, dims=3),
    )


def vit_tokens(image_size: int, patch_size: int, cls_token: bool = True) -> int:
    """ViT: (H/P)² patches (+1 CLS token); 224 at P = 16 → 197."""
    if _pos("image_size", image_size) % _pos("patch_size", patch_size):
        raise InvalidArgumentError(f"patch size {patch_size} must divide the image size {image_size}")
    return (image_size // patch_size) ** 2 + (1 if cls_token else 0)
