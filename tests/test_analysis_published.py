"""MACs and parameters measured by the analyser against torchvision's published figures.

torchvision's model tables give "GFLOPS" that count one multiply–accumulate as one operation
(PUBLISHED.md §2: `_ops`, added in pytorch/vision#6936 with a dispatch-level counter); the analyser's
`macs` must equal them to every published digit (`Published.macs_agreement`), and `params` must equal
`num_params` exactly.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch
import torchvision
from torchvision.models import regnet

from cnnatlas import analyze, create_model, get_entry, list_models
from cnnatlas.registry import Published


def _registry_with_torchvision_figures() -> list[str]:
    """Every registered model with a published MAC figure and a torchvision counterpart — models
    added to the registry later are covered as they land."""
    return [n for n in list_models() if get_entry(n).published.gmacs is not None and get_entry(n).torchvision]


@pytest.mark.parametrize("name", _registry_with_torchvision_figures())
def test_registry_model_equals_torchvision_published_figures(name):
    entry = get_entry(name)
    pub = entry.published
    size = pub.input_size or entry.input_size
    with torch.device("meta"):
        model = create_model(name)
    if entry.family == "segmentation":
        # torchvision runs the auxiliary FCN head in eval too and counts it; ours runs it where its loss is
        # needed, in training: traced there, at batch 2 (ASPP's pooled batch norm needs two samples), halved
        report = analyze(model, (2, *size), training=True)
        macs = report.macs // 2
    else:
        report = analyze(model, (1, *size))
        macs = report.macs
    assert pub.macs_agreement(macs).status == "exact", (
        f"{name}: measured {macs / 1e9:.4f} GMACs at {size}, published {pub.gmacs} ({pub.citation})"
    )
    assert pub.params_agreement(report.params).status == "exact", (
        f"{name}: measured {report.params:,} parameters, published {pub.params:,}"
    )


def test_the_registry_has_models_to_check():
    assert len(_registry_with_torchvision_figures()) >= 10


# -- torchvision's own models, against the metadata of their weights ------------------------------

_VIDEO = set(torchvision.models.list_models(module=torchvision.models.video))
_ALL = torchvision.models.list_models(module=torchvision.models) + sorted(_VIDEO)
_BUILD_ARGS = {
    "googlenet": {"init_weights": False, "aux_logits": False},  # torchvision's count drops the auxiliary heads
    "inception_v3": {"init_weights": False},  # … and keeps inception_v3's (PUBLISHED.md note)
    "vit_h_14": {"image_size": 518},  # its weights are for 518×518
}


@contextmanager
def _regnet_widths_on_the_cpu():
    """RegNet computes its stage widths and depths from tensor values (BlockParams.from_init_params:
    torch.arange, round, unique), which the meta device does not hold: those few numbers are computed
    on the CPU, and the model itself — regnet_y_128gf's 645 M parameters included — is built on meta."""
    saved = regnet.BlockParams.__dict__["from_init_params"]

    def on_cpu(cls, *args, **kwargs):
        with torch.device("cpu"):
            return saved.__func__(cls, *args, **kwargs)

    regnet.BlockParams.from_init_params = classmethod(on_cpu)
    try:
        yield
    finally:
        regnet.BlockParams.from_init_params = saved


def _input_shape(name: str, weights) -> tuple[int, ...]:
    crop = list(weights.transforms().crop_size)
    crop = crop * 2 if len(crop) == 1 else crop
    if name in _VIDEO:  # Kinetics clips: 16 frames (torchvision measured S3D, MViT and Swin3D at 16 too)
        return (1, 3, 16, *crop) if name not in ("mvit_v1_b", "mvit_v2_s") else (1, 3, 16, 224, 224)
    return (1, 3, *crop)


@pytest.mark.slow
@pytest.mark.parametrize("name", _ALL)
def test_torchvision_model_equals_its_weights_metadata(name):
    weights = torchvision.models.get_model_weights(name).DEFAULT
    pub = Published(params=weights.meta["num_params"], gmacs=weights.meta["_ops"])
    with torch.device("meta"), _regnet_widths_on_the_cpu():
        model = torchvision.models.get_model(name, **_BUILD_ARGS.get(name, {}))
    assert all(p.is_meta for p in model.parameters())
    report = analyze(model, _input_shape(name, weights))
    assert pub.macs_agreement(report.macs).status == "exact", (
        f"{name}: measured {report.macs / 1e9:.4f} GMACs, published {pub.gmacs}"
    )
    assert pub.params_agreement(report.params).status == "exact"
    assert report.unsupported_ops == {}


def test_a_fast_sample_of_torchvision_models():
    """The slow sweep above covers all of them; these few run in every test run."""
    for name in ("resnet50", "mobilenet_v3_small", "convnext_tiny", "vit_b_32", "r3d_18"):
        weights = torchvision.models.get_model_weights(name).DEFAULT
        with torch.device("meta"):
            model = torchvision.models.get_model(name)
        report = analyze(model, _input_shape(name, weights))
        assert Published(gmacs=weights.meta["_ops"]).macs_agreement(report.macs).status == "exact", name
        assert report.params == weights.meta["num_params"], name
