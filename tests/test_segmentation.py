"""Dilated backbones (`output_stride`) and the segmentation models: against torchvision given the
same weights, the à trous identity (a dilated network computes the strided one's map densely), the
small models' API, the analyser, the command line."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
import torchvision
from equivalence import randomize_norm_stats
from torch.utils._python_dispatch import TorchDispatchMode

import cnnatlas
from cnnatlas import InvalidArgumentError, analyze, create_model
from cnnatlas.cli import main
from cnnatlas.layers.segmentation import ASPP, DeepLabHead, DeepLabV3PlusHead, FCNHead, upsample
from cnnatlas.models.base import count_params, dilation_plan
from cnnatlas.models.segmentation import ONE_PIXEL_SHIFTS, SegmentationOutputs, ShiftAveraged, shifted
from cnnatlas.weights import load_torchvision_weights

# -- dilated backbones ---------------------------------------------------------------------------------


def test_dilation_plan_is_deeplabs_rule():
    # ResNet-50 after stem and max-pool (stride 4): stages of strides 1, 2, 2, 2
    assert dilation_plan("m", 4, (1, 2, 2, 2), None) == [(1, 1, 1), (2, 1, 1), (2, 1, 1), (2, 1, 1)]
    assert dilation_plan("m", 4, (1, 2, 2, 2), 16) == [(1, 1, 1), (2, 1, 1), (2, 1, 1), (1, 1, 2)]
    assert dilation_plan("m", 4, (1, 2, 2, 2), 8) == [(1, 1, 1), (2, 1, 1), (1, 1, 2), (1, 2, 4)]
    for bad in (12, 2, 0, True, "8"):
        with pytest.raises(InvalidArgumentError, match=r"output_stride must be one of 4, 8, 16, 32 \(or None: 32\)"):
            dilation_plan("m", 4, (1, 2, 2, 2), bad)


@pytest.mark.parametrize("output_stride, replace", [(8, [False, True, True]), (16, [False, False, True])])
def test_dilated_resnet50_equals_torchvisions(output_stride, replace):
    torch.manual_seed(0)
    theirs = randomize_norm_stats(torchvision.models.resnet50(replace_stride_with_dilation=replace)).eval()
    ours = load_torchvision_weights(create_model("resnet50", output_stride=output_stride), theirs).eval()
    x = torch.randn(1, 3, 72, 56)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-4, rtol=1e-4)
        assert ours.forward_features(x).shape[-2:] == (-(-72 // output_stride), -(-56 // output_stride))
    assert ours.output_stride == output_stride and ours.feature_info[-1].reduction == output_stride


@pytest.mark.parametrize(
    "name, kwargs, strides",
    [
        ("resnet18", {}, (8, 16)),
        ("resnet50", {"stride_on": "1x1"}, (8,)),  # the stride on the first 1×1: the 3×3 comes after it
        ("resnet20", {}, (1, 2)),  # CIFAR: option A shortcuts subsample, stride 4 at most
        ("mobilenet_v2", {}, (8, 16)),
    ],
)
def test_a_trous_the_dilated_map_subsampled_is_the_strided_map(name, kwargs, strides):
    """Same weights: the dilated network's last map, taken every (32 / output_stride) pixels, is exactly
    the strided network's map (Chen et al. 2017 §3.1, the algorithme à trous) — borders included."""
    torch.manual_seed(0)
    strided = create_model(name, **kwargs).eval()
    natural = strided.output_stride
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        reference = strided.forward_features(x)
        for s in strides:
            dilated = create_model(name, output_stride=s, **kwargs).eval()
            dilated.load_state_dict(strided.state_dict())
            dense = dilated.forward_features(x)
            step = natural // s
            assert dense.shape[-1] == reference.shape[-1] * step
            scale = reference.abs().max()
            assert (dense[..., ::step, ::step] - reference).abs().max() <= 1e-5 * scale, (name, s)


def test_efficientnet_dilates_with_the_same_parameters():
    base = count_params(create_model("efficientnet_b0"))
    features = create_model("efficientnet_b0", output_stride=16, features_only=True).eval()
    assert [f.reduction for f in features.feature_info] == [2, 4, 8, 16]
    assert features(torch.randn(1, 3, 64, 64))[-1].shape[-2:] == (4, 4)
    assert count_params(create_model("efficientnet_b0", output_stride=8)) == base


def test_output_stride_errors_name_the_choices():
    with pytest.raises(
        InvalidArgumentError, match=r"CifarResNet: output_stride must be one of 1, 2, 4 \(or None: 4\); got 8"
    ):
        create_model("resnet20", output_stride=8)
    with pytest.raises(InvalidArgumentError, match="MobileNetV2: output_stride must be one of 2, 4, 8, 16, 32"):
        create_model("mobilenet_v2", output_stride=64)
    with pytest.raises(InvalidArgumentError, match=r"^FCN with backbone 'resnet20': CifarResNet: output_stride must"):
        create_model("fcn", output_stride=8)  # the backbone's refusal names the model that asked for it


def test_dilation_keeps_the_receptive_field_and_pays_in_macs():
    reports = {}
    for s in (8, 16, 32):
        with torch.device("meta"):
            reports[s] = analyze(create_model("resnet50", output_stride=s), (1, 3, 224, 224), training_memory=False)
    rf = {s: r.receptive_field for s, r in reports.items()}
    assert {r.size for r in rf.values()} == {(427, 427)}  # the same function, computed more densely
    assert [rf[s].stride for s in (8, 16, 32)] == [(8, 8), (16, 16), (32, 32)]
    assert reports[8].macs > reports[16].macs > reports[32].macs == 4_089_184_256
    assert len({r.params for r in reports.values()}) == 1


# -- heads ----------------------------------------------------------------------------------------------


def test_heads_keep_the_map_size_and_count_their_parameters():
    x = torch.randn(2, 32, 9, 7)
    fcn = FCNHead(32, 5)
    assert fcn.eval()(x).shape == (2, 5, 9, 7)
    assert count_params(fcn) == 9 * 32 * 8 + 2 * 8 + (8 + 1) * 5
    aspp = ASPP(32, (2, 4), out_channels=16).eval()
    assert aspp(x).shape == (2, 16, 9, 7) and aspp.atrous_rates == (2, 4)
    assert [b.conv.dilation for b in aspp.convs[1:3]] == [(2, 2), (4, 4)]
    assert DeepLabHead(32, 5, (1, 2), channels=16).eval()(x).shape == (2, 5, 9, 7)
    with pytest.raises(InvalidArgumentError, match="atrous_rates must be a non-empty sequence"):
        ASPP(32, (0, 2))


# -- torchvision's segmentation models -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_resnet50"])
@pytest.mark.parametrize("aux_loss", [True, False])
def test_segmentation_models_equal_torchvisions(name, aux_loss):
    torch.manual_seed(0)
    theirs = randomize_norm_stats(torchvision.models.get_model(name, weights_backbone=None, aux_loss=aux_loss)).eval()
    ours = load_torchvision_weights(create_model(name, aux_loss=aux_loss), theirs).eval()
    x = torch.randn(1, 3, 67, 45)
    with torch.no_grad():
        expected = theirs(x)
        out = ours(x)
        assert out.shape == (1, 21, 67, 45) and torch.allclose(out, expected["out"], atol=1e-4, rtol=1e-4)
        if aux_loss:  # eval returns the main map only; the auxiliary head is torchvision's too
            aux = upsample(ours.aux_head(ours.forward_features(x)[1]), x.shape[-2:])
            assert torch.allclose(aux, expected["aux"], atol=1e-4, rtol=1e-4)
    assert count_params(ours) == sum(p.numel() for p in theirs.parameters())
    assert ours.output_stride == 8 and (not aux_loss or ours.aux_head is not None)


def test_torchvision_weights_with_aux_load_into_a_model_without():
    theirs = randomize_norm_stats(torchvision.models.segmentation.fcn_resnet50(weights_backbone=None, aux_loss=True))
    ours = load_torchvision_weights(create_model("fcn_resnet50", aux_loss=False), theirs.state_dict()).eval()
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs.eval()(x)["out"], atol=1e-4, rtol=1e-4)


def test_training_mode_returns_the_auxiliary_map_too():
    model = create_model("deeplabv3", num_classes=4, aux_loss=True).train()
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert isinstance(out, SegmentationOutputs) and out.out.shape == out.aux.shape == (2, 4, 32, 32)
    (
        F.cross_entropy(out.out, torch.zeros(2, 32, 32, dtype=torch.long))
        + 0.5 * F.cross_entropy(out.aux, torch.zeros(2, 32, 32, dtype=torch.long))
    ).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.eval()(x).shape == (2, 4, 32, 32)  # eval: the main map only
    twin = copy.deepcopy(model).train()  # the hook that keeps the auxiliary map follows the copy
    assert isinstance(twin(x), SegmentationOutputs)


# -- the small models ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "backbone, output_stride, rates",
    [
        ("resnet20", None, (3, 6, 9)),
        ("resnet20", 1, (12, 24, 36)),
        ("resnet20", 2, (6, 12, 18)),
        ("resnet18", 8, (2, 3, 5)),
        ("resnet18", 32, (1, 1, 1)),
        ("mobilenet_v2", 16, (1, 2, 2)),
    ],
)
def test_small_deeplabv3_on_zoo_backbones(backbone, output_stride, rates):
    model = create_model(
        "deeplabv3", backbone=backbone, num_classes=11, in_channels=1, output_stride=output_stride
    ).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 64, 64)).shape == (2, 11, 64, 64)
    assert model.atrous_rates == rates
    assert model.output_stride == (output_stride or model.backbone.output_stride)
    # the classifier's pool and FC are gone: every parameter serves the dense prediction
    assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())


def test_small_models_on_backbones_without_output_stride():
    model = create_model("fcn", backbone="vgg11", num_classes=3).eval()
    assert model.num_features == 512 and model(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    with pytest.raises(InvalidArgumentError, match="backbone 'vgg11' has no output_stride"):
        create_model("deeplabv3", backbone="vgg11", output_stride=8)
    with pytest.raises(InvalidArgumentError, match="backbone must be an image classifier.*'r3d_18'"):
        create_model("deeplabv3", backbone="r3d_18")
    with pytest.raises(cnnatlas.UnknownModelError, match="resnet21"):
        create_model("deeplabv3", backbone="resnet21")


def test_small_deeplabv3_learns_a_mask():
    """A few steps on one batch: the per-pixel loss falls — the dense head trains end to end."""
    torch.manual_seed(0)
    model = create_model("deeplabv3", backbone="resnet20", num_classes=2, in_channels=1).train()
    x = torch.zeros(4, 1, 32, 32)
    for i, (top, left) in enumerate(((2, 3), (14, 10), (5, 18), (20, 20))):  # a bright square to find in each
        x[i, 0, top : top + 10, left : left + 10] = 1.0
    y = (x[:, 0] > 0.5).long()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_deeplabv3plus_head_fuses_the_low_level_map_and_counts_its_parameters():
    head = DeepLabV3PlusHead(32, 8, 5, (1, 2), channels=16, low_level_reduced=4).eval()
    deep, low = torch.randn(2, 32, 4, 5), torch.randn(2, 8, 16, 20)
    assert head(deep, low).shape == (2, 5, 16, 20)  # at the low-level map's resolution
    assert head(deep, low, pre_logits=True).shape == (2, 16, 16, 20)
    aspp = count_params(ASPP(32, (1, 2), 16))
    reduce = 8 * 4 + 2 * 4
    refine = 9 * (16 + 4) * 16 + 2 * 16 + 9 * 16 * 16 + 2 * 16
    assert count_params(head) == aspp + reduce + refine + 16 * 5 + 5
    # the decoder uses the low-level features: changing them changes the output
    assert not torch.allclose(head(deep, low), head(deep, low + 1))
    narrow = DeepLabV3PlusHead(32, 8, 5, (1, 2), channels=16, low_level_reduced=4, decoder_channels=6)
    assert narrow(deep, low, pre_logits=True).shape == (2, 6, 16, 20)
    assert count_params(narrow) == aspp + reduce + 9 * (16 + 4) * 6 + 2 * 6 + 9 * 6 * 6 + 2 * 6 + 6 * 5 + 5


class _GradLayouts(TorchDispatchMode):
    """Records whether each bilinear-resize backward receives a channels_last gradient."""

    def __enter__(self):
        self.seen = []
        super().__enter__()
        return self.seen

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.upsample_bilinear2d_backward.default:
            self.seen.append(args[0].is_contiguous(memory_format=torch.channels_last))
        return func(*args, **(kwargs or {}))


def test_upsample_is_torchvisions_resize_and_hands_on_its_gradient_in_the_maps_layout():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 4, 5).contiguous(memory_format=torch.channels_last).requires_grad_()
    assert upsample(x, (4, 5)) is x  # the same size: no resize at all
    ref = x.detach().clone().requires_grad_()
    ours, theirs = upsample(x, (16, 20)), F.interpolate(ref, size=(16, 20), mode="bilinear", align_corners=False)
    assert torch.equal(ours, theirs)
    # after a concatenation, each input's gradient is a channel slice of the output's: the resize gets
    # it back in its output's layout (channels_last here), and the gradient itself is unchanged
    other = torch.randn(2, 3, 16, 20).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(2, 9, 16, 20)
    with _GradLayouts() as seen:
        (torch.cat([ours, other], dim=1) * weight).sum().backward()
    (torch.cat([theirs, other], dim=1) * weight).sum().backward()
    assert torch.equal(x.grad, ref.grad)
    assert seen == [True]  # without the copy: False, the slow path
    with torch.no_grad():  # inference: the plain resize
        assert torch.equal(upsample(x, (16, 20)), theirs)


@pytest.mark.parametrize(
    "backbone, output_stride, low_stride, low_stage",
    [
        ("resnet20", None, 1, "stages.0"),  # output stride 4 → stride-1 features
        ("resnet18", 16, 4, "stages.0"),  # the paper's pairing: 16 and 4
        ("resnet18", 8, 2, "stem"),
        ("mobilenet_v2", 8, 2, "stages.0"),
    ],
)
def test_deeplabv3plus_takes_the_low_level_stage_at_a_quarter_of_the_output_stride(
    backbone, output_stride, low_stride, low_stage
):
    model = create_model(
        "deeplabv3plus", backbone=backbone, num_classes=11, in_channels=1, output_stride=output_stride
    ).eval()
    assert model.low_level_stride == low_stride and model._low_stage.name == low_stage
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        assert model(x).shape == (2, 11, 64, 64)
        features = model.forward_features(x)
    assert features[-1].shape[-1] == 64 // low_stride  # the low-level map, as the hook kept it
    assert model._maps == {}  # not kept past the forward


def test_deeplabv3plus_errors_and_aux_loss():
    with pytest.raises(InvalidArgumentError, match="no stage at low_level_stride 3; its stages have strides"):
        create_model("deeplabv3plus", backbone="resnet20", low_level_stride=3)
    model = create_model("deeplabv3plus", backbone="resnet20", num_classes=3, in_channels=1, aux_loss=True).train()
    out = model(torch.randn(2, 1, 32, 32))
    assert out.out.shape == out.aux.shape == (2, 3, 32, 32)


@pytest.mark.parametrize("name", ["deeplabv3", "deeplabv3plus"])
def test_aspp_dropout_rate(name):
    x = torch.randn(4, 1, 32, 32)
    for rate, same in ((0.5, False), (0.0, True)):
        torch.manual_seed(0)
        model = create_model(name, backbone="resnet20", num_classes=3, in_channels=1, drop_rate=rate).train()
        assert model.head.aspp.drop.p == rate if rate else isinstance(model.head.aspp.drop, torch.nn.Identity)
        with torch.no_grad():  # training mode, batch statistics: only the dropout can differ between passes
            assert torch.equal(model(x), model(x)) is same
    for bad in (1.5, -0.1, "half"):
        with pytest.raises(InvalidArgumentError, match=r"drop_rate.* must be .*; got"):
            create_model(name, backbone="resnet20", drop_rate=bad)


def test_deeplabv3plus_recovers_detail_that_deeplabv3_upsampling_loses():
    """Thin one-pixel stripes at output stride 4: v3's bilinear ×4 upsampling of its 8×8 map cannot draw
    them; v3+'s decoder, fed the stride-1 features, can. Same data, steps and optimiser for both."""
    torch.manual_seed(0)
    x = torch.zeros(8, 1, 32, 32)
    for i in range(8):
        x[i, 0, :, 3 + 3 * i :: 7] = 1.0  # vertical lines, one pixel wide, 7 apart
    y = (x[:, 0] > 0.5).long()
    accuracy = {}
    for name in ("deeplabv3", "deeplabv3plus"):
        torch.manual_seed(0)
        model = create_model(name, backbone="resnet20", num_classes=2, in_channels=1).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(40):
            opt.zero_grad()
            F.cross_entropy(model(x), y, weight=torch.tensor([1.0, 6.0])).backward()
            opt.step()
        with torch.no_grad():
            pred = model.eval()(x).argmax(1)
        accuracy[name] = ((pred == 1) & (y == 1)).sum().item() / ((pred == 1) | (y == 1)).sum().item()
    assert accuracy["deeplabv3plus"] > 0.9 and accuracy["deeplabv3plus"] > accuracy["deeplabv3"] + 0.2, accuracy


# -- analyser, command line --------------------------------------------------------------------------------


def test_shift_averaging_moves_each_view_back_and_averages_the_softmax():
    """shifted moves the content and repeats the edge; ShiftAveraged with the one view (0, 0) is the model's
    log-softmax, and so it is over ONE_PIXEL_SHIFTS for a pointwise model (each view moved back to where
    it was) away from the repeated edge; a strided model (not shift-equivariant) averages to probabilities
    that differ from its single view's; and no shift at all is refused."""
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    moved = shifted(x, 1, 2)
    assert torch.equal(moved[..., 1:, 2:], x[..., :-1, :-2])  # content moved down 1, right 2
    assert torch.equal(moved[..., 0, 2:], x[..., 0, :-2]) and torch.equal(moved[..., :, 0], moved[..., :, 1])
    assert torch.equal(shifted(moved, -1, -2)[..., :-1, :-2], x[..., :-1, :-2])

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode="replicate")
    as_is = torch.log_softmax(conv(x / x.max()), 1)
    single = ShiftAveraged(conv, ((0, 0),))(x / x.max())
    assert torch.allclose(single, as_is, atol=1e-6)
    pointwise = torch.nn.Conv2d(3, 4, 1)  # shift-equivariant: each view moved back is the model's own map
    averaged = ShiftAveraged(pointwise, ONE_PIXEL_SHIFTS)(x / x.max())
    own = torch.log_softmax(pointwise(x / x.max()), 1)
    assert torch.allclose(averaged[..., :-1, :-1], own[..., :-1, :-1], atol=1e-5)  # all but the repeated edge
    strided = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 2, stride=2), torch.nn.Upsample(scale_factor=2))
    averaged = ShiftAveraged(strided, ONE_PIXEL_SHIFTS)(x / x.max())
    assert averaged.shape == (2, 4, 8, 8) and torch.allclose(averaged.exp().sum(1), torch.ones(2, 8, 8))
    assert not torch.allclose(averaged, torch.log_softmax(strided(x / x.max()), 1), atol=1e-3)
    with pytest.raises(ValueError, match="at least one"):
        ShiftAveraged(conv, ())


def test_analyser_on_segmentation_models():
    with torch.device("meta"):
        report = analyze(create_model("deeplabv3_resnet50", aux_loss=False), (1, 3, 128, 128), training_memory=False)
    assert report.output_shapes == [(1, 21, 128, 128)] and report.unsupported_ops == {}
    assert report.params == 39_638_869  # torchvision's deeplabv3_resnet50(aux_loss=False)
    assert report.receptive_field.global_context  # ASPP's image pooling sees the whole input


def test_cli_output_strides_side_by_side(capsys):
    assert main(["rf", "resnet50", "--output-stride", "8,16,32", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["output_strides"]
    assert [r["output_stride"] for r in rows] == [8, 16, 32]
    assert [r["last_map"][2:] for r in rows] == [[28, 28], [14, 14], [7, 7]]
    assert [r["receptive_field"]["stride"] for r in rows] == [[8, 8], [16, 16], [32, 32]]
    assert rows[0]["macs"] > rows[1]["macs"] > rows[2]["macs"]
    assert main(["summary", "resnet50", "--output-stride", "8,32"]) == 0
    out = capsys.readouterr().out
    assert "28×28" in out and "7×7" in out and "25,557,032 at every stride" in out
    assert main(["summary", "resnet50", "--output-stride", "8", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["macs"] == rows[0]["macs"] and data["published"] is None  # not the published configuration


def test_cli_info_and_pretrained_list_show_segmentation_metrics(capsys, monkeypatch):
    assert main(["info", "deeplabv3_resnet50"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "published mean IoU %: 66.4" in out and "pixel accuracy 92.4% on COCO-val2017-VOC-labels" in out
    assert main(["models", "--pretrained", "fcn_*", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["name"], row["miou"], row["pixel_acc"], row["num_classes"]) == ("fcn_resnet50", 60.5, 91.4, 21)
    monkeypatch.setenv("COLUMNS", "200")  # the table's columns unabridged
    assert main(["models", "--pretrained"]) == 0  # the table: mean IoU and pixel accuracy columns
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "mean IoU %" in " ".join(lines["model"]) and lines["fcn_resnet50"][-4:-1] == ["—", "60.5", "91.4"]
    assert lines["resnet18"][-3:-1] == ["—", "—"]  # a classifier's weights publish no mean IoU


@pytest.mark.parametrize(
    "argv, message",
    [
        (["summary", "vgg11", "--output-stride", "8"], "'vgg11' is not a registry model with an output_stride"),
        (["rf", "resnet20", "--output-stride", "8"], "output_stride must be one of 1, 2, 4"),
        (["summary", "resnet50", "--output-stride", "8,x"], "expected integers separated by commas"),
    ],
)
def test_cli_output_stride_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# -- diagrams and the atlas ------------------------------------------------------------------------------


def test_diagram_shows_the_aspp_branches_and_the_upsampling():
    from cnnatlas.viz.diagram import model_diagram

    d = model_diagram("deeplabv3")
    titles = [n.title for n in d.nodes]
    assert sum("dil" in t for t in titles) == 3  # the three atrous 3×3s: rates 3, 6, 9 at stride 4
    (cat,) = [n for n in d.nodes if n.title == "concatenate"]
    assert len([e for e in d.edges if e[1] == cat.id]) == 5 and cat.shape[1:] == (320, 16, 16)
    assert any("upsample" in t for t in titles) and d.nodes[-1].shape[1:] == (21, 64, 64)
    block = model_diagram("deeplabv3_resnet50", block="head.aspp")
    assert "conv 3×3 dil 36, 2048→256 → BN → ReLU" in [n.title for n in block.nodes]


def test_atlas_pages_of_segmentation_models(tmp_path):
    from cnnatlas.viz.atlas import build_atlas

    build_atlas(tmp_path, models="deeplabv3,deeplabv3_resnet50", claims=None, erf_cap=32, erf_samples=1, diagrams=False)
    small = (tmp_path / "models" / "deeplabv3.html").read_text()
    assert "deeplabv3/erf.png" in small and "of the model&#x27;s output" in small  # the scores are the last spatial map
    big = (tmp_path / "models" / "deeplabv3_resnet50.html").read_text()
    assert "published mean IoU / pixel accuracy</th><td>66.4 / 92.4 % on COCO-val2017-VOC-labels" in big
    assert "42,004,074 (published 42,004,074)" in big and "auxiliary FCN head" in big
