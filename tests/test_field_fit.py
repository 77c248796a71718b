"""The analytic field against the input (`cnnatlas rf --input`): the first layer whose field is larger than the
input, and the smallest input side at which the last map's centre unit sees only real pixels."""

from __future__ import annotations

import json

import pytest
from torch import nn

from cnnatlas.analysis.field_fit import centre_fits, field_fit, smallest_fitting_side
from cnnatlas.cli import main
from cnnatlas.errors import InvalidArgumentError


def _stack(k: int, padding: int = 1, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(*[nn.Conv2d(1, 1, 3, stride=stride if i == 0 else 1, padding=padding) for i in range(k)])


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_stack_of_same_padded_3x3_convs(k):
    """k 3×3 convolutions, padding 1: field 2k + 1, stride 1, unit 0 centred on pixel 0. At side L the centre
    unit is (L − 1)/2 and sees [(L − 1)/2 − k, (L − 1)/2 + k]: inside [0, L − 1] exactly when L ≥ 2k + 1."""
    fit = field_fit(_stack(k), (1, 1, 5, 5))
    assert fit.field.size == (2 * k + 1,) * 2 and fit.field.start == (0, 0)
    assert fit.min_side == (2 * k + 1,) * 2 and fit.checked is True
    assert fit.fits is (2 * k + 1 <= 5)
    # the field passes 5 pixels at the third convolution (size 7)
    assert fit.exceeds_from == (None if k < 3 else "2") and fit.exceeds_op == (None if k < 3 else "convolution")


def test_stack_without_padding():
    """No padding: the field of 3 convolutions (7) starts at pixel 3, unit 0 already sees [0, 6]: side 7."""
    fit = field_fit(_stack(3, padding=0), (1, 1, 9, 9))
    assert fit.field.start == (3, 3) and fit.min_side == (7, 7) and fit.fits and fit.exceeds_from is None


def test_stride_two_then_same_conv_by_hand():
    """conv 3×3 s2 p1, then conv 3×3 p1: field 7, stride 2, start 0. At side 7 the centre units (1.5 → 1 or 2)
    see [−1, 5] or [1, 7]: neither inside [0, 6]. At side 8 unit 2 sees [1, 7] inside [0, 7]."""
    fit = field_fit(_stack(2, stride=2), (1, 1, 16, 16))
    assert fit.field.size == (7, 7) and fit.field.stride == (2, 2) and fit.field.start == (0, 0)
    assert not centre_fits(7, 7, 2, 0) and centre_fits(8, 7, 2, 0)
    assert fit.min_side == (8, 8) and fit.checked is True


def test_closed_form_on_known_models():
    # ResNet-50: field 427, stride 32, start 0 (padding 213). Side 438: centre (437/2)/32 = 6.83 → unit 7,
    # centred on 224, sees [11, 437]; at 437 the same unit reaches 437 > 436.
    assert smallest_fitting_side(427, 32, 0) == 438
    # AlexNet: field 195, stride 32, start 31. At 224 the centre unit 3 (2.52 → 3) sees [30, 224]: one pixel
    # past the input (the 224 against 227 puzzle); 225 fits.
    assert not centre_fits(224, 195, 32, 31) and smallest_fitting_side(195, 32, 31) == 225
    with pytest.raises(InvalidArgumentError):
        smallest_fitting_side(0, 1, 0)


def test_rf_command_says_it(capsys):
    assert main(["rf", "resnet50", "--json", "--input", "1x3x128x128"]) == 0
    fit = json.loads(capsys.readouterr().out)["field_fit"]
    assert fit["input_sides"] == [128, 128] and fit["min_side"] == [438, 438] and fit["checked"] is True
    assert fit["fits"] is False and fit["exceeds_from"].startswith("stages.2.")
    assert main(["rf", "alexnet", "--depth", "1"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "field against input:" in out and "does not fit at 224×224; smallest input it fits: 225×225" in out


@pytest.mark.slow
def test_every_2d_zoo_model_gets_an_answer():
    from cnnatlas.loading import load_model
    from cnnatlas.registry import get_entry, list_models

    names = [n for n in list_models() if len(get_entry(n).input_size) == 3]
    assert len(names) >= 40
    for name in names:
        loaded = load_model(name)
        fit = field_fit(loaded.model, loaded.input_size)
        assert fit.field is not None and fit.min_side is not None, name
        assert all(s >= r for s, r in zip(fit.min_side, fit.field.size)), name
        assert fit.checked is True, (name, fit)
        if any(r > s for r, s in zip(fit.field.size, fit.input_sides)):  # the last map's field is too large
            assert fit.exceeds_op is not None and not fit.fits, name


def test_atlas_model_page_shows_the_field_against_the_input(tmp_path):
    from cnnatlas.viz.atlas import build_atlas

    build_atlas(tmp_path, models="alexnet", claims=None, erf=False, diagrams=False)
    page = (tmp_path / "models" / "alexnet.html").read_text()
    assert "<th>field against input</th>" in page
    assert "does not fit at 224×224; smallest input it fits: 225×225 (confirmed by a trace)" in page
