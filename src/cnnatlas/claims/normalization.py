"""Claims about normalisation layers: which axes batch norm averages over, train versus inference,
batch size 1, and the statistics of LayerNorm, InstanceNorm and GroupNorm.
FORMULAS.md §Batch normalisation; the notes' edge cases and common mistakes on BN.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import ConvNormAct, get_norm_layer
from .base import Measurement, claim

N, C, G, H = 4, 8, 2, 5

# Ways of grouping a (N, C, H, W) tensor into sets whose statistics a norm could fix, finest first.
GROUPINGS = {
    "per sample and channel, over (H, W)": lambda y: y.reshape(N * C, -1),
    "per sample and group, over (C/G, H, W)": lambda y: y.reshape(N * G, -1),
    "per channel, over (N, H, W)": lambda y: y.transpose(0, 1).reshape(C, -1),
    "per sample, over (C, H, W)": lambda y: y.reshape(N, -1),
}


def feature_maps() -> torch.Tensor:
    """(N, C, H, W) whose mean and scale differ per sample and per channel, so that no grouping is
    normalised by accident."""
    scale = torch.rand(N, C, 1, 1, dtype=torch.float64) * 4 + 0.5
    offset = torch.randn(N, C, 1, 1, dtype=torch.float64) * 3
    return torch.randn(N, C, H, H, dtype=torch.float64) * scale + offset


def normalised_over(y: torch.Tensor) -> str | None:
    """The finest grouping in which every group has mean ≈ 0 and variance ≈ 1."""
    for name, group in GROUPINGS.items():
        g = group(y)
        if g.mean(1).abs().max() < 1e-6 and (g.var(1, unbiased=False) - 1).abs().max() < 1e-3:
            return name
    return None


@claim(
    "batchnorm-axes",
    "Batch norm normalises each channel over (N, H, W), with γ and β of length C — not over all axes, not per "
    "position.",
)
def batchnorm_axes() -> Measurement:
    x = feature_maps()
    bn = nn.BatchNorm2d(C).double().train()
    y = bn(x).detach()
    mu, var = x.mean((0, 2, 3), keepdim=True), x.var((0, 2, 3), unbiased=False, keepdim=True)
    formula_err = float((y - (x - mu) / torch.sqrt(var + bn.eps)).abs().max())
    per_sample_mean = float(y.mean((1, 2, 3)).abs().max())  # what "all axes per sample" would make 0
    per_position_mean = float(y.mean((0, 1)).abs().max())  # what "per position" would make 0
    unbiased = x.var((0, 2, 3), unbiased=True)
    running_err = float(
        max((bn.running_mean - 0.1 * mu.flatten()).abs().max(), (bn.running_var - (0.9 + 0.1 * unbiased)).abs().max())
    )
    measured_axes = normalised_over(y)
    ok = (
        measured_axes == "per channel, over (N, H, W)"
        and formula_err < 1e-12
        and per_sample_mean > 0.05
        and per_position_mean > 0.05
        and bn.weight.shape == bn.bias.shape == (C,)
        and running_err < 1e-12
    )
    return Measurement(
        measured=f"normalised {measured_axes}; |y − (x − μ_c)/√(σ²_c + ε)| ≤ {formula_err:.0e}; per-sample means up to "
        f"{per_sample_mean:.2f}, per-position means up to {per_position_mean:.2f}; γ, β {tuple(bn.weight.shape)}; "
        f"running stats = 0.9·old + 0.1·batch (unbiased var): error {running_err:.0e}",
        expected=f"per channel, over (N, H, W); 0; both ≠ 0; ({C},); 0",
        passed=ok,
        conditions=f"nn.BatchNorm2d({C}) in training mode, float64, input {N}×{C}×{H}×{H} with per-sample and "
        "per-channel offsets and scales",
        values={
            "axes": measured_axes,
            "formula_error": formula_err,
            "per_sample_mean": per_sample_mean,
            "per_position_mean": per_position_mean,
            "running_stats_error": running_err,
        },
    )


@claim(
    "batchnorm-eval",
    "At inference batch norm uses running statistics, so one image's output does not depend on its batch; in training "
    "mode it does.",
)
def batchnorm_eval() -> Measurement:
    block = ConvNormAct(3, 8, 3, norm_layer="batch").double()
    with torch.no_grad():
        for _ in range(20):  # gather running statistics
            block(torch.randn(16, 3, 12, 12, dtype=torch.float64) * 2 + 1)
    image = torch.randn(1, 3, 12, 12, dtype=torch.float64) * 2 + 1
    batch_a = torch.cat([image, torch.randn(7, 3, 12, 12, dtype=torch.float64) * 2 + 1])
    batch_b = torch.cat([image, torch.randn(7, 3, 12, 12, dtype=torch.float64) * 5 - 3])
    diffs = {}
    with torch.no_grad():
        for mode in ("eval", "train"):
            block.train(mode == "train")
            diffs[mode] = float((block(batch_a)[0] - block(batch_b)[0]).abs().max())
    return Measurement(
        measured=f"max change of the image's output between two batches: eval {diffs['eval']:.1e}, train "
        f"{diffs['train']:.2f}",
        expected="eval 0; train > 0",
        passed=diffs["eval"] < 1e-12 and diffs["train"] > 1e-2,
        conditions="cnnatlas ConvNormAct(3, 8) with BN after 20 batches of statistics, float64; the same image among 7 "
        "others from N(1, 2²) or N(−3, 5²)",
        values=diffs,
    )


@claim("batchnorm-batch1", "Batch norm fails or degenerates at batch size 1; GroupNorm and LayerNorm do not.")
@torch.no_grad()
def batchnorm_batch1() -> Measurement:
    try:
        nn.BatchNorm2d(C).train()(torch.randn(1, C, 1, 1))
        error = None
    except ValueError as err:
        error = str(err).split(",")[0]
    x = feature_maps()[:1]
    bn = nn.BatchNorm2d(C).double().train()(x)
    instance = nn.InstanceNorm2d(C).double()(x)
    as_instance = float((bn - instance).abs().max())
    # a per-channel constant added to the image disappears: BN at batch 1 removes each map's mean
    shifted = nn.BatchNorm2d(C).double().train()(x + torch.randn(1, C, 1, 1, dtype=torch.float64) * 10)
    lost = float((shifted - bn).abs().max())
    batch = torch.cat([x, feature_maps()[1:]])
    independent = {}
    for name in ("group", "layer"):
        norm = get_norm_layer(name, num_groups=G)(C).double() if name == "group" else get_norm_layer(name)(C).double()
        alone, together = norm(x), norm(batch)[:1]
        independent[name] = float((alone - together).abs().max()) if torch.isfinite(alone).all() else float("inf")
    ok = error is not None and as_instance < 1e-6 and lost < 1e-6 and all(v < 1e-12 for v in independent.values())
    return Measurement(
        measured=f"BN on 1×{C}×1×1: {error or 'no error'}; BN on 1×{C}×{H}×{H} = InstanceNorm (max diff "
        f"{as_instance:.0e}), a per-channel offset of the image vanishes (diff {lost:.0e}); GroupNorm/LayerNorm "
        f"alone vs in a batch: {independent['group']:.0e} / {independent['layer']:.0e}",
        expected="an error; ≈ 0, ≈ 0 (degenerate); 0 / 0 (independent of the batch)",
        passed=ok,
        conditions=f"torch BatchNorm2d in training mode; cnnatlas get_norm_layer('group', num_groups={G}) and "
        "('layer'), float64",
        values={
            "bn_1x1_error": error,
            "bn_equals_instance": as_instance,
            "offset_lost": lost,
            "batch_independence": independent,
        },
    )


@claim(
    "norm-axes",
    "LayerNorm normalises each sample over (C, H, W), InstanceNorm each sample and channel over (H, W), GroupNorm "
    "each sample and group over (C/G, H, W).",
)
@torch.no_grad()
def norm_axes() -> Measurement:
    x = feature_maps()
    expected = {
        "batch": "per channel, over (N, H, W)",
        "layer": "per sample, over (C, H, W)",
        "instance": "per sample and channel, over (H, W)",
        "group": "per sample and group, over (C/G, H, W)",
    }
    measured = {}
    for name in expected:
        factory = get_norm_layer(name, num_groups=G) if name == "group" else get_norm_layer(name)
        norm = factory(C).double().train()
        measured[name] = normalised_over(norm(x).detach())
    return Measurement(
        measured="; ".join(f"{k}: {v}" for k, v in measured.items()),
        expected="; ".join(f"{k}: {v}" for k, v in expected.items()),
        passed=measured == expected,
        conditions=f"cnnatlas get_norm_layer (batch, layer, instance, group with G = {G}), training mode, float64, "
        "input "
        f"{N}×{C}×{H}×{H} with per-sample and per-channel offsets; the finest grouping with mean 0 and variance 1",
        values={"measured": measured},
    )
