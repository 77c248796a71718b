"""A finished (or interrupted) run folder, read back for `cnnatlas eval` and `cnnatlas predict`.

RUN/config.json says what was trained on what, and where that data was (`data_origin`: the dataset's
name and folder; `TrainedRun.data_spec` finds it again on this machine); the weights come from
RUN/model.safetensors (the end of training, checked against its recorded SHA-256) or, for a run that
has not finished, its newest checkpoint (checked against its meta.json).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..data import DataInfo, data_spec_for_eval
from ..errors import CnnAtlasError
from .checkpoint import (
    FINAL_WEIGHTS,
    CheckpointError,
    fit_weights,
    load_checkpoint,
    load_final_weights,
    load_latest_checkpoint,
)
from .config import TrainConfig
from .folder import read_run_config
from .loop import build_model


@dataclass
class TrainedRun:
    path: Path
    config: TrainConfig
    info: DataInfo
    model: nn.Module
    weights_from: Path
    data_origin: dict | None = None  # where the training data was read from (None: a run that did not record it)

    @property
    def data_spec(self) -> str:
        """The --data that reads this run's data here: its recorded folder where present, else the dataset's
        own lookup and download."""
        return data_spec_for_eval(self.data_origin, self.config.data)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, classes) for float images (N, C, H, W) in [0, 1], any size."""
        x = torch.stack([self.info.prepare(img) for img in images])
        return self.model(x).softmax(dim=1)


def load_run(run_dir: str | Path, checkpoint: str | Path | None = None) -> TrainedRun:
    """The run's model in eval mode with its final weights (or `checkpoint`'s), every file verified:
    the final weights against RUN/model.safetensors.sha256, a checkpoint against its meta.json."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise CheckpointError(f"{run_dir}: a file; expected a training run folder (`cnnatlas train --out DIR`)")
    config, info, saved = read_run_config(run_dir)
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint)
        weights, source = ckpt.weights, ckpt.path
    elif (run_dir / FINAL_WEIGHTS).is_file():
        weights, source = load_final_weights(run_dir)
    else:
        ckpt = load_latest_checkpoint(run_dir)
        weights, source = ckpt.weights, ckpt.path
    try:
        model = build_model(config, info)
    except CnnAtlasError as err:
        raise CheckpointError(f"{run_dir / 'config.json'}: its model cannot be built ({err})") from None
    fit_weights(
        model,
        weights,
        source,
        f"{config.model} ({info.num_classes} classes, {info.in_channels} channel{'s' if info.in_channels > 1 else ''})",
    )
    return TrainedRun(run_dir, config, info, model.eval(), source, saved.get("data_origin"))
