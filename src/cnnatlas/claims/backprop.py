"""The backward pass of a conv layer, as the notes state it: ∂L/∂X is the full convolution of ∂L/∂Y
with the flipped kernel, ∂L/∂W the cross-correlation of X with ∂L/∂Y. FORMULAS.md §Backpropagation
through a conv layer; the NumPy reference in `cnnatlas.reference` spells it out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import reference
from .base import Measurement, claim

F64 = torch.float64


@claim(
    "conv-backward",
    "∂L/∂X is the full convolution of ∂L/∂Y with the kernel rotated by 180°, and ∂L/∂W is the cross-correlation of X "
    "with ∂L/∂Y.",
)
def conv_backward() -> Measurement:
    # 1. the formula in three torch calls (stride 1, no padding), against autograd
    x = torch.randn(2, 3, 9, 9, dtype=F64, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, dtype=F64, requires_grad=True)
    y = F.conv2d(x, w)
    dy = torch.randn_like(y)
    y.backward(dy)
    with torch.no_grad():
        full = F.conv2d(F.pad(dy, (2, 2, 2, 2)), w.flip(2, 3).transpose(0, 1))  # full conv, flipped kernel
        unflipped = F.conv2d(F.pad(dy, (2, 2, 2, 2)), w.transpose(0, 1))
        corr = F.conv2d(x.transpose(0, 1), dy.transpose(0, 1)).transpose(0, 1)  # X ⋆ dY
    err_dx = float((full - x.grad).abs().max() / x.grad.abs().max())
    err_dw = float((corr - w.grad).abs().max() / w.grad.abs().max())
    err_noflip = float((unflipped - x.grad).abs().max() / x.grad.abs().max())
    # 2. the NumPy reference (same formula, any stride, padding, dilation, groups) against autograd
    worst = 0.0
    settings = [(1, 1, 1, 1), (2, 1, 1, 1), (1, 2, 2, 1), (2, 0, 1, 2), (3, 2, 2, 2)]
    for s, p, d, g in settings:
        xs = torch.randn(2, 4, 11, 10, dtype=F64, requires_grad=True)
        ws = torch.randn(6, 4 // g, 3, 3, dtype=F64, requires_grad=True)
        ys = F.conv2d(xs, ws, stride=s, padding=p, dilation=d, groups=g)
        gs = torch.randn_like(ys)
        ys.backward(gs)
        dx, dw, _ = reference.conv2d_backward(gs.numpy(), xs.detach().numpy(), ws.detach().numpy(), s, p, d, g)
        worst = max(worst, reference.relative_error(dx, xs.grad.numpy()), reference.relative_error(dw, ws.grad.numpy()))
    ok = err_dx < 1e-12 and err_dw < 1e-12 and err_noflip > 0.1 and worst < 1e-12
    return Measurement(
        measured=f"relative error vs autograd: ∂L/∂X {err_dx:.0e}, ∂L/∂W {err_dw:.0e}; without the flip "
        f"{err_noflip:.2f}; "
        f"NumPy reference over {len(settings)} stride/padding/dilation/groups settings: {worst:.0e}",
        expected="0 (rounding); 0; large; 0",
        passed=ok,
        conditions="float64; torch.nn.functional.conv2d 3→4 channels, 3×3, on 2×3×9×9 with a random ∂L/∂Y; "
        "reference: cnnatlas.reference.conv2d_backward, strides 1–3, padding 0–2, dilation 1–2, groups 1–2",
        values={"dx_error": err_dx, "dw_error": err_dw, "dx_error_without_flip": err_noflip, "reference_worst": worst},
    )
