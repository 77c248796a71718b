"""The zoo's front door: `create_model` and `model_info` over the registry, the published weights and
per-stage features.

Importing this module imports every model family (`cnnatlas.models`), which registers its names.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from . import models  # noqa: F401  (importing the families registers them)
from .errors import InvalidArgumentError
from .models.features import FeatureExtractor
from .pretrained import available_weights, create_pretrained
from .registry import build_model, get_entry


def create_model(
    name: str,
    *,
    pretrained: bool = False,
    weights: Any = None,
    features_only: bool = False,
    out_indices: Any = None,
    **kwargs: Any,
) -> nn.Module:
    """Build the model registered as `name` with random weights; kwargs override its defaults.

    `pretrained=True` loads its default published weights (in eval mode), `weights=` a tag the
    catalogue lists for it ("IMAGENET1K_V1", see `model_info(name)["weights"]`) or the path of a
    .pth/.pt/.safetensors state dict (cnnatlas's, torchvision's or timm's); see `cnnatlas.pretrained`.
    With `features_only=True` the result returns the list of per-stage feature maps named in the
    model's `feature_info` (or those at `out_indices`) instead of logits.

    >>> model = create_model("vgg16", num_classes=10)
    >>> model = create_model("resnet50", pretrained=True)
    """
    get_entry(name)  # an unknown name fails first, with its hint
    if not isinstance(pretrained, bool):
        raise InvalidArgumentError(
            f"{name}: pretrained must be True or False; got {pretrained!r} (a tag or a file goes in weights=)"
        )
    if not isinstance(features_only, bool):
        raise InvalidArgumentError(f"{name}: features_only must be True or False; got {features_only!r}")
    if features_only:
        return FeatureExtractor(create_model(name, pretrained=pretrained, weights=weights, **kwargs), out_indices)
    if out_indices is not None:
        raise InvalidArgumentError(f"{name}: out_indices is only meaningful with features_only=True")
    if pretrained or weights is not None:
        return create_pretrained(name, True if weights is None else weights, **kwargs)
    return build_model(name, **kwargs)


def model_info(name: str) -> dict[str, Any]:
    """What the registry knows about `name`: family, default input size, arguments, published figures
    and the published weights (tag → metadata, {} when none)."""
    entry = get_entry(name)
    return {
        "name": entry.name,
        "family": entry.family,
        "summary": entry.summary,
        "input_size": list(entry.input_size),
        "torchvision": entry.torchvision,
        "arguments": entry.default_arguments(),
        "published": entry.published.as_dict(),
        "weights": {tag: w.as_dict() for tag, w in available_weights(name).items()},
    }
