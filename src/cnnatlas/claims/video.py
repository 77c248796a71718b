"""Claims about video CNNs: I3D inflation and the cost of 3-D convolution. FORMULAS.md §Video; the
notes' derivation "Inflation in I3D".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..inflate import inflate
from ..zoo import create_model
from ._measure import count_macs, relative_error
from .base import Measurement, claim

F64 = torch.float64


def inflate_weight(w: torch.Tensor, t: int, divide: bool = True) -> torch.Tensor:
    """I3D: W_3d[:, :, τ] = W_2d / T for τ = 1..T (without the division when `divide` is False)."""
    w3 = w.unsqueeze(2).repeat(1, 1, t, 1, 1)
    return w3 / t if divide else w3


@claim(
    "inflation",
    "An I3D-inflated filter (the 2-D one repeated T times, divided by T) gives a boring video exactly the 2-D output; "
    "without the 1/T it is T× larger.",
)
@torch.no_grad()
def inflation() -> Measurement:
    image = torch.randn(1, 3, 16, 16, dtype=F64)
    video = image.unsqueeze(2).repeat(1, 1, 8, 1, 1)  # the image repeated over 8 frames
    w2 = torch.randn(8, 3, 3, 3, dtype=F64)
    out2 = F.conv2d(image, w2, padding=1)
    errors, ratios = [], []
    for t in (1, 3, 5):
        out3 = F.conv3d(video, inflate_weight(w2, t), padding=(0, 1, 1))  # every output frame sees T real frames
        errors.append(max(relative_error(out3[:, :, i], out2) for i in range(out3.shape[2])))
        ratios.append(float((F.conv3d(video, inflate_weight(w2, t, divide=False), padding=(0, 1, 1)) / out3).mean()))
    net2 = create_model("lenet5").double().eval()
    net3 = inflate(net2, time_padding="replicate").double().eval()
    digits = torch.randn(4, 1, 32, 32, dtype=F64)
    zoo_err = relative_error(net3(digits.unsqueeze(2).repeat(1, 1, 8, 1, 1)), net2(digits))
    zoo = f"cnnatlas.inflate(lenet5) on 8-frame boring videos vs lenet5: {zoo_err:.0e}"
    ok = max(errors) < 1e-12 and all(abs(r - t) < 1e-9 for r, t in zip(ratios, (1, 3, 5))) and zoo_err < 1e-12
    return Measurement(
        measured=f"relative error of every frame vs the 2-D output for T = 1, 3, 5: {max(errors):.0e}; without 1/T the "
        f"output is {', '.join(f'{r:g}' for r in ratios)}× larger; {zoo}",
        expected="0 (rounding); 1, 3, 5×; 0",
        passed=ok,
        conditions="3×3 conv 3→8 inflated to T×3×3 by hand, bias-free, float64, an image repeated over 8 frames, no "
        "time padding; the zoo's inflate with replicate time padding on the whole LeNet-5",
        values={"frame_errors": errors, "ratios_without_division": ratios, "zoo_model_error": zoo_err},
    )


@claim("conv3d-cost", "A k_t×k×k 3-D conv costs k_t times the 2-D k×k conv at the same channels, per output frame.")
def conv3d_cost() -> Measurement:
    c_in, c_out, frames = 16, 32, 8
    conv2 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    macs2, how = count_macs(conv2, (1, c_in, 28, 28))
    rows = []
    for kt in (1, 3, 5):
        conv3 = nn.Conv3d(c_in, c_out, (kt, 3, 3), padding=(kt // 2, 1, 1), bias=False)
        macs3, _ = count_macs(conv3, (1, c_in, frames, 28, 28))
        rows.append(
            {
                "k_t": kt,
                "macs_per_frame_ratio": macs3 / (frames * macs2),
                "weight_ratio": conv3.weight.numel() / conv2.weight.numel(),
            }
        )
    ok = all(r["macs_per_frame_ratio"] == r["k_t"] == r["weight_ratio"] for r in rows)
    return Measurement(
        measured="MACs per output frame ÷ 2-D MACs: "
        + ", ".join(f"k_t={r['k_t']}: {r['macs_per_frame_ratio']:g}" for r in rows)
        + "; weights: "
        + ", ".join(f"{r['weight_ratio']:g}" for r in rows),
        expected="1, 3, 5 (= k_t), for MACs and weights",
        passed=ok,
        conditions=f"nn.Conv3d({c_in}, {c_out}, (k_t, 3, 3)) on {frames}×28×28 vs nn.Conv2d({c_in}, {c_out}, 3) on "
        f"28×28, same padding; MACs by {how}",
        values={"rows": rows, "macs_2d": macs2},
    )
