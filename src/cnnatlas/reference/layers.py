"""Activations, the fully connected layer and the softmax cross-entropy loss, in NumPy.

ReLU:    y = max(x, 0);       ∂L/∂x = dy · [x > 0]      (a gate: pass where the input was positive)
tanh:    y = tanh(x);         ∂L/∂x = dy · (1 − y²)
linear:  y = x·Wᵀ + b;        ∂L/∂x = dy·W,  ∂L/∂W = dyᵀ·x,  ∂L/∂b = Σ_n dy
softmax cross-entropy over a batch of N:
         L = −(1/N) Σ_n log softmax(z_n)[t_n];   ∂L/∂z = (softmax(z) − onehot(t))/N
"""

from __future__ import annotations

import numpy as np


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def relu_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The gate: dy where the forward input was > 0, else 0."""
    return dy * (x > 0)


def tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(x)


def tanh_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """From the forward output y = tanh(x): dy·(1 − y²)."""
    return dy * (1 - y * y)


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """x (N, in), w (out, in), b (out,) → (N, out); torch.nn.Linear's layout."""
    y = x @ w.T
    return y if b is None else y + b


def linear_backward(dy: np.ndarray, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(∂L/∂x, ∂L/∂W, ∂L/∂b)."""
    return dy @ w, dy.T @ x, dy.sum(axis=0)


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Stable: subtract the row maximum before exponentiating."""
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """(mean loss, ∂L/∂logits) for integer labels (N,)."""
    n = logits.shape[0]
    logp = log_softmax(logits)
    loss = -logp[np.arange(n), labels].mean()
    dlogits = np.exp(logp)
    dlogits[np.arange(n), labels] -= 1
    return float(loss), dlogits / n
