"""GoogLeNet and Inception-v3: the Inception blocks, parameter counts against torchvision's published
figures, equal outputs to torchvision on the same weights, auxiliary heads, features and gradients."""

import pytest
import torch
import torchvision
from equivalence import assert_same_outputs, max_relative_difference, randomize_norm_stats
from torch import nn

import cnnatlas
from cnnatlas.layers import (
    FactorisedFork,
    GoogLeNetAux,
    InceptionA,
    InceptionB,
    InceptionC,
    InceptionD,
    InceptionE,
    InceptionModule,
    InceptionV3Aux,
)
from cnnatlas.models.base import count_params
from cnnatlas.models.inception import GOOGLENET_TABLE, GoogLeNetOutputs, InceptionOutputs

# The torchvision references: no input transform, torchvision's own initialisation.
TV = {
    "googlenet": lambda **kw: torchvision.models.googlenet(transform_input=False, init_weights=True, **kw),
    "inception_v3": lambda **kw: torchvision.models.inception_v3(transform_input=False, init_weights=True, **kw),
}


def _meta(name, **kwargs):
    with torch.device("meta"):
        return cnnatlas.create_model(name, **kwargs)


# -- the Inception module (GoogLeNet) -----------------------------------------------------------


def test_inception_module_output_is_the_concatenation_of_its_branches():
    block = InceptionModule(192, 64, 96, 128, 16, 32, 32).eval()  # inception3a, Table 1
    x = torch.randn(2, 192, 9, 9)
    out = block(x)
    branches = [block.branch1(x), block.branch2(x), block.branch3(x), block.branch4(x)]
    assert [b.shape[1] for b in branches] == [64, 128, 32, 32]
    assert out.shape == (2, 64 + 128 + 32 + 32, 9, 9) and block.out_channels == out.shape[1]
    assert torch.equal(out, torch.cat(branches, 1))


def test_reductions_sit_before_the_expensive_convs():
    block = InceptionModule(192, 64, 96, 128, 16, 32, 32, large_kernel_size=5)
    assert [m.conv.kernel_size for m in block.branch2] == [(1, 1), (3, 3)]
    assert [m.conv.kernel_size for m in block.branch3] == [(1, 1), (5, 5)]
    assert isinstance(block.branch4[0], nn.MaxPool2d) and block.branch4[1].conv.kernel_size == (1, 1)


def test_one_by_one_reduction_saves_parameters_measured():
    # inception3a's 5×5 branch: 192 → 16 → 32 with the reduction, 192 → 32 straight without.
    reduced = InceptionModule(192, 64, 96, 128, 16, 32, 32, large_kernel_size=5)
    naive = InceptionModule(192, 64, 96, 128, 16, 32, 32, large_kernel_size=5, reduce=False)
    bn = 2  # γ and β per channel
    assert count_params(reduced.branch3) == 192 * 16 + bn * 16 + 25 * 16 * 32 + bn * 32
    assert count_params(naive.branch3) == 25 * 192 * 32 + bn * 32
    assert count_params(naive.branch3) / count_params(reduced.branch3) > 9
    assert count_params(naive.branch2) > count_params(reduced.branch2)
    assert count_params(reduced) < count_params(naive)
    # Without the pool projection the naive module passes all 192 input channels through as well.
    x = torch.randn(1, 192, 7, 7)
    assert naive.eval()(x).shape[1] == naive.out_channels == 64 + 128 + 32 + 192


def test_large_kernel_is_a_parameter():
    paper = _meta("googlenet", large_kernel_size=5)
    torchvision_form = _meta("googlenet")
    assert paper.features.inception3a.branch3[1].conv.kernel_size == (5, 5)
    assert torchvision_form.features.inception3a.branch3[1].conv.kernel_size == (3, 3)
    specs = [spec for _, spec in GOOGLENET_TABLE if spec is not None]
    extra = sum((25 - 9) * s.ch5x5red * s.ch5x5 for s in specs)
    assert count_params(paper) - count_params(torchvision_form) == extra
    with pytest.raises(cnnatlas.InvalidArgumentError, match="large_kernel_size"):
        InceptionModule(192, 64, 96, 128, 16, 32, 32, large_kernel_size=4)


def test_inception_module_in_three_dimensions():
    block = InceptionModule(16, 4, 4, 8, 2, 4, 4, dims=3).eval()
    assert isinstance(block.branch4[0], nn.MaxPool3d)
    assert block(torch.randn(1, 16, 4, 6, 6)).shape == (1, 20, 4, 6, 6)


def test_googlenet_is_built_from_plain_modules():
    """What an inflation from 2-D to 3-D walks: only convs, norms, activations, pools, dropout, FC."""
    plain = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Dropout, nn.Linear)
    leaves = [m for m in _meta("googlenet", aux_logits=True).modules() if not list(m.children())]
    assert leaves and all(isinstance(m, plain) for m in leaves), {type(m).__name__ for m in leaves}


# -- the Inception-v3 modules --------------------------------------------------------------------


@pytest.mark.parametrize(
    "block, size, out_size",
    [
        (lambda: InceptionA(192, pool_features=32), 35, 35),
        (lambda: InceptionB(288), 35, 17),
        (lambda: InceptionC(768, channels_7x7=128), 17, 17),
        (lambda: InceptionD(768), 17, 8),
        (lambda: InceptionE(1280), 8, 8),
    ],
    ids=["A", "B", "C", "D", "E"],
)
def test_v3_modules_channels_and_grid(block, size, out_size):
    with torch.device("meta"):
        block = block()
        out = block(torch.empty(1, block.in_channels, size, size))
    branch_widths = [b(torch.empty(1, block.in_channels, size, size, device="meta")).shape[1] for b in block.branches()]
    assert out.shape == (1, sum(branch_widths), out_size, out_size)
    assert out.shape[1] == block.out_channels


def test_factorised_fork_costs_2n_instead_of_n_squared():
    def conv(c_in, c_out, k):
        return nn.Conv2d(c_in, c_out, k, padding=(k[0] // 2, k[1] // 2), bias=False)

    fork = FactorisedFork(conv, 8, 4, n=7)
    assert count_params(fork) == 2 * 7 * 8 * 4  # vs 7·7·8·4 for an n×n per output
    assert fork(torch.randn(1, 8, 9, 9)).shape == (1, 8, 9, 9)


def test_auxiliary_heads_shapes():
    assert InceptionV3Aux(768, 10).eval()(torch.randn(2, 768, 17, 17)).shape == (2, 10)
    assert GoogLeNetAux(512, 10).eval()(torch.randn(2, 512, 14, 14)).shape == (2, 10)


# -- whole models against torchvision ------------------------------------------------------------


@pytest.mark.parametrize("name", ["googlenet", "inception_v3"])
def test_params_equal_published(name):
    published = cnnatlas.get_entry(name).published
    assert published.params_exact and published.source == "torchvision"
    assert count_params(_meta(name)) == published.params


@pytest.mark.parametrize(
    "name, weights", [("googlenet", "GoogLeNet_Weights"), ("inception_v3", "Inception_V3_Weights")]
)
def test_smallest_input_agrees_with_torchvision(name, weights):
    """Found by tracing on meta tensors; torchvision states it in its weights' `min_size`."""
    stated = getattr(torchvision.models, weights).IMAGENET1K_V1.meta["min_size"]
    assert (_meta(name).min_input_size,) * 2 == stated


def test_googlenet_auxiliary_heads_count_as_torchvision():
    with torch.device("meta"):
        theirs = count_params(TV["googlenet"](aux_logits=True))
    ours = count_params(_meta("googlenet", aux_logits=True))
    assert ours == theirs > cnnatlas.get_entry("googlenet").published.params


@pytest.mark.parametrize("aux_logits", [False, True])
def test_googlenet_equals_torchvision(aux_logits):
    torch.manual_seed(0)
    theirs = randomize_norm_stats(TV["googlenet"](aux_logits=True))  # our loader drops its heads if we have none
    ours = cnnatlas.load_torchvision_weights(cnnatlas.create_model("googlenet", aux_logits=aux_logits), theirs)
    assert_same_outputs(ours, theirs, torch.randn(2, 3, 64, 64))


def test_inception_v3_equals_torchvision():
    torch.manual_seed(0)
    theirs = randomize_norm_stats(TV["inception_v3"]())
    ours = cnnatlas.load_torchvision_weights(cnnatlas.create_model("inception_v3"), theirs)
    assert_same_outputs(ours, theirs, torch.randn(2, 3, 96, 96))
    no_aux = cnnatlas.load_torchvision_weights(cnnatlas.create_model("inception_v3", aux_logits=False), theirs)
    assert_same_outputs(no_aux, theirs, torch.randn(2, 3, 75, 75))  # the smallest input torchvision allows


def test_googlenet_training_outputs_match_torchvision():
    """In training mode both return (logits, aux_logits2, aux_logits1); dropout off so they are comparable."""
    torch.manual_seed(0)
    theirs = TV["googlenet"](aux_logits=True, dropout=0.0, dropout_aux=0.0).train()
    ours = cnnatlas.create_model("googlenet", aux_logits=True, drop_rate=0.0, aux_drop_rate=0.0).train()
    cnnatlas.load_torchvision_weights(ours, theirs)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a, b = ours(x), theirs(x)
    assert isinstance(a, GoogLeNetOutputs) and a._fields == b._fields
    for field in a._fields:
        assert max_relative_difference(getattr(a, field), getattr(b, field)) <= 1e-5, field
    assert isinstance(ours.eval()(x), torch.Tensor)


@pytest.mark.slow
def test_inception_v3_training_outputs_match_torchvision():
    torch.manual_seed(0)
    theirs = TV["inception_v3"](dropout=0.0).train()
    ours = cnnatlas.load_torchvision_weights(cnnatlas.create_model("inception_v3", drop_rate=0.0), theirs).train()
    x = torch.randn(2, 3, 299, 299)
    with torch.no_grad():
        a, b = ours(x), theirs(x)
    assert isinstance(a, InceptionOutputs) and a._fields == b._fields
    for field in a._fields:
        assert max_relative_difference(getattr(a, field), getattr(b, field)) <= 1e-5, field


def test_inception_v3_auxiliary_head_needs_299_in_training():
    model = _meta("inception_v3")
    with pytest.raises(cnnatlas.InputShapeError, match="at least 299×299"):
        model(torch.empty(2, 3, 200, 200, device="meta"))
    with pytest.raises(cnnatlas.InputShapeError, match="smallest input this network accepts is 75×75"):
        model(torch.empty(2, 3, 74, 74, device="meta"))
    assert model.eval()(torch.empty(2, 3, 75, 75, device="meta")).shape == (2, 1000)


# -- features, forward split, gradients ----------------------------------------------------------


def _stage_maps(model, size):
    modules = dict(model.named_modules())
    maps = {}
    hooks = [
        modules[s.name].register_forward_hook(lambda m, a, out, n=s.name: maps.__setitem__(n, out.shape))
        for s in model.feature_info
    ]
    with torch.no_grad():
        model.forward_features(torch.randn(1, 3, size, size))
    for h in hooks:
        h.remove()
    return maps


@pytest.mark.parametrize("name, size", [("googlenet", 64), ("inception_v3", 75)])
def test_feature_info_channels_and_reduction(name, size):
    """Channels seen at each named module, and its stride measured: growing the input by 64 pixels
    grows a map of total stride r by exactly 64/r."""
    model = cnnatlas.create_model(name).eval()
    small, large = _stage_maps(model, size), _stage_maps(model, size + 64)
    assert [s.reduction for s in model.feature_info] == [2, 4, 8, 16, 32]
    for stage in model.feature_info:
        assert small[stage.name][1] == stage.channels, stage
        assert large[stage.name][-1] - small[stage.name][-1] == 64 // stage.reduction, stage
    assert model.feature_info[-1].channels == model.num_features


@pytest.mark.parametrize("name, size", [("googlenet", 64), ("inception_v3", 75)])
def test_forward_head_of_forward_features_is_forward(name, size):
    torch.manual_seed(0)
    model = cnnatlas.create_model(name, num_classes=10).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 10)
        assert torch.equal(model.forward_head(model.forward_features(x)), out)
        assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, model.num_features)


def _backward_reaches_every_parameter(model, x):
    model.train()
    out = model(x)
    outputs = list(out) if isinstance(out, tuple) else [out]
    assert all(torch.isfinite(o).all() for o in outputs)
    sum(o.logsumexp(1).sum() for o in outputs).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing[:5]}"


def test_googlenet_backward_with_auxiliary_heads():
    torch.manual_seed(0)
    model = cnnatlas.create_model("googlenet", aux_logits=True)
    _backward_reaches_every_parameter(model, torch.randn(2, 3, 224, 224))


@pytest.mark.slow
def test_inception_v3_backward_with_auxiliary_head():
    torch.manual_seed(0)
    model = cnnatlas.create_model("inception_v3")
    _backward_reaches_every_parameter(model, torch.randn(2, 3, 299, 299))
