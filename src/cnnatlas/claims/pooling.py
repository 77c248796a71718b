"""Claims about pooling: no parameters, how its backward pass routes the gradient, and the global
average pooling head. FORMULAS.md §Pooling; the notes on VGG ("most parameters live in the FC layers").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..zoo import create_model
from ._measure import count_macs, count_params
from .base import Measurement, claim, require_models


@claim(
    "pooling-no-params",
    "Pooling layers have no parameters: they reduce the work of the layers after them, not the weights.",
)
def pooling_no_params() -> Measurement:
    pools = [
        nn.MaxPool2d(2),
        nn.AvgPool2d(3, 2, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.AdaptiveMaxPool2d(7),
        nn.LPPool2d(2, 2),
    ]
    own = {type(p).__name__: count_params(p) + len(p.state_dict()) for p in pools}
    require_models("vgg16")
    with torch.device("meta"):
        vgg = create_model("vgg16")
    in_pools = sum(
        count_params(m) for m in vgg.modules() if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d))
    )
    n_pools = sum(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)) for m in vgg.modules())
    in_layers = sum(count_params(m) for m in vgg.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    conv = nn.Conv2d(64, 64, 3, padding=1)
    macs_full, how = count_macs(conv, (1, 64, 56, 56))
    macs_pooled, _ = count_macs(conv, (1, 64, 28, 28))
    return Measurement(
        measured=f"parameters + buffers of {len(own)} pooling layers: {sum(own.values())}; VGG-16's {n_pools} pools "
        f"hold {in_pools} of its {count_params(vgg):,} (all in convs and FCs: {in_layers:,}); a 3×3 conv after a "
        f"2×2 pool does {macs_full / macs_pooled:g}× less work",
        expected="0; 0; the next conv's MACs ÷ 4",
        passed=sum(own.values()) == 0
        and in_pools == 0
        and in_layers == count_params(vgg)
        and macs_full == 4 * macs_pooled,
        conditions=f"torch max/avg/adaptive/LP pooling; vgg16 built on the meta device; MACs by {how} at 56×56 vs "
        "28×28, 64 channels",
        values={
            "layers": own,
            "vgg16_pool_params": in_pools,
            "macs_before_pool": macs_full,
            "macs_after_pool": macs_pooled,
        },
    )


@claim(
    "pool-backward",
    "Max-pool's backward pass routes the gradient to the argmax only; average pooling gives each input 1/K² of it.",
)
def pool_backward() -> Measurement:
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    g = torch.randn_like(y)
    y.backward(g)
    grad = x.grad.flatten(2)
    expected = torch.zeros_like(grad).scatter_(2, idx.flatten(2), g.flatten(2))
    nonzero_share = float((grad != 0).double().mean())
    max_ok = torch.equal(grad, expected)
    x2 = torch.randn(2, 3, 9, 9, dtype=torch.float64, requires_grad=True)
    y2 = F.avg_pool2d(x2, 3)
    g2 = torch.randn_like(y2)
    y2.backward(g2)
    share = x2.grad / g2.repeat_interleave(3, 2).repeat_interleave(3, 3)
    avg_err = float((share - 1 / 9).abs().max())
    return Measurement(
        measured=f"max-pool 2×2: {nonzero_share:.0%} of the inputs get a gradient, each exactly the upstream one "
        f"at its window's argmax: {max_ok}; avg-pool 3×3: every input gets upstream × 1/9 (max error {avg_err:.0e})",
        expected="25% (one per window), True; 1/K² = 1/9",
        passed=max_ok and abs(nonzero_share - 0.25) < 1e-12 and avg_err < 1e-12,
        conditions="torch autograd, float64, random inputs and upstream gradients; argmax from return_indices",
        values={"max_share_with_gradient": nonzero_share, "max_routes_to_argmax": max_ok, "avg_max_error": avg_err},
    )


@claim(
    "gap-head",
    "Most of VGG-16's parameters sit in its fully connected head; a global-average-pooling head, as in ResNet, needs "
    "a small fraction of them.",
)
def gap_head() -> Measurement:
    require_models("vgg16")
    with torch.device("meta"):
        vgg = create_model("vgg16")
        gap = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000))
    total = count_params(vgg)
    fc = sum(count_params(m) for m in vgg.modules() if isinstance(m, nn.Linear))
    convs = total - fc
    gap_params = count_params(gap)
    with torch.device("meta"):
        out = gap(vgg.forward_features(torch.empty(1, 3, 224, 224)))
    share_fc, share_gap = fc / total, gap_params / (convs + gap_params)
    return Measurement(
        measured=f"FC head {fc:,} of {total:,} ({share_fc:.1%}); GAP + one FC: {gap_params:,} of "
        f"{convs + gap_params:,} ({share_gap:.1%}), {fc / gap_params:.0f}× smaller",
        expected="FC head > 50% (notes: 'most'); GAP head a few %",
        passed=share_fc > 0.5 and share_gap < 0.05 and tuple(out.shape) == (1, 1000),
        conditions="cnnatlas vgg16 (1000 classes, 224×224) on the meta device; GAP head = AdaptiveAvgPool2d(1) → "
        "Linear(512, 1000) on its features",
        values={"total": total, "fc_head": fc, "gap_head": gap_params, "share_fc": share_fc, "share_gap": share_gap},
    )
