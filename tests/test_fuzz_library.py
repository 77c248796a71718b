"""The library's public functions under a fuzzer: hypothesis calls `create_model`, `analyze`, `model_info`,
`get_entry`, `list_models`, `inflate`, `compound_scale`, `effective_receptive_field`,
`load_torchvision_weights` and the calculators of `cnnatlas.analysis.formulas` with generated arguments.

Each call either returns or raises a `CnnAtlasError` (whose subclasses are also ValueError, KeyError or
RuntimeError, as documented in cnnatlas.errors) with a one-line message — never a bare exception from deep
inside torch or Python. Models are built on the meta device, so a hostile size costs no memory.
Examples are derandomized (the same in every CI run); CNNATLAS_FUZZ_RANDOM=1 draws new ones.
"""

from __future__ import annotations

import inspect
import math
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import cnnatlas
from cnnatlas import CnnAtlasError
from cnnatlas.analysis import formulas as F

SETTINGS = dict(
    deadline=None,
    derandomize=not os.environ.get("CNNATLAS_FUZZ_RANDOM"),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SMALL = ["lenet5", "resnet20", "alexnet", "mobilenet_v2", "efficientnet", "r3d_18", "m5"]
NAMES = st.one_of(st.sampled_from(SMALL + ["", "nosuchnet", "LeNet5", "resnet", "*"]), st.text(max_size=12))
ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 300),
    st.sampled_from([10**30, -(10**30)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.lists(st.integers(-2, 40), max_size=5).map(tuple),
    st.lists(st.integers(-2, 40), max_size=5),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from([torch.float16, nn.ReLU, object(), b"x", 1j]),
)
SIZES = st.one_of(
    st.integers(-1, 64), st.sampled_from([10**12, 2**63, 0]), st.floats(0, 64), st.just("8"), st.none(), st.booleans()
)
SHAPES = st.one_of(
    st.lists(SIZES, max_size=6).map(tuple),
    st.lists(st.lists(SIZES, max_size=5), max_size=3),
    st.dictionaries(st.sampled_from(["x", "y"]), st.lists(SIZES, max_size=5), max_size=2),
    st.just((1, 3, 32, 32)),
    st.just((1, 1, 32, 32)),
    st.just([(1, 1, 32, 32)]),
    ODD,
)


def expect_clean(fn, *args, **kwargs):
    """Call fn; a CnnAtlasError with a one-line message is a fine answer, anything else fails the test. A call
    that does not fit the signature (a missing argument, an unknown keyword) gets Python's own TypeError."""
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError:
        with pytest.raises(TypeError):
            fn(*args, **kwargs)
        return None
    try:
        return fn(*args, **kwargs)
    except CnnAtlasError as err:
        text = str(err)
        assert text.strip() and "\n" not in text, f"{fn.__name__}: message not one line: {text!r}"
        assert isinstance(err, (ValueError, KeyError, RuntimeError, TypeError)) or type(err) is CnnAtlasError
        return None
    except Exception as err:  # noqa: BLE001 — the finding
        pytest.fail(f"{fn.__name__}({args!r:.300}, {kwargs!r:.300}) raised {type(err).__name__}: {err}")


@pytest.fixture(scope="module")
def lenet():
    torch.manual_seed(0)
    return cnnatlas.create_model("lenet5").eval()


@settings(max_examples=150, **SETTINGS)
@given(name=NAMES, pattern=st.one_of(st.text(max_size=8), ODD))
def test_fuzz_registry_lookups(name, pattern):
    for fn in (cnnatlas.model_info, cnnatlas.get_entry):
        expect_clean(fn, name)
    found = expect_clean(cnnatlas.list_models, pattern)
    assert found is None or isinstance(found, list)


def _kwargs_for(name: str):
    try:
        accepted = list(cnnatlas.get_entry(name).accepted_kwargs())
    except CnnAtlasError:
        accepted = []
    keys = st.sampled_from(accepted + ["nosuch", "features_only", "out_indices", "num_classes", "in_channels"])
    return st.dictionaries(keys, ODD, max_size=3)


@settings(max_examples=200, **SETTINGS)
@given(data=st.data())
def test_fuzz_create_model(data):
    name = data.draw(NAMES)
    kwargs = (
        data.draw(_kwargs_for(name))
        if name in SMALL
        else data.draw(st.dictionaries(st.text(max_size=4), ODD, max_size=2))
    )
    with torch.device("meta"):  # a hostile width costs nothing here
        model = expect_clean(cnnatlas.create_model, name, **kwargs)
    assert model is None or isinstance(model, nn.Module)


@settings(max_examples=400, **SETTINGS)
@given(
    input_size=SHAPES,
    extra=st.dictionaries(
        st.sampled_from(["dtype", "training", "spatial_dims", "rf_input", "training_memory", "nosuch"]), ODD, max_size=2
    ),
    which=st.sampled_from(["lenet", "seq", "resnet20", "odd"]),
    odd=ODD,
)
def test_fuzz_analyze(lenet, input_size, extra, which, odd):
    model = {
        "lenet": lenet,
        "seq": nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten()),
        "resnet20": cnnatlas.create_model("resnet20"),
        "odd": odd,
    }[which]
    report = expect_clean(cnnatlas.analyze, model, input_size, **extra)
    if report is not None:
        assert report.macs >= 0 and all(min(s) >= 1 for s in report.input_shapes if s)


@settings(max_examples=60, **SETTINGS)
@given(
    input_size=st.one_of(st.just((1, 1, 32, 32)), st.lists(SIZES, max_size=5).map(tuple), ODD),
    kwargs=st.fixed_dictionaries(
        {},
        optional={
            "layer": st.one_of(st.sampled_from(["features", "features.3", "nosuch", ""]), ODD),
            "unit": st.one_of(st.lists(st.integers(-2, 40), max_size=3).map(tuple), ODD),
            "fraction": st.one_of(st.floats(-1, 2), ODD),
            "samples": st.one_of(st.integers(-1, 3), ODD),
            "seed": st.one_of(st.integers(-1, 3), ODD),
        },
    ),
)
def test_fuzz_effective_receptive_field(lenet, input_size, kwargs):
    if isinstance(kwargs.get("samples"), int) and kwargs["samples"] > 3:
        kwargs["samples"] = 3  # real gradients: keep them cheap
    if isinstance(input_size, tuple) and all(isinstance(d, int) for d in input_size) and math.prod(input_size) > 1e6:
        input_size = (1, 1, 32, 32)
    expect_clean(cnnatlas.effective_receptive_field, lenet, input_size, **kwargs)


@settings(max_examples=120, **SETTINGS)
@given(
    args=st.lists(ODD, max_size=4),
    kwargs=st.dictionaries(
        st.sampled_from(["time_kernel", "time_padding", "time_stride", "skip_time_pools", "nosuch"]), ODD, max_size=3
    ),
)
def test_fuzz_inflate(lenet, args, kwargs):
    with torch.device("meta"):
        expect_clean(cnnatlas.inflate, lenet, *args[:3], **kwargs)
    expect_clean(cnnatlas.inflate, *args[:1])


@settings(max_examples=150, **SETTINGS)
@given(args=st.lists(st.one_of(st.floats(-20, 20), ODD), min_size=1, max_size=4))
def test_fuzz_compound_scale(args):
    for fn in (cnnatlas.compound_scale, F.compound_scaling):
        result = expect_clean(fn, *args)
        values = [] if result is None else result if isinstance(result, tuple) else vars(result).values()
        assert all(math.isfinite(v) for v in values)


CALCULATORS = [
    fn
    for name, fn in vars(F).items()
    if inspect.isfunction(fn) and not name.startswith("_") and fn.__module__ == F.__name__
]


@settings(max_examples=500, **SETTINGS)
@given(fn=st.sampled_from(CALCULATORS), args=st.lists(st.one_of(st.integers(-2, 64), ODD), max_size=6))
def test_fuzz_formulas(fn, args):
    """The calculators of the notes: a number, or an InvalidArgumentError naming the bad argument."""
    n = len(inspect.signature(fn).parameters)
    result = expect_clean(fn, *args[:n])
    if isinstance(result, float):
        assert math.isfinite(result)


@settings(max_examples=60, **SETTINGS)
@given(
    state=st.one_of(
        ODD,
        st.dictionaries(
            st.sampled_from(["conv1.weight", "x"]),
            st.sampled_from([torch.zeros(3), torch.zeros(6, 1, 5, 5)]),
            max_size=2,
        ),
    )
)
def test_fuzz_load_torchvision_weights(lenet, state):
    with torch.device("meta"):
        model = cnnatlas.create_model("lenet5")
    expect_clean(cnnatlas.load_torchvision_weights, model, state)
    expect_clean(cnnatlas.load_torchvision_weights, state, model)
