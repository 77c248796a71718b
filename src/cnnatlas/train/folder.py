"""A run folder's files, read defensively: RUN/config.json, RUN/metrics.jsonl, and what a --resume
path names. A damaged file is one clear `CheckpointError` naming it and what was expected.

    RUN/config.json        {"train": TrainConfig, "data": DataInfo, "world_size", "cnnatlas", "resumes": [...]}
    RUN/metrics.jsonl      one JSON line per finished epoch
    RUN/checkpoints/epoch-NNNN/   (see checkpoint.py)
    RUN/model.safetensors  + RUN/model.safetensors.sha256
    RUN/metrics.json       the final metrics
    RUN/train.lock         held by the process training the run (see lock.py)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..data import DataInfo
from ..errors import CnnAtlasError
from .checkpoint import CHECKPOINT_DIR, META_FILE, CheckpointError
from .config import TrainConfig
from .lock import LOCK_FILE, RunLock

CONFIG_FILE, HISTORY_FILE = "config.json", "metrics.jsonl"


def is_run_folder(path: object) -> bool:
    """Whether `path` names a training run folder: one `cnnatlas train --out DIR` made (its config.json, or
    its checkpoints/ should config.json be gone, which then says what is missing). Anything else, a model
    name or a module, is not."""
    if not isinstance(path, (str, Path)):
        return False
    path = Path(path)
    return (path / CONFIG_FILE).is_file() or (path / CHECKPOINT_DIR).is_dir()


def read_config_json(run_dir: str | Path) -> dict[str, Any]:
    """RUN/config.json as a dict, with its 'train' and 'data' records checked."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(
            f"{run_dir}: not a training run folder (no {CONFIG_FILE}; `cnnatlas train ... --out {run_dir}` makes one)"
        )
    expected = "expected the JSON that `cnnatlas train` writes, with its 'train' and 'data' records"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: corrupted (not UTF-8 text; {expected})") from None
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: corrupted (not JSON: {err}; {expected})") from None
    except OSError as err:
        raise CheckpointError(f"{path}: cannot be read ({err.strerror or err})") from None
    if (
        not isinstance(saved, dict)
        or not isinstance(saved.get("train"), dict)
        or not isinstance(saved.get("data"), dict)
    ):
        raise CheckpointError(f"{path}: corrupted ({expected}; found {_kind(saved)})")
    return saved


def read_run_config(run_dir: str | Path) -> tuple[TrainConfig, DataInfo, dict[str, Any]]:
    """The run's TrainConfig, its DataInfo, and the whole config.json record."""
    saved = read_config_json(run_dir)
    path = Path(run_dir) / CONFIG_FILE
    try:
        config = TrainConfig.from_json(saved["train"])
        info = DataInfo.from_json(saved["data"])
        _check_info(info)
    except (TypeError, ValueError, KeyError, CnnAtlasError) as err:
        raise CheckpointError(f"{path}: corrupted (its records do not describe a run: {err})") from None
    return config, info, saved


def _check_info(info: DataInfo) -> None:
    def positive(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    if not (positive(info.in_channels) and positive(info.image_size)):
        raise ValueError(
            f"data.in_channels and data.image_size must be whole numbers ≥ 1; got "
            f"{info.in_channels!r} and {info.image_size!r}"
        )
    if not info.classes or not all(isinstance(c, str) for c in info.classes):
        raise ValueError(f"data.classes must be a list of class names; got {info.classes!r}")
    for name in ("mean", "std"):
        v = getattr(info, name)
        if (
            not isinstance(v, tuple)
            or len(v) != info.in_channels
            or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in v)
        ):
            raise ValueError(f"data.{name} must hold {info.in_channels} number(s); got {v!r}")


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """The lines of RUN/metrics.jsonl, each a JSON object with an integer 'epoch' (none if absent)."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: corrupted (not UTF-8 text; expected one JSON object per epoch)") from None
    except OSError as err:
        raise CheckpointError(f"{path}: cannot be read ({err.strerror or err})") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise CheckpointError(
                f"{path}:{n}: corrupted (not JSON: {err}; expected one JSON object per epoch)"
            ) from None
        epoch = row.get("epoch") if isinstance(row, dict) else None
        if not isinstance(epoch, int) or isinstance(epoch, bool):
            raise CheckpointError(
                f"{path}:{n}: corrupted (expected a JSON object with an integer 'epoch'; found {_kind(row)})"
            )
        rows.append(row)
    return rows


def resolve_resume(path: str | Path) -> tuple[Path, Path | None]:
    """What `--resume PATH` names: (the run folder, the checkpoint folder or None for its newest).

    A checkpoint folder RUN/checkpoints/epoch-NNNN belongs to RUN; a run folder is itself.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"--resume {path}: no such folder (expected a run folder or one of its {CHECKPOINT_DIR}/epoch-NNNN folders)"
        )
    if not path.is_dir():
        raise CheckpointError(
            f"--resume {path}: a file; expected a run folder or one of its {CHECKPOINT_DIR}/epoch-NNNN folders"
        )
    if (path / META_FILE).is_file() or path.parent.name == CHECKPOINT_DIR:
        if path.parent.name != CHECKPOINT_DIR:
            raise CheckpointError(
                f"--resume {path}: a checkpoint outside a run folder (expected it in "
                f"RUN/{CHECKPOINT_DIR}/); cnnatlas continues a run only where it was read from"
            )
        return path.parent.parent, path
    if is_run_folder(path):
        return path, None
    if (path / LOCK_FILE).is_file():  # a run just started, before its config.json: say who holds it
        RunLock(path).acquire().release()
    raise CheckpointError(
        f"--resume {path}: not a run folder (no {CONFIG_FILE} or {CHECKPOINT_DIR}/) nor a "
        f"checkpoint folder (no {META_FILE})"
    )


def _kind(value: object) -> str:
    text = json.dumps(value)[:60] if isinstance(value, (dict, list, str, int, float, bool, type(None))) else ""
    return f"{type(value).__name__} {text}".strip()
