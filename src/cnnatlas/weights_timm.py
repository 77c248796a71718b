"""Loading timm state dicts into the models of the zoo (timm itself is not needed to load them)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .weights import _load_in_order


def load_timm_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor] | nn.Module) -> nn.Module:
    """Load a timm state dict (or model) into our model of the same architecture; returns it.

    As for `load_torchvision_weights`, the two state dicts are paired in order with every shape
    checked; a model may rename or drop keys first with `remap_timm_state_dict(state_dict)`.
    A mismatch raises `WeightsError` naming it and leaves the model untouched.
    """
    return _load_in_order(model, state_dict, source="timm")
