"""The fast path (private PyTorch internals, analysis/_fast.py, and fastmeta's shape arithmetic) and
the public path (PyTorch's own meta kernels, modules set through their public API) give the same
report: every record (operator, shapes, strides, bytes, cost, receptive field), every module call,
every total and field. On the zoo, and on timm models whose element-wise operators see permuted
inputs (ResMLP, PVT-v2, CaiT, ViT with relative positions), where layouts once differed."""

from __future__ import annotations

import pytest
import torch

import cnnatlas
from cnnatlas import analyze
from cnnatlas.analysis import _fast

timm = pytest.importorskip("timm")

ZOO = cnnatlas.list_models()
QUICK_ZOO = {
    "resnet18",
    "mobilenet_v2",
    "efficientnet_b0",
    "densenet121",
    "inception_v3",
    "lenet5",
    "r3d_18",
    "wavenet",
    "deeplabv3_resnet50",
}
TIMM = [
    "resmlp_12_224",
    "pvt_v2_b0",
    "cait_xxs24_224",
    "vit_relpos_small_patch16_rpn_224",
    "convnext_atto",
    "mobilevitv2_050",
    "efficientformer_l1",
    "poolformer_s12",
    "swin_tiny_patch4_window7_224",
    "coat_lite_tiny",
]


def _everything(r):
    rows = [
        (
            x.index,
            x.name,
            x.module_type,
            x.op,
            [tuple(s) for s in x.input_shapes],
            tuple(x.output_shape),
            tuple(x.output_stride),
            x.params,
            x.macs,
            x.other_flops,
            x.activation_bytes,
            x.inputs,
            x.sizing,
            x.receptive_field,
        )
        for x in r.layers
    ]
    mods = [(m.name, m.module_type, m.depth, m.output_shapes, m.first, m.last, m.receptive_field) for m in r.modules]
    totals = {k: v for k, v in r.to_dict(layers=False).items() if k != "seconds"}
    return rows, mods, totals


def _both(build, shape, **kw):
    """Each path on a model of its own: some models cache tensors made in the forward (timm's attention
    biases, per device), so a second analysis of the same model object would run other operators."""
    try:
        _fast.set_enabled(True)
        fast = analyze(build(), shape, **kw)
        _fast.set_enabled(False)
        public = analyze(build(), shape, **kw)
    finally:
        _fast.set_enabled(None)
    return fast, public


def _assert_same(fast, public):
    f, p = _everything(fast), _everything(public)
    for a, b in zip(f[0], p[0]):
        assert a == b, f"first differing record:\n fast   {a}\n public {b}"
    assert f == p


@pytest.mark.parametrize("name", [n if n in QUICK_ZOO else pytest.param(n, marks=pytest.mark.slow) for n in ZOO])
def test_fast_and_public_paths_give_the_same_report_on_the_zoo(name):
    def build():
        with torch.device("meta"):
            return cnnatlas.create_model(name)

    shape = (1, *build().default_input_size)
    for kw in ({}, {"training_memory": False}):
        _assert_same(*_both(build, shape, **kw))


@pytest.mark.slow
@pytest.mark.parametrize("name", TIMM)
def test_fast_and_public_paths_give_the_same_layouts_on_timm(name):
    if name not in timm.list_models():
        pytest.skip(f"timm {timm.__version__} has no {name}")

    def build():
        with torch.device("meta"):
            return timm.create_model(name)

    fast, public = _both(build, (1, *build().default_cfg["input_size"]))
    _assert_same(fast, public)


def test_the_environment_variable_turns_the_fast_path_off(monkeypatch):
    monkeypatch.setenv(_fast.ENV, "0")
    assert not _fast.enabled()
    monkeypatch.setenv(_fast.ENV, "1")
    assert _fast.enabled() == _fast.AVAILABLE


def test_a_torch_without_the_internals_takes_the_public_path(monkeypatch):
    """Another torch version (simulated): the internals are missing, the public path runs."""
    monkeypatch.setattr(_fast, "AVAILABLE", False)
    import cnnatlas.analysis.trace as trace_module

    seen = []
    original = trace_module._Trace.__init__

    def spy(self, *a, **k):
        seen.append(type(self))
        original(self, *a, **k)

    monkeypatch.setattr(trace_module._Trace, "__init__", spy)
    with torch.device("meta"):
        model = cnnatlas.create_model("resnet18")
    r = analyze(model, (1, 3, 64, 64))
    assert seen == [trace_module._Trace] and r.macs > 0
