"""Each calculator of FORMULAS.md against the analyser on a real module, and the notes' worked examples."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from cnnatlas import analyze
from cnnatlas.analysis import formulas as F
from cnnatlas.errors import InvalidArgumentError
from cnnatlas.layers import SqueezeExcite


@pytest.mark.parametrize(
    "k, cin, cout, groups, bias, dims",
    [
        (3, 64, 128, 1, True, 2),
        (3, 64, 64, 64, False, 2),
        (5, 32, 64, 4, True, 2),
        (7, 16, 16, 1, True, 1),
        ((3, 7, 7), 3, 64, 1, False, 3),
    ],
)
def test_conv_params(k, cin, cout, groups, bias, dims):
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims](cin, cout, k, groups=groups, bias=bias)
    shape = (1, cin) + (16,) * dims
    assert F.conv_params(k, cin, cout, groups=groups, bias=bias, dims=dims) == analyze(conv, shape).params
    assert F.conv_params(3, 64, 128) == 73_856  # the notes' example: (9·64 + 1)·128


def test_dense_layer_between_maps_is_about_a_thousand_times_a_conv():
    h = w = 14
    with torch.device("meta"):
        fc = nn.Linear(h * w * 8, h * w * 16, bias=False)
    assert F.dense_params(h, w, 8, 16) == analyze(fc, (1, h * w * 8)).params
    assert F.dense_params(56, 56, 64, 64) / F.conv_params(3, 64, 64, bias=False) > 1000


@pytest.mark.parametrize(
    "i, k, s, p, d",
    [(224, 7, 2, 3, 1), (56, 3, 1, 1, 1), (57, 3, 2, 0, 1), (64, 3, 1, 2, 2), (17, 5, 3, 1, 2), (10, 1, 2, 0, 1)],
)
def test_conv_output_size(i, k, s, p, d):
    out = analyze(nn.Conv2d(1, 1, k, s, p, d), (1, 1, i, i)).output_shapes[0][2]
    assert F.conv_output_size(i, k, s, p, d) == out
    assert F.conv_output_size(224, 7, 2, 3) == 112  # ResNet-50's stem


@pytest.mark.parametrize("k, d", [(3, 1), (5, 1), (3, 2), (7, 3)])
def test_same_padding_keeps_the_size(k, d):
    p = F.same_padding(k, d)
    assert analyze(nn.Conv2d(1, 1, k, padding=p, dilation=d), (1, 1, 20, 20)).output_shapes == [(1, 1, 20, 20)]


@pytest.mark.parametrize("groups", [1, 2, 32])
def test_conv_macs(groups):
    conv = nn.Conv2d(32, 64, 3, stride=2, padding=1, groups=groups)
    assert F.conv_macs((28, 28), 3, 32, 64, groups=groups, batch=2) == analyze(conv, (2, 32, 56, 56)).macs


def test_stacked_receptive_field_and_the_recurrence():
    for n in (2, 3, 5):
        stack = nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1) for _ in range(n)])
        assert analyze(stack, (1, 1, 32, 32)).receptive_field.size[0] == F.stacked_receptive_field(n, 3)
    assert [F.stacked_receptive_field(n) for n in (2, 3, 5)] == [5, 7, 11]
    steps = F.receptive_field_stack([(7, 2, 3), (3, 2, 1)])
    rf = analyze(nn.Sequential(nn.Conv2d(1, 1, 7, 2, 3), nn.MaxPool2d(3, 2, 1)), (1, 1, 64, 64)).receptive_field
    assert (steps[-1].size, steps[-1].jump, steps[-1].start) == (rf.size[0], rf.stride[0], rf.start[0]) == (11, 4, 0)


def test_two_3x3_against_one_5x5():
    c = 64
    two = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.Conv2d(c, c, 3, padding=1, bias=False))
    one = nn.Conv2d(c, c, 5, padding=2, bias=False)
    cmp = F.stacked_vs_single(c, 3, 2)
    r_two, r_one = analyze(two, (1, c, 16, 16)), analyze(one, (1, c, 16, 16))
    assert (cmp.second, cmp.first) == (r_two.params, r_one.params) == (18 * c * c, 25 * c * c)
    assert r_two.receptive_field.size == r_one.receptive_field.size == (5, 5)
    assert round(cmp.saving, 2) == 0.28
    three = F.stacked_vs_single(c, 3, 3)
    assert (three.second, three.first) == (27 * c * c, 49 * c * c)


def test_pointwise_against_3x3():
    cmp = F.pointwise_vs_kxk(64, 128, 3, bias=False)
    assert cmp.second == analyze(nn.Conv2d(64, 128, 1, bias=False), (1, 64, 8, 8)).params
    assert cmp.first == analyze(nn.Conv2d(64, 128, 3, bias=False), (1, 64, 8, 8)).params
    assert cmp.first == 9 * cmp.second


@pytest.mark.parametrize("k, d", [(3, 2), (3, 4), (5, 2)])
def test_dilation_effective_kernel(k, d):
    conv = nn.Conv2d(1, 1, k, dilation=d, bias=False)
    r = analyze(conv, (1, 1, 32, 32))
    assert r.receptive_field.size == (F.dilated_kernel_size(k, d),) * 2
    assert r.params == k * k
    assert F.dilated_kernel_size(3, 2) == 5


def test_depthwise_separable_against_standard():
    k, c = 3, 256
    standard = nn.Conv2d(c, c, k, padding=1, bias=False)
    separable = nn.Sequential(nn.Conv2d(c, c, k, padding=1, groups=c, bias=False), nn.Conv2d(c, c, 1, bias=False))
    cmp = F.separable_vs_standard(k, c, c)
    rs, rd = analyze(standard, (1, c, 14, 14)), analyze(separable, (1, c, 14, 14))
    assert (cmp.first, cmp.second) == (rs.params, rd.params) == (589_824, 67_840)
    assert rd.macs / rs.macs == pytest.approx(cmp.ratio) == pytest.approx(F.separable_ratio(k, c))
    assert round(1 / cmp.ratio, 1) == 8.7


@pytest.mark.parametrize("c, r", [(64, 16), (256, 16), (96, 4)])
def test_squeeze_excitation_params(c, r):
    assert F.se_params(c, r) == analyze(SqueezeExcite(c, r), (1, c, 8, 8)).params
    assert F.se_params(c, r, bias=False) == 2 * c * c // r


def test_densenet_input_channels_from_the_traced_dense_layers():
    with torch.device("meta"):
        model = torchvision.models.densenet121()
    report = analyze(model, (1, 3, 64, 64))
    for block, (k0, layers) in {1: (64, 6), 2: (128, 12)}.items():
        for layer in range(1, layers + 1):
            rec = next(r for r in report.layers if r.name == f"features.denseblock{block}.denselayer{layer}.conv1")
            assert rec.input_shapes[0][1] == F.densenet_input_channels(k0, 32, layer)


def test_compound_scaling_flops_of_a_plain_cnn_scale_as_d_w2_r2():
    def plain(depth: int, width: int) -> nn.Module:
        return nn.Sequential(*[nn.Conv2d(width, width, 3, padding=1, bias=False) for _ in range(depth)])

    base = analyze(plain(2, 8), (1, 8, 16, 16)).macs
    s = F.compound_scaling(1, alpha=2, beta=2, gamma=2)
    scaled = analyze(
        plain(round(2 * s.depth), round(8 * s.width)),
        (1, round(8 * s.width), round(16 * s.resolution), round(16 * s.resolution)),
    ).macs
    assert scaled / base == s.flops == 32
    b0 = F.compound_scaling(1)
    assert b0.flops == pytest.approx(1.2 * 1.1**2 * 1.15**2) and abs(b0.flops - 2) < 0.1


def test_inflation_costs_k_t_times_the_2d_conv():
    k_t, k, c = 3, 3, 16
    cmp = F.inflation_cost(k_t, k, c, 32)
    r3 = analyze(nn.Conv3d(c, 32, (k_t, k, k), padding=(1, 1, 1), bias=False), (1, c, 8, 14, 14))
    r2 = analyze(nn.Conv2d(c, 32, k, padding=1, bias=False), (8, c, 14, 14))  # each of the 8 frames
    assert r3.macs == k_t * r2.macs and cmp.second == r3.params and cmp.first == r2.params and cmp.ratio == k_t


def test_vit_tokens_from_the_traced_encoder():
    with torch.device("meta"):
        vit = torchvision.models.vit_b_16()
    report = analyze(vit, (1, 3, 224, 224))
    encoder_in = next(r for r in report.layers if r.name.startswith("encoder"))
    assert encoder_in.input_shapes[0][1] == F.vit_tokens(224, 16) == 197


@pytest.mark.parametrize(
    "call",
    [
        lambda: F.conv_params(3, 64, 100, groups=3),
        lambda: F.conv_output_size(2, 7),
        lambda: F.same_padding(4),
        lambda: F.receptive_field_stack([(3, 1, 1, 1, 1)]),
        lambda: F.compound_scaling(1, alpha=0.5),
        lambda: F.vit_tokens(224, 15),
        lambda: F.conv_params(0, 3, 3),
    ],
)
def test_bad_arguments_are_explained(call):
    with pytest.raises(InvalidArgumentError):
        call()
