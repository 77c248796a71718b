"""What each operator costs: multiply–accumulates, other floating-point operations, or nothing.

MACs follow the convention of published model tables (torchvision's "GFLOPS", the papers'
"Mult-Adds"): only convolutions, linear layers and matrix products, one MAC per multiply–add,
biases not included.

    convolution      N · prod(S_out) · C_out · prod(K) · C_in/G   (= N · prod(S_out) · numel(W))
    transposed conv  N · prod(S_in) · numel(W)                    (each input scatters its kernel)
    linear / mm      M · K · N   (addmm: + M·N bias additions, counted as other FLOPs)
    bmm / einsum     B · M · K · N   (einsum and matmul reach us as bmm/mm)

Everything else that computes is reported apart, as `other_flops`, with one simple convention:
one FLOP per output element of an element-wise operator (ReLU, addition, sigmoid, SiLU, …);
normalisation 2 per element at inference (y = a·x + b with folded statistics) and 5 when the
statistics are computed (training batch norm, layer and group norm); pooling one per window
element per output; reductions one per input element; softmax 3 per element; bias additions one per
output element; linear upsampling 2^d per output element; anti-aliased upsampling (PIL's filter,
run as two separable passes) 2 per tap of each pass, a pass along an axis shrunk by r > 1 having
⌈support · r⌉ taps per output (support 2 bilinear, 4 bicubic); grid sampling one per tap per output
element (1 nearest, 2^d linear, 4^d bicubic). Data movement (views, copies, padding, concatenation,
im2col/col2im, unsafe_split, nonzero, unique) costs 0 and is known; torchvision's NMS is 10 FLOPs
per pair of boxes (an upper bound), RoI align 4 per bilinear sample. Any other operator is
*unsupported*: counted by name, never silently taken as zero.
"""

from __future__ import annotations

import math
from typing import Any

import torch

aten = torch.ops.aten


def _numel(t: Any) -> int:
    return t.numel() if isinstance(t, torch.Tensor) else 0


def _out0(outs):
    return outs[0] if isinstance(outs, (tuple, list)) else outs


# -- multiply–accumulates -----------------------------------------------------------------------


def conv_macs(x: torch.Tensor, w: torch.Tensor, out: torch.Tensor, transposed: bool) -> int:
    """N · prod(S_out) · numel(W); transposed: N · prod(S_in) · numel(W)."""
    spatial = x.shape[2:] if transposed else out.shape[2:]
    return out.shape[0] * math.prod(spatial) * w.numel()


def _conv(args, kwargs, outs):
    x, w, bias = args[0], args[1], args[2]
    out = _out0(outs)
    transposed = bool(args[6]) if len(args) > 6 else False
    return conv_macs(x, w, out, transposed), (out.numel() if bias is not None else 0)


def _mm(args, kwargs, outs):
    a, b = args[0], args[1]
    return a.shape[0] * a.shape[1] * b.shape[1], 0


def _addmm(args, kwargs, outs):
    a, b = args[1], args[2]
    return a.shape[0] * a.shape[1] * b.shape[1], _numel(outs)


def _bmm(args, kwargs, outs):
    a, b = args[0], args[1]
    return a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2], 0


def _baddbmm(args, kwargs, outs):
    a, b = args[1], args[2]
    return a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2], _numel(outs)


def _mv(args, kwargs, outs):
    return args[0].shape[0] * args[0].shape[1], 0


def _dot(args, kwargs, outs):
    return args[0].numel(), 0


def _sdpa(args, kwargs, outs):
    """Fused attention: Q·Kᵀ and A·V products, softmax as other FLOPs."""
    q, k, v = args[0], args[1], args[2]
    batch = math.prod(q.shape[:-2])
    L, S, E, Ev = q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]
    return batch * L * S * (E + Ev), 3 * batch * L * S


MAC_OPS = {
    aten.convolution: _conv,
    aten._convolution: _conv,
    aten.mm: _mm,
    aten.addmm: _addmm,
    aten.bmm: _bmm,
    aten.baddbmm: _baddbmm,
    aten.mv: _mv,
    aten.dot: _dot,
    aten._scaled_dot_product_flash_attention: _sdpa,
    aten._scaled_dot_product_efficient_attention: _sdpa,
    aten._scaled_dot_product_flash_attention_for_cpu: _sdpa,
    aten._scaled_dot_product_cudnn_attention: _sdpa,
}


# -- other FLOPs --------------------------------------------------------------------------------


def _per_out(n: int):
    return lambda args, kwargs, outs: (0, n * _numel(_out0(outs)))


def _per_in(n: int):
    return lambda args, kwargs, outs: (0, n * _numel(args[0]))


def _batch_norm(args, kwargs, outs):
    training = args[5] if len(args) > 5 and isinstance(args[5], bool) else False
    return 0, (5 if training else 2) * _numel(args[0])


def _pool(n: int):
    def cost(args, kwargs, outs):
        k = args[1]
        window = (
            math.prod(k)
            if isinstance(k, (list, tuple)) and len(k) == n
            else (k[0] if isinstance(k, (list, tuple)) else k) ** n
        )
        return 0, window * _numel(_out0(outs))

    return cost


def _adaptive(args, kwargs, outs):
    return 0, _numel(args[0])


def _linear_upsample(d: int):
    return lambda args, kwargs, outs: (0, 2**d * _numel(outs))


def _aa_upsample(support: int):
    """Two separable passes, W then H (PIL/torch's order): 2 FLOPs per tap, ⌈support · max(1, in/out)⌉
    taps per output of each pass."""

    def cost(args, kwargs, outs):
        x, out = args[0], _out0(outs)
        (h_in, w_in), (h_out, w_out) = x.shape[-2:], out.shape[-2:]
        lead = math.prod(x.shape[:-2])
        taps_w = math.ceil(support * max(1.0, w_in / w_out))
        taps_h = math.ceil(support * max(1.0, h_in / h_out))
        return 0, 2 * lead * (h_in * w_out * taps_w + h_out * w_out * taps_h)

    return cost


def _nms(args, kwargs, outs):
    """An upper bound: every pair of the N boxes compared, 10 FLOPs an IoU (4 min/max, 2 differences, 1
    product for the intersection; 2 for the union; 1 division). NMS skips pairs with suppressed boxes."""
    n = args[0].shape[0] if isinstance(args[0], torch.Tensor) and args[0].dim() else 0
    return 0, 10 * n * (n - 1) // 2


def _roi_align(args, kwargs, outs):
    """4 FLOPs (bilinear taps) per sample, s² samples per output bin: s = sampling_ratio, or 2 where it is
    adaptive (-1: ⌈RoI side / bins⌉ depends on each box, so 2 is an estimate)."""
    ratio = args[5] if len(args) > 5 and isinstance(args[5], int) and args[5] > 0 else 2
    return 0, 4 * ratio * ratio * _numel(_out0(outs))


# torchvision's operators (torch.ops.torchvision.*), by name: torchvision need not be installed
TORCHVISION_OPS = {"nms": _nms, "roi_align": _roi_align, "roi_pool": _per_out(1)}


def _grid_sampler(d: int):
    """One FLOP per tap: 2^d (bilinear/trilinear), 1 (nearest), 4^d (bicubic) per output element."""

    def cost(args, kwargs, outs):
        mode = args[2] if len(args) > 2 else 0  # 0 bilinear, 1 nearest, 2 bicubic
        taps = {1: 1, 2: 4**d}.get(mode, 2**d)
        return 0, taps * _numel(_out0(outs))

    return cost


OTHER_OPS = {
    aten.native_batch_norm: _batch_norm,
    aten._native_batch_norm_legit: _batch_norm,
    aten._native_batch_norm_legit_no_training: _per_in(2),
    aten.native_layer_norm: _per_in(5),
    aten.native_group_norm: _per_in(5),
    aten.max_pool1d_with_indices: _pool(1),
    aten.max_pool2d_with_indices: _pool(2),
    aten.max_pool3d_with_indices: _pool(3),
    aten.max_pool1d: _pool(1),
    aten.max_pool2d: _pool(2),
    aten.max_pool3d: _pool(3),
    aten.avg_pool1d: _pool(1),
    aten.avg_pool2d: _pool(2),
    aten.avg_pool3d: _pool(3),
    aten._adaptive_avg_pool2d: _adaptive,
    aten._adaptive_avg_pool3d: _adaptive,
    aten.adaptive_max_pool1d: _adaptive,
    aten.adaptive_max_pool2d: _adaptive,
    aten.adaptive_max_pool3d: _adaptive,
    aten._softmax: _per_in(3),
    aten._log_softmax: _per_in(3),
    aten.upsample_linear1d: _linear_upsample(1),
    aten.upsample_bilinear2d: _linear_upsample(2),
    aten.upsample_bicubic2d: _linear_upsample(4),
    aten.upsample_trilinear3d: _linear_upsample(3),
    aten._upsample_bilinear2d_aa: _aa_upsample(2),
    aten._upsample_bicubic2d_aa: _aa_upsample(4),
    aten.grid_sampler_2d: _grid_sampler(2),
    aten.grid_sampler_3d: _grid_sampler(3),
    aten.var: _per_in(2),
    aten.std: _per_in(3),
    aten.var_mean: _per_in(3),
    aten.std_mean: _per_in(3),
    aten.native_dropout: _per_out(1),
    aten.bernoulli_: _per_out(1),
    aten.hardswish: _per_out(1),
    aten.hardswish_: _per_out(1),
    aten.glu: _per_out(1),
    aten._prelu_kernel: _per_out(1),
    aten.log_sigmoid_forward: _per_out(1),
    aten.where: _per_out(1),
    aten.floor_divide: _per_out(1),
    aten.cumsum: _per_in(1),
    aten.linalg_vector_norm: _per_in(2),
    aten.norm: _per_in(2),
}
# _safe_softmax (torch ≥ 2.5) is absent on the oldest torch the analyser supports.
if hasattr(aten, "_safe_softmax"):
    OTHER_OPS[aten._safe_softmax] = _per_in(3)

# Operators that move or create data, or only describe it: known, and free.
ZERO_COST = {
    aten.clone,
    aten.contiguous,
    aten._to_copy,
    aten.copy_,
    aten.copy,
    aten.cat,
    aten.stack,
    aten.constant_pad_nd,
    aten.reflection_pad1d,
    aten.reflection_pad2d,
    aten.reflection_pad3d,
    aten.replication_pad1d,
    aten.replication_pad2d,
    aten.replication_pad3d,
    aten.upsample_nearest1d,
    aten.upsample_nearest2d,
    aten.upsample_nearest3d,
    aten._upsample_nearest_exact1d,
    aten._upsample_nearest_exact2d,
    aten._upsample_nearest_exact3d,
    aten.pixel_shuffle,
    aten.pixel_unshuffle,
    aten.flip,
    aten.roll,
    aten.repeat,
    aten.tile,
    aten.index,
    aten._unsafe_index,
    aten.index_select,
    aten.gather,
    aten.embedding,
    aten.slice_scatter,
    aten.select_scatter,
    aten.index_put,
    aten.index_put_,
    aten.scatter,
    aten.masked_select,
    aten.empty,
    aten.empty_like,
    aten.empty_strided,
    aten.zeros,
    aten.zeros_like,
    aten.ones,
    aten.ones_like,
    aten.full,
    aten.full_like,
    aten.fill_,
    aten.zero_,
    aten.arange,
    aten.lift_fresh,
    aten.lift_fresh_copy,
    aten.scalar_tensor,
    aten.new_empty,
    aten.new_zeros,
    aten.new_ones,
    aten.new_full,
    aten.new_empty_strided,
    aten.split_with_sizes_copy,
    aten.unbind_copy,
    aten.clamp_min_,
    aten.set_,
    aten.resize_,
    aten._local_scalar_dense,
    aten.sym_size,
    aten.sym_numel,
    aten.sym_stride,
    aten.sym_storage_offset,
    aten.rand,
    aten.randn,
    aten.rand_like,
    aten.randn_like,
    aten.randint,
    aten.randperm,
    aten.normal_,
    aten.uniform_,
    aten.eye,
    aten.linspace,
    aten.argmax,
    aten.argmin,
    aten.topk,
    aten.sort,
    aten.tril,
    aten.triu,
    aten.masked_fill,
    aten.masked_fill_,
    aten.im2col,
    aten.col2im,
    aten.unsafe_split,
    aten.unsafe_split_with_sizes,
    aten.unsafe_chunk,
    aten.nonzero,
    aten._unique2,
    aten.unique_dim,
    aten.unique_consecutive,
    aten._unsafe_view,
    aten._reshape_alias,
    aten.reshape,
    aten.as_strided_,
    aten.view_copy,
}

_POINTWISE_TAG = torch.Tag.pointwise
_REDUCTION_TAG = getattr(torch.Tag, "reduction", None)
# Operators that torch's tags call pointwise, or reductions, only from versions after 2.4 on (torch 2.4
# has no reduction tag at all): named here so that the oldest supported torch counts them the same.
_POINTWISE_NAMES = frozenset(
    "celu celu_ elu elu_ hardshrink hardsigmoid hardsigmoid_ hardtanh hardtanh_ leaky_relu leaky_relu_ mish "
    "rad2deg rad2deg_ relu6 selu selu_ softplus softshrink threshold".split()
)
_REDUCTION_NAMES = frozenset(
    "all amax amin aminmax any argmax argmin count_nonzero linalg_vector_norm logsumexp max mean min nansum "
    "norm prod std std_mean sum var var_mean".split()
)


def is_pointwise(func) -> bool:
    """Whether an operator overload works element by element (torch's pointwise tag, or a name above)."""
    return _POINTWISE_TAG in func.tags or func.overloadpacket.__name__ in _POINTWISE_NAMES


def is_reduction(func) -> bool:
    """Whether an operator overload reduces its input (torch's reduction tag, or a name above)."""
    return (_REDUCTION_TAG is not None and _REDUCTION_TAG in func.tags) or (
        func.overloadpacket.__name__ in _REDUCTION_NAMES
    )


def cost_for(func) -> Any:
    """The cost function of one operator overload, resolved once: (args, kwargs, outs) →
    (MACs, other FLOPs, supported)."""
    packet = func.overloadpacket
    if getattr(func, "namespace", "aten") == "torchvision" and packet.__name__ in TORCHVISION_OPS:
        fn = TORCHVISION_OPS[packet.__name__]
        return lambda args, kwargs, outs: (0, fn(args, kwargs, outs)[1], True)
    fn = MAC_OPS.get(packet)
    if fn is not None:
        return lambda args, kwargs, outs: (*fn(args, kwargs, outs), True)
    fn = OTHER_OPS.get(packet)
    if fn is not None:
        return lambda args, kwargs, outs: (0, fn(args, kwargs, outs)[1], True)
    if func.is_view or packet in ZERO_COST:
        return _free
    if is_pointwise(func):
        return _pointwise
    if is_reduction(func):
        return _reduce
    return _unsupported


def _free(args, kwargs, outs) -> tuple[int, int, bool]:
    return 0, 0, True


def _pointwise(args, kwargs, outs) -> tuple[int, int, bool]:
    return 0, _numel(_out0(outs)), True


def _reduce(args, kwargs, outs) -> tuple[int, int, bool]:
    return 0, _numel(args[0]) if args else 0, True


def _unsupported(args, kwargs, outs) -> tuple[int, int, bool]:
    return 0, 0, False


def op_cost(func, args, kwargs, outs) -> tuple[int, int, bool]:
    """(MACs, other FLOPs, supported) of one operator call."""
    return cost_for(func)(args, kwargs, outs)
