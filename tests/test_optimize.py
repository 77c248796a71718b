"""cnnatlas.optimize: batch norm folded into convolutions, channels_last, identical outputs."""

import pytest
import torch
import torchvision
from torch import nn

import cnnatlas
from cnnatlas.optimize import (_CONV_POINTWISE, ConvAct, activation_post_op, find_conv_bn_pairs, fold_conv_bn,
                               fuse_conv_activations, optimize)
from equivalence import max_relative_difference, randomize_norm_stats

HEAVY = {"efficientnet_b6", "efficientnet_b7", "resnet152", "c3d", "slowfast_r50", "i3d"}


def _check(model: nn.Module, x: torch.Tensor) -> nn.Module:
    model = randomize_norm_stats(model).eval()
    with torch.no_grad():
        expected = model(x)
    fast = optimize(model, example_input=x)
    with torch.no_grad():
        got = fast(x)
    assert max_relative_difference(got, expected) <= 1e-4
    return fast


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in cnnatlas.list_models()]
)
def test_every_zoo_model_keeps_its_outputs(name):
    torch.manual_seed(0)
    model = cnnatlas.create_model(name)
    size = max(model.min_input_size, 32)
    x = torch.randn((2, model.in_channels) + (size,) * model.dims)
    fast = _check(model, x)
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert bool(fast.folded) == has_bn, f"{name}: folded {len(fast.folded)} pairs"


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "efficientnet_b0", "googlenet", "densenet121"])
def test_torchvision_models(name):
    torch.manual_seed(0)
    kwargs = {"init_weights": True} if name == "googlenet" else {}
    model = getattr(torchvision.models, name)(**kwargs)
    fast = _check(model, torch.randn(2, 3, 64, 64))
    if name != "densenet121":  # DenseNet's norms come before their convs (pre-activation): nothing to fold
        assert not [n for n, m in fast.named_modules() if isinstance(m, nn.BatchNorm2d) and "aux" not in n]


def test_timm_seresnet_folds_inside_se_blocks():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("seresnet18")
    fast = _check(model, torch.randn(2, 3, 64, 64))
    assert not [n for n, m in fast.named_modules() if isinstance(m, nn.BatchNorm2d)]


def test_original_model_is_untouched_and_fast_model_is_channels_last():
    model = randomize_norm_stats(cnnatlas.create_model("vgg11_bn")).eval()
    bn_before = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    fast = optimize(model, example_input=torch.randn(1, 3, 32, 32))
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == bn_before == 8
    assert len(fast.folded) == 8
    conv = fast.model.features.conv1_1.conv
    conv = conv.conv if isinstance(conv, ConvAct) else conv
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_default_example_input_for_zoo_models():
    fast = optimize(cnnatlas.create_model("lenet5"))
    assert fast(torch.randn(3, 1, 32, 32)).shape == (3, 10)


class _ConvFeedsTwo(nn.Module):
    """conv output read by BN *and* by a skip addition: folding would change the skip."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


def test_conv_output_with_two_readers_is_not_folded():
    model = randomize_norm_stats(_ConvFeedsTwo()).eval()
    x = torch.randn(2, 3, 8, 8)
    assert find_conv_bn_pairs(model, x) == []
    _check(model, x)


def test_fold_formula_on_one_pair():
    conv, bn = nn.Conv2d(4, 6, 3, bias=False), randomize_norm_stats(nn.Sequential(nn.BatchNorm2d(6)))[0].eval()
    x = torch.randn(2, 4, 7, 7)
    with torch.no_grad():
        expected = bn(conv(x))
        fold_conv_bn(conv, bn)
        assert torch.allclose(conv(x), expected, atol=1e-5)


def test_bad_arguments():
    with pytest.raises(cnnatlas.InvalidArgumentError, match="expects an nn.Module"):
        optimize("resnet50")
    with pytest.raises(cnnatlas.InvalidArgumentError, match="pass example_input"):
        optimize(nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)))


# -- conv → activation fusion ---------------------------------------------------------------------

needs_fused_conv = pytest.mark.skipif(_CONV_POINTWISE is None, reason="this torch build has no oneDNN fused convolution")
ACTIVATIONS = [nn.ReLU(), nn.ReLU(inplace=True), nn.ReLU6(), nn.Hardtanh(-1.0, 2.0), nn.LeakyReLU(0.2), nn.GELU(),
               nn.GELU(approximate="tanh"), nn.SiLU(), nn.Hardswish(), nn.Sigmoid(), nn.Tanh(), nn.Hardsigmoid()]


@needs_fused_conv
@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: repr(a))
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=["nchw", "nhwc"])
def test_fused_conv_activation_equals_conv_then_activation(act, memory_format):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 8, 3, stride=2, padding=2, dilation=2, groups=2)
    x = (3 * torch.randn(2, 6, 15, 13)).contiguous(memory_format=memory_format)
    with torch.no_grad():
        expected = act(conv(x.clone()))
        fused = ConvAct(conv, act)
        got = fused(x)
    assert activation_post_op(act) is not None
    assert max_relative_difference(got, expected) <= 1e-6
    with torch.enable_grad():  # gradients: the plain modules, so backward works
        y = fused(x.requires_grad_())
        y.sum().backward()
    assert x.grad is not None and torch.allclose(y.detach(), expected, atol=1e-5)


class _PreActivationRead(nn.Module):
    """The conv output is also read before / after a non-in-place activation: fusing would change it."""

    def __init__(self, inplace: bool, read_before: bool):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.act = nn.ReLU(inplace=inplace)
        self.inplace, self.read_before = inplace, read_before

    def forward(self, x):
        y = self.conv(x)
        if self.read_before:
            z = y * 2
            return self.act(y) + z
        return self.act(y) + y if self.inplace else y + self.act(y)


@needs_fused_conv
@pytest.mark.parametrize("inplace, read_before, fusable", [
    (False, False, False),  # y + act(y): y must stay pre-activation
    (True, False, True),    # act_(y) + y: y is activated in place, so fusing changes nothing
    (True, True, False),    # y read before the in-place activation
])
def test_fusion_follows_the_data_flow(inplace, read_before, fusable):
    model = _PreActivationRead(inplace, read_before).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = model(x.clone())
    fused = fuse_conv_activations(model, x.clone())
    assert bool(fused) == fusable
    with torch.no_grad():
        assert torch.allclose(model(x.clone()), expected, atol=1e-6)


@needs_fused_conv
def test_optimize_fuses_the_zoo_and_exports_through_the_plain_path(tmp_path):
    model = cnnatlas.create_model("mobilenet_v2").eval()
    fast = optimize(model, example_input=torch.randn(1, 3, 64, 64))
    assert len(fast.fused) == 35  # stem, 17 depthwise, 16 expansions, last 1×1
    assert "fused=35 conv-activation pairs" in repr(fast)
    x = torch.randn(2, 3, 64, 64)
    traced = torch.jit.trace(fast, x)  # tracing takes the unfused operators
    assert not any("mkldnn" in str(n.kind()) for n in traced.inlined_graph.nodes())
    with torch.no_grad():
        assert max_relative_difference(traced(x), fast(x)) <= 1e-5
