"""Claims about residual connections: a block with F = 0 is the identity, the skip path carries
the gradient, and deep plain networks degrade where residual ones do not.
FORMULAS.md §Residual connection; the notes on ResNet ("Beyond ~20 layers, plain CNNs DEGRADE").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import BasicBlock
from ..zoo import create_model
from ._measure import digits
from .base import Measurement, claim, require_models

F64 = torch.float64


def basic_block(channels: int) -> tuple[nn.Module, str]:
    """cnnatlas's BasicBlock with an identity shortcut: `residual(x)` = F(x), forward(x) = ReLU(F(x) + x)."""
    return BasicBlock(channels, channels), "cnnatlas.layers.BasicBlock"


@claim(
    "residual-identity",
    "A residual block y = x + F(x) with F = 0 is the identity, and its Jacobian is I + ∂F/∂x: the skip path "
    "contributes exactly I.",
)
def residual_identity() -> Measurement:
    c = 2
    block, name = basic_block(c)
    block = block.double().eval()
    with torch.no_grad():
        for m in block.modules():  # BN statistics and affine parameters as after training: F is not trivial
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(0, 0.5)
    x = torch.relu(torch.randn(1, c, 5, 5, dtype=F64))  # a block's input comes out of a ReLU
    eye = torch.eye(x.numel(), dtype=F64)
    jac = lambda f: torch.autograd.functional.jacobian(lambda t: f(t).flatten(), x).reshape(x.numel(), x.numel())  # noqa: E731
    j_y, j_f = jac(lambda t: t + block.residual(t)), jac(block.residual)
    skip_part = float((j_y - j_f - eye).abs().max())
    f_size = float(j_f.abs().max())
    last_bn = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)][-1]
    with torch.no_grad():  # F = 0: zero the last BN's γ and β (torchvision's zero_init_residual)
        last_bn.weight.zero_()
        last_bn.bias.zero_()
        identity_err = float((block(x) - x).abs().max())
    j_zero = jac(lambda t: t + block.residual(t))
    zero_jac_err = float((j_zero - eye).abs().max())
    return Measurement(
        measured=f"|∂y/∂x − ∂F/∂x − I| ≤ {skip_part:.0e} (with |∂F/∂x| up to {f_size:.2f}); with F = 0: |y − x| = "
        f"{identity_err:.0e}, |∂y/∂x − I| = {zero_jac_err:.0e}",
        expected="0; 0, 0",
        passed=skip_part < 1e-12 and f_size > 0.1 and identity_err == 0 and zero_jac_err == 0,
        conditions=f"{name}({c}, {c}) in eval mode with random BN statistics, float64, input 1×{c}×5×5 after a ReLU; "
        "F = 0 by zeroing the last BN's γ and β; the block's final ReLU leaves a non-negative input unchanged",
        values={
            "skip_jacobian_error": skip_part,
            "branch_jacobian_max": f_size,
            "identity_error": identity_err,
            "zero_branch_jacobian_error": zero_jac_err,
        },
    )


def gradient_ratio(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """‖∂L/∂(first layer's output)‖ / ‖∂L/∂(last feature map)‖ for one batch, at the model's current weights."""
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    grads: dict[str, torch.Tensor] = {}

    def keep(module: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        out.register_hook(lambda g: grads.setdefault("first", g))

    handle = first.register_forward_hook(keep)
    try:
        feats = model.forward_features(x)
        feats.retain_grad()
        F.cross_entropy(model.forward_head(feats), y).backward()
    finally:
        handle.remove()
    return float(grads["first"].norm() / feats.grad.norm())


@claim(
    "residual-gradient",
    "At initialisation the identity paths keep the gradient reaching resnet56's first layer on the scale of the last "
    "layer's, while plain56 multiplies it through 27 block Jacobians and ends orders of magnitude off.",
    needs=("plain20", "resnet20", "plain56", "resnet56"),
)
def residual_gradient() -> Measurement:
    names = ("plain20", "resnet20", "plain56", "resnet56")
    require_models(*names)
    x_tr, y_tr, _, _ = digits(32)
    x, y = x_tr[:32], y_tr[:32]
    ratios = {}
    for name in names:
        torch.manual_seed(0)
        ratios[name] = gradient_ratio(create_model(name, in_channels=1, num_classes=10).train(), x, y)
    off = {k: abs(math.log10(v)) for k, v in ratios.items()}
    return Measurement(
        measured="‖∂L/∂(first layer)‖ / ‖∂L/∂(last layer)‖: " + ", ".join(f"{k} {v:.3g}" for k, v in ratios.items()),
        expected="plain56 ≥ 10× further from 1 (in orders of magnitude) than resnet56",
        passed=off["plain56"] >= off["resnet56"] + 1,
        conditions="cnnatlas CIFAR nets at initialisation, batch norm in training mode, 32 digits at 32×32, "
        "cross-entropy. With batch norm the plain net's gradient explodes rather than vanishes (Yang et al. 2019); "
        "the notes' 'vanishing' is the same product of Jacobians without normalisation",
        values={"ratios": ratios, "orders_of_magnitude_off": off},
    )


DEGRADATION = {"steps": 400, "lr": 0.05, "warmup": 40, "batch": 32, "size": 8}
DEGRADATION_NOISE = 0.1  # share of the plain nets' gap below which two final losses count as equal


def train_loss(name: str, steps: int, lr: float, warmup: int, batch: int, size: int) -> float:
    """Train `name` on the digits from seed 0 with SGD (momentum 0.9, weight decay 1e-4; the rate
    rises linearly for `warmup` steps, then follows a cosine to 0); the training-set loss at the end."""
    x, y, _, _ = digits(size)
    torch.manual_seed(0)
    model = create_model(name, in_channels=1, num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    for step in range(steps):
        scale = (
            (step + 1) / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup)))
        )
        for group in opt.param_groups:
            group["lr"] = lr * scale
        idx = torch.randint(0, len(x), (batch,), generator=g)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return float(F.cross_entropy(model(x), y))


@claim(
    "degradation",
    "On real data and the same short budget, plain56 ends with a higher training loss than plain20, and resnet56 does "
    "not.",
    slow=True,
    needs=("plain20", "plain56", "resnet56"),
)
def degradation() -> Measurement:
    names = ("plain20", "plain56", "resnet56")
    require_models(*names)
    final = {name: train_loss(name, **DEGRADATION) for name in names}
    gap = final["plain56"] - final["plain20"]
    excess = final["resnet56"] - final["plain20"]
    cfg = DEGRADATION
    return Measurement(
        measured="final training loss: "
        + ", ".join(f"{k} {v:.3f}" for k, v in final.items())
        + f"; plain56 − plain20 = {gap:+.3f}, resnet56 − plain20 = {excess:+.3f}",
        expected=f"plain56 − plain20 > 0 (degradation); resnet56 − plain20 ≤ 0 up to noise ({DEGRADATION_NOISE:.0%} "
        "of the plain gap)",
        passed=gap > 0.1 and excess <= DEGRADATION_NOISE * gap,
        conditions=f"scikit-learn digits (1,437 training images at {cfg['size']}×{cfg['size']}), {cfg['steps']} SGD "
        f"steps of {cfg['batch']} (lr {cfg['lr']}, {cfg['warmup']} warm-up steps then cosine, momentum 0.9, weight "
        "decay 1e-4) from seed 0; loss on the whole training set in eval mode. Both plain20 and resnet56 end near "
        "0, where seeds reorder them",
        values={"final_loss": final, "plain_gap": gap, "resnet56_excess": excess, **cfg},
    )
