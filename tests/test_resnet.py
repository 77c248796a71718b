"""The residual family: blocks on their own, parameter counts against the published figures, and
the same outputs as torchvision's ResNets and timm's SE-ResNet-50 given the same weights."""

import pytest
import torch
from equivalence import assert_same_outputs, randomize_norm_stats
from torch import nn

import cnnatlas
from cnnatlas import CnnAtlasError, InvalidArgumentError, WeightsError, create_model, get_entry
from cnnatlas.layers import BasicBlock, Bottleneck, SqueezeExcite, ZeroPadShortcut
from cnnatlas.models.base import count_params
from cnnatlas.weights_timm import load_timm_weights

IMAGENET = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
CIFAR = ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110"]
PLAIN = ["plain20", "plain32", "plain44", "plain56", "plain110"]
FAMILY = IMAGENET + CIFAR + PLAIN + ["seresnet50"]
SLOW_BACKWARD = {"resnet101", "resnet152", "seresnet50"}  # 20–45 s each at 224×224 on 2 busy cores
SLOW_EQUAL = {"resnet101", "resnet152"}  # two deep models built and run: ~20 s on 2 busy cores


def _build(name, **kwargs):
    torch.manual_seed(0)
    return create_model(name, **kwargs)


# -- parameter counts -----------------------------------------------------------------------------


def test_registry_holds_the_family():
    assert set(FAMILY) <= set(cnnatlas.list_models())
    assert {get_entry(n).family for n in PLAIN} == {"plain"}


@pytest.mark.parametrize("name", IMAGENET)
def test_imagenet_params_exactly_torchvision(name):
    """published.json's figure comes from torchvision's model table; it must be exact."""
    published = get_entry(name).published
    assert published.params_exact and published.source == "torchvision"
    with torch.device("meta"):
        assert count_params(create_model(name)) == published.params


@pytest.mark.parametrize("name", CIFAR)
def test_cifar_params_within_the_papers_rounding(name):
    """He et al. 2016, Table 6 gives 0.27M … 1.7M: our count rounds to the figure at its precision."""
    published = get_entry(name).published
    assert not published.params_exact and published.source == "he2016-cifar"
    unit = 10 ** max(k for k in range(8) if published.params % 10**k == 0)  # last digit the paper gives
    measured = count_params(create_model(name))
    assert round(measured / unit) * unit == published.params, f"{name}: {measured:,} vs {published.params:,}"


@pytest.mark.parametrize("resnet, plain", list(zip(CIFAR, PLAIN)))
def test_plain_twin_has_the_same_layers(resnet, plain):
    a, b = create_model(resnet), create_model(plain)
    assert count_params(a) == count_params(b)
    assert [tuple(p.shape) for p in a.parameters()] == [tuple(p.shape) for p in b.parameters()]


def test_seresnet50_params_equal_timm():
    timm = pytest.importorskip("timm")
    reference = count_params(timm.create_model("seresnet50", pretrained=False))
    assert reference == 28_088_024
    ours = count_params(create_model("seresnet50"))
    assert ours == reference
    assert get_entry("seresnet50").published.params_agreement(ours).ok  # the paper's "≈ 28.1M"


def test_se_on_any_residual_model_by_keyword():
    with torch.device("meta"):
        assert count_params(create_model("resnet50", se_ratio=1 / 16)) == count_params(create_model("seresnet50"))
        se18 = create_model("resnet18", se_ratio=0.25)
        assert count_params(se18) > count_params(create_model("resnet18"))
        assert sum(isinstance(m, SqueezeExcite) for m in se18.modules()) == 8
        assert count_params(create_model("resnet20", se_ratio=0.25)) > count_params(create_model("resnet20"))


def test_stride_placement_keeps_the_parameter_count():
    with torch.device("meta"):
        assert count_params(create_model("resnet50", stride_on="1x1")) == 25_557_032


# -- same network as the references ---------------------------------------------------------------


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_EQUAL else n for n in IMAGENET])
def test_equal_to_torchvision_on_the_same_weights(name):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    reference = randomize_norm_stats(getattr(torchvision.models, name)(weights=None), seed=1)
    ours = cnnatlas.load_torchvision_weights(create_model(name), reference)
    assert_same_outputs(ours, reference, torch.randn(2, 3, 64, 64), tol=1e-5)


def test_equal_to_timm_seresnet50_on_the_same_weights():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    reference = randomize_norm_stats(timm.create_model("seresnet50", pretrained=False), seed=1)
    with torch.no_grad():  # timm zero-initialises nothing here, but make every SE bias non-trivial
        for m in reference.modules():
            if hasattr(m, "fc1"):
                m.fc1.bias.normal_(0, 0.1)
                m.fc2.bias.normal_(0, 0.1)
    ours = load_timm_weights(create_model("seresnet50"), reference.state_dict())
    assert_same_outputs(ours, reference, torch.randn(2, 3, 64, 64), tol=1e-5)


def test_timm_loader_rejects_another_architecture():
    timm = pytest.importorskip("timm")
    model = create_model("seresnet50")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(WeightsError, match="tensors"):
        load_timm_weights(model, timm.create_model("resnet50", pretrained=False))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# -- blocks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shortcut", ["A", "B", "C"])
def test_basic_block_shapes(shortcut):
    x = torch.randn(2, 16, 9, 9)
    assert BasicBlock(16, 16, shortcut=shortcut)(x).shape == (2, 16, 9, 9)
    assert BasicBlock(16, 32, stride=2, shortcut=shortcut)(x).shape == (2, 32, 5, 5)


@pytest.mark.parametrize("stride_on", ["3x3", "1x1"])
def test_bottleneck_shapes(stride_on):
    x = torch.randn(2, 64, 8, 8)
    assert Bottleneck(64, 16, stride_on=stride_on)(x).shape == (2, 64, 8, 8)
    assert Bottleneck(64, 32, stride=2, stride_on=stride_on)(x).shape == (2, 128, 4, 4)


@pytest.mark.parametrize("stride_on, strided", [("3x3", "conv2"), ("1x1", "conv1")])
def test_stride_on_moves_the_stride(stride_on, strided):
    block = Bottleneck(64, 32, stride=2, stride_on=stride_on)
    sizes = {}
    for name in ("conv1", "conv2", "conv3"):
        getattr(block, name).register_forward_hook(lambda m, i, o, key=name: sizes.__setitem__(key, o.shape[-1]))
    block(torch.randn(1, 64, 16, 16))
    strides = {n: getattr(block, n).conv.stride for n in ("conv1", "conv2", "conv3")}
    assert {n for n, s in strides.items() if s == (2, 2)} == {strided}
    assert sizes["conv1"] == (8 if stride_on == "1x1" else 16)
    assert sizes["conv2"] == sizes["conv3"] == 8


def _zero_branch(block):
    """Make F(x) = 0 by zeroing the last norm's scale and shift."""
    last = block.conv3 if isinstance(block, Bottleneck) else block.conv2
    with torch.no_grad():
        last.norm.weight.zero_()
        last.norm.bias.zero_()
    return block.eval()


@pytest.mark.parametrize("cls, c_in, c", [(BasicBlock, 16, 16), (Bottleneck, 64, 16)])
def test_skip_adds_the_identity_and_plain_does_not(cls, c_in, c):
    """y = σ(F(x) + x): with F = 0 a residual block passes σ(x); its plain twin gives σ(0) = 0."""
    x = torch.randn(2, c_in, 6, 6)
    residual = _zero_branch(cls(c_in, c))
    plain = _zero_branch(cls(c_in, c, skip=False))
    assert torch.equal(residual(x), torch.relu(x))
    assert torch.equal(plain(x), torch.zeros_like(x))
    assert plain.shortcut is None


def test_option_a_shortcut_is_parameter_free_subsample_and_zero_pad():
    x = torch.randn(2, 16, 8, 8)
    shortcut = ZeroPadShortcut(16, 32, stride=2)
    y = shortcut(x)
    assert count_params(shortcut) == 0
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2])
    assert torch.equal(y[:, 16:], torch.zeros(2, 16, 4, 4))
    a, b = BasicBlock(16, 32, stride=2, shortcut="A"), BasicBlock(16, 32, stride=2, shortcut="B")
    assert isinstance(a.shortcut, ZeroPadShortcut)
    assert count_params(b) - count_params(a) == 16 * 32 + 2 * 32  # option B: 1×1 projection + BN
    assert torch.equal(_zero_branch(a)(x), torch.relu(y))


def test_shortcut_kinds_where_the_shape_is_kept():
    assert isinstance(BasicBlock(16, 16, shortcut="A").shortcut, nn.Identity)
    assert isinstance(BasicBlock(16, 16, shortcut="B").shortcut, nn.Identity)
    assert count_params(BasicBlock(16, 16, shortcut="C").shortcut) == 16 * 16 + 2 * 16


def test_se_sits_on_the_residual_branch_before_the_addition():
    block = Bottleneck(64, 16, se_ratio=1 / 16).eval()
    assert block.se.fc1.out_channels == 64 // 16
    block.se = ZeroGate()
    x = torch.randn(2, 64, 5, 5)
    assert torch.equal(block(x), torch.relu(x))  # gating the branch to 0 leaves σ(x)


class ZeroGate(nn.Module):
    def forward(self, x):
        return torch.zeros_like(x)


def test_drop_path_drops_whole_branches_in_training_only():
    torch.manual_seed(0)
    block = _zero_branch(BasicBlock(8, 8, drop_path_rate=0.5))
    with torch.no_grad():
        block.conv2.norm.bias.fill_(1.0)  # F(x) = 1 everywhere, so a dropped branch is visible
    x = torch.randn(64, 8, 4, 4)
    assert torch.equal(block(x), torch.relu(x + 1))  # eval: the branch is always kept
    block.train()
    y = block(x)
    dropped = torch.tensor([torch.equal(y[i], torch.relu(x[i])) for i in range(64)])
    kept = torch.tensor([torch.allclose(y[i], torch.relu(x[i] + 2)) for i in range(64)])  # 1/(1 − 0.5)
    assert dropped.any() and kept.any() and (dropped | kept).all()


def test_drop_path_rate_rises_linearly_over_the_blocks():
    model = create_model("resnet20", drop_path_rate=0.2)
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    # a block whose rate is 0 holds a placeholder that is never called
    rates = [b.drop_path.rate if isinstance(b.drop_path, cnnatlas.layers.DropPath) else 0.0 for b in blocks]
    assert len(rates) == 9 and isinstance(blocks[0].drop_path, torch.nn.Identity)
    assert rates[0] == 0.0 and rates[1] == pytest.approx(0.2 / 8) and rates[-1] == pytest.approx(0.2)
    assert rates == sorted(rates)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Bottleneck(64, 16, stride_on="first"),
        lambda: BasicBlock(16, 16, shortcut="D"),
        lambda: BasicBlock(16, 16, skip=False, drop_path_rate=0.1),
        lambda: BasicBlock(16, 16, se_ratio=2.0),
        lambda: ZeroPadShortcut(32, 16, stride=2),
        lambda: create_model("resnet18", stride_on="first"),
        lambda: create_model("resnet18", se_ratio="16"),
        lambda: create_model("plain20", drop_path_rate=0.1),
        lambda: cnnatlas.models.resnet.CifarResNet(depth=21),
    ],
)
def test_bad_arguments_are_clear_errors(build):
    with pytest.raises(CnnAtlasError):
        build()


def test_blocks_spread_the_same_layers_unevenly_over_the_stages():
    """`blocks=(1, 3, 5)`: stage i holds blocks[i] basic blocks, the layers stay 2·Σ + 2 = 20, and a
    stage's extra block adds exactly one block of that stage's width; counts of another depth are refused."""
    even, uneven = create_model("resnet20"), create_model("resnet20", blocks=(1, 3, 5))
    assert (even.blocks, uneven.blocks) == ((3, 3, 3), (1, 3, 5))
    assert [len(stage) for stage in uneven.stages] == [1, 3, 5]
    assert sum(isinstance(m, nn.Conv2d) for m in uneven.modules()) + 1 == 20  # the convs and the FC
    per_block = {c: count_params(BasicBlock(c, c)) for c in (16, 64)}
    assert count_params(uneven) - count_params(even) == 2 * (per_block[64] - per_block[16])
    x = torch.randn(2, 3, 32, 32)
    assert uneven(x).shape == (2, 10)
    assert [f.reduction for f in uneven.feature_info] == [f.reduction for f in even.feature_info]
    assert create_model("resnet20", blocks=[1, 3, 5]).blocks == (1, 3, 5)  # as config.json gives it back
    with pytest.raises(InvalidArgumentError, match=r"blocks \(1, 3, 4\) make 18 layers .* not depth 20"):
        create_model("resnet20", blocks=(1, 3, 4))
    for bad in [(1, 8), (0, 4, 5), (1.0, 3, 5), "135"]:
        with pytest.raises(InvalidArgumentError, match="blocks must be three block counts"):
            create_model("resnet20", blocks=bad)


def test_skip_is_fixed_by_the_plain_names():
    with pytest.raises(InvalidArgumentError, match="fixed by the model name"):
        create_model("plain20", skip=True)


# -- every registered name ------------------------------------------------------------------------


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_BACKWARD else n for n in FAMILY])
def test_forward_backward_at_standard_input(name):
    model = _build(name).train()
    x = torch.randn((2,) + get_entry(name).input_size)
    out = model(x)
    assert out.shape == (2, model.num_classes) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    unreached = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not unreached, f"{name}: no gradient reaches {unreached[:5]}"


@pytest.mark.parametrize("name", FAMILY)
def test_forward_split_and_feature_info(name):
    """forward_head(forward_features(x)) == forward(x); feature_info names modules whose outputs
    have the stated channels and reduction."""
    model = _build(name).eval()
    size = get_entry(name).input_size[-1] // 2
    x = torch.randn(1, 3, size, size)
    modules = dict(model.named_modules())
    seen = {}
    for info in model.feature_info:
        assert info.name in modules, f"{name}: feature_info names {info.name!r}, not a module"
        modules[info.name].register_forward_hook(lambda m, i, o, key=info.name: seen.__setitem__(key, o.shape))
    with torch.no_grad():
        out = model(x)
        assert torch.equal(model.forward_head(model.forward_features(x)), out)
    for info in model.feature_info:
        assert seen[info.name][1] == info.channels
        assert seen[info.name][-1] == -(-size // info.reduction), f"{name}: {info}"
    assert model.feature_info[-1].channels == model.num_features
