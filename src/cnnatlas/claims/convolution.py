"""Claims about one convolution layer: its parameters, weight sharing, output size, padding, 1×1.

FORMULAS.md §Convolution layer and §1×1 convolution; the notes' "Explanation" and "Examples".
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._measure import count_params, fmt_ratio
from .base import Measurement, claim


def conv_param_formula(k: int, c_in: int, c_out: int, groups: int = 1, bias: bool = True) -> int:
    """(K·K·C_in/G + 1)·C_out."""
    return (k * k * c_in // groups + int(bias)) * c_out


def output_size_formula(i: int, k: int, s: int = 1, p: int = 0, d: int = 1) -> int:
    """O = floor((I + 2P − D(K − 1) − 1)/S) + 1."""
    return (i + 2 * p - d * (k - 1) - 1) // s + 1


@claim(
    "conv-params", "A conv layer has (K²·C_in/G + 1)·C_out parameters, whatever the size H×W of the image it runs on."
)
def conv_params() -> Measurement:
    cases = [
        (3, 64, 128, 1, True),
        (1, 32, 64, 1, True),
        (5, 1, 6, 1, True),
        (7, 3, 64, 1, False),
        (3, 32, 32, 32, False),
        (3, 64, 64, 4, True),
        (5, 16, 24, 8, True),
    ]
    rows, sizes = [], (8, 32, 96)
    for k, c_in, c_out, g, bias in cases:
        conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, groups=g, bias=bias)
        counts = set()
        for s in sizes:  # run it on each image size; count what it holds afterwards
            with torch.no_grad():
                conv(torch.zeros(1, c_in, s, s))
            counts.add(count_params(conv))
        rows.append(
            {
                "K": k,
                "C_in": c_in,
                "C_out": c_out,
                "G": g,
                "bias": bias,
                "measured": sorted(counts),
                "formula": conv_param_formula(k, c_in, c_out, g, bias),
            }
        )
    agree = all(r["measured"] == [r["formula"]] for r in rows)
    example = rows[0]["measured"][0]
    return Measurement(
        measured=f"{sum(r['measured'] == [r['formula']] for r in rows)}/{len(rows)} layers equal the formula at every "
        f"size; 3×3, 64→128: {example:,}",
        expected="(K²·C_in/G + 1)·C_out at every H×W; 3×3, 64→128: 73,856",
        passed=agree and example == 73_856,
        conditions=f"nn.Conv2d, K ∈ {{1,3,5,7}}, groups 1–32, with and without bias; each run on "
        f"{', '.join(f'{s}×{s}' for s in sizes)} inputs",
        values={"layers": rows},
    )


@claim(
    "weight-sharing",
    "Sharing one filter over all positions makes a conv layer ~(H·W)²/K² times smaller than a dense layer between the "
    "same maps — over 1000× from 10×10 maps up.",
)
def weight_sharing() -> Measurement:
    c, k = 16, 3
    rows = []
    for hw in (10, 16, 32, 56):
        conv = nn.Conv2d(c, c, k, padding=1)
        with torch.device("meta"):  # a dense layer of 56·56·16 × 56·56·16 weights would need 9.9 GB
            dense = nn.Linear(hw * hw * c, hw * hw * c)
        rows.append(
            {
                "H=W": hw,
                "conv": count_params(conv),
                "dense": count_params(dense),
                "ratio": count_params(dense) / count_params(conv),
                "(HW)²/K²": (hw * hw) ** 2 / k**2,
            }
        )
    # The conv *is* a dense layer whose matrix repeats a few numbers: its Jacobian on an 8×8 map.
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=False).double()
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda t: conv(t).flatten(), x).reshape(4 * 64, 3 * 64)
    dense_out = (jac @ x.flatten()).reshape(1, 4, 8, 8)
    same = torch.allclose(dense_out, conv(x), rtol=0, atol=1e-12)
    distinct = np.unique(jac[jac != 0].detach().numpy()).size
    ratios_ok = all(0.8 < r["ratio"] / r["(HW)²/K²"] < 1.2 and r["ratio"] > 1000 for r in rows)
    return Measurement(
        measured=", ".join(f"{r['H=W']}²: {fmt_ratio(r['ratio'])}" for r in rows)
        + f"; as a dense matrix the 3×3 conv has {jac.numel():,} entries, {distinct} distinct non-zero",
        expected="ratio ≈ (H·W)²/K² (≥ 1000 from 10×10); distinct entries = K²·C_in·C_out = 108",
        passed=ratios_ok and same and distinct == 3 * 4 * 9,
        conditions="3×3 conv 16→16 with bias vs nn.Linear(H·W·16, H·W·16) built on the meta device; "
        "Jacobian of a 3→4 conv on an 8×8 map in float64 reproduces the conv's output",
        values={"maps": rows, "jacobian_entries": jac.numel(), "distinct_nonzero": distinct, "dense_equals_conv": same},
    )


@claim("output-size", "A conv's output size is floor((I + 2P − D(K − 1) − 1)/S) + 1.")
def output_size() -> Measurement:
    grid = itertools.product(range(1, 22), (1, 2, 3, 5, 7), (1, 2, 3), (0, 1, 2, 3), (1, 2, 3))
    w_cache: dict[int, torch.Tensor] = {}
    agree = total = 0
    mismatches = []
    for i, k, s, p, d in grid:
        w = w_cache.setdefault(k, torch.ones(1, 1, k, k))
        formula = output_size_formula(i, k, s, p, d)
        try:
            measured = F.conv2d(torch.zeros(1, 1, i, i), w, stride=s, padding=p, dilation=d).shape[-1]
        except RuntimeError:  # torch refuses a kernel larger than the padded input
            measured = None
        total += 1
        if (measured == formula) or (measured is None and formula < 1):
            agree += 1
        else:
            mismatches.append((i, k, s, p, d, measured, formula))
    stem = F.conv2d(torch.zeros(1, 1, 224, 224), torch.ones(1, 1, 7, 7), stride=2, padding=3).shape[-1]
    return Measurement(
        measured=f"{agree}/{total} settings agree (invalid ones included); 224, K=7, S=2, P=3 → {stem}",
        expected=f"{total}/{total}; 224 → 112 (ResNet-50's stem)",
        passed=agree == total and stem == 112,
        conditions="torch.nn.functional.conv2d, I = 1–21, K ∈ {1,2,3,5,7}, S ∈ {1,2,3}, P ∈ {0–3}, D ∈ {1,2,3}; "
        "where the formula gives < 1, torch must refuse",
        values={"settings": total, "agree": agree, "mismatches": mismatches[:10], "resnet_stem": stem},
    )


@claim(
    "same-padding",
    "With an odd kernel at stride 1, padding P = D(K − 1)/2 keeps the size ('same'); P = 0 shrinks it by D(K − 1) "
    "('valid').",
)
def same_padding() -> Measurement:
    from ..layers import ConvNormAct

    checks = same = valid = 0
    for k, d, i in itertools.product((1, 3, 5, 7, 9), (1, 2, 3), (9, 16, 31)):
        if d * (k - 1) >= i:
            continue
        x = torch.zeros(1, 1, i, i)
        w = torch.ones(1, 1, k, k)
        checks += 1
        same += F.conv2d(x, w, padding=d * (k - 1) // 2, dilation=d).shape[-1] == i
        valid += F.conv2d(x, w, padding=0, dilation=d).shape[-1] == i - d * (k - 1)
    zoo = all(
        ConvNormAct(2, 2, k, dilation=d, norm_layer="none")(torch.zeros(1, 2, 17, 17)).shape[-1] == 17
        for k, d in itertools.product((1, 3, 5, 7), (1, 2))
    )
    # An even kernel has no symmetric padding that keeps the size: O = I + 2P − K + 1 is odd−even.
    even = [
        k
        for k in (2, 4, 6)
        if any(
            F.conv2d(torch.zeros(1, 1, 16, 16), torch.ones(1, 1, k, k), padding=p).shape[-1] == 16 for p in range(k + 1)
        )
    ]
    return Measurement(
        measured=f"same: {same}/{checks}, valid: {valid}/{checks}; cnnatlas ConvNormAct keeps the size: {zoo}; "
        f"even K with a size-keeping symmetric P: {even or 'none'}",
        expected=f"same: {checks}/{checks}, valid: {checks}/{checks}; True; none (the rule needs odd K)",
        passed=same == checks and valid == checks and zoo and not even,
        conditions="stride 1, K ∈ {1,3,5,7,9}, D ∈ {1,2,3}, I ∈ {9,16,31}; even K ∈ {2,4,6} tried with P = 0…K",
        values={"settings": checks, "same": same, "valid": valid, "zoo_block": zoo, "even_kernels_keeping_size": even},
    )


@claim(
    "one-by-one",
    "A 1×1 convolution is a linear layer applied to every pixel: it mixes channels, never positions, with C_in·C_out "
    "(+C_out) parameters, 9× fewer weights than a 3×3.",
)
def one_by_one() -> Measurement:
    c_in, c_out = 16, 32
    conv = nn.Conv2d(c_in, c_out, 1).double()
    linear = nn.Linear(c_in, c_out).double()
    with torch.no_grad():
        linear.weight.copy_(conv.weight[:, :, 0, 0])
        linear.bias.copy_(conv.bias)
    x = torch.randn(2, c_in, 7, 9, dtype=torch.float64, requires_grad=True)
    y = conv(x)
    per_pixel = linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    diff = float((y - per_pixel).abs().max().detach())
    y[0, :, 3, 4].sum().backward()  # which input positions reach output pixel (3, 4)?
    reached = {tuple(int(v) for v in p) for p in torch.nonzero(x.grad[0].abs().sum(0))}
    params = count_params(conv)
    w3 = nn.Conv2d(c_in, c_out, 3, bias=False).weight.numel()
    return Measurement(
        measured=f"max |conv − per-pixel linear| = {diff:.1e}; output (3,4) reads input positions {sorted(reached)}; "
        f"{params} parameters; 3×3/1×1 weights = {w3 / (c_in * c_out):g}",
        expected=f"0 (float64 rounding); only (3, 4); {c_in * c_out + c_out}; 9",
        passed=diff <= 1e-12 and reached == {(3, 4)} and params == c_in * c_out + c_out and w3 == 9 * c_in * c_out,
        conditions=f"nn.Conv2d({c_in}, {c_out}, 1) and nn.Linear({c_in}, {c_out}) with the same weights, float64, "
        f"input 2×{c_in}×7×9",
        values={"max_abs_diff": diff, "positions_reached": sorted(reached), "params": params},
    )
