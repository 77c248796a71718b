"""MobileNet v1/v2 and their blocks: the separable-conv weight formula, the inverted residual's skip
and linear projection, parameter and multiply–accumulate counts against the papers, torchvision
and timm, and equal outputs given the same weights."""

import pytest
import timm
import torch
import torchvision
from equivalence import assert_same_outputs, randomize_norm_stats
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models._utils import _make_divisible as tv_make_divisible

import cnnatlas
from cnnatlas import InvalidArgumentError
from cnnatlas.layers import DropPath, InvertedResidual, SeparableConv, make_divisible
from cnnatlas.models.base import count_params
from cnnatlas.models.mobilenet import MOBILENET_V2_STAGES
from cnnatlas.weights_timm import load_timm_weights


def _meta(name, **kwargs):
    with torch.device("meta"):
        return cnnatlas.create_model(name, **kwargs)


def _macs(model, size):
    """Multiply–accumulates of one forward pass at size×size (FlopCounterMode counts 2 per MAC)."""
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.empty((1, model.in_channels, size, size), device="meta"))
    return counter.get_total_flops() // 2


# -- blocks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("k, c_in, c_out", [(3, 256, 256), (3, 32, 64), (5, 24, 40), (7, 8, 3)])
def test_separable_conv_weights_follow_the_formula(k, c_in, c_out):
    separable = SeparableConv(c_in, c_out, k, norm_layer="none", bias=False)
    standard = nn.Conv2d(c_in, c_out, k, bias=False)
    ours, full = count_params(separable), count_params(standard)
    assert ours == k * k * c_in + c_in * c_out
    assert full == k * k * c_in * c_out
    assert ours / full == pytest.approx(1 / c_out + 1 / (k * k), rel=1e-12)


def test_separable_conv_worked_example_of_the_notes():
    # FORMULAS.md: K = 3, C_in = C_out = 256: 589,824 vs 2,304 + 65,536 = 67,840 (8.7×)
    separable = count_params(SeparableConv(256, 256, 3, norm_layer="none", bias=False))
    standard = count_params(nn.Conv2d(256, 256, 3, bias=False))
    assert (standard, separable) == (589_824, 67_840)
    assert round(standard / separable, 1) == 8.7


def test_separable_conv_depthwise_step_keeps_channels_apart():
    torch.manual_seed(0)
    block = SeparableConv(6, 10, 3, stride=2).eval()
    x = torch.randn(1, 6, 9, 9)
    bumped = x.clone()
    bumped[:, 2] += 1.0
    with torch.no_grad():
        changed = (block.dw(bumped) - block.dw(x)).abs().flatten(2).amax(2)[0]
        assert block(x).shape == (1, 10, 5, 5)
    assert changed[2] > 0 and torch.count_nonzero(changed) == 1, changed


@pytest.mark.parametrize(
    "c_in, c_out, stride, skip",
    [(16, 16, 1, True), (16, 24, 1, False), (16, 16, 2, False), (24, 32, 2, False)],
)
def test_inverted_residual_skip_only_when_shapes_allow(c_in, c_out, stride, skip):
    torch.manual_seed(0)
    block = InvertedResidual(c_in, c_out, 3, stride=stride, expand_ratio=6).eval()
    assert block.has_skip is skip
    with torch.no_grad():  # silence the residual branch F: the output is then x + 0 or 0
        block.project.norm.weight.zero_()
        block.project.norm.bias.zero_()
        x = torch.randn(2, c_in, 8, 8)
        y = block(x)
    assert y.shape == (2, c_out, 8 // stride, 8 // stride)
    if skip:
        assert torch.equal(y, x)
    else:
        assert torch.count_nonzero(y) == 0


def test_inverted_residual_projection_is_linear():
    torch.manual_seed(0)
    block = InvertedResidual(8, 16, 3, expand_ratio=6).eval()
    assert isinstance(block.project.act, nn.Identity)
    seen = {}
    block.dw.register_forward_hook(lambda m, a, out: seen.setdefault("dw", out))
    with torch.no_grad():
        y = block(torch.randn(4, 8, 10, 10))
    assert 0 <= seen["dw"].min() and seen["dw"].max() <= 6  # the depthwise output went through ReLU6
    assert y.min() < 0  # the projection's output did not: no activation after it


def test_inverted_residual_expansion_and_squeeze_widths():
    block = InvertedResidual(24, 40, 5, expand_ratio=6, se_ratio=0.25, act_layer="silu")
    assert block.expand.conv.out_channels == block.expanded_channels == 144
    assert (block.se.fc1.in_channels, block.se.fc1.out_channels) == (144, 6)  # squeeze = ¼ of the *input* 24
    plain = InvertedResidual(32, 16, 3, expand_ratio=1)
    assert isinstance(plain.expand, nn.Identity) and plain.dw.conv.in_channels == 32
    expanded = InvertedResidual(32, 16, 3, expand_ratio=2)
    assert count_params(expanded) - count_params(plain) == (32 * 64 + 2 * 64) + (64 - 32) * (9 + 2 + 16)


def test_inverted_residual_drop_path_drops_whole_samples():
    torch.manual_seed(0)
    block = InvertedResidual(8, 8, 3, drop_path_rate=0.5).eval()
    assert isinstance(block.drop_path, DropPath) and block.drop_path.rate == 0.5
    assert isinstance(InvertedResidual(8, 16, 3, drop_path_rate=0.5).drop_path, nn.Identity)  # no skip
    x = torch.randn(64, 8, 6, 6)
    with torch.no_grad():
        branch = block(x) - x  # eval: F(x)
        block.drop_path.train()
        dropped = block(x) - x
    kept = dropped.flatten(1).abs().amax(1) > 0
    assert 0 < int(kept.sum()) < 64
    assert torch.allclose(dropped[kept], branch[kept] / 0.5, atol=1e-6)


@pytest.mark.parametrize("kwargs", [{"expand_ratio": 0.5}, {"se_ratio": 2.0}, {"drop_path_rate": 1.0}])
def test_inverted_residual_rejects_bad_arguments(kwargs):
    with pytest.raises(InvalidArgumentError):
        InvertedResidual(8, 8, 3, **kwargs)


def test_make_divisible_matches_torchvision_and_timm():
    from timm.layers import make_divisible as timm_make_divisible

    values = [v / 4 for v in range(4, 4000)]
    assert [make_divisible(v) for v in values] == [tv_make_divisible(v, 8) for v in values]
    assert [make_divisible(v) for v in values] == [timm_make_divisible(v, 8) for v in values]
    assert (make_divisible(32 * 0.75), make_divisible(1280 * 1.1), make_divisible(10)) == (24, 1408, 16)


# -- MobileNet v1 ---------------------------------------------------------------------------------


def test_mobilenet_v1_parameters_equal_timm():
    ours = count_params(_meta("mobilenet_v1"))
    with torch.device("meta"):
        theirs = count_params(timm.create_model("mobilenetv1_100"))
        theirs_125 = count_params(timm.create_model("mobilenetv1_125"))
    assert ours == theirs == 4_231_976
    assert count_params(_meta("mobilenet_v1", width_mult=1.25)) == theirs_125
    pub = cnnatlas.get_entry("mobilenet_v1").published
    assert pub.params_agreement(ours).ok, (ours, pub.params, pub.citation)


# Howard et al. 2017, Table 6 (width α at 224) and Table 7 (resolution at α = 1): Mult-Adds and
# parameters in millions [PUBLISHED.md §3.3, from the PaperWeekly transcription of the paper].
V1_TABLE_6 = {1.0: (569, 4.2), 0.75: (325, 2.6), 0.5: (149, 1.3), 0.25: (41, 0.5)}
V1_TABLE_7 = {224: 569, 192: 418, 160: 290, 128: 186}


@pytest.mark.parametrize("alpha", sorted(V1_TABLE_6))
def test_mobilenet_v1_width_multiplier_against_table_6(alpha):
    macs_m, params_m = V1_TABLE_6[alpha]
    model = _meta("mobilenet_v1", width_mult=alpha)
    measured_macs, measured_params = _macs(model, 224) / 1e6, count_params(model) / 1e6
    assert abs(measured_macs - macs_m) / macs_m < 0.005, f"α={alpha}: {measured_macs:.1f}M MACs vs {macs_m}M"
    assert round(measured_params, 1) == params_m, f"α={alpha}: {measured_params:.3f}M params vs {params_m}M"


def test_mobilenet_v1_resolution_multiplier_against_table_7():
    params = count_params(_meta("mobilenet_v1"))
    for side, macs_m in V1_TABLE_7.items():
        model = _meta("mobilenet_v1", resolution_mult=side / 224)
        assert model.default_input_size == (3, side, side)
        assert count_params(model) == params  # ρ changes the input, not the layers
        measured = _macs(model, model.default_input_size[-1]) / 1e6
        assert abs(measured - macs_m) / macs_m < 0.005, f"{side}: {measured:.1f}M MACs vs {macs_m}M"


def test_mobilenet_v1_same_outputs_as_timm():
    torch.manual_seed(0)
    theirs = randomize_norm_stats(timm.create_model("mobilenetv1_100"))
    ours = load_timm_weights(cnnatlas.create_model("mobilenet_v1"), theirs)
    assert_same_outputs(ours, theirs, torch.randn(2, 3, 64, 64))


@pytest.mark.parametrize("kwargs", [{"width_mult": 0}, {"resolution_mult": -1.0}, {"act_layer": "nope"}])
def test_mobilenet_v1_rejects_bad_arguments(kwargs):
    with pytest.raises(InvalidArgumentError):
        cnnatlas.create_model("mobilenet_v1", **kwargs)


# -- MobileNet v2 ---------------------------------------------------------------------------------


def test_mobilenet_v2_follows_table_2():
    model = _meta("mobilenet_v2")
    assert [(len(stage), stage[0].out_channels, stage[0].dw.conv.stride[0]) for stage in model.stages] == [
        (row.n, row.c, row.s) for row in MOBILENET_V2_STAGES
    ]
    assert [stage[0].expanded_channels for stage in model.stages] == [
        row.t * c_in for row, c_in in zip(MOBILENET_V2_STAGES, (32, 16, 24, 32, 64, 96, 160))
    ]


@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.75, 1.4])
def test_mobilenet_v2_parameters_equal_torchvision(alpha):
    ours = count_params(_meta("mobilenet_v2", width_mult=alpha))
    with torch.device("meta"):
        theirs = count_params(torchvision.models.mobilenet_v2(width_mult=alpha))
    assert ours == theirs
    if alpha == 1.0:
        assert ours == cnnatlas.get_entry("mobilenet_v2").published.params == 3_504_872


def test_mobilenet_v2_macs_equal_published():
    pub = cnnatlas.get_entry("mobilenet_v2").published
    measured = _macs(_meta("mobilenet_v2"), pub.input_size[-1])
    assert pub.macs_agreement(measured).status == "exact", (measured, pub.gmacs, pub.citation)


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_mobilenet_v2_same_outputs_as_torchvision(alpha):
    torch.manual_seed(0)
    theirs = randomize_norm_stats(torchvision.models.mobilenet_v2(width_mult=alpha))
    ours = cnnatlas.load_torchvision_weights(cnnatlas.create_model("mobilenet_v2", width_mult=alpha), theirs)
    assert_same_outputs(ours, theirs, torch.randn(2, 3, 64, 64))


# -- both -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2"])
def test_forward_backward_at_standard_input(name):
    torch.manual_seed(0)
    model = cnnatlas.create_model(name).train()
    x = torch.randn((2,) + cnnatlas.get_entry(name).input_size)
    model(x).logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"{name}: no gradient reaches {missing[:5]}"
    model.eval()
    small = x[:, :, :64, :64]
    with torch.no_grad():
        assert torch.equal(model.forward_head(model.forward_features(small)), model(small))


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2"])
def test_feature_maps_have_the_listed_channels_and_strides(name):
    model = cnnatlas.create_model(name, features_only=True).eval()
    with torch.no_grad():
        maps = model(torch.randn(1, 3, 64, 64))
    assert [tuple(m.shape[1:]) for m in maps] == [
        (f.channels, 64 // f.reduction, 64 // f.reduction) for f in model.feature_info
    ]
    assert [f.reduction for f in model.feature_info] == [2, 4, 8, 16, 32]
