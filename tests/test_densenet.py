"""DenseNet: the dense layer, block and transition, parameter counts against torchvision's published
figures, equal outputs to torchvision on the same weights, features and gradients."""

import pytest
import torch
import torchvision
from equivalence import assert_same_outputs, randomize_norm_stats

import cnnatlas
from cnnatlas.layers import DenseBlock, DenseLayer, Transition
from cnnatlas.models.base import count_params
from cnnatlas.models.densenet import DENSENET_CONFIGS

NAMES = ["densenet121", "densenet161", "densenet169", "densenet201"]
# The three larger ones take several seconds each where only the block counts differ from densenet121.
NAMES_121_FAST = [n if n == "densenet121" else pytest.param(n, marks=pytest.mark.slow) for n in NAMES]


def _meta(name, **kwargs):
    with torch.device("meta"):
        return cnnatlas.create_model(name, **kwargs)


# -- blocks --------------------------------------------------------------------------------------


def test_dense_layer_reads_all_previous_outputs():
    k0, k, num_layers = 24, 12, 5
    block = DenseBlock(num_layers, k0, k)
    layers = list(block.children())
    assert len(layers) == num_layers
    for ell, layer in enumerate(layers, start=1):
        assert layer.conv1.in_channels == k0 + k * (ell - 1)
        assert layer.conv1.out_channels == 4 * k  # bottleneck 4k
        assert layer.conv2.out_channels == k
    assert block.out_channels == k0 + k * num_layers


def test_dense_block_concatenates_rather_than_adds():
    torch.manual_seed(0)
    block = DenseBlock(3, 16, 8).eval()
    x = torch.randn(2, 16, 6, 6)
    with torch.no_grad():
        out = block(x)
        first = block.denselayer1(x)
    assert out.shape == (2, 16 + 3 * 8, 6, 6)
    assert torch.equal(out[:, :16], x)  # the input travels on unchanged
    assert torch.equal(out[:, 16:24], first)  # then layer 1's k channels, computed from x alone


def test_dense_layer_parameters_formula():
    c, k, b = 40, 12, 4
    expected = 2 * c + c * b * k + 2 * b * k + 9 * b * k * k  # BN, 1×1, BN, 3×3
    assert count_params(DenseLayer(c, k, bottleneck_factor=b)) == expected


def test_dense_layer_is_pre_activation():
    layer = DenseLayer(8, 4)
    names = [n for n, _ in layer.named_children()]
    assert names[:6] == ["norm1", "act1", "conv1", "norm2", "act2", "conv2"]
    assert layer.conv1.kernel_size == (1, 1) and layer.conv2.kernel_size == (3, 3)


def test_transition_compresses_channels_and_halves_the_grid():
    t = Transition(256, 128).eval()
    assert [n for n, _ in t.named_children()] == ["norm", "act", "conv", "pool"]
    assert t(torch.randn(1, 256, 8, 8)).shape == (1, 128, 4, 4)


def test_dense_blocks_in_three_dimensions():
    block = DenseBlock(2, 8, 4, dims=3).eval()
    assert block(torch.randn(1, 8, 3, 5, 5)).shape == (1, 16, 3, 5, 5)


def test_compression_sets_transition_widths():
    full = _meta("densenet121", compression=1.0)
    half = _meta("densenet121")
    c1 = 64 + 6 * 32  # after denseblock1
    assert half.features.transition1.conv.out_channels == c1 // 2
    assert full.features.transition1.conv.out_channels == c1
    assert count_params(full) > count_params(half)
    with pytest.raises(cnnatlas.InvalidArgumentError, match="compression"):
        cnnatlas.create_model("densenet121", compression=0.0)


# -- whole models against torchvision ------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_params_equal_published(name):
    published = cnnatlas.get_entry(name).published
    assert published.params_exact and published.source == "torchvision"
    assert count_params(_meta(name)) == published.params


@pytest.mark.parametrize("name", NAMES)
def test_config_matches_torchvision_builder(name):
    """(k, blocks, stem width) of each name, read off torchvision's built model."""
    with torch.device("meta"):
        theirs = getattr(torchvision.models, name)()
    blocks = [m for n, m in theirs.features.named_children() if n.startswith("denseblock")]
    config = DENSENET_CONFIGS[name]
    assert tuple(len(b) for b in blocks) == config.block_config
    assert theirs.features.conv0.out_channels == config.num_init_features
    assert blocks[0].denselayer1.conv2.out_channels == config.growth_rate


@pytest.mark.parametrize("name", NAMES_121_FAST)
def test_smallest_input_agrees_with_torchvision(name):
    """Found by tracing on meta tensors; torchvision states it in its weights' `min_size`."""
    weights = getattr(torchvision.models, f"DenseNet{name[8:]}_Weights").IMAGENET1K_V1
    assert (_meta(name).min_input_size,) * 2 == weights.meta["min_size"]


@pytest.mark.parametrize("name", NAMES)
def test_equals_torchvision(name):
    torch.manual_seed(0)
    theirs = randomize_norm_stats(getattr(torchvision.models, name)())
    ours = cnnatlas.load_torchvision_weights(cnnatlas.create_model(name), theirs)
    assert_same_outputs(ours, theirs, torch.randn(2, 3, 64, 64))


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


def test_feature_info_channels_and_reduction():
    """Channels seen at each named module, and its stride measured: growing the input by 64 pixels
    grows a map of total stride r by exactly 64/r."""
    model = cnnatlas.create_model("densenet121").eval()
    small, large = _stage_maps(model, 64), _stage_maps(model, 128)
    assert [(s.channels, s.reduction) for s in model.feature_info] == [
        (64, 2),
        (256, 4),
        (512, 8),
        (1024, 16),
        (1024, 32),
    ]
    for stage in model.feature_info:
        assert small[stage.name][1] == stage.channels, stage
        assert large[stage.name][-1] - small[stage.name][-1] == 64 // stage.reduction, stage
    assert model.feature_info[-1].channels == model.num_features


def test_forward_head_of_forward_features_is_forward():
    torch.manual_seed(0)
    model = cnnatlas.create_model("densenet121", num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 10)
        assert torch.equal(model.forward_head(model.forward_features(x)), out)
        assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, model.num_features)


@pytest.mark.parametrize("name", NAMES_121_FAST)
def test_backward_at_standard_input_reaches_every_parameter(name):
    torch.manual_seed(0)
    model = cnnatlas.create_model(name).train()
    out = model(torch.randn(2, *cnnatlas.get_entry(name).input_size))
    assert out.shape == (2, 1000) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing[:5]}"
