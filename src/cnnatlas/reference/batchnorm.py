"""Batch normalisation, training and inference, forward and backward, in NumPy.

Per channel c, over every other axis — (N, H, W) for a feature map, (N,) for a vector:
    μ_c = mean(x_c),  σ²_c = mean((x_c − μ_c)²)              (biased, used to normalise)
    x̂ = (x − μ_c)/sqrt(σ²_c + ε),   y = γ_c·x̂ + β_c
    running_c ← (1 − m)·running_c + m·batch_c               (m = 0.1; the variance is unbiased, ·M/(M−1))
Inference uses the running mean and variance instead of the batch's, so one image's output does
not depend on the rest of its batch.

Backward in training (M = number of values per channel; sums over the same axes):
    ∂L/∂β = Σ dy,   ∂L/∂γ = Σ dy·x̂,
    ∂L/∂x = γ/(M·sqrt(σ² + ε)) · (M·dy − Σ dy − x̂·Σ dy·x̂)
— the two subtracted terms are the gradient flowing through μ and σ². At inference μ and σ² are
constants, so ∂L/∂x = γ·dy/sqrt(running_var + ε).
"""

from __future__ import annotations

import numpy as np


def _axes(x: np.ndarray) -> tuple[int, ...]:
    """Every axis but the channel axis 1."""
    return (0,) + tuple(range(2, x.ndim))


def _per_channel(v: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A length-C vector shaped to broadcast against x (N, C, ...)."""
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def batch_norm(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, new running mean, new running var). In training the statistics are the batch's and the
    running ones are updated; at inference the running ones are used and returned unchanged."""
    if training:
        axes = _axes(x)
        m = x.size // x.shape[1]
        if m < 2:
            raise ValueError(f"batch norm in training needs more than one value per channel; got input {x.shape}")
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        running_mean = (1 - momentum) * running_mean + momentum * mean
        running_var = (1 - momentum) * running_var + momentum * var * m / (m - 1)
    else:
        mean, var = running_mean, running_var
    x_hat = (x - _per_channel(mean, x)) / np.sqrt(_per_channel(var, x) + eps)
    return _per_channel(gamma, x) * x_hat + _per_channel(beta, x), running_mean, running_var


def batch_norm_backward(
    dy: np.ndarray,
    x: np.ndarray,
    gamma: np.ndarray,
    training: bool,
    running_mean: np.ndarray | None = None,
    running_var: np.ndarray | None = None,
    eps: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(∂L/∂x, ∂L/∂γ, ∂L/∂β). In training the batch statistics are recomputed from x."""
    axes = _axes(x)
    if training:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
    else:
        mean, var = running_mean, running_var
    inv_std = 1.0 / np.sqrt(_per_channel(var, x) + eps)
    x_hat = (x - _per_channel(mean, x)) * inv_std
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * x_hat).sum(axis=axes)
    g = _per_channel(gamma, x)
    if not training:
        return g * dy * inv_std, dgamma, dbeta
    m = x.size // x.shape[1]
    dx = g * inv_std / m * (m * dy - _per_channel(dbeta, x) - x_hat * _per_channel(dgamma, x))
    return dx, dgamma, dbeta
