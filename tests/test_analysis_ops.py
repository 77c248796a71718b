"""Operators the first analyser lacked: data movement (im2col/col2im, unsafe_split), anti-aliased
upsampling and grid sampling (their FLOP formulas, worked by hand), and the error message's end."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnatlas import analyze


class _Ops(nn.Module):
    def forward(self, x):
        a = F.unfold(x, 3, padding=1)  # im2col
        b = F.fold(a, x.shape[-2:], 3, padding=1)  # col2im
        c = F.interpolate(x, size=(8, 8), mode="bilinear", antialias=True)
        d = F.interpolate(x, size=(8, 8), mode="bicubic", antialias=True)
        g = F.grid_sample(x, torch.zeros(1, 8, 8, 2, device=x.device), align_corners=False)
        s = torch.ops.aten.unsafe_split(x, 8, 2)
        return b, c, d, g, s[0]


def test_new_operators_are_known_with_hand_worked_costs():
    r = analyze(_Ops(), (1, 3, 16, 16))
    assert r.unsupported_ops == {}
    cost = {rec.op: (rec.macs, rec.other_flops) for rec in r.layers}
    assert cost["im2col"] == cost["col2im"] == cost["unsafe_split"] == (0, 0)
    # 16 → 8 on both axes: r = 2, ⌈support · 2⌉ taps; W pass 16×8 outputs, H pass 8×8; 2 FLOPs a tap; 3 maps
    assert cost["_upsample_bilinear2d_aa"] == (0, 2 * 3 * (16 * 8 * 4 + 8 * 8 * 4))
    assert cost["_upsample_bicubic2d_aa"] == (0, 2 * 3 * (16 * 8 * 8 + 8 * 8 * 8))
    assert cost["grid_sampler_2d"] == (0, 4 * 3 * 8 * 8)  # bilinear: four taps per output


def test_error_message_ends_with_one_full_stop():
    class Bad(nn.Module):
        def forward(self, x):
            raise RuntimeError("shapes do not match.")

    try:
        analyze(Bad(), (1, 3, 8, 8))
    except Exception as err:  # noqa: BLE001
        assert str(err).endswith("shapes do not match."), str(err)
        assert ".." not in str(err)
    else:
        raise AssertionError("no error")
