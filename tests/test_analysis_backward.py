"""report.backward_macs and report.training_step_flops against torch.utils.flop_counter.FlopCounterMode
around a real forward and backward on a small input, on every model of the zoo.

FlopCounterMode counts the weight gradient of a grouped convolution as if the convolution were dense
(groups × its real cost: a depthwise 3×3's backward is counted 33× its forward at 32 channels, measured
in test_flop_counter_overcounts_grouped_weight_gradients), so where a model has grouped convolutions the
two differ by exactly that over-count, which the comparison adds back."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnnatlas
from cnnatlas import analyze

QUICK = {"resnet18", "mobilenet_v2", "lenet5", "googlenet"}


def _small_input(model) -> tuple[int, ...]:
    size = model.default_input_size
    if len(size) == 2:  # (C, L)
        return (2, *size)
    side = 96 if len(size) == 3 else 64
    spatial = [min(s, side) for s in size[1:]]
    if len(size) == 4:
        spatial[0] = min(size[1], 8)
    return (2, size[0], *spatial)


def _flop_counter_overcount(report) -> int:
    """What FlopCounterMode adds for grouped convolutions' weight gradients: (groups − 1) × forward FLOPs."""
    extra = 0
    for r in report.layers:
        if r.op == "convolution" and r.params and len(r.input_shapes) > 1:
            x, w = r.input_shapes[0], r.input_shapes[1]
            groups = x[1] // w[1]
            extra += 2 * (groups - 1) * r.macs
    return extra


@pytest.mark.parametrize(
    "name", [n if n in QUICK else pytest.param(n, marks=pytest.mark.slow) for n in cnnatlas.list_models()]
)
def test_training_step_flops_equal_flop_counter_on_forward_and_backward(name):
    torch.manual_seed(0)
    model = cnnatlas.create_model(name).eval()
    shape = _small_input(model)
    try:
        x = torch.randn(shape)
        with FlopCounterMode(display=False) as counter:
            out = model(x)
            (out[0] if isinstance(out, (tuple, list)) else out).float().sum().backward()
    except Exception:  # noqa: BLE001 — a network that needs its full input
        shape = (1, *model.default_input_size)
        with FlopCounterMode(display=False) as counter:
            out = model(torch.randn(shape))
            (out[0] if isinstance(out, (tuple, list)) else out).float().sum().backward()
    report = analyze(model, shape)
    assert report.training_step_flops + _flop_counter_overcount(report) == counter.get_total_flops()
    # < 2×: the first layer's input needs no gradient (nor a fixed front end's: spectrogram_cnn's mel filters)
    assert 0 < report.backward_macs < 2 * report.macs
    assert report.to_dict(layers=False)["training_step_flops"] == report.training_step_flops


def test_backward_macs_by_hand():
    """conv (input needs no gradient: weight only) → linear (both): 1× + 2× forward."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    r = analyze(model, (1, 3, 8, 8))
    conv, fc = 6 * 6 * 8 * 27, 8 * 6 * 6 * 10
    assert r.macs == conv + fc
    assert r.backward_macs == conv + 2 * fc
    assert r.training_step_flops == 2 * (2 * conv + 3 * fc)
    model[0].requires_grad_(False)  # frozen first layer: no gradient of its weight, nor of the linear's input
    assert analyze(model, (1, 3, 8, 8)).backward_macs == fc
    assert analyze(model, (1, 3, 8, 8), training_memory=False).backward_macs == fc
    model.requires_grad_(False)
    assert analyze(model, (1, 3, 8, 8)).backward_macs == 0


def test_flop_counter_overcounts_grouped_weight_gradients():
    conv = nn.Conv2d(32, 32, 3, padding=1, groups=32)
    x = torch.randn(1, 32, 8, 8, requires_grad=True)
    with FlopCounterMode(display=False) as fwd:
        y = conv(x)
    with FlopCounterMode(display=False) as bwd:
        y.sum().backward()
    assert bwd.get_total_flops() == 33 * fwd.get_total_flops()  # dX: 1×, dW: counted 32× instead of 1×
    r = analyze(conv, (1, 32, 8, 8))
    assert 2 * r.backward_macs == fwd.get_total_flops()  # weight only: the input needs no gradient
