"""Analytic receptive field, propagated operator by operator through a traced graph.

Along each input axis the units of a feature map are described by three numbers (Araujo et al.,
"Computing receptive fields of convolutional neural networks", Distill 2019; FORMULAS.md):

    size  r  — how many input pixels one unit sees,
    jump  j  — the distance in input pixels between neighbouring units (the effective stride),
    start c  — the centre of unit 0's field, in input pixel coordinates (pixel 0 has centre 0).

A layer with kernel k, stride s, padding p and dilation d maps (r, j, c) to
    r' = r + d(k−1)·j,   j' = j·s,   c' = c + (d(k−1)/2 − p)·j.
Where paths meet (residual addition, concatenation, broadcasting) a unit's field is the union of the
fields of every path that reaches it: the smallest interval holding them all.

Every tensor of the trace carries a `Layout`: for each of its dimensions, which input axis (if any)
it indexes and that axis's (r, j, c). Views and reshapes move these entries around (a flatten merges
them, a channels-last permute reorders them), reductions over a spatial axis remove it and mark the
result as depending on the whole input (`global_context`). A feature map is *spatial* when every
input axis sits alone in one of its dimensions.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import torch

aten = torch.ops.aten


class Field(NamedTuple):
    """Unit 0's field along input axis `axis`: size r, jump j, centre c (input pixels)."""

    axis: int
    size: float
    jump: float
    start: float
    exact: bool = True  # False where the units' fields are not exact translates (adaptive pooling 8→7, upsampling)


class Merged(tuple):
    """A tensor dimension made of several logical factors, outermost first: ((size, Field | None), ...).
    What `flatten`, `view(N·H·W, C)` and friends produce."""


class Layout(NamedTuple):
    """Receptive-field state of one tensor: an entry per dimension (None, Field or Merged), and
    whether some path brought information from the whole input (global pooling, attention)."""

    dims: tuple
    global_context: bool = False


Getter = Callable[[Any], "Layout | None"]


def input_layout(rank: int, spatial_dims: tuple[int, ...]) -> Layout:
    """Layout of the analysed input: each spatial dimension is its own axis with r = 1, j = 1, c = 0."""
    dims = [None] * rank
    for axis, d in enumerate(spatial_dims):
        dims[d] = Field(axis, 1.0, 1.0, 0.0)
    return Layout(tuple(dims))


def spatial_fields(layout: Layout | None, n_axes: int) -> tuple[Field, ...] | None:
    """The fields of a spatial feature map (each of the n input axes alone in one dimension), by axis;
    None when the tensor is not one (collapsed, flattened, or no spatial input)."""
    if layout is None or n_axes == 0:
        return None
    found: dict[int, Field] = {}
    for e in layout.dims:
        if type(e) is Field:
            if e.axis in found:
                return None
            found[e.axis] = e
        elif type(e) is Merged and any(f is not None for _, f in e):
            return None
    if len(found) != n_axes:
        return None
    return tuple(found[a] for a in range(n_axes))


# -- unions ------------------------------------------------------------------------------------


def union_field(a: Field, b: Field) -> Field:
    """The smallest interval holding both fields (the union over two paths)."""
    if a == b:
        return a
    lo = min(a.start - (a.size - 1) / 2, b.start - (b.size - 1) / 2)
    hi = max(a.start + (a.size - 1) / 2, b.start + (b.size - 1) / 2)
    exact = a.exact and b.exact and a.jump == b.jump and a.axis == b.axis
    return Field(a.axis, hi - lo + 1, max(a.jump, b.jump), (lo + hi) / 2, exact)


def _union_entry(a, b):
    if a is None:
        return b
    if b is None or a == b:
        return a
    if type(a) is Field and type(b) is Field:
        return union_field(a, b)
    if type(a) is Merged and type(b) is Merged and [s for s, _ in a] == [s for s, _ in b]:
        return Merged((s, _union_entry(fa, fb)) for (s, fa), (_, fb) in zip(a, b))
    return a if type(a) is Merged else b


def broadcast_union(
    layouts: list[Layout | None], shapes: list[tuple[int, ...]], out_shape: tuple[int, ...]
) -> Layout | None:
    """Element-wise operators: align the inputs from the right, take the union per dimension. An
    input of size 1 broadcast along a spatial dimension spreads one unit over all positions, so its
    field covers the whole input (global context)."""
    known = [(lay, shp) for lay, shp in zip(layouts, shapes) if lay is not None]
    if not known:
        return None
    first = known[0][0]
    if len(known) == 1 and known[0][1] == out_shape:
        return first
    if all(lay is first for lay, _ in known) and all(shp == out_shape for _, shp in known):
        return first
    rank = len(out_shape)
    dims: list = [None] * rank
    glob = False
    for lay, shp in known:
        glob = glob or lay.global_context
        offset = rank - len(shp)
        for i, e in enumerate(lay.dims):
            if e is None:
                continue
            o = offset + i
            if shp[i] == 1 and out_shape[o] != 1:
                glob = True  # one unit broadcast over every position
                continue
            dims[o] = _union_entry(dims[o], e)
    return Layout(tuple(dims), glob)


# -- sliding windows: convolution, pooling, adaptive pooling, upsampling --------------------------


def window(f: Field, k: int, s: int, p: int, d: int = 1) -> Field:
    """One conv/pool layer: r' = r + d(k−1)j, j' = js, c' = c + (d(k−1)/2 − p)j."""
    ext = d * (k - 1)
    return Field(f.axis, f.size + ext * f.jump, f.jump * s, f.start + (ext / 2 - p) * f.jump, f.exact)


def transposed_window(f: Field, k: int, s: int, p: int, d: int = 1) -> Field:
    """Transposed conv: output o gathers the inputs i with i·s = o + p − m·d, m < k — about
    ceil((d(k−1)+1)/s) neighbours; the grid becomes s times finer."""
    n = -(-(d * (k - 1) + 1) // s)
    return Field(
        f.axis, f.size + (n - 1) * f.jump, f.jump / s, f.start + (p - d * (k - 1) / 2) * f.jump / s, f.exact and s == 1
    )


def adaptive_window(f: Field, n_in: int, n_out: int) -> Field | None:
    """Adaptive pooling: window i spans [floor(i·n_in/n_out), ceil((i+1)·n_in/n_out)). Exact when
    n_out divides n_in (kernel = stride = n_in/n_out); returns None when it pools the whole axis."""
    if n_out == n_in:
        return f
    if n_out == 1:
        return None
    if n_in % n_out == 0:
        k = n_in // n_out
        return window(f, k, k, 0)
    k = max(-(-((i + 1) * n_in) // n_out) - (i * n_in) // n_out for i in range(n_out))
    first = -(-n_in // n_out)
    return Field(f.axis, f.size + (k - 1) * f.jump, f.jump * n_in / n_out, f.start + (first - 1) / 2 * f.jump, False)


def upsample(f: Field, n_in: int, n_out: int, linear: bool, align_corners: bool = False) -> Field:
    """Nearest upsampling: output o copies input floor(o·n_in/n_out), so the field size is kept and
    the grid becomes n_out/n_in finer. (Bi/tri)linear modes mix two neighbours: size grows by one jump."""
    if n_in == n_out:
        return f
    jump = f.jump * n_in / n_out
    if not linear:
        return Field(f.axis, f.size, jump, f.start, False)
    if align_corners and n_out > 1:
        jump = f.jump * (n_in - 1) / (n_out - 1)
        return Field(f.axis, f.size + f.jump, jump, f.start, False)
    return Field(f.axis, f.size + f.jump, jump, f.start + (n_in / n_out - 1) / 2 * f.jump, False)


# -- the rules, one per operator family ---------------------------------------------------------


def _dims_of(lay: Layout | None, rank: int) -> list:
    return list(lay.dims) if lay is not None else [None] * rank


def _spatial_op(lay: Layout | None, rank: int, n_sp: int, fn, channel_mix: bool = True) -> Layout | None:
    """Apply fn(i, entry) to the last n_sp dimensions; a channel-mixing op clears the channel entry."""
    if lay is None:
        return None
    dims = list(lay.dims)
    glob = lay.global_context
    for i in range(n_sp):
        di = rank - n_sp + i
        e = dims[di]
        if type(e) is Field:
            new = fn(i, e)
            if new is None:  # pooled over the whole axis
                glob = True
            dims[di] = new
        elif type(e) is Merged:
            dims[di] = None
            glob = glob or any(f is not None for _, f in e)
    if channel_mix and rank - n_sp - 1 >= 0:
        c = dims[rank - n_sp - 1]
        if c is not None:
            dims[rank - n_sp - 1] = None
            glob = True  # spatial positions folded into channels (space-to-depth) are now mixed
    return Layout(tuple(dims), glob)


def _ints(v, n: int) -> list[int]:
    if isinstance(v, int):
        return [v] * n
    v = list(v)
    return v * n if len(v) == 1 else v


def _conv(args, kwargs, outs, L):
    x, w = args[0], args[1]
    stride, padding, dilation, transposed = args[3], args[4], args[5], args[6]
    n = w.dim() - 2
    if not transposed and all(v == 1 for v in w.shape[2:]) and all(v == 1 for v in stride) and not any(padding):
        # a pointwise (1×1, stride 1) convolution keeps every field; it only mixes channels
        lay = L(x)
        if lay is None:
            return None
        if lay.dims[x.dim() - n - 1] is None and not any(type(e) is Merged for e in lay.dims[-n:]):
            return lay
    k = list(w.shape[2:])
    s, p, d = _ints(stride, n), _ints(padding, n), _ints(dilation, n)
    if transposed:
        fn = lambda i, f: transposed_window(f, k[i], s[i], p[i], d[i])  # noqa: E731
    else:
        fn = lambda i, f: window(f, k[i], s[i], p[i], d[i])  # noqa: E731
    return _spatial_op(L(x), x.dim(), n, fn)


def _pool(n: int, has_dilation: bool):
    def rule(args, kwargs, outs, L):
        x = args[0]
        k = _ints(args[1], n)
        s = _ints(args[2], n) if len(args) > 2 and args[2] else k
        p = _ints(args[3], n) if len(args) > 3 else [0] * n
        d = _ints(args[4], n) if has_dilation and len(args) > 4 else [1] * n
        lay = _spatial_op(L(x), x.dim(), n, lambda i, f: window(f, k[i], s[i], p[i], d[i]), channel_mix=False)
        return [lay, lay] if isinstance(outs, (tuple, list)) else lay

    return rule


def _adaptive(n: int):
    def rule(args, kwargs, outs, L):
        x = args[0]
        out = outs[0] if isinstance(outs, (tuple, list)) else outs
        ins, os_ = x.shape[-n:], out.shape[-n:]
        lay = _spatial_op(L(x), x.dim(), n, lambda i, f: adaptive_window(f, ins[i], os_[i]), channel_mix=False)
        return [lay, lay] if isinstance(outs, (tuple, list)) else lay

    return rule


def _upsample(n: int, linear: bool):
    def rule(args, kwargs, outs, L):
        x = args[0]
        align = bool(args[2]) if linear and len(args) > 2 and isinstance(args[2], bool) else False
        ins, os_ = x.shape[-n:], outs.shape[-n:]
        return _spatial_op(L(x), x.dim(), n, lambda i, f: upsample(f, ins[i], os_[i], linear, align), channel_mix=False)

    return rule


def _pixel_shuffle(args, kwargs, outs, L):
    x, r = args[0], args[1]
    return _spatial_op(
        L(x), x.dim(), 2, lambda i, f: upsample(f, x.shape[-2 + i], x.shape[-2 + i] * r, False), channel_mix=False
    )


def _pixel_unshuffle(args, kwargs, outs, L):
    x, r = args[0], args[1]
    return _spatial_op(L(x), x.dim(), 2, lambda i, f: window(f, r, r, 0), channel_mix=False)


def _pad(args, kwargs, outs, L):
    """constant/reflection/replication padding: pad = (left_last, right_last, left_prev, ...)."""
    x, pad = args[0], list(args[1])
    lay = L(x)
    if lay is None:
        return None
    dims = list(lay.dims)
    for i in range(len(pad) // 2):
        d = x.dim() - 1 - i
        e = dims[d]
        if type(e) is Field:
            dims[d] = e._replace(start=e.start - pad[2 * i] * e.jump)
        elif type(e) is Merged:
            dims[d] = None
    return Layout(tuple(dims), lay.global_context)


# -- matrix products: contraction over a spatial dimension mixes every position ------------------


def _contract(lay_dims_out: list, contracted: list, glob: bool) -> Layout | None:
    mixes = any(type(e) is Field or (type(e) is Merged and any(f is not None for _, f in e)) for e in contracted)
    if all(e is None for e in lay_dims_out) and not glob and not mixes:
        return None
    return Layout(tuple(lay_dims_out), glob or mixes)


def _mm(args, kwargs, outs, L):
    a, b = args[0], args[1]
    la, lb = _dims_of(L(a), 2), _dims_of(L(b), 2)
    glob = any(lay is not None and lay.global_context for lay in (L(a), L(b)))
    return _contract([la[0], lb[1]], [la[1], lb[0]], glob)


def _addmm(args, kwargs, outs, L):
    bias, a, b = args[0], args[1], args[2]
    lay = _mm((a, b), kwargs, outs, L)
    lbias = L(bias)
    if lbias is None:
        return lay
    return broadcast_union([lay, lbias], [tuple(outs.shape), tuple(bias.shape)], tuple(outs.shape))


def _bmm(args, kwargs, outs, L):
    a, b = args[0], args[1]
    la, lb = _dims_of(L(a), 3), _dims_of(L(b), 3)
    glob = any(lay is not None and lay.global_context for lay in (L(a), L(b)))
    return _contract([_union_entry(la[0], lb[0]), la[1], lb[2]], [la[2], lb[1]], glob)


def _baddbmm(args, kwargs, outs, L):
    lay = _bmm(args[1:], kwargs, outs, L)
    lbias = L(args[0])
    if lbias is None:
        return lay
    return broadcast_union([lay, lbias], [tuple(outs.shape), tuple(args[0].shape)], tuple(outs.shape))


# -- reductions and normalisations --------------------------------------------------------------


def _reduce_dims(x, dims, keepdim: bool, lay: Layout | None) -> Layout | None:
    if lay is None:
        return None
    rank = x.dim()
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        dims = list(range(rank))
    dims = {d % rank for d in _ints(dims, 1)} if rank else set()
    out, glob = [], lay.global_context
    for i, e in enumerate(lay.dims):
        if i in dims:
            if e is not None and (type(e) is Field or any(f is not None for _, f in e)):
                glob = True
            if keepdim:
                out.append(None)
        else:
            out.append(e)
    return Layout(tuple(out), glob)


def _reduction(args, kwargs, outs, L):
    x = args[0]
    dims = args[1] if len(args) > 1 and not isinstance(args[1], torch.dtype) else kwargs.get("dim")
    keepdim = args[2] if len(args) > 2 and isinstance(args[2], bool) else kwargs.get("keepdim", False)
    lay = _reduce_dims(x, dims, bool(keepdim), L(x))
    return [lay, lay] if isinstance(outs, (tuple, list)) else lay


def _var(args, kwargs, outs, L):
    x = args[0]
    dims = args[1] if len(args) > 1 else kwargs.get("dim")
    keepdim = kwargs.get("keepdim", False)
    lay = _reduce_dims(x, dims, bool(keepdim), L(x))
    return [lay, lay] if isinstance(outs, (tuple, list)) else lay


def _mix_along(x, dim: int, lay: Layout | None) -> Layout | None:
    """Softmax and friends mix every position along `dim`."""
    if lay is None:
        return None
    e = lay.dims[dim % x.dim()] if x.dim() else None
    if e is None:
        return lay
    dims = list(lay.dims)
    dims[dim % x.dim()] = None
    return Layout(tuple(dims), True)


def _softmax(args, kwargs, outs, L):
    return _mix_along(args[0], args[1], L(args[0]))


def _batch_norm(args, kwargs, outs, L):
    lay = L(args[0])
    training = args[5] if len(args) > 5 and isinstance(args[5], bool) else False
    if lay is not None and training:  # batch statistics are taken over every position
        lay = Layout(lay.dims, True)
    return [lay, None, None]


def _batch_norm_no_training(args, kwargs, outs, L):
    return [L(args[0]), None, None]


def _layer_norm(args, kwargs, outs, L):
    x, shape = args[0], args[1]
    lay = L(x)
    if lay is not None:
        norm_dims = lay.dims[x.dim() - len(shape) :]
        if any(e is not None for e in norm_dims):
            lay = Layout(lay.dims, True)
    return [lay, None, None]


def _group_norm(args, kwargs, outs, L):
    lay = L(args[0])
    if lay is not None and any(e is not None for e in lay.dims[2:]):
        lay = Layout(lay.dims, True)  # statistics over (C/G, H, W)
    return [lay, None, None]


# -- views and data movement -------------------------------------------------------------------


def _same(args, kwargs, outs, L):
    return L(args[0])


def _factors(shape, lay: Layout | None) -> list[tuple[int, Any]]:
    out = []
    for size, e in zip(shape, _dims_of(lay, len(shape))):
        if type(e) is Merged:
            out.extend(e)
        elif size != 1:
            out.append((size, e))
    return out


def reshape_layout(shape_in: tuple[int, ...], shape_out: tuple[int, ...], lay: Layout | None) -> Layout | None:
    """Follow the logical factors of each dimension through a view/reshape. Merging keeps them
    (flatten → Merged); splitting a non-spatial factor is fine (channel shuffle); splitting a
    spatial one (patchify) loses that axis."""
    if lay is None:
        return None
    if shape_in == shape_out:
        return lay
    factors = _factors(shape_in, lay)
    dims: list = []
    glob = lay.global_context
    i = 0
    for size in shape_out:
        if size == 1:
            dims.append(None)
            continue
        taken, prod = [], 1
        while prod < size and i < len(factors):
            fsize, field = factors[i]
            if prod * fsize <= size:
                taken.append((fsize, field))
                prod *= fsize
                i += 1
            else:
                need = size // prod
                if size % prod or fsize % need:
                    return Layout(tuple([None] * len(shape_out)), True)
                if field is not None:  # a spatial axis split in two: no longer one axis
                    glob = True
                    field = None
                taken.append((need, field))
                factors[i] = (fsize // need, field)
                prod *= need
        if prod != size:
            return Layout(tuple([None] * len(shape_out)), True)
        real = [t for t in taken if t[0] != 1]
        if len(real) == 1:
            dims.append(real[0][1])
        elif any(f is not None for _, f in real):
            dims.append(Merged(real))
        else:
            dims.append(None)
    return Layout(tuple(dims), glob)


def _view(args, kwargs, outs, L):
    return reshape_layout(tuple(args[0].shape), tuple(outs.shape), L(args[0]))


def _permute(args, kwargs, outs, L):
    lay = L(args[0])
    if lay is None:
        return None
    order = [d % max(len(lay.dims), 1) for d in args[1]]
    return Layout(tuple(lay.dims[d] for d in order), lay.global_context)


def _transpose(args, kwargs, outs, L):
    lay = L(args[0])
    if lay is None or len(lay.dims) < 2:
        return lay
    dims = list(lay.dims)
    a = args[1] % len(dims) if len(args) > 1 else 0
    b = args[2] % len(dims) if len(args) > 2 else 1
    dims[a], dims[b] = dims[b], dims[a]
    return Layout(tuple(dims), lay.global_context)


def _unsqueeze(args, kwargs, outs, L):
    lay = L(args[0])
    if lay is None:
        return None
    dims = list(lay.dims)
    d = args[1] % (len(dims) + 1)
    dims.insert(d, None)
    return Layout(tuple(dims), lay.global_context)


def _squeeze(args, kwargs, outs, L):
    return reshape_layout(tuple(args[0].shape), tuple(outs.shape), L(args[0]))


def _expand(args, kwargs, outs, L):
    x = args[0]
    lay = L(x)
    if lay is None:
        return None
    return broadcast_union([lay], [tuple(x.shape)], tuple(outs.shape))


def _slice(args, kwargs, outs, L):
    x = args[0]
    lay = L(x)
    if lay is None:
        return None
    dim = (args[1] if len(args) > 1 else 0) % x.dim()
    e = lay.dims[dim]
    if e is None:
        return lay
    n = x.shape[dim]
    start = args[2] if len(args) > 2 and args[2] is not None else 0
    step = args[4] if len(args) > 4 else 1
    start = max(0, min(n, start + n if start < 0 else start))
    dims = list(lay.dims)
    if type(e) is Field:
        dims[dim] = Field(e.axis, e.size, e.jump * step, e.start + start * e.jump, e.exact)
    else:
        dims[dim] = None
    return Layout(tuple(dims), lay.global_context)


def _select(args, kwargs, outs, L):
    x = args[0]
    lay = L(x)
    if lay is None:
        return None
    dim = args[1] % x.dim()
    dims = list(lay.dims)
    e = dims.pop(dim)
    return Layout(tuple(dims), lay.global_context or e is not None)


def _split(args, kwargs, outs, L):
    """split / split_with_sizes / unbind: slices of the input along one dimension."""
    x = args[0]
    lay = L(x)
    if lay is None:
        return [None] * len(outs)
    dim = args[2] if len(args) > 2 else kwargs.get("dim", 0)
    dim %= x.dim()
    result, offset = [], 0
    for o in outs:
        result.append(_slice((x, dim, offset, None, 1), {}, o, L))
        offset += o.shape[dim]
    return result


def _unbind(args, kwargs, outs, L):
    x = args[0]
    dim = args[1] if len(args) > 1 else 0
    return [_select((x, dim, i), {}, o, L) for i, o in enumerate(outs)]


def _cat(args, kwargs, outs, L):
    tensors = [t for t in args[0] if t.numel() or t.dim() > 1]
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    lays = [L(t) for t in tensors]
    if all(lay is None for lay in lays):
        return None
    rank = outs.dim()
    dim %= rank
    dims: list = [None] * rank
    glob = False
    for lay in lays:
        if lay is None:
            continue
        glob = glob or lay.global_context
        for i, e in enumerate(lay.dims):
            if i == dim and type(e) is Field:
                e = e._replace(exact=False)  # concatenation along a spatial axis
            dims[i] = _union_entry(dims[i], e)
    return Layout(tuple(dims), glob)


def _stack(args, kwargs, outs, L):
    tensors = args[0]
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    unsq = [_unsqueeze((t, dim), {}, None, L) for t in tensors]
    return broadcast_union(unsq, [tuple(outs.shape)] * len(unsq), tuple(outs.shape))


def _flip(args, kwargs, outs, L):
    lay = L(args[0])
    if lay is None:
        return None
    dims = list(lay.dims)
    for d in args[1]:
        e = dims[d % len(dims)]
        if type(e) is Field:
            n = args[0].shape[d]
            dims[d % len(dims)] = Field(e.axis, e.size, -e.jump, e.start + (n - 1) * e.jump, e.exact)
    return Layout(tuple(dims), lay.global_context)


def _roll(args, kwargs, outs, L):
    lay = L(args[0])
    if lay is None:
        return None
    return Layout(tuple(e._replace(exact=False) if type(e) is Field else e for e in lay.dims), lay.global_context)


RULES: dict[Any, Callable] = {
    aten.convolution: _conv,
    aten._convolution: _conv,
    aten.max_pool1d_with_indices: _pool(1, True),
    aten.max_pool2d_with_indices: _pool(2, True),
    aten.max_pool3d_with_indices: _pool(3, True),
    aten.max_pool1d: _pool(1, True),
    aten.max_pool2d: _pool(2, True),
    aten.max_pool3d: _pool(3, True),
    aten.avg_pool1d: _pool(1, False),
    aten.avg_pool2d: _pool(2, False),
    aten.avg_pool3d: _pool(3, False),
    aten._adaptive_avg_pool2d: _adaptive(2),
    aten._adaptive_avg_pool3d: _adaptive(3),
    aten.adaptive_max_pool2d: _adaptive(2),
    aten.adaptive_max_pool3d: _adaptive(3),
    aten.adaptive_max_pool1d: _adaptive(1),
    aten.upsample_nearest1d: _upsample(1, False),
    aten.upsample_nearest2d: _upsample(2, False),
    aten.upsample_nearest3d: _upsample(3, False),
    aten._upsample_nearest_exact1d: _upsample(1, False),
    aten._upsample_nearest_exact2d: _upsample(2, False),
    aten._upsample_nearest_exact3d: _upsample(3, False),
    aten.upsample_linear1d: _upsample(1, True),
    aten.upsample_bilinear2d: _upsample(2, True),
    aten.upsample_bicubic2d: _upsample(2, True),
    aten.upsample_trilinear3d: _upsample(3, True),
    aten.pixel_shuffle: _pixel_shuffle,
    aten.pixel_unshuffle: _pixel_unshuffle,
    aten.constant_pad_nd: _pad,
    aten.reflection_pad1d: _pad,
    aten.reflection_pad2d: _pad,
    aten.reflection_pad3d: _pad,
    aten.replication_pad1d: _pad,
    aten.replication_pad2d: _pad,
    aten.replication_pad3d: _pad,
    aten.mm: _mm,
    aten.addmm: _addmm,
    aten.bmm: _bmm,
    aten.baddbmm: _baddbmm,
    aten.mean: _reduction,
    aten.sum: _reduction,
    aten.amax: _reduction,
    aten.amin: _reduction,
    aten.max: _reduction,
    aten.min: _reduction,
    aten.prod: _reduction,
    aten.logsumexp: _reduction,
    aten.var: _var,
    aten.std: _var,
    aten.var_mean: _var,
    aten.std_mean: _var,
    aten._softmax: _softmax,
    aten._log_softmax: _softmax,
    aten.cumsum: _softmax,
    aten.native_batch_norm: _batch_norm,
    aten._native_batch_norm_legit: _batch_norm,
    aten._native_batch_norm_legit_no_training: _batch_norm_no_training,
    aten.native_layer_norm: _layer_norm,
    aten.native_group_norm: _group_norm,
    aten.view: _view,
    aten._unsafe_view: _view,
    aten.reshape: _view,
    aten._reshape_alias: _view,
    aten.view_copy: _view,
    aten.permute: _permute,
    aten.transpose: _transpose,
    aten.t: _transpose,
    aten.unsqueeze: _unsqueeze,
    aten.squeeze: _squeeze,
    aten.expand: _expand,
    aten.slice: _slice,
    aten.select: _select,
    aten.split: _split,
    aten.split_with_sizes: _split,
    aten.unbind: _unbind,
    aten.cat: _cat,
    aten.stack: _stack,
    aten.flip: _flip,
    aten.roll: _roll,
    aten.detach: _same,
    aten.alias: _same,
    aten.clone: _same,
    aten.contiguous: _same,
    aten._to_copy: _same,
    aten.lift_fresh: _same,
    aten.native_dropout: lambda a, k, o, L: [L(a[0]), None],
    aten.as_strided_: _view,
}
# _safe_softmax (torch ≥ 2.5) is absent on the oldest torch the analyser supports.
if hasattr(aten, "_safe_softmax"):
    RULES[aten._safe_softmax] = _softmax


def elementwise(outs, L: Getter, tensors_in: list, pointwise: bool):
    """Operators without a rule: pointwise ones take the union of their inputs' fields (aligned by
    broadcasting); an unknown operator whose output has an input's shape is followed the same way
    but marked inexact; anything else depends on the input along no known axis."""
    out0 = outs[0] if isinstance(outs, (tuple, list)) else outs
    if not isinstance(out0, torch.Tensor):
        return None
    if pointwise and len(tensors_in) == 1:  # the common case: ReLU, SiLU, sigmoid, x * 0.5
        t = tensors_in[0]
        lay = L(t)
        if lay is None or t.shape == out0.shape:
            return lay
    lays = [L(t) for t in tensors_in]
    if all(lay is None for lay in lays):
        return None
    shape = tuple(out0.shape)
    shapes = [tuple(t.shape) for t in tensors_in]
    if pointwise or any(s == shape for s in shapes):
        try:
            if math.prod(shape) and all(len(s) <= len(shape) for s in shapes):
                lay = broadcast_union(lays, shapes, shape)
                if not pointwise and lay is not None:
                    lay = Layout(
                        tuple(e._replace(exact=False) if type(e) is Field else e for e in lay.dims), lay.global_context
                    )
                return lay
        except IndexError:
            pass
    # an operator we cannot follow: the result depends on the input, but not along known axes
    return Layout(tuple([None] * out0.dim()), True)
