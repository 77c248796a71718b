"""LeNet-5, AlexNet (both forms) and VGG: layer-level facts from the papers, and the same outputs
as torchvision given the same weights."""

import pytest
import torch
import torchvision
from equivalence import assert_same_outputs, randomize_norm_stats
from torch import nn

import cnnatlas
from cnnatlas import WeightsError, load_torchvision_weights

VGG_NAMES = [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# -- LeNet-5 -------------------------------------------------------------------------------------


def test_lenet5_layer_sizes_follow_the_paper():
    model = cnnatlas.create_model("lenet5")
    x = torch.randn(1, 1, 32, 32)
    shapes = {}
    for name, layer in model.features.named_children():
        x = layer(x)
        shapes[name] = tuple(x.shape[1:])
    # C1 6@28×28, S2 6@14×14, C3 16@10×10, S4 16@5×5, C5 120@1×1 (LeCun et al. 1998, figure 2)
    assert shapes == {"c1": (6, 28, 28), "s2": (6, 14, 14), "c3": (16, 10, 10), "s4": (16, 5, 5), "c5": (120, 1, 1)}
    f = model.features
    # per-layer parameters as tabulated from §II.B, with C3 fully connected: (25·C_in + 1)·C_out
    assert [_params(f.c1), _params(f.c3), _params(f.c5), _params(model.f6), _params(model.output)] == [
        156,
        2416,
        48120,
        10164,
        850,
    ]
    assert _params(f.s2) == _params(f.s4) == 0


def test_lenet5_classic_and_modern_forms():
    classic = cnnatlas.create_model("lenet5")
    modern = cnnatlas.create_model("lenet5", style="modern")
    assert isinstance(classic.features.s2, nn.AvgPool2d) and isinstance(classic.features.c1.act, nn.Tanh)
    assert isinstance(modern.features.s2, nn.MaxPool2d) and isinstance(modern.features.c1.act, nn.ReLU)
    assert _params(classic) == _params(modern) == 61_706


def test_lenet5_other_sizes():
    model = cnnatlas.create_model("lenet5").eval()
    assert model(torch.randn(2, 1, 48, 40)).shape == (2, 10)  # larger: C5's map is averaged
    with pytest.raises(
        cnnatlas.InputShapeError, match="28×28 is too small.*smallest input this network accepts is 32×32"
    ):
        model(torch.randn(2, 1, 28, 28))


# -- AlexNet -------------------------------------------------------------------------------------


def test_alexnet_2012_is_the_two_tower_network():
    model = cnnatlas.create_model("alexnet_2012").eval()
    f = model.features
    assert [getattr(f, n).conv.groups for n in ("conv1", "conv2", "conv3", "conv4", "conv5")] == [1, 2, 1, 2, 2]
    assert isinstance(f.norm1, nn.LocalResponseNorm) and f.norm1.size == 5 and f.norm1.k == 2
    # conv2: 256 kernels of 5×5×48 (each tower sees its own 48 maps) — the paper's section 3.5
    assert f.conv2.conv.weight.shape == (256, 48, 5, 5)
    assert f.conv4.conv.weight.shape == (384, 192, 3, 3)
    x = torch.randn(1, 3, 227, 227)
    assert f.conv1(x).shape == (1, 96, 55, 55)  # (227 − 11)/4 + 1 = 55
    assert model.forward_features(x).shape == (1, 256, 6, 6)
    # the paper initialises these biases to 1
    assert torch.all(f.conv2.conv.bias == 1) and torch.all(model.head.fc6.bias == 1)
    # parameters from the layer table: Σ (K²·C_in/G + 1)·C_out over the convs, plus the FC layers
    convs = [(11, 3, 96, 1), (5, 96, 256, 2), (3, 256, 384, 1), (3, 384, 384, 2), (3, 384, 256, 2)]
    fcs = [(256 * 6 * 6, 4096), (4096, 4096), (4096, 1000)]
    expected = sum((k * k * c // g + 1) * o for k, c, o, g in convs) + sum((i + 1) * o for i, o in fcs)
    assert _params(model) == expected == 60_965_224


def test_alexnet_matches_torchvision():
    torch.manual_seed(0)
    theirs = torchvision.models.alexnet()
    ours = load_torchvision_weights(cnnatlas.create_model("alexnet"), theirs.state_dict())
    assert_same_outputs(ours, theirs, torch.randn(2, 3, 96, 96))


def test_two_tower_weights_do_not_fit_the_single_tower():
    theirs = torchvision.models.alexnet().state_dict()
    model = cnnatlas.create_model("alexnet_2012")
    before = model.features.conv1.conv.weight.clone()
    with pytest.raises(
        WeightsError,
        match="has shape \\(64, 3, 11, 11\\) but its counterpart 'features.conv1.conv.weight' "
        "has shape \\(96, 3, 11, 11\\)",
    ):
        load_torchvision_weights(model, theirs)
    assert torch.equal(model.features.conv1.conv.weight, before)  # untouched


# -- VGG -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VGG_NAMES)
def test_vgg_matches_torchvision(name):
    torch.manual_seed(0)
    theirs = randomize_norm_stats(getattr(torchvision.models, name)())
    ours = load_torchvision_weights(cnnatlas.create_model(name), theirs.state_dict())
    assert_same_outputs(ours, theirs, torch.randn(2, 3, 32, 32))


def test_vgg_head_holds_most_parameters():
    model = cnnatlas.create_model("vgg16")
    head = _params(model.head) + _params(model.fc8)
    assert head / _params(model) > 0.85  # 123.6M of 138.4M: "most parameters live in the FC layers"


def test_loader_errors_are_clear():
    model = cnnatlas.create_model("vgg11")
    with pytest.raises(WeightsError, match="state dict has 3 tensors but the model has"):
        load_torchvision_weights(model, {"a": torch.zeros(1), "b": torch.zeros(1), "c": torch.zeros(1)})
    with pytest.raises(WeightsError, match="expected a state dict"):
        load_torchvision_weights(model, [1, 2])
    ten_classes = torchvision.models.vgg11(num_classes=10).state_dict()
    with pytest.raises(WeightsError, match="has shape \\(10, 4096\\)"):
        load_torchvision_weights(model, ten_classes)
