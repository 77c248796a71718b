"""The analyser on any nn.Module: MACs by formula, functional operators, shared parameters, several
inputs, 1-D/3-D, batches, memory, no real arithmetic, errors, and the shortcut shapes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnnatlas
import cnnatlas.analysis.trace as trace_module
from cnnatlas import analyze, create_model
from cnnatlas.analysis import AnalysisError, _fast
from cnnatlas.errors import CnnAtlasError, InvalidArgumentError


def meta(build):
    with torch.device("meta"):
        return build()


# -- MACs by formula ------------------------------------------------------------------------------


@pytest.mark.parametrize("groups", [1, 4, 32])
def test_conv_macs_are_h_w_cout_k2_cin_over_g(groups):
    conv = nn.Conv2d(32, 64, 3, stride=2, padding=1, groups=groups)
    r = analyze(conv, (2, 32, 56, 56))
    assert r.macs == 2 * 28 * 28 * 64 * 3 * 3 * 32 // groups
    assert r.params == (9 * 32 // groups + 1) * 64
    assert r.other_flops == 2 * 64 * 28 * 28  # the bias additions, apart


def test_linear_and_matrix_products_are_macs():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(20, 30)

        def forward(self, x, y):
            a = self.fc(x)  # 5·20·30
            b = x @ y  # 5·20·7 (mm)
            c = torch.einsum("bij,bjk->bik", x.view(1, 5, 20), y.view(1, 20, 7))  # 5·20·7 (bmm)
            return a.sum() + b.sum() + c.sum()

    r = analyze(M(), [(5, 20), (20, 7)])
    assert r.macs == 5 * 20 * 30 + 2 * 5 * 20 * 7
    ops = [rec.op for rec in r.layers]
    assert "addmm" in ops and "mm" in ops and "bmm" in ops


def test_transposed_conv_macs_scatter_each_input():
    up = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1)
    r = analyze(up, (1, 8, 10, 10))
    assert r.output_shapes == [(1, 4, 20, 20)]
    assert r.macs == 10 * 10 * 8 * 4 * 4 * 4  # N·prod(S_in)·numel(W)


def test_conv1d_and_conv3d():
    r1 = analyze(nn.Conv1d(4, 8, 5, padding=2), (3, 4, 100))
    assert r1.macs == 3 * 100 * 8 * 5 * 4
    r3 = analyze(nn.Conv3d(3, 16, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3)), (1, 3, 16, 112, 112))
    assert r3.output_shapes == [(1, 16, 16, 56, 56)]
    assert r3.macs == 16 * 56 * 56 * 16 * 3 * 7 * 7 * 3
    assert r3.receptive_field.axes == ("T", "H", "W") and r3.receptive_field.size == (3, 7, 7)


# -- what hooks miss: functional operators ---------------------------------------------------------


class Functional(nn.Module):
    """Everything here happens outside leaf modules: a hook-based counter sees only the conv."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.w = nn.Parameter(torch.randn(8, 8))

    def forward(self, x):
        y = F.relu(self.conv(x))
        z = torch.cat([y, y * 2], 1)  # mul + cat
        t = z[:, :8] + y  # add
        v = t.flatten(2).transpose(1, 2) @ self.w  # (1, HW, 8) @ (8, 8)
        return v.mean()


def test_functional_operators_are_counted_and_named():
    r = analyze(Functional(), (1, 3, 16, 16))
    hw = 16 * 16
    assert r.macs == hw * 8 * 27 + hw * 8 * 8  # the conv and the functional matmul
    ops = {rec.op for rec in r.layers}
    assert {"relu", "cat", "mul", "add", "mean"} <= ops
    elementwise = 3 * hw * 8  # relu, mul, add: one FLOP per output element
    assert r.other_flops == elementwise + hw * 8  # + the mean reads every element once
    conv = next(rec for rec in r.layers if rec.op == "convolution")
    assert conv.name == "conv" and conv.module_type == "Conv2d"
    assert all(rec.name == "" for rec in r.layers if rec.op in ("relu", "cat", "add"))
    assert r.unsupported_ops == {}


def test_unsupported_operators_are_listed_never_silently_zero():
    class M(nn.Module):
        def forward(self, x):
            return torch.fft.rfft2(x).abs().sum() + torch.cumprod(x, 1).sum()

    r = analyze(M(), (1, 3, 8, 8))
    assert r.unsupported_ops == {"aten._fft_r2c": 1, "aten.cumprod": 1}


def test_residual_addition_is_attributed_to_its_block():
    r = analyze(meta(torchvision.models.resnet18), (1, 3, 64, 64))
    adds = [rec for rec in r.layers if rec.op == "add_"]
    assert len(adds) == 8 and adds[0].name == "layer1.0" and adds[0].module_type == "BasicBlock"


# -- parameters -----------------------------------------------------------------------------------


def test_shared_parameters_are_counted_once_and_their_macs_each_call():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Linear(16, 16, bias=False)
            self.block = nn.Linear(16, 16)
            self.out = nn.Linear(16, 16, bias=False)
            self.out.weight = self.emb.weight  # weight tying

        def forward(self, x):
            return self.out(self.block(self.block(self.emb(x))))  # block used twice

    r = analyze(Tied(), (4, 16))
    assert r.params == 16 * 16 + 16 * 16 + 16
    assert r.macs == 4 * 4 * 16 * 16
    assert sum(rec.params for rec in r.layers) == r.params  # each parameter counted at its first use
    assert r.unused_params == 0


def test_a_shared_module_is_named_as_named_modules_names_it():
    shared = nn.Conv2d(3, 3, 1)
    model = nn.Module()
    model.first = nn.Sequential(nn.Sequential(shared))  # visited first, deeper
    model.again = shared
    model.forward = lambda x: model.again(model.first(x))
    r = analyze(model, (1, 3, 8, 8))
    expected = next(n for n, m in model.named_modules() if m is shared)
    assert expected == "first.0.0"
    assert [rec.name for rec in r.layers if rec.op == "convolution"] == [expected, expected]


def test_trainable_and_unused_parameters():
    model = meta(lambda: torchvision.models.googlenet(aux_logits=True, init_weights=False))
    for p in model.conv1.parameters():
        p.requires_grad_(False)
    r = analyze(model, (1, 3, 224, 224))
    assert r.trainable_params == r.params - sum(p.numel() for p in model.conv1.parameters())
    aux = sum(p.numel() for m in (model.aux1, model.aux2) for p in m.parameters())
    assert r.unused_params == aux  # the auxiliary heads run only in training
    assert analyze(model, (2, 3, 224, 224), training=True).unused_params == 0


# -- inputs ---------------------------------------------------------------------------------------


def test_several_inputs_positional_and_keyword():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, 3)
            self.b = nn.Linear(10, 4)

        def forward(self, image, vector):
            return self.a(image).mean((2, 3)) + self.b(vector)

    m = Two()
    pos = analyze(m, [(2, 3, 8, 8), (2, 10)])
    kw = analyze(m, {"image": (2, 3, 8, 8), "vector": (2, 10)})
    assert pos.macs == kw.macs == 2 * 36 * 4 * 27 + 2 * 10 * 4
    assert pos.input_shapes == [(2, 3, 8, 8), (2, 10)]
    assert pos.receptive_field_of("a").size == (3, 3)
    ints = analyze(nn.Embedding(100, 8), torch.zeros(2, 5, dtype=torch.long))
    assert ints.output_shapes == [(2, 5, 8)] and ints.params == 800


def test_batch_scales_macs_and_activations_linearly():
    model = meta(lambda: create_model("resnet18"))
    one, eight = analyze(model, (1, 3, 64, 64)), analyze(model, (8, 3, 64, 64))
    assert eight.macs == 8 * one.macs
    assert eight.activation_bytes == 8 * one.activation_bytes
    assert eight.receptive_field == one.receptive_field


def test_dtype_halves_activation_bytes():
    model = meta(lambda: create_model("resnet18"))
    assert (
        analyze(model, (1, 3, 64, 64), dtype=torch.float16).activation_bytes * 2
        == analyze(model, (1, 3, 64, 64)).activation_bytes
    )


# -- memory ---------------------------------------------------------------------------------------


def test_memory_accounting_conv_relu_conv():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 8, 3, padding=1, bias=False)
    )
    r = analyze(model, (2, 3, 32, 32))
    act = 2 * 8 * 32 * 32 * 4
    assert r.activation_bytes == 2 * act  # two convs write; the in-place ReLU writes nothing new
    params = (27 * 8 + 8 + 72 * 8) * 4
    assert r.param_bytes == params and r.gradient_bytes == params
    saved = 2 * 3 * 32 * 32 * 4 + act  # the input (for conv1's weight gradient) and ReLU's output
    assert r.saved_activation_bytes == saved
    assert r.training_peak_bytes == params + params + saved
    for p in model.parameters():
        p.requires_grad_(False)
    frozen = analyze(model, (2, 3, 32, 32))
    assert frozen.gradient_bytes == 0 and frozen.saved_activation_bytes < saved


@pytest.mark.parametrize(
    "build, shape, training",
    [
        (lambda: torchvision.models.resnet18(), (2, 3, 64, 64), False),
        (lambda: create_model("efficientnet_b0"), (1, 3, 96, 96), True),  # in-place SiLU, batch statistics
        (lambda: create_model("densenet121"), (1, 3, 64, 64), False),
        (lambda: torchvision.models.video.r3d_18(), (1, 3, 8, 32, 32), False),
        (lambda: create_model("inception_v3"), (2, 3, 299, 299), True),  # auxiliary head in training
    ],
)
def test_skipping_the_training_memory_estimate_changes_nothing_else(build, shape, training):
    model = meta(build)
    full = analyze(model, shape, training=training).to_dict()
    quick = analyze(model, shape, training=training, training_memory=False).to_dict()
    assert full["saved_activation_bytes"] > 0 and full["training_peak_bytes"] > full["saved_activation_bytes"]
    assert quick["saved_activation_bytes"] is None and quick["training_peak_bytes"] is None
    assert {k: v for k, v in quick.items() if v is not None} == {
        k: v for k, v in full.items() if k not in ("saved_activation_bytes", "training_peak_bytes")
    }


_HUGE = """
import json, resource, torch
from cnnatlas import analyze, create_model
with torch.device("meta"):
    b7 = create_model("efficientnet_b7")
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
before = peak()
r = analyze(b7, (1, 3, 600, 600))
big = analyze(b7, (64, 3, 1024, 1024))
print(json.dumps({"grown_mib": (peak() - before) / 1024, "macs": [r.macs, big.macs],
                  "activation_bytes": [r.activation_bytes, big.activation_bytes]}))
"""


@pytest.mark.slow
def test_huge_inputs_need_no_memory_and_no_more_time():
    """EfficientNet-B7 at 600×600 and a batch of 64 at 1024×1024: the trace allocates nothing. Measured
    in a fresh process, whose peak resident size is that of this model and these two traces alone."""
    src = str(Path(cnnatlas.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", _HUGE], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    (small_macs, big_macs), (small_bytes, big_bytes) = got["macs"], got["activation_bytes"]
    assert big_bytes > 400 * 2**30  # what a real forward would write (> 400 GiB)
    assert got["grown_mib"] < 300, f"the two traces grew the peak resident size by {got['grown_mib']:.0f} MiB"
    scale = 64 * (1024 / 600) ** 2
    assert big_macs > scale * small_macs * 0.9 and big_bytes > scale * small_bytes * 0.9


def test_trace_time_does_not_grow_with_input_size():
    model = meta(lambda: create_model("resnet50"))

    def best(shape):
        times = []
        for _ in range(3):
            start = time.process_time()
            analyze(model, shape)
            times.append(time.process_time() - start)
        return min(times)

    best((1, 3, 64, 64))
    assert best((16, 3, 1024, 1024)) < 2.5 * best((1, 3, 224, 224))


# -- agreement with torch's own dispatch counter, and the shortcut shapes ---------------------------


def _flop_counter(model, shape):
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.empty(shape, device="meta"))
    return counter.get_total_flops()


@pytest.mark.parametrize(
    "name, shape",
    [
        ("resnet50", (2, 3, 96, 96)),
        ("efficientnet_b0", (1, 3, 96, 96)),
        ("densenet121", (1, 3, 64, 64)),
        ("inception_v3", (1, 3, 96, 96)),
        ("mobilenet_v2", (1, 3, 64, 64)),
        ("googlenet", (1, 3, 64, 64)),
    ],
)
def test_macs_are_half_of_flop_counter_mode(name, shape):
    """torch.utils.flop_counter counts 2 FLOPs per MAC of the same operators."""
    model = meta(lambda: create_model(name)).eval()
    assert 2 * analyze(model, shape).macs == _flop_counter(model, shape)


@pytest.mark.parametrize(
    "build, shape",
    [
        (lambda: create_model("resnet18"), (2, 3, 64, 64)),
        (lambda: create_model("efficientnet_b0"), (1, 3, 64, 64)),
        (lambda: create_model("inception_v3"), (1, 3, 80, 80)),
        (lambda: torchvision.models.convnext_tiny(), (1, 3, 64, 64)),
        (lambda: torchvision.models.shufflenet_v2_x0_5(), (1, 3, 64, 64)),
        (lambda: torchvision.models.vit_b_32(image_size=64), (1, 3, 64, 64)),
        (lambda: torchvision.models.video.r2plus1d_18(), (1, 3, 8, 32, 32)),
    ],
    ids=["resnet18", "efficientnet_b0", "inception_v3", "convnext", "shufflenet", "vit", "r2plus1d"],
)
def test_shortcut_shapes_equal_the_meta_kernels(build, shape, monkeypatch):
    model = meta(build)
    fast = analyze(model, shape)
    monkeypatch.setattr(trace_module, "FAST", {})
    slow = analyze(model, shape)
    assert [(r.op, r.output_shape) for r in fast.layers] == [(r.op, r.output_shape) for r in slow.layers]
    assert (fast.macs, fast.other_flops, fast.activation_bytes, fast.saved_activation_bytes) == (
        slow.macs,
        slow.other_flops,
        slow.activation_bytes,
        slow.saved_activation_bytes,
    )


class _Odd(nn.Module):
    """Leaf modules in every standard and non-standard form the module shortcuts must tell apart."""

    class OwnConv(nn.Conv2d):
        def forward(self, x):
            return super().forward(x) * 2

    class PlainConv(nn.Conv2d):
        """Overrides nothing its forward reads, as torchvision's Conv3DSimple."""

        def extra_repr(self):
            return "plain"

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.same = nn.Conv2d(8, 8, 3, padding="same", dilation=2)
        self.reflect = nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect")
        self.own = self.OwnConv(8, 8, 1)
        self.plain_sub = self.PlainConv(8, 8, 1)
        self.normed = nn.utils.parametrizations.weight_norm(nn.Conv2d(8, 8, 1))  # weight: a property
        self.hooked = nn.Conv2d(8, 8, 3, stride=2, groups=4, bias=False)
        self.hooked.register_forward_pre_hook(lambda m, args: (args[0] * 0.5,))
        self.bn = nn.BatchNorm2d(8, momentum=None, eps=1e-3)
        self.bn_plain = nn.BatchNorm2d(8, affine=False)
        self.bn_batch = nn.BatchNorm2d(8, track_running_stats=False)
        self.acts = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.SiLU(),
            nn.Hardswish(inplace=True),
            nn.Hardsigmoid(),
            nn.Sigmoid(),
            nn.Tanh(),
            nn.ReLU(),
        )
        self.own_forward = nn.ReLU()
        self.own_forward.forward = lambda x: x + 1
        self.conv1d = nn.Conv1d(8, 4, 3, dilation=2)
        self.bn1d = nn.BatchNorm1d(4)
        self.head = nn.Linear(4, 2)
        self.bn_flat = nn.BatchNorm1d(2)

    def forward(self, x):
        x = self.normed(self.plain_sub(self.own(self.reflect(self.same(self.conv(x))))))
        x = self.bn_batch(self.bn_plain(self.bn(self.hooked(x))))
        x = self.own_forward(self.acts(x))
        x = self.bn1d(self.conv1d(x.flatten(2)))
        return self.bn_flat(self.head(x.mean(-1)))


def _everything(r):
    rows = [
        (
            x.index,
            x.name,
            x.module_type,
            x.op,
            [tuple(s) for s in x.input_shapes],
            tuple(x.output_shape),
            x.params,
            x.macs,
            x.other_flops,
            x.activation_bytes,
            x.inputs,
            x.receptive_field,
        )
        for x in r.layers
    ]
    mods = [(m.name, m.module_type, m.depth, m.output_shapes, m.first, m.last, m.receptive_field) for m in r.modules]
    totals = {k: v for k, v in r.to_dict(layers=False).items() if k != "seconds"}
    return rows, mods, totals


FAST_ONLY = pytest.mark.skipif(not _fast.enabled(), reason="module shortcuts belong to the fast path (_fast.py)")


@FAST_ONLY
@pytest.mark.parametrize(
    "build, shape, kw",
    [
        (lambda: torchvision.models.resnet18(), (2, 3, 64, 64), {}),
        (lambda: torchvision.models.efficientnet_b0(), (1, 3, 64, 64), {}),
        (lambda: torchvision.models.efficientnet_b0(), (1, 3, 64, 64), {"training": True}),
        (lambda: torchvision.models.mobilenet_v3_small(), (1, 3, 64, 64), {"dtype": torch.float16}),
        (lambda: torchvision.models.video.r3d_18(), (1, 3, 4, 32, 32), {}),
        (lambda: create_model("inception_v3"), (1, 3, 80, 80), {}),
        (lambda: create_model("densenet121"), (1, 3, 64, 64), {}),
        (lambda: create_model("wavenet"), (1, 1, 256), {}),
        (_Odd, (2, 3, 16, 16), {}),
        (_Odd, (2, 3, 16, 16), {"training": True}),
    ],
    ids=[
        "resnet18",
        "efficientnet_b0",
        "efficientnet_b0-train",
        "mobilenet_v3-half",
        "r3d_18",
        "inception_v3",
        "densenet121",
        "wavenet",
        "odd",
        "odd-train",
    ],
)
def test_module_shortcuts_record_what_the_modules_run(build, shape, kw, monkeypatch):
    """A leaf module recorded from its one ATen call (fastmeta.MODULE_CALLS) gives the same records,
    module calls and totals as running its forward through the dispatcher."""
    model = meta(build)
    if kw.get("training") and build is _Odd:
        model.bn.momentum = 0.1  # the cumulative average (momentum=None) reads a value: not traceable on meta
    taken = []
    original = trace_module._Trace._shortcut

    def counting(self, shortcut, x, entry):
        out = original(self, shortcut, x, entry)
        if out is not None:
            taken.append(entry[0])
        return out

    monkeypatch.setattr(trace_module._Trace, "_shortcut", counting)
    fast = analyze(model, shape, training_memory=False, **kw)
    assert taken  # the shortcuts ran
    monkeypatch.setattr(trace_module, "module_call", lambda cls: None)
    slow = analyze(model, shape, training_memory=False, **kw)
    assert _everything(fast) == _everything(slow)
    if build is _Odd:
        expected = {
            "conv",
            "plain_sub",
            "hooked",
            "acts.0",
            "acts.1",
            "acts.2",
            "acts.3",
            "acts.4",
            "acts.5",
            "acts.6",
            "conv1d",
        } | (set() if kw else {"bn", "bn_plain", "bn1d", "bn_flat"})
        assert set(taken) == expected


@FAST_ONLY
def test_module_shortcuts_wait_for_autograd(monkeypatch):
    """With the training-memory estimate autograd runs through every module: no shortcut is taken."""
    model = meta(lambda: torchvision.models.resnet18())
    results = []
    original = trace_module._Trace._shortcut
    monkeypatch.setattr(
        trace_module._Trace, "_shortcut", lambda self, *a: results.append(original(self, *a)) or results[-1]
    )
    r = analyze(model, (1, 3, 64, 64))
    assert results and all(out is None for out in results)  # asked at every leaf, declined every time
    assert r.saved_activation_bytes > 0
    fast = analyze(model, (1, 3, 64, 64), training_memory=False)
    assert any(out is not None for out in results)
    assert fast.macs == r.macs and fast.activation_bytes == r.activation_bytes


# -- the model is left as it was -------------------------------------------------------------------


def test_model_is_untouched():
    model = torchvision.models.resnet18().train()
    model.layer1.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = [id(p) for p in model.parameters()]
    analyze(model, (1, 3, 64, 64))
    assert model.training and not model.layer1.training and model.layer2.training
    assert [id(p) for p in model.parameters()] == ids
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 1000)
    assert not any("forward" in m.__dict__ for m in model.modules())  # the trace's wrappers are gone


def test_module_stack_survives_a_caught_exception_and_keeps_own_forwards():
    class Picky(nn.Module):
        def forward(self, x):
            raise ValueError("not this one")

    class Fallback(nn.Module):
        def __init__(self):
            super().__init__()
            self.picky, self.conv = Picky(), nn.Conv2d(3, 4, 3)

        def forward(self, x):
            try:
                return self.picky(x)
            except ValueError:
                return self.conv(x)

    model = Fallback()
    own = model.conv.forward  # an instance attribute the trace must leave in place
    model.conv.__dict__["forward"] = own
    r = analyze(model, (1, 3, 8, 8))
    assert [(rec.name, rec.op) for rec in r.layers] == [("conv", "convolution")]
    assert model.conv.__dict__["forward"] is own and "forward" not in model.picky.__dict__


def test_plain_tensor_attributes_are_moved_to_meta():
    class WithConstant(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.full((1, 3, 1, 1), 2.0)  # neither parameter nor buffer

        def forward(self, x):
            return x * self.scale

    assert analyze(WithConstant(), (1, 3, 4, 4)).output_shapes == [(1, 3, 4, 4)]


# -- errors ---------------------------------------------------------------------------------------


def test_data_dependent_forward_is_explained():
    class Branchy(nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x

    with pytest.raises(AnalysisError, match="could not trace Branchy at input 1×3×4×4.*tensor values"):
        analyze(Branchy(), (1, 3, 4, 4))


@pytest.mark.parametrize("bad", [(1, 0, 4), "1x3", [], (1.5, 3)])
def test_bad_input_sizes_are_rejected(bad):
    with pytest.raises(InvalidArgumentError):
        analyze(nn.Identity(), bad)


def test_torchscript_modules_are_refused_clearly_and_the_model_is_left_as_it_was():
    scripted = torch.jit.script(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))
    with pytest.raises(InvalidArgumentError, match="got a TorchScript module .*before torch.jit.script"):
        analyze(scripted, (1, 3, 8, 8))
    model = nn.Sequential(nn.Conv2d(3, 4, 3), torch.jit.script(nn.Conv2d(4, 4, 3)))
    model.train()
    with pytest.raises(InvalidArgumentError, match="module '1' is a TorchScript module"):
        analyze(model, (1, 3, 8, 8))
    assert model.training and all(p.device.type == "cpu" for p in model[0].parameters())
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 4, 4, 4)


def test_training_memory_must_be_a_bool():
    with pytest.raises(InvalidArgumentError, match="training_memory must be True or False; got 'no'"):
        analyze(nn.Conv2d(3, 4, 3), (1, 3, 8, 8), training_memory="no")


def test_training_must_be_a_bool():
    """A string would be truthy: `training="eval"` must not trace the training forward."""
    with pytest.raises(InvalidArgumentError, match="training must be True or False; got 'eval'"):
        analyze(nn.Conv2d(3, 4, 3), (1, 3, 8, 8), training="eval")


def test_not_a_module_and_a_too_small_input():
    with pytest.raises(InvalidArgumentError, match="nn.Module"):
        analyze(lambda x: x, (1, 3))
    with pytest.raises(CnnAtlasError, match="smallest input"):
        analyze(meta(lambda: create_model("vgg16")), (1, 3, 16, 16))


# -- the report ------------------------------------------------------------------------------------


def test_report_json_keys():
    r = analyze(meta(lambda: create_model("resnet18")), (1, 3, 64, 64))
    d = r.to_dict()
    for key in (
        "params",
        "trainable_params",
        "macs",
        "flops",
        "other_flops",
        "param_bytes",
        "activation_bytes",
        "receptive_field",
        "layers",
        "unsupported_ops",
    ):
        assert key in d
    assert d["flops"] == 2 * d["macs"]
    assert set(d["receptive_field"]) >= {"size", "stride", "start"}
    assert all(len(d["receptive_field"][k]) == 2 for k in ("size", "stride", "start"))
    assert set(d["layers"][0]) >= {"name", "op", "output_shape", "params", "macs", "receptive_field"}
    assert sum(layer["macs"] for layer in d["layers"]) == d["macs"]


def test_rows_aggregate_by_depth():
    r = analyze(meta(lambda: create_model("resnet18")), (1, 3, 64, 64))
    for depth in (1, 2, 3):
        rows = r.rows(depth)
        assert sum(row["macs"] for row in rows) == r.macs
        assert sum(row["params"] for row in rows) == r.params
        assert all(row["name"].count(".") < depth for row in rows if row["name"])
    assert math.isclose(
        sum(row["macs"] for row in r.rows(1) if row["name"].startswith("stages")) / r.macs, 0.9, abs_tol=0.1
    )


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_clone_shortcut_keeps_the_strides_of_the_meta_kernel(fmt):
    from cnnatlas.analysis.fastmeta import FAST

    x = torch.empty((2, 8, 5, 7), device="meta").contiguous(memory_format=fmt)
    for args, kwargs in [((x,), {}), ((x,), {"memory_format": torch.preserve_format})]:
        fast = FAST[torch.ops.aten.clone.default](args, kwargs)
        real = torch.ops.aten.clone.default(*args, **kwargs)
        assert (fast.shape, fast.stride(), fast.dtype, fast.device) == (
            real.shape,
            real.stride(),
            real.dtype,
            real.device,
        )
    assert FAST[torch.ops.aten.clone.default]((x,), {"memory_format": torch.contiguous_format}) is None
