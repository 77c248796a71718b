"""Inflation (I3D): the filter rule W_3d[:, :, t] = W_2d / T, the pools and strides rule, the "boring
video" property — a still image repeated T times gives the 2-D model's output, through the whole
network with replicated time padding and at the frames whose temporal field stays inside the clip
with zero padding — and I3D as inflated GoogLeNet."""

import pytest
import torch
from equivalence import max_relative_difference, randomize_norm_stats
from torch import nn

import cnnatlas
from cnnatlas import InvalidArgumentError, inflate
from cnnatlas.inflate import ReplicateTimeConv3d, ZeroPadShortcut3d
from cnnatlas.models.base import count_params
from cnnatlas.models.video import I3D_INFLATION


def _model(name, **kwargs):
    torch.manual_seed(0)
    no_aux = {"aux_logits": False} if "aux_logits" in cnnatlas.get_entry(name).accepted_kwargs() else {}
    return randomize_norm_stats(cnnatlas.create_model(name, num_classes=5, **no_aux, **kwargs)).eval()


def _boring(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(N, C, H, W) → (N, C, T, H, W): the same image at every frame."""
    return x.unsqueeze(2).expand(-1, -1, frames, -1, -1).contiguous()


# -- the filter rule ----------------------------------------------------------------------------


def test_every_filter_is_copied_T_times_and_divided_by_T():
    conv = nn.Conv2d(3, 8, 7, stride=2, padding=3)
    net = inflate(nn.Sequential(conv))
    new = net[0]
    assert isinstance(new, nn.Conv3d) and new.kernel_size == (7, 7, 7)
    assert new.stride == (2, 2, 2) and new.padding == (3, 3, 3)
    for t in range(7):
        assert torch.allclose(new.weight[:, :, t], conv.weight / 7)
    assert torch.allclose(new.weight.sum(2), conv.weight, atol=1e-6)  # Σ_t W/T = W
    assert torch.equal(new.bias, conv.bias)


@pytest.mark.parametrize(
    "time_kernel, expected",
    [
        (None, [(7, 7, 7), (1, 1, 1), (3, 3, 3), (1, 1, 5)]),  # square k×k → k×k×k; others keep time 1
        (3, [(3, 7, 7), (1, 1, 1), (3, 3, 3), (3, 1, 5)]),  # every kernel but 1×1 gets T = 3
        (lambda name, conv: 2 if name == "0" else 1, [(2, 7, 7), (1, 1, 1), (1, 3, 3), (1, 1, 5)]),
    ],
)
def test_time_kernel_rule(time_kernel, expected):
    net = nn.Sequential(nn.Conv2d(1, 2, 7), nn.Conv2d(2, 2, 1), nn.Conv2d(2, 2, 3), nn.Conv2d(2, 2, (1, 5)))
    assert [m.kernel_size for m in inflate(net, time_kernel=time_kernel)] == expected


def test_pool_and_stride_rule():
    net = nn.Sequential(
        nn.MaxPool2d(3, 2, 1),
        nn.MaxPool2d(3, 2),
        nn.AvgPool2d(2),
        nn.MaxPool2d(3, 1, 1),
        nn.AdaptiveAvgPool2d((6, 6)),
        nn.Conv2d(1, 1, 3, stride=2),
    )
    same = inflate(net, skip_time_pools=1)
    assert [(m.kernel_size, m.stride) for m in same[:4]] == [
        ((1, 3, 3), (1, 2, 2)),  # the first strided pool keeps time (skip_time_pools=1)
        ((3, 3, 3), (2, 2, 2)),
        ((2, 2, 2), (2, 2, 2)),
        ((3, 3, 3), (1, 1, 1)),
    ]
    assert same[4].output_size == (1, 6, 6) and same[5].stride == (2, 2, 2)
    flat = inflate(net, time_stride=1)
    assert all(m.kernel_size[0] == 1 and m.stride[0] == 1 for m in flat[:4])
    assert flat[5].stride == (1, 2, 2) and flat[5].kernel_size == (3, 3, 3)


def test_norms_keep_their_state_and_the_2d_model_is_untouched():
    net = randomize_norm_stats(nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Dropout2d(0.1)))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    out = inflate(net)
    assert isinstance(out[1], nn.BatchNorm3d) and isinstance(out[2], nn.Dropout3d)
    for key in ("running_mean", "running_var", "weight", "bias"):
        assert torch.equal(getattr(out[1], key), before[f"1.{key}"])
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert isinstance(net[0], nn.Conv2d)


def test_replicate_time_padding_repeats_the_end_frames():
    conv = nn.Conv2d(2, 3, 3, padding=1)
    new = inflate(nn.Sequential(conv), time_padding="replicate")[0]
    assert isinstance(new, ReplicateTimeConv3d) and new.padding == (0, 1, 1) and new.time_pad == 1
    x = torch.randn(1, 2, 5, 6, 6)
    padded = torch.cat([x[:, :, :1], x, x[:, :, -1:]], 2)
    ref = nn.functional.conv3d(padded, new.weight, new.bias, padding=(0, 1, 1))
    assert torch.allclose(new(x), ref, atol=1e-6)


# -- boring video -------------------------------------------------------------------------------

# (model, spatial size, frames, time_stride): residual (option A and B shortcuts), Inception,
# depthwise, squeeze-excitation, dense connections with average pools.
BORING = [
    ("lenet5", 32, 4, "same"),
    ("resnet20", 16, 4, "same"),
    ("resnet18", 32, 4, "same"),
    ("googlenet", 32, 16, "same"),
    ("mobilenet_v2", 32, 3, 1),
    ("efficientnet_b0", 32, 3, 1),
    ("densenet121", 32, 3, 1),
]


@pytest.mark.parametrize("name, size, frames, time_stride", BORING)
def test_boring_video_gives_the_2d_output_with_replicate_padding(name, size, frames, time_stride):
    model_2d = _model(name)
    model_3d = inflate(model_2d, time_padding="replicate", time_stride=time_stride).eval()
    assert model_3d.dims == 3
    x = torch.randn(2, model_2d.in_channels, size, size)
    with torch.no_grad():
        features_2d = model_2d.forward_head(model_2d.forward_features(x), pre_logits=True)
        features_3d = model_3d.forward_head(model_3d.forward_features(_boring(x, frames)), pre_logits=True)
        logits_2d, logits_3d = model_2d(x), model_3d(_boring(x, frames))
    assert features_2d.std() > 1e-3  # a real signal, not a network that outputs its biases
    assert max_relative_difference(features_3d, features_2d) < 1e-5
    assert max_relative_difference(logits_3d, logits_2d) < 1e-5


def test_a_boring_video_stays_boring_through_every_layer():
    model_3d = inflate(_model("resnet20"), time_padding="replicate")
    assert any(isinstance(m, ZeroPadShortcut3d) for m in model_3d.modules())  # option A, made 3-D
    outputs = {}
    for name, m in model_3d.named_modules():
        if not list(m.children()):
            m.register_forward_hook(lambda mod, inp, out, name=name: outputs.setdefault(name, out))
    with torch.no_grad():
        model_3d(_boring(torch.randn(1, 3, 16, 16), 6))
    maps = {k: v for k, v in outputs.items() if v.dim() == 5}
    assert len(maps) > 50
    for name, out in maps.items():
        assert torch.allclose(out, out[:, :, :1].expand_as(out), atol=1e-5), f"{name} is not constant in time"


def test_with_zero_padding_exactly_the_interior_frames_match():
    """With zeros, frame t of the last feature map equals the 2-D map exactly when its temporal field
    (measured by the analyser) lies inside the clip; frames whose field reaches the padding differ."""
    model_2d = _model("resnet20")
    model_3d = inflate(model_2d, time_padding="zeros", time_stride=1).eval()
    frames, size = 48, 8
    rf = cnnatlas.analyze(model_3d, (1, 3, frames, size, size)).receptive_field
    assert rf.axes == ("T", "H", "W")
    assert rf.size[0] == 1 + 2 * 19 and rf.stride[0] == 1  # 19 convs of time kernel 3 on the longest path
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        ref = model_2d.forward_features(x)
        out = model_3d.forward_features(_boring(x, frames))
    inside = [t for t in range(frames) if rf.span((t, 0, 0))[0][0] >= 0 and rf.span((t, 0, 0))[0][1] <= frames - 1]
    assert len(inside) == frames - 2 * 19
    for t in range(frames):
        diff = max_relative_difference(out[:, :, t], ref)
        if t in inside:
            assert diff < 1e-5, f"interior frame {t} differs by {diff:.2g}"
        elif t in (0, frames - 1):
            assert diff > 1e-3, f"border frame {t} should see the zero padding"


# -- I3D ------------------------------------------------------------------------------------------


def test_i3d_is_inflated_googlenet():
    torch.manual_seed(0)
    googlenet = randomize_norm_stats(cnnatlas.create_model("googlenet", num_classes=400))
    inflated = inflate(googlenet, time_padding="replicate", **I3D_INFLATION).eval()
    i3d = cnnatlas.create_model("i3d", time_padding="replicate").eval()
    assert [k for k in inflated.state_dict()] == [k for k in i3d.state_dict()]
    i3d.load_state_dict(inflated.state_dict())
    f = i3d.features
    assert (f.conv1.conv.kernel_size, f.conv1.conv.stride) == ((7, 7, 7), (2, 2, 2))
    assert [(p.kernel_size, p.stride) for p in (f.maxpool1, f.maxpool2, f.maxpool3, f.maxpool4)] == [
        ((1, 3, 3), (1, 2, 2)),
        ((1, 3, 3), (1, 2, 2)),
        ((3, 3, 3), (2, 2, 2)),
        ((2, 2, 2), (2, 2, 2)),
    ]
    assert f.inception3a.branch4[0].kernel_size == (3, 3, 3) and f.inception3a.branch2[1].conv.kernel_size == (3, 3, 3)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert max_relative_difference(i3d(_boring(x, 8)), googlenet.eval()(x)) < 1e-5


def test_i3d_parameters_against_the_paper():
    """Carreira & Zisserman 2017, Table 1: Two-Stream I3D has 25M parameters (an RGB stream of 3
    input channels and a flow stream of 2); each k×k filter of GoogLeNet became k×k×k."""
    with torch.device("meta"):
        rgb, flow = cnnatlas.create_model("i3d"), cnnatlas.create_model("i3d", in_channels=2)
        googlenet = cnnatlas.create_model("googlenet", num_classes=400)
    assert abs(count_params(rgb) + count_params(flow) - 25e6) / 25e6 < 0.05
    extra = sum(
        m.weight.numel() * (m.kernel_size[0] - 1)
        for m in googlenet.modules()
        if isinstance(m, nn.Conv2d) and m.kernel_size[0] == m.kernel_size[1]
    )
    assert count_params(rgb) == count_params(googlenet) + extra


# -- errors ---------------------------------------------------------------------------------------


def test_inflate_rejects_what_it_cannot_inflate():
    with pytest.raises(InvalidArgumentError, match="torch.nn.Module"):
        inflate("resnet18")
    with pytest.raises(InvalidArgumentError, match="time_padding must be 'zeros' or 'replicate'; got 'circular'"):
        inflate(nn.Conv2d(1, 1, 3), time_padding="circular")
    with pytest.raises(InvalidArgumentError, match="time_kernel"):
        inflate(nn.Conv2d(1, 1, 3), time_kernel=0)
    with pytest.raises(InvalidArgumentError, match="ConvTranspose2d"):
        inflate(nn.Sequential(nn.Conv2d(1, 1, 3), nn.ConvTranspose2d(1, 1, 2)))
    with torch.device("meta"):
        video = cnnatlas.create_model("r3d_18")
    with pytest.raises(InvalidArgumentError, match="3-D model"):
        inflate(video)


@pytest.mark.slow  # ~60 models built on meta tensors: about a minute on 2 cores
def test_every_2d_model_of_the_zoo_inflates():
    """Meta tensors only: each inflated 2-D model runs on a clip at its registered image size."""
    for name in cnnatlas.list_models():
        entry = cnnatlas.get_entry(name)
        if len(entry.input_size) != 3 or entry.family == "segmentation":  # classifiers: the output is (N, classes)
            continue
        with torch.device("meta"):
            model = inflate(cnnatlas.create_model(name), time_stride=1).eval()
            out = model(torch.empty((1, entry.input_size[0], 2) + entry.input_size[1:]))
        assert out.shape == (1, model.num_classes), name
