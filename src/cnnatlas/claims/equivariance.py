"""Claims about symmetry: convolution is translation-equivariant (and where that stops: zero
padding, stride), global pooling makes the network invariant, and a CNN is not rotation-
equivariant unless it is built to be (a p4 group convolution). FORMULAS.md §Equivariance and
invariance; the notes' "Proofs" and "CNN not rotation equivariant".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..zoo import create_model
from ._measure import digits, relative_error
from .base import Measurement, claim, require_models

F64 = torch.float64
STEPS = 60  # SGD steps that turn LeNet-5's random filters into learned ones


def conv_net(padding_mode: str = "circular", stride: int = 1) -> nn.Sequential:
    """conv 5×5 (3→8, stride s) → ReLU → conv 5×5 (8→8), 'same' padding, float64."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 5, stride=stride, padding=2, padding_mode=padding_mode),
        nn.ReLU(),
        nn.Conv2d(8, 8, 5, padding=2, padding_mode=padding_mode),
    ).double()


def shift(x: torch.Tensor, t: tuple[int, int]) -> torch.Tensor:
    """Circular shift T_t x(p) = x(p − t)."""
    return torch.roll(x, t, dims=(-2, -1))


def translate(x: torch.Tensor, t: tuple[int, int]) -> torch.Tensor:
    """Shift by t ≥ 0 with zeros coming in (what a camera sees when the object moves)."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    out[..., t[0] :, t[1] :] = x[..., : h - t[0], : w - t[1]]
    return out


@claim(
    "equivariance",
    "Convolution is translation-equivariant, f(T x) = T f(x): exactly for circular shifts with circular padding at "
    "stride 1; with zero padding the error stays in a border band; stride breaks it for shifts that are not multiples "
    "of it.",
)
@torch.no_grad()
def equivariance() -> Measurement:
    x = torch.randn(1, 3, 32, 32, dtype=F64)
    f = conv_net("circular")
    circular = max(relative_error(f(shift(x, t)), shift(f(x), t)) for t in ((1, 0), (3, 5), (-7, 2), (16, 16)))
    # zero padding: translate with zeros; units whose field (radius R = 4) sees a border differ
    g, t, r = conv_net("zeros"), (3, 5), 4
    err = (g(translate(x, t)) - translate(g(x), t)).abs().amax(dim=(0, 1))
    rows, cols = torch.arange(32)[:, None], torch.arange(32)[None, :]
    interior = (rows >= r + t[0]) & (rows < 32 - r) & (cols >= r + t[1]) & (cols < 32 - r)
    scale = float(g(x).abs().max())
    inside, border = float(err[interior].max()) / scale, float(err[~interior].max()) / scale
    # stride 2: a shift by 2 input pixels is a shift by 1 output pixel; a shift by 1 is no shift at all
    h = conv_net("circular", stride=2)
    by2 = relative_error(h(shift(x, (2, 2))), shift(h(x), (1, 1)))
    by1 = min(relative_error(h(shift(x, (1, 1))), shift(h(x), (a, b))) for a in range(16) for b in range(16))
    ok = circular < 1e-12 and inside < 1e-12 and border > 1e-3 and by2 < 1e-12 and by1 > 0.1
    return Measurement(
        measured=f"circular: relative error {circular:.0e}; zero padding, shift (3,5): {inside:.0e} inside, "
        f"{border:.2f} in the "
        f"border band; stride 2: shift by 2 → {by2:.0e}, shift by 1 → {by1:.2f} (best over all output shifts)",
        expected="0 (rounding); 0 inside, > 0 at the border; 0 for multiples of the stride, large otherwise",
        passed=ok,
        conditions="two 5×5 convs with a ReLU (3→8→8), float64, 32×32 input; border band = units whose 9×9 field "
        "meets the image edge before or after the shift",
        values={
            "circular": circular,
            "zero_padding_interior": inside,
            "zero_padding_border": border,
            "stride2_shift2": by2,
            "stride2_shift1": by1,
        },
    )


@claim(
    "invariance",
    "After global pooling and an FC layer the network is translation-invariant, g(T x) = g(x); with a flatten + FC "
    "head it is not.",
)
@torch.no_grad()
def invariance() -> Measurement:
    x = torch.randn(1, 3, 32, 32, dtype=F64)
    features = nn.Sequential(conv_net("circular"), nn.ReLU())
    gap_head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)).double()
    flat_head = nn.Sequential(nn.Flatten(), nn.Linear(8 * 32 * 32, 10)).double()
    shifts = ((1, 0), (0, 3), (5, -7), (13, 21))
    base_gap, base_flat = gap_head(features(x)), flat_head(features(x))
    gap = max(relative_error(gap_head(features(shift(x, t))), base_gap) for t in shifts)
    flat = min(relative_error(flat_head(features(shift(x, t))), base_flat) for t in shifts)
    return Measurement(
        measured=f"GAP + FC: logits change by {gap:.0e} (relative) under shifts; flatten + FC: by {flat:.2f} or more",
        expected="0 (rounding); > 0",
        passed=gap < 1e-12 and flat > 0.05,
        conditions="circular-padded conv features (3→8→8), float64, 32×32 input, circular shifts (1,0), (0,3), "
        "(5,−7), (13,21)",
        values={"gap_head": gap, "flatten_head": flat},
    )


class P4LiftingConv(nn.Module):
    """Cohen & Welling (2016) lifting layer: correlate the image with the filter turned by r·90°,
    r = 0..3. (N, C_in, H, W) → (N, C_out, 4, H, W)."""

    def __init__(self, c_in: int, c_out: int, k: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k) / (c_in * k * k) ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.weight.shape[-1] // 2
        return torch.stack([F.conv2d(x, torch.rot90(self.weight, r, (2, 3)), padding=pad) for r in range(4)], 2)


class P4GroupConv(nn.Module):
    """p4 → p4 group convolution: out[:, :, r] = Σ_s conv(in[:, :, s], rot_r(W[:, :, s − r])).
    (N, C_in, 4, H, W) → (N, C_out, 4, H, W)."""

    def __init__(self, c_in: int, c_out: int, k: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, 4, k, k) / (4 * c_in * k * k) ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, _, h, w = x.shape
        pad = self.weight.shape[-1] // 2
        outs = []
        for r in range(4):
            kernel = torch.rot90(torch.roll(self.weight, r, 2), r, (3, 4)).flatten(1, 2)
            outs.append(F.conv2d(x.reshape(n, c * 4, h, w), kernel, padding=pad))
        return torch.stack(outs, 2)


def rotate_p4(y: torch.Tensor) -> torch.Tensor:
    """How a 90° rotation of the image acts on p4 feature maps: turn every map, cycle the rotations."""
    return torch.roll(torch.rot90(y, 1, (-2, -1)), 1, 2)


@claim(
    "rotation",
    "A learned CNN is not rotation-equivariant, while a p4 group convolution is, exactly, for 90° rotations.",
)
def rotation() -> Measurement:
    require_models("lenet5")
    x_tr, y_tr, x_te, _ = digits(32)
    cnn = create_model("lenet5")  # learned: SGD on the digits
    opt = torch.optim.SGD(cnn.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    for _ in range(STEPS):
        idx = torch.randint(0, len(x_tr), (32,), generator=g)
        loss = F.cross_entropy(cnn(x_tr[idx]), y_tr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    cnn = cnn.double().eval()
    x = x_te[:64].double()
    with torch.no_grad():
        accuracy = float((cnn(x).argmax(1) == digits(32)[3][:64]).double().mean())
        c1 = nn.Sequential(cnn.features.c1)
        c3 = nn.Sequential(*list(cnn.features)[:3])
        rot = lambda t: torch.rot90(t, 1, (-2, -1))  # noqa: E731
        err_c1 = relative_error(c1(rot(x)), rot(c1(x)))
        err_c3 = relative_error(c3(rot(x)), rot(c3(x)))
        p4 = nn.Sequential(P4LiftingConv(1, 6, 5), nn.ReLU(), P4GroupConv(6, 16, 5)).double()
        err_p4 = relative_error(p4(rot(x)), rotate_p4(p4(x)))
        pooled = lambda t: p4(t).amax(2)  # noqa: E731  max over the 4 rotations: plain rotation-equivariant maps
        err_pooled = relative_error(pooled(rot(x)), rot(pooled(x)))
    return Measurement(
        measured=f"LeNet-5 trained to {accuracy:.0%} on 64 test digits: relative error of f(rot x) vs rot f(x) "
        f"{err_c1:.2f} after C1, {err_c3:.2f} after C3; p4 network: {err_p4:.0e} (maps + rotation axis), "
        f"{err_pooled:.0e} after max over rotations",
        expected="CNN: large (≫ 0); p4: 0 (rounding)",
        passed=err_c1 > 0.1 and err_c3 > 0.1 and err_p4 < 1e-12 and err_pooled < 1e-12,
        conditions=f"cnnatlas lenet5 after {STEPS} SGD steps on the digits (32×32); rotation by 90°; p4 lifting + "
        "group conv (5×5, 1→6→16, zero padding), float64",
        values={"lenet_accuracy": accuracy, "cnn_c1": err_c1, "cnn_c3": err_c3, "p4": err_p4, "p4_pooled": err_pooled},
    )
