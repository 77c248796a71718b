"""Training: one readable loop (`train`), crash-safe checkpoints, and several processes through
torchrun. `default_config(model, data)` gives the per-model/dataset defaults of `cnnatlas train`."""

from .checkpoint import (Checkpoint, CheckpointError, latest_checkpoint, list_checkpoints, load_checkpoint,
                         load_latest_checkpoint, load_state, load_weights, save_checkpoint)
from .config import OPTIMIZERS, SCHEDULES, TrainConfig, default_config, with_overrides
from .loop import (EvalResult, RunExistsError, TrainingDivergedError, build_model, evaluate, learning_rate,
                   make_optimizer, resolve_device, train)
from .run import TrainedRun, load_run

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "Checkpoint",
    "CheckpointError",
    "EvalResult",
    "RunExistsError",
    "TrainConfig",
    "TrainedRun",
    "TrainingDivergedError",
    "build_model",
    "default_config",
    "evaluate",
    "latest_checkpoint",
    "learning_rate",
    "list_checkpoints",
    "load_checkpoint",
    "load_latest_checkpoint",
    "load_run",
    "load_state",
    "load_weights",
    "make_optimizer",
    "resolve_device",
    "save_checkpoint",
    "train",
    "with_overrides",
]
