"""Checks every registered model passes, whatever its family: parameters against the published
figure, output and feature shapes, the forward split, gradients, and clear input errors."""

import pytest
import torch
from torch import nn

import cnnatlas
from cnnatlas.models.base import count_params

MODELS = cnnatlas.list_models()
# Real forward/backward at the smallest valid input is cheap for most; these are heavy on 2 cores.
HEAVY = {"efficientnet_b6", "efficientnet_b7", "resnet152", "c3d", "slowfast_r50", "i3d"}


def _dense(name):
    """Segmentation models give a score per pixel, (N, classes, H, W), at the input's size."""
    return cnnatlas.get_entry(name).family == "segmentation"


def _meta(name, **kwargs):
    with torch.device("meta"):
        return cnnatlas.create_model(name, **kwargs)


# The models with no published parameter count, each for its reason; every other model must have one.
WITHOUT_FIGURE = {
    "efficientnet": "the compound-scaling rule at any φ: no released network to compare with",
    "i3d": "Carreira & Zisserman 2017 give no parameter count (its published top-1/top-5 are kept)",
    **{
        f"plain{d}": "He et al. 2016, Table 6 counts the parameters of the ResNets only; the plain twins "
        "have the same layers (shortcut A adds no parameter)"
        for d in (20, 32, 44, 56, 110)
    },
    "spectrogram_cnn": "cnnatlas's own: a log-mel front end on a backbone of the zoo",
    "wavenet": "van den Oord et al. 2016 give no parameter count, and the classifier head is cnnatlas's",
    "fcn": "cnnatlas's own: FCN's head on any backbone of the zoo (torchvision's fcn_resnet50 has its figure)",
    "deeplabv3": "cnnatlas's own: DeepLab v3's head on any backbone of the zoo (deeplabv3_resnet50 has its figure)",
    "deeplabv3plus": "cnnatlas's own: DeepLab v3+'s head and decoder on any backbone of the zoo, at small widths "
    "(no released network of this size to compare with)",
}


@pytest.mark.parametrize("name", MODELS)
def test_params_agree_with_published(name):
    entry = cnnatlas.get_entry(name)
    measured = count_params(_meta(name))
    agreement = entry.published.params_agreement(measured)
    if name in WITHOUT_FIGURE:
        assert agreement.status == "none"
        if name.startswith("plain"):  # the ResNet twin's count is published: the plain net has the same
            assert measured == count_params(_meta(name.replace("plain", "resnet")))
        return
    assert agreement.status in ("exact", "approx"), (
        f"{name}: measured {measured:,} vs published {entry.published.params} ({entry.published.citation})"
    )


def test_the_models_without_a_published_count_are_the_known_ones():
    assert {n for n in MODELS if cnnatlas.get_entry(n).published.params is None} == set(WITHOUT_FIGURE)


@pytest.mark.parametrize("name", MODELS)
def test_output_and_feature_shapes_at_default_input(name):
    entry = cnnatlas.get_entry(name)
    x = torch.empty((2,) + entry.input_size, device="meta")
    assert _meta(name, num_classes=7).eval()(x).shape == ((2, 7, *x.shape[2:]) if _dense(name) else (2, 7))
    features = _meta(name, features_only=True)
    maps = features(x)
    assert [m.shape[1] for m in maps] == [s.channels for s in features.feature_info]
    reductions = [s.reduction for s in features.feature_info]
    assert reductions == sorted(reductions)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in MODELS])
def test_forward_backward_at_smallest_input(name):
    torch.manual_seed(0)
    # auxiliary training heads (GoogLeNet, Inception-v3, the segmentation models) are tested with their families
    accepted = cnnatlas.get_entry(name).accepted_kwargs()
    no_aux = {key: False for key in ("aux_logits", "aux_loss") if key in accepted}
    model = cnnatlas.create_model(name, num_classes=5, in_channels=2, **no_aux)
    size = max(model.min_input_size, 8)
    x = torch.randn((2, 2) + (size,) * model.dims)
    model.train()
    model(x).logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"{name}: no gradient reaches {missing[:5]}"
    model.eval()
    with torch.no_grad():
        out = model(x)
        assert out.shape == ((2, 5, size, size) if _dense(name) else (2, 5)) and torch.isfinite(out).all()
        head = {"size": x.shape[2:]} if _dense(name) else {}  # the dense head upsamples to the input's size
        assert torch.equal(model.forward_head(model.forward_features(x), **head), out)


@pytest.mark.parametrize("name", MODELS)
def test_too_small_input_names_the_smallest(name):
    model = _meta(name).eval()
    smallest = model.min_input_size
    if smallest == 1:
        pytest.skip(f"{name} accepts any input size")
    # waveforms are small enough to run for real: on some torch versions a meta convolution gives an
    # empty map where the real kernel raises, so only a real run shows what a user gets
    device = "cpu" if model.dims == 1 else "meta"
    if device == "cpu":
        model = cnnatlas.create_model(name).eval()
    x = torch.zeros((1, model.in_channels) + (smallest - 1,) * model.dims, device=device)
    expected = "×".join([str(smallest)] * model.dims)
    with pytest.raises(cnnatlas.InputShapeError, match=f"smallest input this network accepts is {expected}"):
        model(x)
    model(torch.zeros((2, model.in_channels) + (smallest,) * model.dims, device=device))  # and that size runs


def test_rank_and_channel_errors():
    model = _meta("vgg11")
    with pytest.raises(
        cnnatlas.InputShapeError, match=r"expects a 4-D input \(N, C, H, W\); got shape \(3, 32, 32\).*unsqueeze"
    ):
        model(torch.empty(3, 32, 32, device="meta"))
    with pytest.raises(cnnatlas.InputShapeError, match="in_channels=3 but the input has 1 channels"):
        model(torch.empty(1, 1, 32, 32, device="meta"))


def test_smallest_input_is_one_where_no_map_is_empty():
    # some torch versions' meta kernels give an empty map where the real kernel raises; the search for
    # the smallest input must not take such a size: here a crop that empties maps up to 8 pixels wide
    from cnnatlas.models.base import Classifier

    class Crop(nn.Module):
        def forward(self, x):
            return x[..., 8:, 8:]

    class Cropped(Classifier):
        def __init__(self):
            super().__init__(num_classes=3, in_channels=1)
            self.features = nn.Sequential(Crop(), nn.ReLU())
            self.fc = nn.Linear(1, 3)

        def forward_head(self, x, pre_logits=False):
            return self.fc(x.sum((2, 3)))  # a sum over an empty map is 0: nothing raises

    model = Cropped()
    assert model.min_input_size == 9
    assert "the smallest input this network accepts is 9×9" in str(model._too_small((8, 8)))
    assert model(torch.randn(2, 1, 9, 9)).shape == (2, 3)
