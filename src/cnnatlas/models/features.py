"""Per-stage feature maps of any classifier of the zoo, as `create_model(name, features_only=True)`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import InvalidArgumentError
from .base import Classifier, FeatureInfo


class FeatureExtractor(nn.Module):
    """Runs a classifier's `forward_features` and returns the outputs of the stages listed in its
    `feature_info` (all, or those at `out_indices`), shallowest first. The head is not run."""

    def __init__(self, model: Classifier, out_indices: Sequence[int] | None = None) -> None:
        super().__init__()
        info = list(model.feature_info)
        if not info:
            raise InvalidArgumentError(f"{type(model).__name__} lists no feature stages (feature_info is empty)")
        if out_indices is not None and (not isinstance(out_indices, Sequence) or isinstance(out_indices, str)):
            raise InvalidArgumentError(
                f"out_indices must be a list of stage indices such as [1, 2, 3]; got {out_indices!r}"
            )
        indices = list(range(len(info))) if out_indices is None else list(out_indices)
        for i in indices:
            if not isinstance(i, int) or isinstance(i, bool) or not -len(info) <= i < len(info):
                raise InvalidArgumentError(
                    f"out_indices: {i!r} is not a stage index of {type(model).__name__} (it has {len(info)} stages)"
                )
        self.feature_info: list[FeatureInfo] = [info[i] for i in indices]
        self.model = model
        modules = dict(model.named_modules())
        self._outputs: dict[str, torch.Tensor] = {}
        for stage in self.feature_info:
            if stage.name not in modules:
                raise InvalidArgumentError(
                    f"feature_info names {stage.name!r}, which is not a module of {type(model).__name__}"
                )
            modules[stage.name].register_forward_hook(self._keep(stage.name))

    def _keep(self, name: str):
        def hook(module: nn.Module, args, output: torch.Tensor) -> None:
            self._outputs[name] = output

        return hook

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.model.check_input(x)
        self._outputs.clear()
        self.model.forward_features(x)
        features = [self._outputs[stage.name] for stage in self.feature_info]
        self._outputs.clear()
        return features
