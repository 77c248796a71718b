"""The shared model skeleton: the stage loop, the argument checks, the default head and run_layers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cnnatlas.errors import InvalidArgumentError
from cnnatlas.layers import checks
from cnnatlas.layers.factories import run_layers
from cnnatlas.models.base import Classifier, FeatureInfo
from cnnatlas.models.stages import BlockSlot, build_stages


class _Block(nn.Module):
    """A stand-in block that remembers where the loop put it."""

    def __init__(self, width: int, slot: BlockSlot) -> None:
        super().__init__()
        self.slot = slot
        self.out_channels = width


def test_build_stages_walks_the_table_and_records_feature_info():
    rows = [(8, 1), (16, 2), (32, 2)]  # (c, s), two blocks each
    built = build_stages(
        rows,
        lambda row, slot: _Block(row[0], slot),
        depths=[2, 2, 2],
        strides=[s for _, s in rows],
        in_channels=4,
        reduction=2,
    )
    slots = [block.slot for stage in built.stages for block in stage]
    assert [s.in_channels for s in slots] == [4, 8, 8, 16, 16, 32]
    assert [s.stride for s in slots] == [1, 1, 2, 1, 2, 1]
    assert [s.index for s in slots] == list(range(6)) and {s.total for s in slots} == {6}
    assert built.feature_info == [
        FeatureInfo("stages.0", 8, 2),
        FeatureInfo("stages.1", 16, 4),
        FeatureInfo("stages.2", 32, 8),
    ]
    assert (built.channels, built.reduction) == (32, 8)


def test_build_stages_trades_stride_for_dilation_past_output_stride():
    rows = [(8, 2), (16, 2)]
    built = build_stages(
        rows,
        lambda row, slot: _Block(row[0], slot),
        depths=[1, 2],
        strides=[2, 2],
        in_channels=4,
        reduction=4,
        output_stride=8,
    )
    slots = [block.slot for stage in built.stages for block in stage]
    # the last stage keeps its resolution: stride 1, dilation 2, its first block at the previous dilation 1
    assert [(s.stride, s.first_dilation, s.dilation) for s in slots] == [(2, 1, 1), (1, 1, 2), (1, 2, 2)]
    assert built.reduction == 8 and built.feature_info[-1].reduction == 8


@pytest.mark.parametrize(
    "check, args, message",
    [
        (checks.check_int, ("M", "depth", 0), "M: depth must be an integer ≥ 1; got 0"),
        (checks.check_int, ("M", "depth", True), "M: depth must be an integer ≥ 1; got True"),
        (checks.check_rate, ("M", "drop_rate", 1.0), "M: drop_rate must be a number in [0, 1); got 1.0"),
        (checks.check_number, ("M", "se_ratio", 2, 0, 1), "M: se_ratio must be a number in [0, 1]; got 2"),
        (checks.check_multiplier, ("M", "width_mult", 0), "M: width_mult must be a number > 0; got 0"),
        (checks.check_choice, ("M", "stem", "x", ("a", "b")), "M: stem must be one of 'a', 'b'; got 'x'"),
        (checks.check_bool, ("M", "skip", 1), "M: skip must be True or False; got 1"),
        (checks.check_dims, (4,), "dims must be 1, 2 or 3 (audio, image, video); got 4"),
    ],
)
def test_checks_raise_one_line_naming_what_was_expected(check, args, message):
    with pytest.raises(InvalidArgumentError) as err:
        check(*args)
    assert str(err.value) == message


def test_checks_return_the_value_they_accept():
    assert checks.check_int("M", "n", 3) == 3
    assert checks.check_rate("M", "p", 0) == 0.0
    assert checks.check_multiplier("M", "a", 1) == 1.0
    assert checks.check_positive_ints("M", a=1, b=2) is None
    with pytest.raises(InvalidArgumentError, match="M: b must be a positive integer; got 0"):
        checks.check_positive_ints("M", a=1, b=0)


def test_run_layers_skips_identity_placeholders():
    calls = []

    class Count(nn.Module):
        def forward(self, x):
            calls.append(self)
            return x + 1

    identity = nn.Identity()
    identity.register_forward_hook(lambda *a: calls.append(identity))
    a, b = Count(), Count()
    assert run_layers(torch.zeros(1), a, identity, b).item() == 2
    assert calls == [a, b]


def test_default_head_is_pool_dropout_fc():
    class Tiny(Classifier):
        def __init__(self) -> None:
            super().__init__(num_classes=3, in_channels=2)
            self.features = nn.Conv2d(2, 5, 1)
            self.add_head(5, drop_rate=0.0)

    model = Tiny().eval()
    x = torch.randn(2, 2, 4, 4)
    pooled = model.features(x).mean((2, 3))
    assert torch.allclose(model.forward_head(model.forward_features(x), pre_logits=True), pooled)
    assert torch.allclose(model(x), model.fc(pooled))
    assert model.num_features == 5 and isinstance(model.pool, nn.AdaptiveAvgPool2d)
    assert not math.isnan(model(x).sum().item())
