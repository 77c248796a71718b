"""Output allocation for the hottest operators, without running their meta kernels; and the one
operator a standard leaf module calls, so that its forward need not run (MODULE_CALLS).

PyTorch's meta kernels for batch norm, layer norm, addmm or element-wise arithmetic are Python
decompositions that cost up to 2 ms a call; the output of those operators is fully determined by a
line of shape arithmetic. Each function here returns the output(s) the meta kernel would, or None to
let the real meta kernel run (unusual dtypes, broadcasting corner cases, anything it doubts). A
test checks every shortcut against the meta kernel on the zoo.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

import torch

aten = torch.ops.aten
META = torch.device("meta")
_FLOATS = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_CL = {4: torch.channels_last, 5: torch.channels_last_3d}


def _fmt(x: torch.Tensor) -> torch.memory_format | None:
    """The input's memory format where it has a standard one (contiguous, channels-last); None for any
    other layout (a permuted or sliced view), whose output strides only the meta kernel knows: PyTorch's
    TensorIterator gives an element-wise output the permutation of its inputs' strides. The strides must be
    exactly the format's, size-1 dimensions included."""
    key = (x.shape, x.stride())
    fmt = _FORMATS.get(key, _UNKNOWN)
    if fmt is _UNKNOWN:
        fmt = None
        for f in (torch.contiguous_format, _CL.get(x.dim())):
            if f is not None and torch.empty(x.shape, device=META, memory_format=f).stride() == key[1]:
                fmt = f
                break
        if len(_FORMATS) > 65536:
            _FORMATS.clear()
        _FORMATS[key] = fmt
    return fmt


def _alloc_fmt(x: torch.Tensor) -> torch.memory_format | None:
    """The memory format a kernel that allocates its output afresh (convolution, pooling) picks for it:
    the strides of size-1 dimensions do not matter here, only whether the input is contiguous or
    channels-last (cheaper than `_fmt`'s exact test)."""
    if x.is_contiguous():
        return torch.contiguous_format
    fmt = _CL.get(x.dim())
    return fmt if fmt is not None and x.is_contiguous(memory_format=fmt) else None


_UNKNOWN = object()
_FORMATS: dict[tuple, torch.memory_format | None] = {}


def _like(x: torch.Tensor) -> torch.Tensor | None:
    """empty_like without the Python reference implementation it takes on meta (None: a layout it leaves
    to the meta kernel)."""
    fmt = _fmt(x)
    return None if fmt is None else torch.empty(x.shape, dtype=x.dtype, device=META, memory_format=fmt)


def _empty(shape, x: torch.Tensor, dtype=None) -> torch.Tensor | None:
    if len(shape) != x.dim():
        return torch.empty(shape, dtype=dtype or x.dtype, device=META)
    fmt = _alloc_fmt(x)
    return None if fmt is None else torch.empty(shape, dtype=dtype or x.dtype, device=META, memory_format=fmt)


def _ints(v, n: int) -> list[int] | tuple[int, ...]:
    if type(v) is list or type(v) is tuple:
        return v if len(v) == n else v * n if len(v) == 1 else list(v)
    if isinstance(v, int):
        return [v] * n
    v = list(v)
    return v * n if len(v) == 1 else v


def _conv(args, kwargs):
    x, w = args[0], args[1]
    if (
        len(args) < 9
        or x.dtype not in _FLOATS
        or x.dim() != w.dim()
        or w.dtype != x.dtype
        or (args[2] is not None and args[2].dtype != x.dtype)
    ):
        return None  # mixed dtypes: the meta kernel raises the error a real run would
    stride, padding, dilation, transposed, out_pad, groups = args[3:9]
    n = w.dim() - 2
    xs, ws = x.shape, w.shape
    k = ws[2:]
    s, p, d = _ints(stride, n), _ints(padding, n), _ints(dilation, n)
    if transposed:
        op = _ints(out_pad, n)
        spatial = [(xs[2 + i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1 for i in range(n)]
        c_out, c_in = ws[1] * groups, ws[0]
    else:  # O = floor((I + 2P − D(K − 1) − 1)/S) + 1
        spatial = [(xs[2 + i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(n)]
        c_out, c_in = ws[0], ws[1] * groups
    if min(spatial) <= 0 or xs[1] != c_in:
        return None  # let the meta kernel raise its own error
    fmt = _alloc_fmt(x)
    if fmt is None or (fmt is not torch.contiguous_format and _alloc_fmt(w) is not fmt):
        return None  # a channels-last input with a weight that is not: the kernel's choice of layout
    return torch.empty((xs[0], c_out, *spatial), dtype=x.dtype, device=META, memory_format=fmt)


def _stat_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _batch_norm(args, kwargs):
    x = args[0]
    if x.dtype not in _FLOATS or x.dim() < 2:
        return None
    c = x.shape[1]
    sd = _stat_dtype(x)
    out = _like(x)
    if out is None:
        return None
    return (out, torch.empty((c,), dtype=sd, device=META), torch.empty((c,), dtype=sd, device=META))


def _layer_norm(args, kwargs):
    x, shape = args[0], args[1]
    if x.dtype not in _FLOATS or _fmt(x) is not torch.contiguous_format:
        return None
    axis = x.dim() - len(shape)
    if tuple(x.shape[axis:]) != tuple(shape):
        return None
    stat = tuple(x.shape[:axis]) + (1,) * len(shape)
    sd = _stat_dtype(x)
    return (
        torch.empty(x.shape, dtype=x.dtype, device=META),
        torch.empty(stat, dtype=sd, device=META),
        torch.empty(stat, dtype=sd, device=META),
    )


def _unary(args, kwargs):
    x = args[0]
    if x.dtype not in _FLOATS:
        return None
    return _like(x)


def _clone(args, kwargs):
    """clone keeps the layout unless asked for another memory format."""
    x = args[0]
    fmt = kwargs.get("memory_format", args[1] if len(args) > 1 else None)
    if x.dtype not in _FLOATS or fmt not in (None, torch.preserve_format):
        return None
    if not (x.is_contiguous() or (x.dim() in _CL and x.is_contiguous(memory_format=_CL[x.dim()]))):
        return None  # other strides: the meta kernel knows what preserve_format makes of them
    return torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device=META)


def _inplace_unary(args, kwargs):
    return args[0] if args[0].dtype in _FLOATS else None


def _broadcast(a: tuple, b: tuple) -> tuple | None:
    if a == b:
        return a
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + a
    b = (1,) * (n - len(b)) + b
    out = []
    for x, y in zip(a, b):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            return None
    return tuple(out)


def _binary(args, kwargs):
    a, b = args[0], args[1]
    if not isinstance(a, torch.Tensor) or a.dtype not in _FLOATS:
        return None
    if not isinstance(b, torch.Tensor):
        return _like(a) if isinstance(b, (int, float)) and not isinstance(b, bool) else None
    if b.dtype != a.dtype and (b.dim() != 0 or a.dim() == 0 or b.dtype.is_complex):
        return None  # a 0-dim tensor of another dtype does not promote a float tensor; others might
    sa, sb = tuple(a.shape), tuple(b.shape)
    shape = _broadcast(sa, sb)
    if shape is None or (b.dim() and _fmt(b) is None):
        return None  # an operand with a permuted layout: its strides may set the output's
    if shape == sa:
        return _like(a)
    if shape == sb and b.dtype == a.dtype:
        return _like(b) if _fmt(a) is not None else None
    if _fmt(a) is not torch.contiguous_format or (b.dim() and _fmt(b) is not torch.contiguous_format):
        return None
    return torch.empty(shape, dtype=a.dtype, device=META)


def _inplace_binary(args, kwargs):
    a, b = args[0], args[1]
    if not isinstance(a, torch.Tensor) or a.dtype not in _FLOATS:
        return None
    if isinstance(b, torch.Tensor):
        if b.dtype != a.dtype and (b.dim() != 0 or b.dtype.is_complex):
            return None
        if _broadcast(tuple(a.shape), tuple(b.shape)) != tuple(a.shape):
            return None
    elif not isinstance(b, (int, float)) or isinstance(b, bool):
        return None
    return a


def _mm(args, kwargs):
    a, b = args[0], args[1]
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0] or a.dtype != b.dtype:
        return None
    return torch.empty((a.shape[0], b.shape[1]), dtype=a.dtype, device=META)


def _addmm(args, kwargs):
    bias, a, b = args[0], args[1], args[2]
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0] or a.dtype != b.dtype or bias.dtype != a.dtype:
        return None
    shape = (a.shape[0], b.shape[1])
    if _broadcast(tuple(bias.shape), shape) != shape:
        return None
    return torch.empty(shape, dtype=a.dtype, device=META)


def _bmm(args, kwargs):
    a, b = args[0], args[1]
    if a.dim() != 3 or b.dim() != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1] or a.dtype != b.dtype:
        return None
    return torch.empty((a.shape[0], a.shape[1], b.shape[2]), dtype=a.dtype, device=META)


def _mean_dim(args, kwargs):
    x = args[0]
    if (
        x.dtype not in _FLOATS
        or kwargs.get("dtype") is not None
        or (len(args) > 3 and args[3] is not None)
        or _fmt(x) is not torch.contiguous_format
    ):
        return None  # a reduction's output keeps the permutation of its input's strides
    dims = args[1] if len(args) > 1 else kwargs.get("dim")
    if dims is None or len(dims) == 0:
        return None
    keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    rank = x.dim()
    red = {d % rank for d in dims}
    if keepdim:
        shape = tuple(1 if i in red else s for i, s in enumerate(x.shape))
    else:
        shape = tuple(s for i, s in enumerate(x.shape) if i not in red)
    return torch.empty(shape, dtype=x.dtype, device=META)


def pool_out_size(i: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """Pooling output size; ceil_mode rounds up but never starts a window in the right padding."""
    num = i + 2 * p - d * (k - 1) - 1
    o = (num + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (o - 1) * s >= i + p:
        o -= 1
    return o


def _pool_shape(args, kwargs, dilated: bool):
    """The output shape of max_pool2d_with_indices (x, k, s, p, d, ceil) when `dilated`, else of avg_pool2d
    (x, k, s, p, ceil, …); None where the meta kernel should decide."""
    x = args[0]
    if x.dtype not in _FLOATS or x.dim() not in (3, 4) or kwargs:
        return None
    k = _ints(args[1], 2)
    s = _ints(args[2], 2) if len(args) > 2 and args[2] else k
    p = _ints(args[3], 2) if len(args) > 3 else [0, 0]
    d = _ints(args[4], 2) if dilated and len(args) > 4 else [1, 1]
    at = 5 if dilated else 4
    ceil = bool(args[at]) if len(args) > at else False
    if any(pp * 2 > kk for pp, kk in zip(p, k)):
        return None
    spatial = [pool_out_size(x.shape[-2 + i], k[i], s[i], p[i], d[i], ceil) for i in range(2)]
    if min(spatial) <= 0:
        return None
    return (*x.shape[:-2], *spatial)


def _max_pool2d(args, kwargs):
    shape = _pool_shape(args, kwargs, dilated=True)
    x = args[0]
    if shape is None or _alloc_fmt(x) is None:
        return None
    return _empty(shape, x), _empty(shape, x, torch.int64)


def _avg_pool2d(args, kwargs):
    shape = _pool_shape(args, kwargs, dilated=False)
    return None if shape is None else _empty(shape, args[0])


def _adaptive_avg_pool2d(args, kwargs):
    x, size = args[0], args[1]
    if x.dtype not in _FLOATS or x.dim() not in (3, 4) or len(size) != 2 or min(x.shape[-2:]) == 0:
        return None
    return _empty((*x.shape[:-2], *size), x)


def _cat(args, kwargs):
    tensors = [t for t in args[0] if not (t.dim() == 1 and t.shape[0] == 0)]  # legacy empty tensors are skipped
    if not tensors or kwargs:
        return None
    first = tensors[0]
    rank = first.dim()
    dim = args[1] if len(args) > 1 else 0
    if rank == 0 or not -rank <= dim < rank:
        return None
    dim %= rank
    total = 0
    for t in tensors:
        if t.dim() != rank or t.dtype != first.dtype or _fmt(t) is not _fmt(first):
            return None
        for i in range(rank):
            if i != dim and t.shape[i] != first.shape[i]:
                return None
        total += t.shape[dim]
    shape = list(first.shape)
    shape[dim] = total
    return _empty(shape, first)


FAST: dict[Any, Callable] = {
    aten.cat.default: _cat,
    aten.convolution.default: _conv,
    aten.native_batch_norm.default: _batch_norm,
    aten._native_batch_norm_legit_no_training.default: _batch_norm,
    aten.native_layer_norm.default: _layer_norm,
    aten.addmm.default: _addmm,
    aten.mm.default: _mm,
    aten.bmm.default: _bmm,
    aten.mean.dim: _mean_dim,
    aten.max_pool2d_with_indices.default: _max_pool2d,
    aten.avg_pool2d.default: _avg_pool2d,
    aten._adaptive_avg_pool2d.default: _adaptive_avg_pool2d,
}

for _name in (
    "relu",
    "sigmoid",
    "tanh",
    "silu",
    "gelu",
    "hardswish",
    "hardsigmoid",
    "elu",
    "mish",
    "relu6",
    "neg",
    "exp",
    "sqrt",
    "rsqrt",
    "reciprocal",
    "abs",
    # these four take scalars too (bounds, slope, β), which leave the shape alone
    "hardtanh",
    "leaky_relu",
    "clamp_min",
    "softplus",
):
    _op = getattr(aten, _name, None)
    if _op is not None and "default" in _op.overloads():
        FAST[_op.default] = _unary
    _op = getattr(aten, _name + "_", None)
    if _op is not None and "default" in _op.overloads():
        FAST[_op.default] = _inplace_unary
for _name in ("add", "sub", "mul", "div"):
    _packet = getattr(aten, _name)
    for _ov in ("Tensor", "Scalar"):
        if _ov in _packet.overloads():
            FAST[getattr(_packet, _ov)] = _binary
    _packet = getattr(aten, _name + "_")
    for _ov in ("Tensor", "Scalar"):
        if _ov in _packet.overloads():
            FAST[getattr(_packet, _ov)] = _inplace_binary
FAST[aten.clone.default] = _clone
FAST[aten._softmax.default] = lambda args, kwargs: (
    _like(args[0]) if args[0].dtype in _FLOATS and not args[2] and _fmt(args[0]) is torch.contiguous_format else None
)  # the kernel's output is contiguous


# -- leaf modules: the one ATen call they make ---------------------------------------------------
#
# A standard convolution, batch norm (in eval mode) or activation module makes exactly one ATen
# call. The tracer can make that call's record itself, without the module's Python forward, the
# functional wrapper, argument parsing and the trip through the dispatcher. Each function returns
# (operator overload, its arguments as the dispatcher would pass them), or None where the module or
# its input is not the standard case (then the module runs as usual). A subclass qualifies only when
# it overrides nothing the forward reads (torchvision's Conv3DSimple does not; a parametrized module,
# whose weight is a property, does). A test checks every record against the ordinary trace.


def _conv_call(m, x):
    n = len(m.kernel_size)
    if m.padding_mode != "zeros" or isinstance(m.padding, str) or x.dim() != n + 2:
        return None
    return aten.convolution.default, (
        x,
        m._parameters["weight"],
        m._parameters["bias"],
        list(m.stride),
        list(m.padding),
        list(m.dilation),
        False,
        [0] * n,
        m.groups,
    )


def _batch_norm_call(rank: int | tuple[int, ...]):
    ranks = (rank,) if isinstance(rank, int) else rank

    def call(m, x):
        mean, var = m._buffers.get("running_mean"), m._buffers.get("running_var")
        if m.training or mean is None or var is None or x.dim() not in ranks:
            return None  # training mode also counts num_batches_tracked and may use batch statistics
        momentum = 0.0 if m.momentum is None else m.momentum
        return aten.native_batch_norm.default, (
            x,
            m._parameters["weight"],
            m._parameters["bias"],
            mean,
            var,
            False,
            momentum,
            m.eps,
        )

    return call


def _activation_call(name: str):
    op, op_ = getattr(aten, name).default, getattr(aten, name + "_").default

    def call(m, x):
        return (op_ if m.__dict__.get("inplace", False) else op), (x,)

    return call


def _unary_call(name: str):
    op = getattr(aten, name).default
    return lambda m, x: (op, (x,))


MODULE_CALLS: dict[type, Callable] = {
    torch.nn.Conv1d: _conv_call,
    torch.nn.Conv2d: _conv_call,
    torch.nn.Conv3d: _conv_call,
    torch.nn.BatchNorm1d: _batch_norm_call((2, 3)),
    torch.nn.BatchNorm2d: _batch_norm_call(4),
    torch.nn.BatchNorm3d: _batch_norm_call(5),
    torch.nn.ReLU: _activation_call("relu"),
    torch.nn.SiLU: _activation_call("silu"),
    torch.nn.Hardswish: _activation_call("hardswish"),
    torch.nn.Hardsigmoid: _activation_call("hardsigmoid"),
    torch.nn.Sigmoid: _unary_call("sigmoid"),
    torch.nn.Tanh: _unary_call("tanh"),
}

# what a subclass must leave alone for its call to be the base class's
_FORWARD_READS = frozenset(
    {
        "forward",
        "_conv_forward",
        "__call__",
        "_call_impl",
        "__getattr__",
        "__getattribute__",
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "inplace",
        "training",
    }
)
_RESOLVED: weakref.WeakKeyDictionary[type, Callable | None] = weakref.WeakKeyDictionary()


def module_call(cls: type) -> Callable | None:
    """The MODULE_CALLS entry for a module class, or None; resolved once per class."""
    try:
        return _RESOLVED[cls]
    except KeyError:
        pass
    found = None
    for base in cls.__mro__:
        if base in MODULE_CALLS:
            found = MODULE_CALLS[base]
            break
        if _FORWARD_READS & base.__dict__.keys():
            break
    _RESOLVED[cls] = found
    return found
