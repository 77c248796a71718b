"""The conv–norm–activation block and the norm/activation factories."""

import pytest
import torch
from torch import nn

from cnnatlas import InvalidArgumentError
from cnnatlas.layers import ACT_NAMES, NORM_NAMES, ConvNormAct, get_act_layer, get_norm_layer


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_conv_norm_act_shapes_and_params(dims):
    block = ConvNormAct(4, 8, kernel_size=3, stride=2, dims=dims)
    x = torch.randn(2, 4, *([9] * dims))
    y = block(x)
    # O = floor((I + 2P − K)/S) + 1 with "same" P = 1: (9 + 2 − 3)//2 + 1 = 5
    assert y.shape == (2, 8, *([5] * dims))
    # (K^d·C_in)·C_out weights, no bias before batch norm, 2·C_out affine BN parameters
    assert sum(p.numel() for p in block.parameters()) == 3**dims * 4 * 8 + 2 * 8
    assert block.conv.bias is None


def test_bias_only_without_norm():
    assert ConvNormAct(3, 5, norm_layer="none").conv.bias is not None
    assert ConvNormAct(3, 5, norm_layer="none", bias=False).conv.bias is None
    assert ConvNormAct(3, 5, bias=True).conv.bias is not None


def test_grouped_and_dilated():
    block = ConvNormAct(8, 8, 3, dilation=2, groups=8, norm_layer="none", act_layer="none")
    assert block(torch.randn(1, 8, 11, 11)).shape == (1, 8, 11, 11)  # same padding D(K−1)/2 = 2
    assert block.conv.weight.shape == (8, 1, 3, 3)


@pytest.mark.parametrize("name", NORM_NAMES)
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_every_norm_by_name(name, dims):
    norm = get_norm_layer(name, dims)(16)
    x = torch.randn(2, 16, *([4] * dims))
    assert norm(x).shape == x.shape


def test_norm_semantics():
    x = torch.randn(3, 8, 5, 5) * 4 + 2
    # layer norm: per sample over (C, H, W); instance: per sample and channel over (H, W)
    y = get_norm_layer("layer")(8)(x)
    assert torch.allclose(y.mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-5)
    y = get_norm_layer("instance")(8)(x)
    assert torch.allclose(y.mean(dim=(2, 3)), torch.zeros(3, 8), atol=1e-5)
    gn = get_norm_layer("group", num_groups=4)(8)
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 4
    assert get_norm_layer("group")(12).num_groups == 12  # 32 groups shrink to a divisor of C


def test_norm_and_act_by_class():
    assert isinstance(get_norm_layer(nn.BatchNorm2d)(4), nn.BatchNorm2d)
    assert isinstance(get_act_layer(nn.Hardswish)(), nn.Hardswish)
    block = ConvNormAct(3, 4, norm_layer=lambda c: nn.GroupNorm(2, c), act_layer=nn.ELU)
    assert isinstance(block.norm, nn.GroupNorm) and isinstance(block.act, nn.ELU)


@pytest.mark.parametrize("name", ACT_NAMES)
def test_every_activation_by_name(name):
    act = get_act_layer(name)()
    x = torch.linspace(-3, 3, 13)
    y = act(x.clone())
    reference = {
        "relu": torch.relu(x),
        "relu6": torch.clamp(x, 0, 6),
        "leaky_relu": nn.functional.leaky_relu(x),
        "silu": nn.functional.silu(x),
        "gelu": nn.functional.gelu(x),
        "tanh": torch.tanh(x),
        "sigmoid": torch.sigmoid(x),
        "none": x,
    }[name]
    assert torch.allclose(y, reference)


def test_bad_names_are_clear():
    with pytest.raises(InvalidArgumentError, match="unknown norm_layer 'btach'.*Did you mean 'batch'"):
        get_norm_layer("btach")
    with pytest.raises(InvalidArgumentError, match="unknown act_layer 'rleu'.*relu"):
        get_act_layer("rleu")
    with pytest.raises(InvalidArgumentError, match="dims must be 1, 2 or 3"):
        ConvNormAct(3, 4, dims=4)
    with pytest.raises(InvalidArgumentError, match="groups=3 must divide"):
        ConvNormAct(4, 8, groups=3)
    with pytest.raises(InvalidArgumentError, match="out_channels must be a positive integer"):
        ConvNormAct(4, 0)
