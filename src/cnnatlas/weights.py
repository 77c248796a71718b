"""Loading weights from the reference implementations into the models of the zoo."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .errors import WeightsError


def load_torchvision_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor] | nn.Module) -> nn.Module:
    """Load a torchvision state dict (or model) into our model of the same architecture; returns it.

    Our models register their tensors in the order torchvision does, so the two state dicts are
    paired in order, and every pair must agree in shape; a model may first rename or drop keys by
    defining `remap_torchvision_state_dict(state_dict) -> state_dict` (e.g. auxiliary heads we did
    not build). Any difference in number or shape raises `WeightsError` naming the first mismatch,
    and leaves the model untouched.
    """
    return _load_in_order(model, state_dict, source="torchvision")


def load_pytorchvideo_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor] | nn.Module) -> nn.Module:
    """Load a PyTorchVideo state dict (its model zoo's checkpoints, `create_slowfast`'s names) into our model
    of the same architecture, after the model's `remap_pytorchvideo_state_dict` puts the names in our order;
    shapes are checked pair by pair, as `load_torchvision_weights` does."""
    if not hasattr(model, "remap_pytorchvideo_state_dict"):
        raise WeightsError(f"{type(model).__name__}: no PyTorchVideo weights fit it (SlowFast's do)")
    return _load_in_order(model, state_dict, source="pytorchvideo")


def _load_in_order(model: nn.Module, state_dict: Mapping[str, torch.Tensor] | nn.Module, source: str) -> nn.Module:
    """Pair `state_dict` with the model's own in order (shapes checked), after the model's optional
    `remap_<source>_state_dict`; load it, or raise WeightsError and leave the model untouched."""
    if not isinstance(model, nn.Module):
        raise WeightsError(f"expected the model to load into, a torch.nn.Module; got {type(model).__name__}")
    if isinstance(state_dict, nn.Module):
        state_dict = state_dict.state_dict()
    if not isinstance(state_dict, Mapping):
        raise WeightsError(
            f"expected a state dict (a mapping of names to tensors) or a module; got {type(state_dict).__name__}"
        )
    theirs = dict(state_dict)
    remap = getattr(model, f"remap_{source}_state_dict", None)
    if remap is not None:
        theirs = remap(theirs)
    ours = model.state_dict()
    name = type(model).__name__
    if len(theirs) != len(ours):
        extra = [k for k in list(theirs)[len(ours) :]] or [k for k in list(ours)[len(theirs) :]]
        raise WeightsError(
            f"{name}: the state dict has {len(theirs)} tensors but the model has {len(ours)} "
            f"(first unpaired: {extra[:3]}); is it the same architecture and number of classes?"
        )
    mapped = {}
    for (their_key, tensor), (our_key, ref) in zip(theirs.items(), ours.items()):
        if not isinstance(tensor, torch.Tensor):
            raise WeightsError(f"{name}: state dict entry {their_key!r} is a {type(tensor).__name__}, not a tensor")
        if tensor.shape != ref.shape:
            raise WeightsError(
                f"{name}: {source} tensor {their_key!r} has shape {tuple(tensor.shape)} but its "
                f"counterpart {our_key!r} has shape {tuple(ref.shape)}"
            )
        mapped[our_key] = tensor
    model.load_state_dict(mapped, strict=True)
    return model
