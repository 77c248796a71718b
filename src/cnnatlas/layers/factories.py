"""Normalisation and activation layers chosen by name or class.

Every block in cnnatlas takes `norm_layer` and `act_layer` the same way: a name from the tables
below, an `nn.Module` class, or any callable that builds the layer (e.g. a `functools.partial`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Union

import torch
from torch import nn

from ..errors import InvalidArgumentError, did_you_mean
from .checks import check_dims

NormSpec = Union[str, Callable[..., nn.Module], None]
ActSpec = Union[str, Callable[..., nn.Module], None]

_BATCH = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_INSTANCE = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}


def _group_norm(num_channels: int, num_groups: int = 32, **kwargs) -> nn.GroupNorm:
    """GroupNorm over (C/G, *spatial) per sample and group; G shrinks to divide C."""
    groups = min(num_groups, num_channels)
    while num_channels % groups:
        groups -= 1
    return nn.GroupNorm(groups, num_channels, **kwargs)


def _layer_norm(num_channels: int, **kwargs) -> nn.GroupNorm:
    """LayerNorm of a feature map: statistics over (C, *spatial) per sample, affine per channel."""
    return nn.GroupNorm(1, num_channels, **kwargs)


def _none(num_channels: int | None = None, **kwargs) -> nn.Identity:
    return nn.Identity()


def run_layers(x: torch.Tensor, *layers: nn.Module) -> torch.Tensor:
    """x through `layers` in order, as nn.Sequential does, less the nn.Identity placeholders (an
    absent norm, activation, SE, shortcut or drop path): the analyser lists only the layers a block
    has, and a forward skips the few microseconds of Python each placeholder call costs."""
    for layer in layers:
        if type(layer) is not nn.Identity:
            x = layer(x)
    return x


NORM_NAMES = ("batch", "group", "layer", "instance", "none")
ACT_NAMES = ("relu", "relu6", "leaky_relu", "silu", "gelu", "tanh", "sigmoid", "none")


def _resolve(
    what: str,
    spec: str | Callable[..., nn.Module],
    table: dict[str, Callable[..., nn.Module]],
    names: tuple[str, ...],
    kwargs: dict,
) -> Callable[..., nn.Module]:
    """The factory `spec` names in `table` (case and "-" ignored), or `spec` itself when it is a class or
    callable; `kwargs` bound to it. `what` is the argument's name, for the one-line error."""
    if isinstance(spec, str):
        key = spec.lower().replace("-", "_")
        if key not in table:
            raise InvalidArgumentError(
                f"unknown {what} {spec!r}: expected one of {', '.join(names)} "
                f"or an nn.Module class.{did_you_mean(key, names)}"
            )
        factory = table[key]
    elif callable(spec):
        factory = spec
    else:
        raise InvalidArgumentError(
            f"{what} must be a name ({', '.join(names)}), a class or a callable; got {type(spec).__name__}"
        )
    return partial(factory, **kwargs) if kwargs else factory


def get_norm_layer(norm: NormSpec, dims: int = 2, **kwargs) -> Callable[[int], nn.Module]:
    """A factory `num_channels -> nn.Module` for the norm named `norm` in `dims` spatial dimensions.

    batch: per channel over (N, *spatial). group: per sample over channel groups and space (works at
    batch size 1). layer: per sample over (C, *spatial). instance: per sample and channel over space.
    Extra keyword arguments (eps, momentum, num_groups ...) go to the layer.
    """
    check_dims(dims)
    if norm is None:
        return _none
    instance = partial(_INSTANCE[dims], affine=True)
    table = {
        "batch": _BATCH[dims],
        "batchnorm": _BATCH[dims],
        "group": _group_norm,
        "groupnorm": _group_norm,
        "layer": _layer_norm,
        "layernorm": _layer_norm,
        "instance": instance,
        "instancenorm": instance,
        "none": _none,
    }
    return _resolve("norm_layer", norm, table, NORM_NAMES, kwargs)


def get_act_layer(act: ActSpec, **kwargs) -> Callable[[], nn.Module]:
    """A factory `() -> nn.Module` for the activation named `act` (or given as a class)."""
    if act is None:
        return nn.Identity
    table = {
        "relu": partial(nn.ReLU, inplace=True),
        "relu6": partial(nn.ReLU6, inplace=True),
        "leaky_relu": nn.LeakyReLU,
        "silu": partial(nn.SiLU, inplace=True),
        "swish": partial(nn.SiLU, inplace=True),
        "gelu": nn.GELU,
        "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid,
        "none": nn.Identity,
        "identity": nn.Identity,
    }
    return _resolve("act_layer", act, table, ACT_NAMES, kwargs)
