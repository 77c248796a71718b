"""LeNet-5 in NumPy, forward and backward, built from the reference layers of this package.

The same network as `cnnatlas.create_model("lenet5")` (classic style: tanh, 2×2 average pooling),
with its parameters stored under the same names as the torch model's state dict, so one can be
started from the other's weights and the two trained side by side:

    x (N,1,32,32) → c1 conv 5×5, 6 → tanh → s2 avg 2×2 → c3 conv 5×5, 16 → tanh → s4 avg 2×2
      → c5 conv 5×5, 120 → tanh → global average (identity at 32×32) → f6 84 → tanh → output 10

`backward` walks the same list of layers in reverse, each layer's backward taking the gradient of
its output and the values saved by its forward.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .conv import conv2d, conv2d_backward, conv2d_backward_weight
from .layers import linear, linear_backward, softmax_cross_entropy, tanh, tanh_backward
from .pooling import avg_pool2d, avg_pool2d_backward, global_avg_pool, global_avg_pool_backward

PARAMETER_NAMES = (
    "features.c1.conv.weight",
    "features.c1.conv.bias",
    "features.c3.conv.weight",
    "features.c3.conv.bias",
    "features.c5.conv.weight",
    "features.c5.conv.bias",
    "f6.weight",
    "f6.bias",
    "output.weight",
    "output.bias",
)


class NumpyLeNet5:
    """LeNet-5 (classic) with parameters `params[name]` named as in the torch model's state dict."""

    def __init__(self, params: Mapping[str, np.ndarray]) -> None:
        missing = [k for k in PARAMETER_NAMES if k not in params]
        if missing:
            raise KeyError(f"NumpyLeNet5 needs parameters {', '.join(missing)}")
        self.params = {k: np.array(params[k], dtype=np.float64) for k in PARAMETER_NAMES}
        self.velocity = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._saved: list[tuple] = []

    @classmethod
    def from_torch(cls, model) -> NumpyLeNet5:
        """Copy the weights of a torch LeNet-5 (`cnnatlas.create_model("lenet5")`)."""
        return cls({k: v.detach().cpu().double().numpy() for k, v in model.state_dict().items()})

    # -- forward ------------------------------------------------------------------------------

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits (N, 10); remembers what backward needs."""
        p, saved = self.params, []
        h = x
        for name in ("c1", "c3", "c5"):
            w, b = p[f"features.{name}.conv.weight"], p[f"features.{name}.conv.bias"]
            z = conv2d(h, w, b)
            saved.append(("conv", name, h))
            h = tanh(z)
            saved.append(("tanh", h))
            if name != "c5":
                saved.append(("avgpool", h.shape))
                h = avg_pool2d(h, 2)
        saved.append(("gap", h.shape))
        h = global_avg_pool(h)
        saved.append(("linear", "f6", h))
        h = tanh(linear(h, p["f6.weight"], p["f6.bias"]))
        saved.append(("tanh", h))
        saved.append(("linear", "output", h))
        self._saved = saved
        return linear(h, p["output.weight"], p["output.bias"])

    # -- backward -----------------------------------------------------------------------------

    def backward(self, dlogits: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients of every parameter, given ∂L/∂logits, by walking the forward in reverse."""
        p, grads, g = self.params, {}, dlogits
        for record in reversed(self._saved):
            kind = record[0]
            if kind == "linear":
                _, name, x_in = record
                g, grads[f"{name}.weight"], grads[f"{name}.bias"] = linear_backward(g, x_in, p[f"{name}.weight"])
            elif kind == "tanh":
                g = tanh_backward(g, record[1])
            elif kind == "gap":
                g = global_avg_pool_backward(g, record[1])
            elif kind == "avgpool":
                g = avg_pool2d_backward(g, record[1], 2)
            elif kind == "conv":
                _, name, x_in = record
                key = f"features.{name}.conv"
                if name == "c1":  # nothing upstream of C1 learns: skip ∂L/∂x, the largest full convolution
                    grads[f"{key}.weight"] = conv2d_backward_weight(g, x_in, p[f"{key}.weight"].shape)
                    grads[f"{key}.bias"] = g.sum(axis=(0, 2, 3))
                else:
                    g, grads[f"{key}.weight"], grads[f"{key}.bias"] = conv2d_backward(g, x_in, p[f"{key}.weight"])
        return grads

    def loss_and_grads(self, x: np.ndarray, labels: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """Softmax cross-entropy of a batch and the gradient of every parameter."""
        loss, dlogits = softmax_cross_entropy(self.forward(x), labels)
        return loss, self.backward(dlogits)

    def sgd_step(self, grads: Mapping[str, np.ndarray], lr: float, momentum: float = 0.0) -> None:
        """torch.optim.SGD's update: v ← μ·v + g;  θ ← θ − lr·v (v = g on the first step)."""
        for k, g in grads.items():
            self.velocity[k] = momentum * self.velocity[k] + g
            self.params[k] -= lr * self.velocity[k]

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class indices (N,)."""
        return np.concatenate(
            [self.forward(x[i : i + batch_size]).argmax(axis=1) for i in range(0, len(x), batch_size)]
        )
