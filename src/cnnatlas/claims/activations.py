"""Claims about activations: dying ReLU and the ReLU backward gate. The notes' edge case "Dying
ReLU" and FORMULAS.md §Backpropagation ("ReLU backward: pass the gradient where the input was > 0").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import reference
from .base import Measurement, claim

BAD_LR = 30.0  # one SGD step at this rate is the "bad step"


def digits_pixels() -> tuple[torch.Tensor, torch.Tensor]:
    """The 1,797 digits as 64 raw intensities in [0, 1] — non-negative, as unnormalised images are."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return torch.tensor(bunch.data, dtype=torch.float32) / 16, torch.tensor(bunch.target)


def after_bad_step(act: type[nn.Module], x: torch.Tensor, y: torch.Tensor) -> dict:
    """MLP 64 → 128 → 10: 20 ordinary SGD steps, one bad step, 200 ordinary steps; what happens to
    the hidden units whose pre-activation is ≤ 0 on every image ("dead")."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 128), act(), nn.Linear(128, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(0)

    def step(lr: float) -> None:
        idx = torch.randint(0, len(x), (64,), generator=g)
        opt.param_groups[0]["lr"] = lr
        opt.zero_grad()
        F.cross_entropy(net(x[idx]), y[idx]).backward()
        opt.step()

    for _ in range(20):
        step(0.05)
    step(BAD_LR)
    with torch.no_grad():
        dead = (net[0](x) <= 0).all(0)
    opt.zero_grad()
    F.cross_entropy(net(x), y).backward()
    unit_grad = net[0].weight.grad.abs().sum(1) + net[0].bias.grad.abs()
    weights_then = net[0].weight[dead].detach().clone()
    for _ in range(200):
        step(0.05)
    with torch.no_grad():
        still = (net[0](x) <= 0).all(0) & dead
    return {
        "dead": int(dead.sum()),
        "zero_gradient": int((unit_grad[dead] == 0).sum()),
        "still_dead_after_200": int(still.sum()),
        "weights_unchanged": bool(torch.equal(net[0].weight[dead].detach(), weights_then)),
    }


@claim(
    "dying-relu",
    "After a bad step, ReLU units whose pre-activation is negative on every input get exactly zero gradient and stay "
    "dead; Leaky ReLU and GELU units keep a gradient.",
)
def dying_relu() -> Measurement:
    x, y = digits_pixels()
    rows = {act.__name__: after_bad_step(act, x, y) for act in (nn.ReLU, nn.LeakyReLU, nn.GELU)}
    r, leaky, gelu = rows["ReLU"], rows["LeakyReLU"], rows["GELU"]
    ok = (
        r["dead"] > 0
        and r["zero_gradient"] == r["dead"]
        and r["still_dead_after_200"] == r["dead"]
        and r["weights_unchanged"]
        and leaky["dead"] > 0
        and leaky["zero_gradient"] == 0
        and gelu["dead"] > 0
        and gelu["zero_gradient"] == 0
    )
    return Measurement(
        measured=f"ReLU: {r['dead']}/128 units dead, {r['zero_gradient']} with zero gradient, "
        f"{r['still_dead_after_200']} still dead 200 steps later (weights untouched: {r['weights_unchanged']}); "
        f"Leaky ReLU: {leaky['dead']} negative everywhere, {leaky['zero_gradient']} with zero gradient; GELU: "
        f"{gelu['dead']}, {gelu['zero_gradient']}",
        expected="ReLU: dead > 0, all with zero gradient, all still dead; Leaky ReLU/GELU: 0 with zero gradient",
        passed=ok,
        conditions="MLP 64→128→10 on the 1,797 digits as raw intensities in [0, 1]; SGD lr 0.05, one step at lr "
        f"{BAD_LR:g}; the same seed and batches for each activation",
        values=rows,
    )


@claim(
    "relu-backward",
    "ReLU's backward pass is a gate: the gradient passes where the forward input was > 0 and is 0 elsewhere.",
)
def relu_backward() -> Measurement:
    x = torch.randn(4, 8, 6, 6, dtype=torch.float64)
    x[0, 0, 0, :3] = 0.0  # the kink: torch (and the reference) pass nothing at exactly 0
    xt = x.clone().requires_grad_()
    g = torch.randn_like(x)
    torch.relu(xt).backward(g)
    gate = torch.where(x > 0, g, torch.zeros_like(g))
    ref = torch.from_numpy(reference.relu_backward(g.numpy(), x.numpy()))
    share = float((x > 0).double().mean())
    passed_share = float((xt.grad != 0).double().mean())
    return Measurement(
        measured=f"autograd = gate: {torch.equal(xt.grad, gate)}; NumPy reference = gate: {torch.equal(ref, gate)}; "
        f"gradient passed at {passed_share:.1%} of the inputs",
        expected=f"True; True; the share with input > 0, {share:.1%}",
        passed=torch.equal(xt.grad, gate) and torch.equal(ref, gate) and passed_share == share,
        conditions="torch.relu on a 4×8×6×6 float64 input (three exact zeros included), random upstream gradient; "
        "bitwise comparison",
        values={
            "autograd_equals_gate": torch.equal(xt.grad, gate),
            "reference_equals_gate": torch.equal(ref, gate),
            "share_positive": share,
            "share_with_gradient": passed_share,
        },
    )
