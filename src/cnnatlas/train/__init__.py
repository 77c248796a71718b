"""Training: one readable loop (`train`), crash-safe checkpoints, and several processes through
torchrun. `default_config(model, data)` gives the per-model/dataset defaults of `cnnatlas train`."""

from .checkpoint import (Checkpoint, CheckpointError, fit_weights, latest_checkpoint, list_checkpoints,
                         load_checkpoint, load_final_weights, load_latest_checkpoint, load_state,
                         load_verified_weights, load_weights, save_checkpoint)
from .config import OPTIMIZERS, SCHEDULES, TrainConfig, default_config, with_overrides
from .folder import read_history, read_run_config, resolve_resume
from .lock import RunLock, RunLockedError
from .loop import (FIXED_ON_RESUME, EvalResult, MemoryEstimateError, ResumeError, RunExistsError,
                   TrainingDivergedError, build_model, check_resume, evaluate, iou_from_confusion, learning_rate,
                   make_optimizer, mean_iou,
                   resolve_device, train)
from .run import TrainedRun, load_run

__all__ = [
    "FIXED_ON_RESUME",
    "OPTIMIZERS",
    "SCHEDULES",
    "Checkpoint",
    "CheckpointError",
    "EvalResult",
    "MemoryEstimateError",
    "ResumeError",
    "RunExistsError",
    "RunLock",
    "RunLockedError",
    "TrainConfig",
    "TrainedRun",
    "TrainingDivergedError",
    "build_model",
    "check_resume",
    "default_config",
    "evaluate",
    "iou_from_confusion",
    "mean_iou",
    "fit_weights",
    "latest_checkpoint",
    "learning_rate",
    "list_checkpoints",
    "load_checkpoint",
    "load_final_weights",
    "load_latest_checkpoint",
    "load_run",
    "load_state",
    "load_verified_weights",
    "load_weights",
    "make_optimizer",
    "read_history",
    "read_run_config",
    "resolve_device",
    "resolve_resume",
    "save_checkpoint",
    "train",
    "with_overrides",
]
