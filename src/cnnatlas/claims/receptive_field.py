"""Claims about the receptive field: stacked 3×3 convs, its growth with depth and stride, dilation
and its gridding artefact. FORMULAS.md §Receptive field and §Dilated convolution.

The field is measured, not computed: the input pixels whose gradient is non-zero for one output
unit, in a copy of the network with positive weights (so no two paths cancel).
"""

from __future__ import annotations

import numpy as np
from torch import nn

from ._measure import field_mask, field_size
from .base import Measurement, claim


def conv_stack(n: int, k: int = 3, channels: int = 2, dilations: tuple[int, ...] | None = None) -> nn.Sequential:
    """n K×K convs (stride 1, 'same' padding) with ReLUs between them."""
    dilations = dilations or (1,) * n
    layers: list[nn.Module] = []
    for d in dilations:
        layers += [nn.Conv2d(channels, channels, k, padding=d * (k - 1) // 2, dilation=d, bias=False), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


@claim(
    "stacked-3x3",
    "Two stacked 3×3 convs see the 5×5 field of one 5×5 conv with 18C² instead of 25C² weights (28% fewer); three see "
    "7×7 with 27C² instead of 49C².",
)
def stacked_3x3() -> Measurement:
    c = 64
    rows = []
    for n, big in ((2, 5), (3, 7)):
        stack, single = conv_stack(n, 3, c), nn.Conv2d(c, c, big, padding=big // 2, bias=False)
        rf_stack = field_size(field_mask(conv_stack(n, 3, 1), 1, 21))[0]
        rf_single = field_size(field_mask(nn.Conv2d(1, 1, big, padding=big // 2, bias=False), 1, 21))[0]
        w_stack = sum(m.weight.numel() for m in stack if isinstance(m, nn.Conv2d))
        relus = sum(isinstance(m, nn.ReLU) for m in stack)
        rows.append(
            {
                "stack": f"{n}×3×3",
                "single": f"{big}×{big}",
                "rf_stack": rf_stack,
                "rf_single": rf_single,
                "weights_stack": w_stack,
                "weights_single": single.weight.numel(),
                "saving": 1 - w_stack / single.weight.numel(),
                "relus_between": relus,
            }
        )
    two, three = rows
    ok = (
        two["rf_stack"] == two["rf_single"] == 5
        and three["rf_stack"] == three["rf_single"] == 7
        and two["weights_stack"] == 18 * c * c
        and two["weights_single"] == 25 * c * c
        and three["weights_stack"] == 27 * c * c
        and three["weights_single"] == 49 * c * c
    )
    return Measurement(
        measured=f"fields {two['rf_stack']} vs {two['rf_single']} and {three['rf_stack']} vs {three['rf_single']}; "
        "weights "
        f"{two['weights_stack'] // c**2}C² vs {two['weights_single'] // c**2}C² ({two['saving']:.0%} fewer), "
        f"{three['weights_stack'] // c**2}C² vs {three['weights_single'] // c**2}C² ({three['saving']:.0%} fewer)",
        expected="5 = 5 and 7 = 7; 18C² vs 25C² (28% fewer), 27C² vs 49C² (45% fewer)",
        passed=ok,
        conditions=f"bias-free convs at C = {c} for the weights; fields measured by gradient on a 21×21 input; "
        "the stacks also gain 1 and 2 extra ReLUs",
        values={"rows": rows},
    )


@claim(
    "receptive-field-growth",
    "n stacked K×K convs at stride 1 see n(K − 1) + 1 pixels; after a stride-2 step every layer adds twice as much.",
)
def receptive_field_growth() -> Measurement:
    plain = [field_size(field_mask(conv_stack(n), 2, 33))[0] for n in range(1, 7)]
    # 2 convs, a 2×2 stride-2 average pool, then 3 more convs: fields after each layer.
    layers = [
        nn.Conv2d(2, 2, 3, padding=1, bias=False),
        nn.Conv2d(2, 2, 3, padding=1, bias=False),
        nn.AvgPool2d(2, 2),
        *[nn.Conv2d(2, 2, 3, padding=1, bias=False) for _ in range(3)],
    ]
    strided = [field_size(field_mask(nn.Sequential(*layers[: i + 1]), 2, 64))[0] for i in range(len(layers))]
    # the recurrence r_l = r_{l−1} + (k_l − 1)·j_{l−1}, j_l = j_{l−1}·s_l
    predicted, r, j = [], 1, 1
    for k, s in ((3, 1), (3, 1), (2, 2), (3, 1), (3, 1), (3, 1)):
        r, j = r + (k - 1) * j, j * s
        predicted.append(r)
    before, after = np.diff([1, *strided[:2]]).tolist(), np.diff(strided[2:]).tolist()
    ok = plain == [2 * n + 1 for n in range(1, 7)] and strided == predicted and before == [2, 2] and after == [4, 4, 4]
    return Measurement(
        measured=f"stride 1: {plain} (5 convs → {plain[4]}); with a stride-2 pool after conv 2: {strided}, "
        f"growth {before} per conv before, {after} after",
        expected=f"{[2 * n + 1 for n in range(1, 7)]} (5 → 11); {predicted}, growth [2, 2] then [4, 4, 4]",
        passed=ok,
        conditions="3×3 convs (stride 1, padding 1), 2×2 stride-2 average pool; fields measured by gradient of the "
        "centre unit",
        values={"stride1": plain, "with_stride2": strided, "recurrence": predicted},
    )


@claim("dilation", "A K×K conv with dilation D spans K + (K − 1)(D − 1) pixels with the same K² weights.")
def dilation() -> Measurement:
    rows = []
    for k in (3, 5):
        for d in (1, 2, 3, 4):
            conv = nn.Conv2d(1, 1, k, padding=d * (k - 1) // 2, dilation=d, bias=False)
            mask = field_mask(conv, 1, 31)
            rows.append(
                {
                    "K": k,
                    "D": d,
                    "span": field_size(mask)[0],
                    "formula": k + (k - 1) * (d - 1),
                    "pixels_read": int(mask.sum()),
                    "weights": conv.weight.numel(),
                }
            )
    ok = all(r["span"] == r["formula"] and r["pixels_read"] == r["weights"] == r["K"] ** 2 for r in rows)
    ex = next(r for r in rows if r["K"] == 3 and r["D"] == 2)
    return Measurement(
        measured="spans "
        + ", ".join(f"K{r['K']}D{r['D']}: {r['span']}" for r in rows)
        + f"; 3×3 at D=2 covers {ex['span']}×{ex['span']} reading {ex['pixels_read']} pixels with {ex['weights']} "
        "weights",
        expected="K + (K−1)(D−1): " + ", ".join(str(r["formula"]) for r in rows) + "; 5×5 with 9 weights",
        passed=ok,
        conditions="single nn.Conv2d, 1 channel, 31×31 input; span and pixels read from the gradient of the "
        "centre unit",
        values={"rows": rows},
    )


@claim(
    "gridding",
    "Stacking equal dilations leaves pixels inside the field unused and neighbouring units reading disjoint pixels; a "
    "hybrid schedule such as 1, 2, 3 covers them all.",
)
def gridding() -> Measurement:
    rows = {}
    for schedule in ((2, 2, 2), (1, 2, 3)):
        net = conv_stack(3, 3, 1, schedule)
        centre = field_mask(net, 1, 41)
        neighbour = field_mask(net, 1, 41, unit=(20, 21))
        h, w = field_size(centre)
        rows[schedule] = {
            "field": h,
            "used": int(centre.sum()),
            "unused": h * w - int(centre.sum()),
            "shared_with_neighbour": int((centre & neighbour).sum()),
        }
    eq, hy = rows[(2, 2, 2)], rows[(1, 2, 3)]
    return Measurement(
        measured=f"dilations 2,2,2: field {eq['field']}×{eq['field']}, {eq['unused']} of {eq['field'] ** 2} pixels "
        f"unused, {eq['shared_with_neighbour']} shared with the next unit; 1,2,3: field "
        f"{hy['field']}×{hy['field']}, {hy['unused']} unused, {hy['shared_with_neighbour']} shared",
        expected="2,2,2: some unused, 0 shared; 1,2,3: 0 unused",
        passed=eq["unused"] > 0
        and eq["shared_with_neighbour"] == 0
        and hy["unused"] == 0
        and hy["shared_with_neighbour"] > 0,
        conditions="three 3×3 convs with ReLUs, 1 channel, 41×41 input; units (20, 20) and (20, 21); fields by "
        "gradient",
        values={"2,2,2": eq, "1,2,3": hy},
    )
