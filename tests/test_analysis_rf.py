"""The analytic receptive field against a measured one, the closed forms of FORMULAS.md, and the
google-research/receptive_field table (PUBLISHED.md §1).

Measured field: the input pixels where the gradient of one output unit (all its channels) is non-zero,
in a float64 copy of the network whose weights are all positive and whose inputs are positive, so
that no path cancels or dies (ReLU never clips, every branch adds). Max-pooling sends the gradient to
the arg-max only, so the measuring copy swaps it for average pooling of the same geometry — the
analytic field is a property of the geometry and is the same for both.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from cnnatlas import analyze, create_model, effective_receptive_field
from cnnatlas.analysis import formulas

# -- measuring ---------------------------------------------------------------------------------


def _positive(model: nn.Module) -> nn.Module:
    """float64 copy, every weight positive (1/fan-in scale), max-pools swapped for average pools."""
    model = copy.deepcopy(model).double().eval()
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
                dims = {nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3}[type(child)]
                pool = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}[dims]
                assert child.dilation in (1, (1,) * dims)
                setattr(
                    module, child_name, pool(child.kernel_size, child.stride, child.padding, ceil_mode=child.ceil_mode)
                )
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            fan = p[0].numel() if p.dim() > 1 else 1
            p.copy_((torch.rand(p.shape, generator=gen, dtype=p.dtype) + 0.5) / fan)
    return model


def measured_span(model: nn.Module, shape: tuple[int, ...], layer: str, unit: tuple[int, ...]) -> list[tuple[int, int]]:
    """First and last input pixel, per spatial axis, whose gradient is non-zero."""
    from cnnatlas.analysis import gradient_map

    net = _positive(model)
    x = torch.rand(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) + 0.1
    g = gradient_map(net, x, layer, unit)[0]
    spans = []
    for axis in range(g.dim()):
        others = [d for d in range(g.dim()) if d != axis]
        nz = torch.nonzero(g.sum(dim=others) if others else g).flatten()
        spans.append((int(nz.min()), int(nz.max())))
    return spans


def analytic_span(model: nn.Module, shape: tuple[int, ...], layer: str, unit: tuple[int, ...]) -> list[tuple[int, int]]:
    """The analytic field of `unit`, clipped to the input."""
    rf = analyze(model, shape).receptive_field_of(layer)
    assert rf is not None, f"{layer} is not a spatial map"
    return [(max(0, int(lo)), min(n - 1, int(hi))) for (lo, hi), n in zip(rf.span(unit), shape[2:])]


def centre_unit(model: nn.Module, shape: tuple[int, ...], layer: str) -> tuple[int, ...]:
    out = next(m.output_shapes[0] for m in analyze(model, shape).modules if m.name == layer)
    return tuple(s // 2 for s in out[2:])


def check(model: nn.Module, shape: tuple[int, ...], layer: str, unit: tuple[int, ...] | None = None) -> None:
    unit = centre_unit(model, shape, layer) if unit is None else unit
    assert measured_span(model, shape, layer, unit) == analytic_span(model, shape, layer, unit)


# -- toy networks ----------------------------------------------------------------------------------


class Plain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(4, 4, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
            nn.Conv2d(4, 4, 5, padding=2, groups=4),  # depthwise
            nn.Conv2d(4, 6, 1),
            nn.Conv2d(6, 6, (3, 5), padding=(0, 1), groups=2),  # grouped, rectangular, asymmetric padding
            nn.AvgPool2d(2),
        )

    def forward(self, x):
        return self.features(x)


class Residual(nn.Module):
    """Two torchvision BasicBlocks, one of them downsampling (3×3 stride 2 beside a 1×1 stride-2 shortcut)."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models.resnet import BasicBlock

        self.stem = nn.Conv2d(3, 8, 7, 2, 3)
        down = nn.Sequential(nn.Conv2d(8, 16, 1, 2), nn.BatchNorm2d(16))
        self.blocks = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 16, stride=2, downsample=down), BasicBlock(16, 16))

    def forward(self, x):
        return self.blocks(self.stem(x))


class InceptionModule(nn.Module):
    """Parallel 1×1, 1×1→3×3, 1×1→5×5, pool→1×1 and an asymmetric 1×7→7×1 branch, concatenated."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.b1 = nn.Conv2d(c, 4, 1)
        self.b3 = nn.Sequential(nn.Conv2d(c, 4, 1), nn.Conv2d(4, 4, 3, padding=1))
        self.b5 = nn.Sequential(nn.Conv2d(c, 4, 1), nn.Conv2d(4, 4, 5, padding=2))
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(c, 4, 1))
        self.b7 = nn.Sequential(nn.Conv2d(c, 4, (1, 7), padding=(0, 3)), nn.Conv2d(4, 4, (7, 1), padding=(3, 0)))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x), self.b7(x)], 1)


class Inception(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2)
        self.a = InceptionModule(8)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.b = InceptionModule(20)

    def forward(self, x):
        return self.b(self.pool(self.a(self.stem(x))))


class Dense(nn.Module):
    """A dense block (each layer reads the concatenation of all before it) and a transition."""

    def __init__(self, k0: int = 4, k: int = 3, layers: int = 4) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.BatchNorm2d(k0 + i * k), nn.ReLU(), nn.Conv2d(k0 + i * k, 4, 1), nn.Conv2d(4, k, 3, padding=1)
            )
            for i in range(layers)
        )
        self.transition = nn.Sequential(nn.Conv2d(k0 + layers * k, 8, 1), nn.AvgPool2d(2))
        self.head = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, 1)))
        return self.head(self.transition(torch.cat(feats, 1)))


class WaveNet(nn.Module):
    """Causal 1-D convolutions (left padding only) with dilations 1, 2, 4, 8 and residual sums."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(4, 4, 2, dilation=2**i) for i in range(4))
        self.inp = nn.Conv1d(1, 4, 1)

    def forward(self, x):
        x = self.inp(x)
        for conv in self.convs:
            x = x + conv(F.pad(x, (conv.dilation[0], 0)))
        return x


class ASPP(nn.Module):
    """DeepLab-style parallel dilated 3×3 convs (rates 1, 3, 6) summed."""

    def __init__(self) -> None:
        super().__init__()
        self.rates = nn.ModuleList(nn.Conv2d(3, 4, 3, padding=r, dilation=r) for r in (1, 3, 6))
        self.out = nn.Conv2d(4, 4, 3, padding=2, dilation=2)

    def forward(self, x):
        return self.out(sum(conv(x) for conv in self.rates))


class Video(nn.Module):
    """3-D convs with a time kernel and a temporal stride (the time axis has its own field)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(3, 4, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3)),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            nn.Conv3d(4, 4, (3, 3, 3), stride=(2, 1, 1), padding=1),
            nn.AvgPool3d(2),
            nn.Conv3d(4, 4, (1, 3, 3), padding=(0, 1, 1)),
        )

    def forward(self, x):
        return self.features(x)


class ChannelsLast(nn.Module):
    """A ConvNeXt block: depthwise 7×7, then LayerNorm and an MLP on (N, H, W, C), added back."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.inp = nn.Conv2d(3, c, 2, 2)
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c)
        self.fc1 = nn.Linear(c, 4 * c)
        self.fc2 = nn.Linear(4 * c, c)

    def forward(self, x):
        x = self.inp(x)
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.fc2(F.gelu(self.fc1(self.norm(y)))).permute(0, 3, 1, 2)
        return x + y


class Wrap(nn.Module):
    """Names the output of a functional network as module `out`."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.out = nn.Identity()

    def forward(self, x):
        return self.out(self.net(x))


@pytest.mark.parametrize(
    "net, shape",
    [
        (Plain(), (1, 2, 64, 64)),
        (Residual(), (1, 3, 48, 48)),
        (Inception(), (1, 3, 64, 64)),
        (Dense(), (1, 4, 40, 40)),
        (ASPP(), (1, 3, 48, 48)),
        (ChannelsLast(), (1, 3, 48, 48)),
    ],
    ids=["plain", "residual", "inception", "densenet", "dilated-aspp", "channels-last"],
)
def test_analytic_field_equals_measured_2d(net, shape):
    check(Wrap(net), shape, "out")


def test_analytic_field_equals_measured_off_centre_units():
    """Units near the border see a field clipped by the padding; the first and last units agree
    too. (65 = 2·32 + 1, so the unpadded stride-2 stem reads every input pixel: at 64 it would
    never read the last one, which no analytic field can know.)"""
    net = Wrap(Inception())
    out = next(m.output_shapes[0] for m in analyze(net, (1, 3, 65, 65)).modules if m.name == "out")
    for unit in ((0, 0), (out[2] - 1, out[3] - 1), (1, out[3] - 2)):
        check(net, (1, 3, 65, 65), "out", unit)


def test_causal_dilated_1d_matches_measured_and_sees_only_the_past():
    net = Wrap(WaveNet())
    check(net, (1, 1, 64), "out", (40,))
    rf = analyze(net, (1, 1, 64)).receptive_field_of("out")
    assert rf.size == (16,)  # 1 + Σ(2−1)·2^i, i = 0..3
    assert rf.span(40)[0] == (25, 40)  # causal: unit t sees t−15 … t


def test_video_time_axis_has_its_own_field():
    net = Wrap(Video())
    check(net, (1, 3, 16, 40, 40), "out")
    rf = analyze(net, (1, 3, 16, 40, 40)).receptive_field
    assert rf.axes == ("T", "H", "W")
    assert rf.size[0] != rf.size[1] and rf.stride == (4, 8, 8)


def test_residual_network_torchvision_resnet18():
    """A real network: torchvision's ResNet-18 up to layer2, centre unit at 160×160."""
    check(torchvision.models.resnet18(), (1, 3, 160, 160), "layer2")


# -- upsampling, transposed convolution, global context ------------------------------------------


class UNet(nn.Module):
    def __init__(self, up: str) -> None:
        super().__init__()
        self.down1 = nn.Conv2d(3, 4, 3, 2, 1)
        self.down2 = nn.Conv2d(4, 4, 3, 2, 1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest") if up == "nearest" else nn.ConvTranspose2d(4, 4, 4, 2, 1)
        self.fuse = nn.Conv2d(8, 4, 3, padding=1)
        self.out = nn.Identity()

    def forward(self, x):
        s = self.down1(x)
        return self.out(self.fuse(torch.cat([self.up(self.down2(s)), s], 1)))


@pytest.mark.parametrize("up", ["nearest", "transposed"])
def test_upsampling_field_size_matches_measured(up):
    """After upsampling the units' fields are no longer exact translates (flagged `exact=False`):
    the size of each unit's field still matches, and the centre is within one coarse stride."""
    net = UNet(up)
    shape = (1, 3, 64, 64)
    report = analyze(net, shape)
    rf = report.receptive_field_of("out")
    assert not rf.exact
    for unit in ((8, 8), (9, 9)):
        measured = measured_span(net, shape, "out", unit)
        for (lo, hi), size, (alo, ahi) in zip(measured, rf.size, rf.span(unit)):
            assert hi - lo + 1 <= size
            assert abs((lo + hi) / 2 - (alo + ahi) / 2) <= 4


def test_squeeze_excitation_flags_global_context_and_measured_field_is_everything():
    from cnnatlas.layers import SqueezeExcite

    net = Wrap(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), SqueezeExcite(8), nn.Conv2d(8, 8, 3, padding=1)))
    rf = analyze(net, (1, 3, 32, 32)).receptive_field_of("out")
    assert rf.global_context and rf.size == (5, 5)  # local paths: two 3×3
    assert measured_span(net, (1, 3, 32, 32), "out", (16, 16)) == [(0, 31), (0, 31)]
    plain = Wrap(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)))
    assert not analyze(plain, (1, 3, 32, 32)).receptive_field_of("out").global_context


# -- closed forms -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("k", [3, 5])
def test_stacked_convs_follow_n_k_minus_1_plus_1(n, k):
    net = nn.Sequential(*[nn.Conv2d(2, 2, k, padding=k // 2) for _ in range(n)])
    rf = analyze(net, (1, 2, 64, 64)).receptive_field
    assert rf.size == (formulas.stacked_receptive_field(n, k),) * 2 == (n * (k - 1) + 1,) * 2
    assert rf.stride == (1, 1) and rf.start == (0, 0)


def test_five_stacked_3x3_see_11_and_a_stride_2_pool_doubles_the_growth():
    """FORMULAS.md worked example: RF of 5 stacked 3×3 = 11; a stride-2 pool in the middle makes
    each later layer add 2·(K−1) instead of K−1."""
    five = nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1) for _ in range(5)])
    assert analyze(five, (1, 1, 64, 64)).receptive_field.size == (11, 11)
    pooled = nn.Sequential(
        *[nn.Conv2d(1, 1, 3, padding=1) for _ in range(2)],
        nn.AvgPool2d(2),
        *[nn.Conv2d(1, 1, 3, padding=1) for _ in range(3)],
    )
    assert analyze(pooled, (1, 1, 64, 64)).receptive_field.size == (5 + 1 + 3 * 2 * 2,) * 2


LAYER_STACKS = [
    [(7, 2, 3), (3, 2, 1), (3, 1, 1), (3, 1, 1)],
    [(3, 1, 1, 1), (3, 1, 2, 2), (3, 1, 4, 4), (3, 1, 8, 8)],
    [(11, 4, 2), (3, 2, 0), (5, 1, 2), (3, 2, 0), (3, 1, 1), (3, 2, 0)],
    [(2, 2, 0), (2, 2, 0), (3, 1, 0), (5, 3, 1, 2)],
]


@pytest.mark.parametrize("layers", LAYER_STACKS)
def test_general_recurrence_equals_the_traced_field(layers):
    net = nn.Sequential(*[nn.Conv2d(1, 1, k, s, p, dilation=d) for k, s, p, d in ((*layer, 1)[:4] for layer in layers)])
    rf = analyze(net, (1, 1, 200, 200)).receptive_field
    last = formulas.receptive_field_stack(layers)[-1]
    assert rf.size == (last.size,) * 2 and rf.stride == (last.jump,) * 2 and rf.start == (last.start,) * 2


def test_dilated_conv_field_is_its_effective_kernel():
    for k, d in ((3, 2), (3, 4), (5, 3)):
        rf = analyze(nn.Conv2d(1, 1, k, dilation=d), (1, 1, 64, 64)).receptive_field
        assert rf.size == (formulas.dilated_kernel_size(k, d),) * 2


# -- published receptive fields (google-research/receptive_field, PUBLISHED.md §1) ------------------


@pytest.mark.parametrize("name, size, padding", [("vgg16", 212, 90), ("vgg11", 150, 59)])
def test_vgg_pool5_matches_rf_table(name, size, padding):
    """RF-TABLE vgg_16 / vgg_a pool5: 212 / 32 / 90 and 150 / 32 / 59 — same architecture as ours
    and torchvision's (3×3 'SAME' convs, 2×2 stride-2 pools), so every figure applies."""
    with torch.device("meta"):
        models = (create_model(name), getattr(torchvision.models, name)())
    for model in models:
        rf = analyze(model, (1, 3, 224, 224)).receptive_field_of("features")
        assert (rf.size, rf.stride, rf.padding) == ((size,) * 2, (32, 32), (padding,) * 2)


def test_alexnet_matches_rf_table_up_to_conv1_padding():
    """RF-TABLE alexnet_v2 pool5: 195 / 32 / 64. torchvision's AlexNet has the same layers but pads
    conv1 by 2 where TF-Slim's alexnet_v2 uses 'VALID', which adds 2 to the effective padding."""
    with torch.device("meta"):
        model = torchvision.models.alexnet()
    rf = analyze(model, (1, 3, 224, 224)).receptive_field_of("features")
    assert rf.size == (195, 195) and rf.stride == (32, 32) and rf.padding == (64 + 2,) * 2


def test_inception_v3_mixed_7c_matches_rf_table():
    """RF-TABLE inception_v3 Mixed_7c: 1311 / 32 / 618 (torchvision follows the TF layout, 'VALID'
    where TF-Slim has it)."""
    with torch.device("meta"):
        model = torchvision.models.inception_v3(init_weights=False, aux_logits=False)
    rf = analyze(model, (1, 3, 299, 299)).receptive_field_of("Mixed_7c")
    assert (rf.size, rf.stride, rf.padding) == ((1311,) * 2, (32, 32), (618,) * 2)


def test_mobilenet_v1_matches_rf_table_at_odd_sizes():
    """RF-TABLE mobilenet_v1 Conv2d_13_pointwise: 315 / 32, effective padding 126 at 224 and 157 at
    321. TF 'SAME' padding is asymmetric at even sizes and symmetric at odd ones (321 → 161 → 81 …),
    where it equals our symmetric padding: so our figure is the 321 column's."""
    with torch.device("meta"):
        model = create_model("mobilenet_v1")
    rf = analyze(model, (1, 3, 224, 224)).receptive_field
    assert (rf.size, rf.stride, rf.padding) == ((315,) * 2, (32, 32), (157,) * 2)


def _tf_slim_striding(model: nn.Module) -> nn.Module:
    """TF-Slim resnet_v1 strides the 3×3 of the *last* unit of blocks 1–3 and subsamples its
    shortcut (1×1 max-pool); torchvision (ResNet v1.5) strides the first unit of layers 2–4. Move
    the strides to TF-Slim's places."""
    for name in ("layer2", "layer3", "layer4"):
        first = getattr(model, name)[0]
        first.conv2.stride = (1, 1)
        first.downsample[0].stride = (1, 1)
    for name in ("layer1", "layer2", "layer3"):
        last = getattr(model, name)[-1]
        last.conv2.stride = (2, 2)
        last.downsample = nn.MaxPool2d(1, 2)
    return model


@pytest.mark.parametrize(
    "depth, table",
    [
        (50, [(35, 8), (99, 16), (291, 32), (483, 32)]),
        (101, [(35, 8), (99, 16), (835, 32), (1027, 32)]),
        (152, [(35, 8), (163, 16), (1315, 32), (1507, 32)]),
    ],
)
def test_resnet_blocks_match_rf_table_with_tf_slim_striding(depth, table):
    """RF-TABLE resnet_v1_{50,101,152} block1..4 (RF / stride) and block4's effective padding at 321
    (239 + 2, 511 + 2, 751 + 2: the odd-size column, see the MobileNet test). The table does not apply
    to torchvision's ResNet as built — its strides sit in the first unit of layers 2–4 (v1.5), which
    gives resnet50 a field of 427, not 483 — so the test first moves the strides to TF-Slim's places."""
    with torch.device("meta"):
        model = getattr(torchvision.models, f"resnet{depth}")()
    assert analyze(model, (1, 3, 224, 224)).receptive_field_of("layer4").size != (table[-1][0],) * 2
    report = analyze(_tf_slim_striding(model), (1, 3, 321, 321))
    for i, (size, stride) in enumerate(table, start=1):
        rf = report.receptive_field_of(f"layer{i}")
        assert (rf.size, rf.stride) == ((size,) * 2, (stride,) * 2)
    padding_321 = {50: 241, 101: 513, 152: 753}[depth]
    assert report.receptive_field_of("layer4").padding == (padding_321,) * 2


# -- effective receptive field ------------------------------------------------------------------


def test_effective_field_is_inside_and_smaller_than_the_theoretical_one():
    """Luo et al. 2016: the gradient mass concentrates well inside the theoretical field."""
    torch.manual_seed(0)
    net = nn.Sequential(*[nn.Sequential(nn.Conv2d(4 if i else 1, 4, 3, padding=1), nn.ReLU()) for i in range(8)])
    erf = effective_receptive_field(net, (1, 1, 41, 41), samples=8, fraction=0.95)
    assert erf.layer == "7" and erf.theoretical.size == (17, 17)
    assert erf.grad.shape == (41, 41) and abs(float(erf.grad.sum()) - 1) < 1e-5
    assert torch.all(erf.grad[:12] == 0) and torch.all(erf.grad[:, 29:] == 0)  # outside the 17×17 field
    assert all(1 <= s < 17 for s in erf.size)
    full = effective_receptive_field(net, (1, 1, 41, 41), samples=8, fraction=1.0)
    assert full.size == (17, 17)


def test_effective_field_grows_slower_than_the_theoretical_one():
    """Theoretical field grows linearly with depth (2n + 1); the effective one like √n."""
    torch.manual_seed(0)
    sizes = []
    for n in (4, 16):
        net = nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1, bias=False) for _ in range(n)])
        for conv in net:
            nn.init.constant_(conv.weight, 1 / 9)
        sizes.append(effective_receptive_field(net, (1, 1, 65, 65), samples=2, fraction=0.9).size[0])
    assert sizes[1] / sizes[0] < (2 * 16 + 1) / (2 * 4 + 1)
