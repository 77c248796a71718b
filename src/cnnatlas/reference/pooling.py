"""Max-, average- and global average pooling, forward and backward, in NumPy.

Pooling has no parameters. Over a K_h×K_w window moved S at a time (input padded by P):
    max:      y[n, c, i, j] = max_{p,q} x̃[n, c, i·S + p, j·S + q]
              backward: the whole of dy[n, c, i, j] goes to the input that was the maximum (the
              argmax); every other input of the window gets 0.
    average:  y[n, c, i, j] = (1/(K_h·K_w)) Σ_{p,q} x̃[n, c, i·S + p, j·S + q]
              backward: each input of the window gets dy[n, c, i, j]/(K_h·K_w).
    global:   y[n, c] = mean over H×W; backward: dy[n, c]/(H·W) to every position.
Where windows overlap (S < K) an input collects the gradient of every window it belongs to.
"""

from __future__ import annotations

import numpy as np

from .conv import Pair, output_size, pad2d, pair


def _windows(x_pad: np.ndarray, kernel_size: Pair, stride: Pair) -> np.ndarray:
    """(K_h·K_w, N, C, H_out, W_out): the input seen by each tap of every window."""
    (kh, kw), (sh, sw) = pair(kernel_size), pair(stride)
    h_out = output_size(x_pad.shape[2], kh, sh)
    w_out = output_size(x_pad.shape[3], kw, sw)
    return np.stack(
        [
            x_pad[:, :, p : p + (h_out - 1) * sh + 1 : sh, q : q + (w_out - 1) * sw + 1 : sw]
            for p in range(kh)
            for q in range(kw)
        ]
    )


def max_pool2d(
    x: np.ndarray, kernel_size: Pair, stride: Pair | None = None, padding: Pair = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(y, argmax): argmax[n, c, i, j] is the tap p·K_w + q of the window's maximum."""
    stride = kernel_size if stride is None else stride
    windows = _windows(pad2d(x, padding, value=-np.inf), kernel_size, stride)
    argmax = windows.argmax(axis=0)
    return np.take_along_axis(windows, argmax[None], axis=0)[0], argmax


def max_pool2d_backward(
    dy: np.ndarray,
    argmax: np.ndarray,
    input_shape: tuple[int, ...],
    kernel_size: Pair,
    stride: Pair | None = None,
    padding: Pair = 0,
) -> np.ndarray:
    """Route each dy to its window's argmax; the other inputs get nothing."""
    (_kh, kw), (sh, sw), (ph, pw) = pair(kernel_size), pair(kernel_size if stride is None else stride), pair(padding)
    n, c, h_out, w_out = dy.shape
    p, q = np.divmod(argmax, kw)  # tap of the maximum inside its window
    rows = np.arange(h_out)[:, None] * sh + p  # position in the padded input
    cols = np.arange(w_out)[None, :] * sw + q
    dx_pad = np.zeros((n, c, input_shape[2] + 2 * ph, input_shape[3] + 2 * pw), dtype=dy.dtype)
    nn, cc = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
    np.add.at(dx_pad, (nn[:, :, None, None], cc[:, :, None, None], rows, cols), dy)
    return dx_pad[:, :, ph : ph + input_shape[2], pw : pw + input_shape[3]]


def avg_pool2d(x: np.ndarray, kernel_size: Pair, stride: Pair | None = None, padding: Pair = 0) -> np.ndarray:
    """Window means; padded zeros count in the denominator (torch's count_include_pad=True)."""
    stride = kernel_size if stride is None else stride
    return _windows(pad2d(x, padding), kernel_size, stride).mean(axis=0)


def avg_pool2d_backward(
    dy: np.ndarray, input_shape: tuple[int, ...], kernel_size: Pair, stride: Pair | None = None, padding: Pair = 0
) -> np.ndarray:
    """Each input of a window gets dy/(K_h·K_w) from that window."""
    (kh, kw), (sh, sw), (ph, pw) = pair(kernel_size), pair(kernel_size if stride is None else stride), pair(padding)
    n, c, h_out, w_out = dy.shape
    dx_pad = np.zeros((n, c, input_shape[2] + 2 * ph, input_shape[3] + 2 * pw), dtype=dy.dtype)
    for p in range(kh):
        for q in range(kw):
            dx_pad[:, :, p : p + (h_out - 1) * sh + 1 : sh, q : q + (w_out - 1) * sw + 1 : sw] += dy / (kh * kw)
    return dx_pad[:, :, ph : ph + input_shape[2], pw : pw + input_shape[3]]


def global_avg_pool(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) → (N, C): the mean over space (GAP)."""
    return x.mean(axis=(2, 3))


def global_avg_pool_backward(dy: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """dy[n, c]/(H·W) to every position of channel c."""
    h, w = input_shape[2], input_shape[3]
    return np.broadcast_to(dy[:, :, None, None] / (h * w), input_shape).copy()
