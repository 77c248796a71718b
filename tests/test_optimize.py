"""cnnatlas.optimize: batch norm folded into convolutions, channels_last, identical outputs — or the
model left as it was, never a silently different output."""

import importlib
import warnings

import pytest
import torch
import torch.nn.functional as F
import torchvision
from equivalence import max_relative_difference, randomize_norm_stats
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

import cnnatlas
from cnnatlas.optimize import (
    _CONV_POINTWISE,
    ConvAct,
    OptimizeWarning,
    activation_post_op,
    find_conv_bn_pairs,
    fold_conv_bn,
    fuse_conv_activations,
    optimize,
)

optimize_module = importlib.import_module("cnnatlas.optimize")  # the attribute cnnatlas.optimize is the function

HEAVY = {"efficientnet_b6", "efficientnet_b7", "resnet152", "c3d", "slowfast_r50", "i3d"}


def _check(model: nn.Module, x: torch.Tensor, tol: float = 1e-4) -> nn.Module:
    """optimize keeps the outputs (to `tol` × output scale) and rewrites without refusing anything."""
    model = randomize_norm_stats(model).eval()
    with torch.no_grad():
        expected = model(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OptimizeWarning)
        fast = optimize(model, example_input=x)
    with torch.no_grad():
        got = fast(x)
    assert max_relative_difference(got, expected) <= tol
    assert fast.refused is None
    return fast


def _check_folds_exactly(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """In float64, every folded conv equals torch's own fuse_conv_bn_eval of the original pair to
    1e-10, and the output the original's to 1e-9: leaving ε out of the fold (a relative change of
    about ε / 2σ² ≈ 1e-5) fails this, where float32 rounding would hide it."""
    model = randomize_norm_stats(model).eval().double()
    x = x.double()
    with torch.no_grad():
        expected = model(x)
    fast = optimize(model, example_input=x)
    with torch.no_grad():
        assert max_relative_difference(fast(x), expected) <= 1e-9
    for conv_name, bn_name in fast.folded:
        reference = fuse_conv_bn_eval(model.get_submodule(conv_name), model.get_submodule(bn_name))
        folded = fast.model.get_submodule(conv_name)
        folded = folded.conv if isinstance(folded, ConvAct) else folded
        assert max_relative_difference(folded.weight.detach(), reference.weight.detach()) <= 1e-10, conv_name
        assert max_relative_difference(folded.bias.detach(), reference.bias.detach()) <= 1e-10, conv_name
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
    if has_bn:
        assert _check_folds_exactly(model, x).folded == fast.folded


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "efficientnet_b0", "googlenet", "densenet121"])
def test_torchvision_models(name):
    torch.manual_seed(0)
    kwargs = {"init_weights": True} if name == "googlenet" else {}
    model = getattr(torchvision.models, name)(**kwargs)
    x = torch.randn(2, 3, 64, 64)
    fast = _check(model, x)
    if name != "densenet121":  # DenseNet's norms come before their convs (pre-activation): nothing to fold
        assert not [n for n, m in fast.named_modules() if isinstance(m, nn.BatchNorm2d) and "aux" not in n]
    assert _check_folds_exactly(model, x).folded == fast.folded


def test_timm_seresnet_folds_inside_se_blocks():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("seresnet18")
    x = torch.randn(2, 3, 64, 64)
    fast = _check(model, x)
    assert not [n for n, m in fast.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert _check_folds_exactly(model, x).folded == fast.folded


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
    fast = cnnatlas.optimize(cnnatlas.create_model("lenet5"))  # the README's one-line call
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


@pytest.mark.parametrize("bias, affine, eps", [(False, True, 1e-5), (True, True, 1e-3), (True, False, 0.1)])
def test_fold_formula_on_one_pair(bias, affine, eps):
    """Against torch's own fold, in float64 to 1e-10: a fold without ε, or with the bias or the
    affine parameters mishandled, is off by 1e-6 or more."""
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, bias=bias).double().eval()
    bn = randomize_norm_stats(nn.Sequential(nn.BatchNorm2d(6, eps=eps, affine=affine)))[0].eval().double()
    reference = fuse_conv_bn_eval(conv, bn)
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
    with torch.no_grad():
        expected = bn(conv(x))
        fold_conv_bn(conv, bn)
        assert max_relative_difference(conv(x), expected) <= 1e-12
    assert max_relative_difference(conv.weight.detach(), reference.weight.detach()) <= 1e-10
    assert max_relative_difference(conv.bias.detach(), reference.bias.detach()) <= 1e-10


def test_bad_arguments():
    with pytest.raises(cnnatlas.InvalidArgumentError, match="expects an nn.Module"):
        optimize("resnet50")
    with pytest.raises(cnnatlas.InvalidArgumentError, match="pass example_input"):
        optimize(nn.Sequential(nn.Linear(3, 3)))  # no convolution to guess an input from
    with pytest.raises(cnnatlas.InvalidArgumentError, match="pass example_input"):
        optimize(nn.Sequential(nn.Conv1d(3, 3, 1), nn.BatchNorm1d(3)))  # not a 2-D image model


def test_default_example_input_for_other_models():
    """No example_input: a conv→BN model gets 3×224×224 from its first convolution."""
    model = randomize_norm_stats(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())).eval()
    fast = optimize(model)
    assert fast.folded == [("0", "1")]
    x = torch.randn(2, 3, 20, 20)
    with torch.no_grad():
        assert max_relative_difference(fast(x), model(x)) <= 1e-5


@pytest.mark.parametrize("source", ["torchvision", "timm"])
def test_torchvision_and_timm_models_without_example_input(source):
    torch.manual_seed(0)
    if source == "timm":
        model = pytest.importorskip("timm").create_model("resnet18")
    else:
        model = torchvision.models.resnet18()
    model = randomize_norm_stats(model).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error", OptimizeWarning)
        fast = cnnatlas.optimize(model)
    assert len(fast.folded) == 20  # every conv of ResNet-18 has its batch norm
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert max_relative_difference(fast(x), model(x)) <= 1e-4


# -- conv → activation fusion ---------------------------------------------------------------------

needs_fused_conv = pytest.mark.skipif(
    _CONV_POINTWISE is None, reason="this torch build has no oneDNN fused convolution"
)
ACTIVATIONS = [
    nn.ReLU(),
    nn.ReLU(inplace=True),
    nn.ReLU6(),
    nn.Hardtanh(-1.0, 2.0),
    nn.LeakyReLU(0.2),
    nn.GELU(),
    nn.GELU(approximate="tanh"),
    nn.SiLU(),
    nn.Hardswish(),
    nn.Sigmoid(),
    nn.Tanh(),
    nn.Hardsigmoid(),
]


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
@pytest.mark.parametrize(
    "inplace, read_before, fusable",
    [
        (False, False, False),  # y + act(y): y must stay pre-activation
        (True, False, True),  # act_(y) + y: y is activated in place, so fusing changes nothing
        (True, True, False),  # y read before the in-place activation
    ],
)
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


# -- exact or refused: the models a fold would silently change ------------------------------------


class _SharedWeight(nn.Module):
    """Two convolutions share one weight; a batch norm follows only the first. Folding it into the
    shared weight would change the second convolution too."""

    def __init__(self, functional: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2.weight = self.conv1.weight
        self.bn = nn.BatchNorm2d(4)
        self.functional = functional

    def forward(self, x):
        if self.functional:  # the weight read once more by a plain function, not by a second module
            return self.bn(self.conv1(x)) + F.conv2d(x, self.conv1.weight, padding=1)
        return self.bn(self.conv1(x)) + self.conv2(x)


class _ConvThenBN(nn.Module):
    def __init__(self, conv: nn.Module, bn: nn.Module | None = None):
        super().__init__()
        self.conv, self.bn = conv, bn if bn is not None else nn.BatchNorm2d(conv.out_channels)

    def forward(self, x):
        return self.bn(self.conv(x))


class _BNThenReLU(nn.BatchNorm2d):
    """A batch norm that does more than batch norm (like timm's BatchNormAct2d with an in-place act)."""

    def forward(self, x):
        return torch.relu_(super().forward(x))


class _StandardizedConv(nn.Conv2d):
    """A conv that rewrites its weight in forward (weight standardization): scaling W changes nothing."""

    def forward(self, x):
        mean, std = self.weight.mean(dim=(1, 2, 3), keepdim=True), self.weight.std(dim=(1, 2, 3), keepdim=True)
        return F.conv2d(x, (self.weight - mean) / std, self.bias, self.stride, self.padding)


def _exact_without_folding(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """optimize leaves the pair unfolded, says nothing (nothing was refused as a whole), and the
    output equals the original's; before these checks, such models came out wrong by 1.3–6.4."""
    model = randomize_norm_stats(model).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for m in model.modules():  # make the conv's bias and weight matter
            if isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.normal_()
    with warnings.catch_warnings():  # before any forward: the old weight_norm's weight still has a graph
        warnings.simplefilter("error", OptimizeWarning)
        fast = optimize(model, example_input=x)
    assert fast.folded == [] and fast.refused is None
    with torch.no_grad():
        assert max_relative_difference(fast(x), model(x)) <= 1e-5
    return fast


@pytest.mark.parametrize("functional", [False, True], ids=["second-module", "functional"])
def test_shared_weight_with_batch_norm_after_one_use_is_not_folded(functional):
    _exact_without_folding(_SharedWeight(functional), torch.randn(2, 3, 8, 8))


@pytest.mark.parametrize(
    "wrap",
    [
        torch.nn.utils.parametrizations.weight_norm,
        torch.nn.utils.parametrizations.spectral_norm,
        torch.nn.utils.weight_norm,  # the older forms: a forward pre-hook recomputes the weight
        torch.nn.utils.spectral_norm,
    ],
    ids=["weight_norm", "spectral_norm", "weight_norm-hook", "spectral_norm-hook"],
)
def test_parametrized_conv_before_batch_norm_is_not_folded(wrap):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.nn.utils.weight_norm is deprecated
        conv = wrap(nn.Conv2d(3, 4, 3, padding=1))
    _exact_without_folding(_ConvThenBN(conv), torch.randn(2, 3, 8, 8))


@pytest.mark.parametrize(
    "model",
    [
        lambda: _ConvThenBN(nn.Conv2d(3, 4, 3, padding=1), _BNThenReLU(4)),
        lambda: _ConvThenBN(_StandardizedConv(3, 4, 3, padding=1)),
    ],
    ids=["bn-subclass-with-activation", "conv-subclass-rewriting-its-weight"],
)
def test_subclasses_that_do_more_are_not_folded(model):
    torch.manual_seed(0)
    _exact_without_folding(model(), torch.randn(2, 3, 8, 8))


def test_hooks_block_folding_and_fusing():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    model[0].register_forward_hook(lambda module, args, out: out * 2)
    fast = _exact_without_folding(model, torch.randn(2, 3, 8, 8))
    assert fast.fused == []


def test_timm_batchnorm_act_keeps_its_activation():
    """timm's EfficientNet puts SiLU inside its batch norms (BatchNormAct2d): folding one of those
    into a conv once dropped the activation (output off by 4·10⁴ × its scale). Now each is folded
    and replaced by its own dropout and activation."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("efficientnet_b0")
    x = torch.randn(2, 3, 64, 64)
    fast = _check(model, x)
    assert _check_folds_exactly(model, x).folded == fast.folded
    assert len(fast.folded) == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 49
    assert not [n for n, m in fast.named_modules() if isinstance(m, nn.BatchNorm2d)]


class _Branchy(nn.Module):
    """Takes one conv or the other depending on the input's values; both feed the same batch norm."""

    def __init__(self, via_python_list: bool):
        super().__init__()
        self.conv_a = nn.Conv2d(3, 4, 3, padding=1)
        self.conv_b = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.via_python_list = via_python_list

    def forward(self, x):
        # .tolist() reads the value without an operator the watch sees; `> 0` on a tensor does not
        positive = x.mean().tolist() > 0 if self.via_python_list else x.mean() > 0
        return self.bn(self.conv_a(x) if positive else self.conv_b(x))


@pytest.mark.parametrize(
    "via_python_list, reason",
    [(False, "reads tensor values"), (True, "other operators")],
    ids=["tensor-bool", "tolist"],
)
def test_input_dependent_branch_is_left_unfused_with_a_warning(via_python_list, reason):
    torch.manual_seed(0)
    model = randomize_norm_stats(_Branchy(via_python_list)).eval()
    example, x = torch.randn(2, 3, 8, 8).abs(), -torch.randn(2, 3, 8, 8).abs()
    with pytest.warns(OptimizeWarning, match=reason):
        fast = optimize(model, example_input=example)
    assert fast.folded == [] and fast.fused == [] and reason in fast.refused
    with torch.no_grad():
        assert max_relative_difference(fast(x), model(x)) <= 1e-5  # the other branch: was off by ~1
        assert max_relative_difference(fast(example), model(example)) <= 1e-5


def test_a_rewrite_that_changes_the_output_is_undone(monkeypatch):
    """The last line of defence: with the weight-ownership check switched off, the shared-weight fold
    happens, its output differs on the example input, and optimize returns the model as it was."""
    monkeypatch.setattr(optimize_module, "_own_convolution", lambda conv, follower, trace: True)
    model = randomize_norm_stats(_SharedWeight(functional=False)).eval()
    x = torch.randn(2, 3, 8, 8)
    with pytest.warns(OptimizeWarning, match="differed from the original"):
        fast = optimize(model, example_input=x)
    assert fast.folded == [] and "differed" in fast.refused
    with torch.no_grad():
        assert max_relative_difference(fast(x), model(x)) <= 1e-6


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_gradients_flow_and_equal_the_original_models(name):
    torch.manual_seed(0)
    model = randomize_norm_stats(cnnatlas.create_model(name)).eval()
    fast = optimize(model, example_input=torch.randn(1, 3, 32, 32))
    assert fast.folded
    x = torch.randn(2, 3, 32, 32)
    x_ref, x_fast = x.clone().requires_grad_(), x.clone().requires_grad_()
    model(x_ref).square().sum().backward()
    y = fast(x_fast)
    assert y.requires_grad
    y.square().sum().backward()
    assert max_relative_difference(x_fast.grad, x_ref.grad) <= 1e-4
    assert fast(x).grad_fn is None  # without an input that requires grad: no autograd, as before
