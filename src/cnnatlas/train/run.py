"""A finished (or interrupted) run folder, read back for `cnnatlas eval` and `cnnatlas predict`.

RUN/config.json says what was trained on what, and where that data was (`data_origin`: the dataset's
name and folder; `TrainedRun.data_spec` finds it again on this machine); the weights come from
RUN/model.safetensors (the end of training) or, for a run that has not finished, its newest checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..data import DataInfo, data_spec_for_eval
from .checkpoint import CheckpointError, load_checkpoint, load_latest_checkpoint, load_weights
from .config import TrainConfig
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
    """The run's model in eval mode with its final weights (or `checkpoint`'s)."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{run_dir}: not a training run folder (no config.json; "
                              f"`cnnatlas train ... --out {run_dir}` makes one)")
    try:
        saved = json.loads(config_path.read_text(encoding="utf-8"))
        config, info = TrainConfig.from_json(saved["train"]), DataInfo.from_json(saved["data"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{config_path}: corrupted ({err})") from None
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint)
        weights, source = ckpt.weights, ckpt.path
    elif (run_dir / "model.safetensors").is_file():
        weights, source = load_weights(run_dir / "model.safetensors"), run_dir / "model.safetensors"
    else:
        ckpt = load_latest_checkpoint(run_dir)
        weights, source = ckpt.weights, ckpt.path
    model = build_model(config, info)
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(f"{source}: weights do not fit {config.model} "
                              f"({str(err).splitlines()[0]})") from None
    return TrainedRun(run_dir, config, info, model.eval(), source, saved.get("data_origin"))
