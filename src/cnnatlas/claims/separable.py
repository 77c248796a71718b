"""Claims about depthwise-separable convolution: its cost and what it cannot express.
FORMULAS.md §Depthwise-separable convolution; the notes' edge case "LESS expressive than standard convs".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import SeparableConv
from ._measure import count_macs, count_params
from .base import Measurement, claim


def separable_block(c_in: int, c_out: int, k: int) -> tuple[nn.Module, str]:
    """Depthwise K×K + pointwise 1×1 without norm, activation or bias: cnnatlas's SeparableConv."""
    return SeparableConv(
        c_in, c_out, k, bias=False, norm_layer="none", act_layer="none"
    ), "cnnatlas.layers.SeparableConv"


@claim(
    "separable",
    "A depthwise-separable conv costs K²·C_in + C_in·C_out instead of K²·C_in·C_out: a ratio of 1/C_out + 1/K², about "
    "8–9× cheaper at K = 3.",
)
def separable() -> Measurement:
    rows, block_name, how = [], "", ""
    for k, c_in, c_out in ((3, 256, 256), (3, 32, 64), (5, 64, 128), (3, 512, 1024), (7, 96, 96)):
        standard = nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)
        sep, block_name = separable_block(c_in, c_out, k)
        macs_std, how = count_macs(standard, (1, c_in, 14, 14))
        macs_sep, _ = count_macs(sep, (1, c_in, 14, 14))
        rows.append(
            {
                "K": k,
                "C_in": c_in,
                "C_out": c_out,
                "standard": count_params(standard),
                "separable": count_params(sep),
                "ratio": count_params(sep) / count_params(standard),
                "formula": 1 / c_out + 1 / k**2,
                "mac_ratio": macs_sep / macs_std,
            }
        )
    ok = all(
        r["separable"] == k_sq_plus(r)
        and abs(r["ratio"] - r["formula"]) < 1e-12
        and abs(r["mac_ratio"] - r["formula"]) < 1e-12
        for r in rows
    )
    ex = rows[0]
    return Measurement(
        measured=f"K=3, 256→256: {ex['standard']:,} vs {ex['separable']:,} ({1 / ex['ratio']:.1f}× fewer); ratios "
        + ", ".join(f"{r['ratio']:.4f}" for r in rows)
        + " (params and MACs alike)",
        expected="589,824 vs 67,840 (8.7×); 1/C_out + 1/K²: " + ", ".join(f"{r['formula']:.4f}" for r in rows),
        passed=ok and ex["standard"] == 589_824 and ex["separable"] == 67_840,
        conditions=f"{block_name} vs nn.Conv2d, no bias; MACs by {how} at 14×14",
        values={"rows": rows},
    )


def k_sq_plus(r: dict) -> int:
    """K²·C_in + C_in·C_out."""
    return r["K"] ** 2 * r["C_in"] + r["C_in"] * r["C_out"]


def fit_separable(
    x: torch.Tensor, y: torch.Tensor, k: int, iterations: int = 12
) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Least-squares fit of y ≈ pointwise(depthwise(x)) by alternating least squares: for fixed
    depthwise filters D the pointwise weights P solve a linear least-squares problem, and vice
    versa. Returns (relative residual ‖y − ŷ‖²/‖y‖², D, P)."""
    n, c_in, h, w = x.shape
    c_out = y.shape[1]
    cols = F.unfold(x, k, padding=k // 2).reshape(n, c_in, k * k, h * w)  # each channel's K² window values
    targets = y.permute(0, 2, 3, 1).reshape(-1, c_out)  # (pixels, C_out)
    d = torch.randn(c_in, k * k, dtype=x.dtype)
    for _ in range(iterations):
        z = torch.einsum("nckp,ck->npc", cols, d).reshape(-1, c_in)  # depthwise outputs per pixel
        p = torch.linalg.lstsq(z, targets).solution.T  # (C_out, C_in)
        # y[pixel, o] = Σ_c,k P[o, c]·cols[c, k]·D[c, k]: linear in D
        design = torch.einsum("nckp,oc->npock", cols, p).reshape(-1, c_in * k * k)
        d = torch.linalg.lstsq(design, y.permute(0, 2, 3, 1).reshape(-1, 1)).solution.reshape(c_in, k * k)
    z = torch.einsum("nckp,ck->npc", cols, d).reshape(-1, c_in)
    p = torch.linalg.lstsq(z, targets).solution.T
    residual = float(((z @ p.T - targets) ** 2).sum() / (targets**2).sum())
    return residual, d, p


@claim(
    "separable-expressivity",
    "A depthwise-separable conv cannot represent a general conv: the best least-squares fit leaves a residual > 0, "
    "while a separable target is fitted exactly.",
)
def separable_expressivity() -> Measurement:
    c_in, c_out, k = 4, 8, 3
    x = torch.randn(16, c_in, 12, 12, dtype=torch.float64)
    general = torch.randn(c_out, c_in, k, k, dtype=torch.float64)
    residual, _, _ = fit_separable(x, F.conv2d(x, general, padding=1), k)
    # control: a target that is separable by construction (pointwise ∘ depthwise)
    depth, point = torch.randn(c_in, 1, k, k, dtype=torch.float64), torch.randn(c_out, c_in, 1, 1, dtype=torch.float64)
    control, _, _ = fit_separable(x, F.conv2d(F.conv2d(x, depth, padding=1, groups=c_in), point), k)
    # in weight space the best separable kernel keeps each input channel's leading singular value
    s = torch.linalg.svdvals(general.permute(1, 0, 2, 3).reshape(c_in, c_out, k * k))
    bound = float((s[:, 1:] ** 2).sum() / (s**2).sum())
    return Measurement(
        measured=f"relative residual of the best fit to a random 3×3 conv {c_in}→{c_out}: {residual:.3f}; "
        f"to a separable target: {control:.1e}",
        expected=f"> 0 (weight-space bound for white inputs: {bound:.3f}); ≈ 0",
        passed=residual > 0.05 and control < 1e-10,
        conditions=f"alternating least squares on the outputs for 16 random {c_in}×12×12 inputs, float64; "
        f"{c_in * k * k + c_in * c_out} separable weights vs {c_in * c_out * k * k} general ones",
        values={"residual_general": residual, "residual_separable_target": control, "svd_bound": bound},
    )
