"""EfficientNet: compound scaling, B0–B7 equal to torchvision (parameters, multiply–accumulates,
outputs on the same weights), fractional φ, and where the α/β/γ rule and the official table part."""

import math

import pytest
import torch
import torchvision
from equivalence import assert_same_outputs, randomize_norm_stats
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnnatlas
from cnnatlas import InvalidArgumentError, compound_scale
from cnnatlas.layers import DropPath, make_divisible
from cnnatlas.models.base import count_params
from cnnatlas.models.efficientnet import B0_STAGES, OFFICIAL_SCALING, OFFICIAL_SCALING_SOURCE, EfficientNet

VARIANTS = [f"efficientnet_b{i}" for i in range(8)]


def _meta(name, **kwargs):
    with torch.device("meta"):
        return cnnatlas.create_model(name, **kwargs)


def _torchvision_meta(name):
    with torch.device("meta"):
        return getattr(torchvision.models, name)()


# -- compound scaling -----------------------------------------------------------------------------


def test_compound_scale_values():
    assert compound_scale(0) == (1.0, 1.0, 1.0)
    assert compound_scale(1) == pytest.approx((1.2, 1.1, 1.15))
    d, w, r = compound_scale(2.5)
    assert (d, w, r) == pytest.approx((1.2**2.5, 1.1**2.5, 1.15**2.5))
    assert compound_scale(1).flops_factor == pytest.approx(1.2 * 1.1**2 * 1.15**2)  # α·β²·γ² = 1.92 ≈ 2
    assert abs(compound_scale(1).flops_factor - 2) < 0.1
    assert compound_scale(3).flops_factor == pytest.approx(compound_scale(1).flops_factor ** 3)
    assert compound_scale(1, alpha=1.0, beta=1.0, gamma=2.0) == pytest.approx((1.0, 1.0, 2.0))


@pytest.mark.parametrize("kwargs", [{"phi": "2"}, {"phi": float("nan")}, {"phi": 100}, {"phi": 1, "alpha": 0.9}])
def test_compound_scale_rejects_bad_arguments(kwargs):
    with pytest.raises(InvalidArgumentError):
        compound_scale(**kwargs)


@pytest.mark.parametrize("phi", [0.5, 1.0, 2.5])
def test_fractional_phi_builds_the_scaled_b0(phi):
    d, w, r = compound_scale(phi)
    model = _meta("efficientnet", phi=phi)
    assert [len(stage) for stage in model.stages] == [math.ceil(row.n * d) for row in B0_STAGES]
    assert [stage[0].out_channels for stage in model.stages] == [make_divisible(row.c * w) for row in B0_STAGES]
    assert model.stem.conv.out_channels == make_divisible(32 * w)
    assert model.num_features == make_divisible(1280 * w)
    assert model.default_input_size == (3, round(224 * r), round(224 * r))
    side = 48
    out = cnnatlas.create_model("efficientnet", phi=phi, num_classes=3).eval()(torch.randn(1, 3, side, side))
    assert out.shape == (1, 3) and torch.isfinite(out).all()


def test_parameters_grow_with_phi():
    counts = [count_params(_meta("efficientnet", phi=phi)) for phi in (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0)]
    assert counts == sorted(set(counts)), counts
    assert counts[0] == count_params(_meta("efficientnet_b0"))


def test_phi_and_official_scaling_are_exclusive():
    with pytest.raises(InvalidArgumentError, match="fixed by the model name"):
        cnnatlas.create_model("efficientnet_b3", phi=3.0)
    with pytest.raises(InvalidArgumentError, match="phi or scaling"):
        EfficientNet(phi=3.0, scaling=OFFICIAL_SCALING["b3"])
    for bad in (50.0, "2"):
        with pytest.raises(InvalidArgumentError, match="phi"):
            cnnatlas.create_model("efficientnet", phi=bad)


def test_compound_rule_against_the_official_table():
    """Where the α/β/γ rule at φ = N and the official B_N coefficients agree, and where they differ."""
    rows, lines = (
        {},
        [
            f"official table: {OFFICIAL_SCALING_SOURCE}",
            "model: rule/official − 1 for width, depth, resolution; φ each official coefficient implies; params",
        ],
    )
    for n, (variant, official) in enumerate(OFFICIAL_SCALING.items()):
        d, w, r = compound_scale(n)
        diff = (w / official.width - 1, d / official.depth - 1, 224 * r / official.resolution - 1)
        implied = (
            math.log(official.width) / math.log(1.1),
            math.log(official.depth) / math.log(1.2),
            math.log(official.resolution / 224) / math.log(1.15),
        )
        params = (count_params(_meta("efficientnet", phi=float(n))), count_params(_meta(f"efficientnet_{variant}")))
        rows[n] = diff, params
        lines.append(
            f"{variant}: width {diff[0]:+.1%}, depth {diff[1]:+.1%}, resolution {diff[2]:+.1%}; "
            f"implied φ {implied[0]:.2f}/{implied[1]:.2f}/{implied[2]:.2f}; "
            f"params rule {params[0]:,} vs official {params[1]:,} ({params[0] / params[1] - 1:+.1%})"
        )
    table = "\n".join(lines)
    # B0 is the baseline of both.
    assert rows[0][0] == (0.0, 0.0, 0.0) and rows[0][1][0] == rows[0][1][1], table
    # The rule always asks for more layers than the released models have (+9% … +23%).
    assert all(rows[n][0][1] > 0.05 for n in range(1, 8)), table
    # Width and resolution: within 3% for B5–B7, but 7–14% larger than the table for B1–B3.
    assert all(abs(rows[n][0][0]) < 0.03 and abs(rows[n][0][2]) < 0.03 for n in (5, 6, 7)), table
    assert all(rows[n][0][0] > 0.05 and rows[n][0][2] > 0.05 for n in (1, 2, 3)), table
    # So every rule-built φ = N model has more parameters than the released B_N.
    assert all(rows[n][1][0] > rows[n][1][1] for n in range(1, 8)), table
    # The official B2 is the rule at φ = 1 in width and depth (1.1, 1.2), at 260 px instead of 258.
    assert OFFICIAL_SCALING["b2"].width == pytest.approx(compound_scale(1).width)
    assert OFFICIAL_SCALING["b2"].depth == pytest.approx(compound_scale(1).depth)
    assert count_params(_meta("efficientnet", phi=1.0)) == count_params(_meta("efficientnet_b2")), table


# -- B0–B7 against torchvision --------------------------------------------------------------------


@pytest.mark.parametrize("name", VARIANTS)
def test_parameters_equal_torchvision_and_published(name):
    ours = count_params(_meta(name))
    theirs = count_params(_torchvision_meta(name))
    pub = cnnatlas.get_entry(name).published
    assert ours == theirs == pub.params, (name, ours, theirs, pub.params, pub.citation)


@pytest.mark.parametrize("name", VARIANTS)
def test_macs_equal_published(name):
    pub = cnnatlas.get_entry(name).published
    counter = FlopCounterMode(display=False)
    with counter:
        _meta(name)(torch.empty((1,) + pub.input_size, device="meta"))
    macs = counter.get_total_flops() // 2
    assert pub.macs_agreement(macs).status == "exact", (name, macs, pub.gmacs, pub.input_size, pub.citation)


@pytest.mark.parametrize("name", VARIANTS)
def test_norm_and_stochastic_depth_settings_equal_torchvision(name):
    ours, theirs = _meta(name), _torchvision_meta(name)
    norms = lambda m: [(b.eps, b.momentum) for b in m.modules() if isinstance(b, nn.BatchNorm2d)]  # noqa: E731
    assert norms(ours) == norms(theirs)
    blocks = [b for stage in ours.stages for b in stage]
    tv_blocks = [b for stage in theirs.features[1:-1] for b in stage]
    assert len(blocks) == len(tv_blocks)
    for i, (b, t) in enumerate(zip(blocks, tv_blocks)):
        assert b.has_skip == t.use_res_connect
        rate = b.drop_path.rate if isinstance(b.drop_path, DropPath) else 0.0
        expected = t.stochastic_depth.p if t.use_res_connect else 0.0
        assert rate == pytest.approx(expected), f"{name} block {i}: drop-path {rate} vs torchvision {expected}"
        assert rate == pytest.approx(0.2 * i / len(blocks) if b.has_skip else 0.0)  # rising linearly to 0.2


def _same_outputs(name, side=64):
    torch.manual_seed(0)
    theirs = randomize_norm_stats(getattr(torchvision.models, name)())
    ours = cnnatlas.load_torchvision_weights(cnnatlas.create_model(name), theirs)
    assert_same_outputs(ours, theirs, torch.randn(2, 3, side, side))


@pytest.mark.parametrize("name", VARIANTS[:4])
def test_same_outputs_as_torchvision(name):
    _same_outputs(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", VARIANTS[4:])
def test_same_outputs_as_torchvision_large(name):
    _same_outputs(name)


# -- training-time behaviour ----------------------------------------------------------------------


def test_b0_forward_backward_at_standard_input():
    torch.manual_seed(0)
    # stochastic depth off: a dropped residual branch rightly receives no gradient
    model = cnnatlas.create_model("efficientnet_b0", drop_path_rate=0.0).train()
    x = torch.randn((2,) + cnnatlas.get_entry("efficientnet_b0").input_size)
    model(x).logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing[:5]}"
    model.eval()
    small = x[:, :, :64, :64]
    with torch.no_grad():
        assert torch.equal(model.forward_head(model.forward_features(small)), model(small))


def test_feature_maps_have_the_listed_channels_and_strides():
    model = cnnatlas.create_model("efficientnet_b0", features_only=True).eval()
    with torch.no_grad():
        maps = model(torch.randn(1, 3, 64, 64))
    assert [tuple(m.shape[1:]) for m in maps] == [
        (f.channels, 64 // f.reduction, 64 // f.reduction) for f in model.feature_info
    ]
    assert [(f.channels, f.reduction) for f in model.feature_info] == [(16, 2), (24, 4), (40, 8), (112, 16), (320, 32)]
