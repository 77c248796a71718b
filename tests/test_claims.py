"""The claims of the notes: every id of issue 6 registered, each quick claim measured and held,
`cnnatlas verify` (JSON keys, exit codes, unknown ids, --quick), and instruments that can tell
a claim that holds from one that does not."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from rich.console import Console
from torch import nn

from cnnatlas.claims import CLAIMS, ClaimResult, Measurement, get_claim, list_claims, require_models, run_claim
from cnnatlas.claims import base as claims_base
from cnnatlas.claims._measure import field_mask, field_size
from cnnatlas.cli import main

ISSUE_IDS = (
    "conv-params weight-sharing output-size same-padding stacked-3x3 receptive-field-growth one-by-one "
    "pooling-no-params pool-backward gap-head dilation gridding separable separable-expressivity batchnorm-axes "
    "batchnorm-eval batchnorm-batch1 norm-axes equivariance invariance rotation residual-identity residual-gradient "
    "degradation dying-relu conv-backward relu-backward inception-bottleneck dense-channels se-cost compound-scaling "
    "inflation conv3d-cost vit-tokens"
).split() + ["gap-dense", "dilation-resolution", "inflation-transfer"]  # issue 17: trained, slow
SLOW = ["degradation", "gap-dense", "dilation-resolution", "inflation-transfer"]
QUICK = [c for c in ISSUE_IDS if c not in SLOW]


def test_every_id_of_the_issue_is_registered_in_order():
    assert list_claims() == ISSUE_IDS
    assert [c for c in ISSUE_IDS if get_claim(c).slow] == SLOW
    for c in ISSUE_IDS:
        sentence = get_claim(c).sentence
        assert sentence.endswith(".") and len(sentence) > 20, c


@pytest.mark.parametrize("claim_id", QUICK)
def test_quick_claim_holds(claim_id):
    result = run_claim(claim_id)
    assert isinstance(result, ClaimResult) and result.id == claim_id
    if result.status == "skipped":  # only for a model or capability the zoo does not have
        assert result.reason and ("not in the zoo" in result.reason), result.reason
        assert result.passed is False
        return
    assert result.status == "passed", f"{result.measured} | expected {result.expected} | {result.reason}"
    assert result.passed is True
    assert result.measured and result.expected and result.conditions
    json.dumps(result.as_dict())  # the values are JSON-ready


@pytest.mark.slow
def test_degradation_on_real_data():
    result = run_claim("degradation")
    assert result.status in ("passed", "skipped"), f"{result.measured} | {result.reason}"
    if result.status == "passed":
        final = result.values["final_loss"]
        assert final["plain56"] - final["plain20"] > 10 * max(final["resnet56"] - final["plain20"], 0)


# -- the registry's contract ----------------------------------------------------------------------


@pytest.fixture
def extra_claims(monkeypatch):
    """Register throw-away claims for one test."""

    def add(cid: str, fn, slow: bool = False) -> None:
        monkeypatch.setitem(CLAIMS, cid, claims_base.Claim(cid, f"Test claim {cid}.", fn, slow))

    return add


def test_a_failed_measurement_is_reported_as_failed(extra_claims):
    extra_claims("always-fails", lambda: Measurement("1", "2", False, "test"))
    r = run_claim("always-fails")
    assert (r.status, r.passed) == ("failed", False)


def test_a_claim_whose_model_is_missing_is_skipped_not_passed(extra_claims):
    extra_claims("needs-missing", lambda: (require_models("no_such_model"), Measurement("", "", True, ""))[1])
    r = run_claim("needs-missing")
    assert (r.status, r.passed) == ("skipped", False)
    assert "no_such_model" in r.reason


def test_an_experiment_that_raises_is_a_failure_with_the_error(extra_claims):
    extra_claims("raises", lambda: 1 / 0)
    r = run_claim("raises")
    assert r.status == "failed" and "ZeroDivisionError" in r.reason


def test_quick_leaves_slow_claims_out(extra_claims):
    ran = []
    extra_claims("slow-one", lambda: ran.append(1) or Measurement("", "", True, ""), slow=True)
    r = run_claim("slow-one", quick=True)
    assert r.status == "skipped" and "--quick" in r.reason and not ran


def test_claims_do_not_disturb_the_global_random_state():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    run_claim("one-by-one")
    assert torch.equal(torch.rand(3), expected)


# -- the command line -----------------------------------------------------------------------------


def test_verify_json_has_the_keys(capsys):
    assert main(["verify", "one-by-one", "dilation", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == ["one-by-one", "dilation"]
    for r in rows:
        assert {"id", "claim", "measured", "expected", "passed"} <= set(r)
        assert r["passed"] is True and r["status"] == "passed"


def test_verify_table_and_exit_status_1_on_failure(capsys, extra_claims):
    extra_claims("always-fails", lambda: Measurement("1", "2", False, "test"))
    assert main(["verify", "pooling-no-params", "always-fails"]) == 1
    out = capsys.readouterr().out
    assert "always-fails" in out and "failed" in out and "1 passed, 1 failed" in out


def test_verify_unknown_id_exits_2_with_a_suggestion(capsys):
    assert main(["verify", "equivarance"]) == 2
    err = capsys.readouterr().err
    assert "unknown claim" in err and "'equivariance'" in err and "Traceback" not in err


def test_verify_quick_reports_degradation_as_skipped(capsys):
    assert main(["verify", "degradation", "--quick", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["status"] == "skipped" and row["passed"] is False


def test_verify_list(capsys):
    assert main(["verify", "--list"]) == 0
    out = capsys.readouterr().out
    assert "gridding" in out and "slow" in out


def test_tour_has_the_claims_section(monkeypatch):
    from cnnatlas.cli import tour, verify

    assert "claims" in [s.name for s in tour.SECTIONS]
    monkeypatch.setattr(verify, "list_claims", lambda: ["dilation", "degradation"])
    buffer = io.StringIO()
    assert tour.run_tour(["claims"], console=Console(file=buffer, width=160)) == 0
    text = buffer.getvalue()
    assert "dilation" in text and "1 passed, 0 failed, 1 skipped" in text


# -- the instruments tell holding from not holding -------------------------------------------------


def test_field_from_gradient():
    assert field_size(field_mask(nn.Conv2d(1, 1, 5, padding=2), 1, 15)) == (5, 5)
    mask = field_mask(nn.Conv2d(1, 1, 3, padding=2, dilation=2), 1, 15)
    assert field_size(mask) == (5, 5) and mask.sum() == 9


def test_norm_axes_instrument():
    from cnnatlas.claims.normalization import feature_maps, normalised_over

    x = feature_maps()
    assert normalised_over(x) is None  # the raw input is normalised in no grouping
    assert normalised_over(nn.InstanceNorm2d(8).double()(x)) == "per sample and channel, over (H, W)"


def test_p4_equivariance_check_is_discriminating():
    from cnnatlas.claims._measure import relative_error
    from cnnatlas.claims.equivariance import P4GroupConv, P4LiftingConv, rotate_p4

    net = nn.Sequential(P4LiftingConv(1, 2, 3), nn.ReLU(), P4GroupConv(2, 2, 3)).double()
    x = torch.randn(1, 1, 9, 9, dtype=torch.float64)
    rot = torch.rot90(x, 1, (-2, -1))
    with torch.no_grad():
        assert relative_error(net(rot), rotate_p4(net(x))) < 1e-12
        wrong_way = torch.roll(torch.rot90(net(x), 1, (-2, -1)), -1, 2)
        assert relative_error(net(rot), wrong_way) > 0.1


def test_separable_fit_is_exact_only_for_separable_targets():
    import torch.nn.functional as F

    from cnnatlas.claims.separable import fit_separable

    x = torch.randn(4, 2, 8, 8, dtype=torch.float64)
    general, _, _ = fit_separable(x, F.conv2d(x, torch.randn(3, 2, 3, 3, dtype=torch.float64), padding=1), 3)
    d, p = torch.randn(2, 1, 3, 3, dtype=torch.float64), torch.randn(3, 2, 1, 1, dtype=torch.float64)
    exact, _, _ = fit_separable(x, F.conv2d(F.conv2d(x, d, padding=1, groups=2), p), 3)
    assert general > 0.05 and exact < 1e-10


def test_gridding_instrument_sees_holes_only_with_equal_dilations():
    from cnnatlas.claims.receptive_field import conv_stack

    equal = field_mask(conv_stack(2, 3, 1, (2, 2)), 1, 21)
    hybrid = field_mask(conv_stack(2, 3, 1, (1, 2)), 1, 21)
    assert field_size(equal) == (9, 9) and equal.sum() == 25
    assert field_size(hybrid) == (7, 7) and hybrid.sum() == 49
    assert np.array_equal(equal, equal.T)
