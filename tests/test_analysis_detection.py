"""Models that read values (detection: nonzero, nms, unique, .item()) are analysed by one run on the CPU
on a seeded random input of the requested shape; their MACs equal FlopCounterMode's around a real forward
on that same input, and the report says which operators were sized how."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from cnnatlas import analyze

DETECTION = torchvision.models.list_models(module=torchvision.models.detection)
QUICK = {"ssdlite320_mobilenet_v3_large", "fasterrcnn_mobilenet_v3_large_320_fpn"}


def _build(name: str, device: str = "cpu") -> torch.nn.Module:
    kw = {"weights": None, "weights_backbone": None}
    if not name.startswith("ssd") and name not in QUICK:
        kw.update(min_size=256, max_size=256)  # the CPU run resizes every image to this: keep it small
    torch.manual_seed(0)
    with torch.device(device):
        return torchvision.models.get_model(name, **kw).eval()


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in QUICK else pytest.mark.slow) for n in DETECTION])
def test_detection_model_macs_equal_flop_counter_on_a_real_forward(name):
    model = _build(name)
    shape = (1, 3, 224, 224)
    report = analyze(model, shape, training_memory=False)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))  # the input the analyser's CPU run takes
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    assert report.macs * 2 == counter.get_total_flops()
    assert report.macs > 0 and report.unsupported_ops == {}
    assert report.sizing["*"] == "cpu-run"
    assert "aten.nonzero" in report.sizing or "torchvision.nms" in report.sizing
    assert all(v == "measured" for k, v in report.sizing.items() if k != "*")
    ops = {rec.op for rec in report.layers if rec.sizing == "measured"}
    assert ops & {"nonzero", "nms", "_unique2", "index"}
    assert {rec.sizing for rec in report.layers} <= {"cpu-run", "measured"}


def test_detection_model_built_on_meta_is_analysed_and_left_on_meta():
    model = _build("ssdlite320_mobilenet_v3_large", device="meta")
    report = analyze(model, (1, 3, 320, 320))
    assert report.sizing["torchvision.nms"] == "measured" and report.macs > 0
    assert report.params == sum(p.numel() for p in model.parameters())
    assert all(p.is_meta for p in model.parameters())
    assert report.to_dict(layers=False)["sizing"] == report.sizing


def test_plain_models_stay_on_meta_with_empty_sizing():
    r = analyze(torchvision.models.resnet18(), (1, 3, 64, 64))
    assert r.sizing == {} and {rec.sizing for rec in r.layers} == {"meta"}
