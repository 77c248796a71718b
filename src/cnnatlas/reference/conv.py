"""2-D convolution, forward and backward, in NumPy — the notes' "backprop through a conv layer".

Shapes: x (N, C_in, H, W), w (C_out, C_in/G, K_h, K_w), b (C_out,), y (N, C_out, H_out, W_out);
S stride, P padding, D dilation, G groups. Output size (FORMULAS.md):
    H_out = floor((H + 2P − D(K − 1) − 1)/S) + 1.

Forward — a cross-correlation, as in every deep-learning library:
    y[n, o, i, j] = b[o] + Σ_{c, p, q} w[o, c, p, q] · x̃[n, g·C_in/G + c, i·S + p·D, j·S + q·D]
with x̃ the input zero-padded by P and g the group of output channel o.

Backward, given dy = ∂L/∂y:
    ∂L/∂b[o]       = Σ_{n,i,j} dy[n, o, i, j]
    ∂L/∂w[o,c,p,q] = Σ_{n,i,j} x̃[n, c, i·S + p·D, j·S + q·D] · dy[n, o, i, j]
                     — the cross-correlation of the input with dy;
    ∂L/∂x          = the FULL convolution of dy with the kernel: put dy back on the stride-1 grid
                     (S − 1 zeros between entries), pad it by D(K − 1) on every side, and correlate
                     it with the kernel rotated by 180° whose input and output channels are swapped;
                     finally drop the P rows and columns of padding.
"""

from __future__ import annotations

import numpy as np

Pair = int | tuple[int, int]


def pair(v: Pair) -> tuple[int, int]:
    """3 → (3, 3); (3, 5) stays."""
    return (v, v) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


def pad2d(x: np.ndarray, padding: Pair, value: float = 0.0) -> np.ndarray:
    """Pad the last two axes of (N, C, H, W) by (P_h, P_w) on each side."""
    ph, pw = pair(padding)
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """O = floor((I + 2P − D(K − 1) − 1)/S) + 1."""
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def unfold(x_pad: np.ndarray, kernel_size: Pair, stride: Pair = 1, dilation: Pair = 1) -> np.ndarray:
    """Every window of the padded input as a column ("im2col"):
    cols[n, c, p·K_w + q, i, j] = x̃[n, c, i·S + p·D, j·S + q·D]   → (N, C, K_h·K_w, H_out, W_out)."""
    (kh, kw), (sh, sw), (dh, dw) = pair(kernel_size), pair(stride), pair(dilation)
    h_out = output_size(x_pad.shape[2], kh, sh, 0, dh)
    w_out = output_size(x_pad.shape[3], kw, sw, 0, dw)
    if h_out < 1 or w_out < 1:
        raise ValueError(f"kernel {kh}×{kw} (dilation {dh}, {dw}) is larger than the padded input {x_pad.shape[2:]}")
    return np.stack(
        [
            x_pad[:, :, p * dh : p * dh + (h_out - 1) * sh + 1 : sh, q * dw : q * dw + (w_out - 1) * sw + 1 : sw]
            for p in range(kh)
            for q in range(kw)
        ],
        axis=2,
    )


def correlate2d(x_pad: np.ndarray, w: np.ndarray, stride: Pair = 1, dilation: Pair = 1, groups: int = 1) -> np.ndarray:
    """Grouped cross-correlation of an already padded input: within each group, the weights
    (C_out/G, C_in/G·K_h·K_w) times the unfolded windows (C_in/G·K_h·K_w, H_out·W_out)."""
    n, c_in = x_pad.shape[:2]
    c_out, c_in_g, kh, kw = w.shape
    if c_in != c_in_g * groups or c_out % groups:
        raise ValueError(f"channels do not fit groups={groups}: input {c_in}, weight {w.shape}")
    cols = unfold(x_pad, (kh, kw), stride, dilation)
    h_out, w_out = cols.shape[-2:]
    cols = cols.reshape(n, groups, c_in_g * kh * kw, h_out * w_out)
    wg = w.reshape(1, groups, c_out // groups, c_in_g * kh * kw)
    return (wg @ cols).reshape(n, c_out, h_out, w_out)


def conv2d(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: Pair = 1,
    padding: Pair = 0,
    dilation: Pair = 1,
    groups: int = 1,
) -> np.ndarray:
    """y = b + w ⋆ pad(x): what torch.nn.functional.conv2d computes."""
    y = correlate2d(pad2d(x, padding), w, stride, dilation, groups)
    return y if b is None else y + b[None, :, None, None]


def flip_kernel(w: np.ndarray, groups: int = 1) -> np.ndarray:
    """The kernel of the backward pass: rotated by 180° in space, input and output channels swapped
    within each group. (C_out, C_in/G, K_h, K_w) → (C_in, C_out/G, K_h, K_w)."""
    c_out, c_in_g, kh, kw = w.shape
    rotated = w[:, :, ::-1, ::-1]
    return (
        rotated.reshape(groups, c_out // groups, c_in_g, kh, kw)
        .transpose(0, 2, 1, 3, 4)
        .reshape(groups * c_in_g, c_out // groups, kh, kw)
    )


def conv2d_backward_input(
    dy: np.ndarray,
    w: np.ndarray,
    input_shape: tuple[int, ...],
    stride: Pair = 1,
    padding: Pair = 0,
    dilation: Pair = 1,
    groups: int = 1,
    flip: bool = True,
) -> np.ndarray:
    """∂L/∂x: the full convolution of dy with the flipped kernel (`flip=False` shows what goes wrong
    without the 180° rotation)."""
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    n, c_out, h_out, w_out = dy.shape
    _, _, kh, kw = w.shape
    h, w_ = input_shape[2], input_shape[3]
    dy_grid = np.zeros((n, c_out, (h_out - 1) * sh + 1, (w_out - 1) * sw + 1), dtype=dy.dtype)
    dy_grid[:, :, ::sh, ::sw] = dy  # back on the stride-1 grid
    dy_full = pad2d(dy_grid, (dh * (kh - 1), dw * (kw - 1)))  # "full": every partial overlap
    kernel = flip_kernel(w, groups) if flip else flip_kernel(w, groups)[:, :, ::-1, ::-1]
    dx_used = correlate2d(dy_full, kernel, 1, (dh, dw), groups)
    # rows/columns of x̃ that no output reads (when (H + 2P − D(K−1) − 1) % S ≠ 0) get no gradient
    dx_pad = np.zeros((n, input_shape[1], h + 2 * ph, w_ + 2 * pw), dtype=dx_used.dtype)
    dx_pad[:, :, : dx_used.shape[2], : dx_used.shape[3]] = dx_used
    return dx_pad[:, :, ph : ph + h, pw : pw + w_]


def conv2d_backward_weight(
    dy: np.ndarray,
    x: np.ndarray,
    weight_shape: tuple[int, ...],
    stride: Pair = 1,
    padding: Pair = 0,
    dilation: Pair = 1,
    groups: int = 1,
) -> np.ndarray:
    """∂L/∂w: the cross-correlation of the padded input with dy — for each tap (p, q), the window
    entries x̃[.., i·S + p·D, j·S + q·D] times dy[.., i, j], summed over the batch and positions."""
    c_out, c_in_g, kh, kw = weight_shape
    n, _, h_out, w_out = dy.shape
    cols = unfold(pad2d(x, padding), (kh, kw), stride, dilation)
    cols = cols.reshape(n, groups, c_in_g * kh * kw, h_out * w_out)
    dyg = dy.reshape(n, groups, c_out // groups, h_out * w_out)
    return (dyg @ cols.transpose(0, 1, 3, 2)).sum(axis=0).reshape(weight_shape)


def conv2d_backward(
    dy: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    stride: Pair = 1,
    padding: Pair = 0,
    dilation: Pair = 1,
    groups: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(∂L/∂x, ∂L/∂w, ∂L/∂b) of y = conv2d(x, w, b, ...), given dy = ∂L/∂y."""
    dx = conv2d_backward_input(dy, w, x.shape, stride, padding, dilation, groups)
    dw = conv2d_backward_weight(dy, x, w.shape, stride, padding, dilation, groups)
    db = dy.sum(axis=(0, 2, 3))
    return dx, dw, db
