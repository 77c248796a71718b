"""Checkpoints that lose nothing, and load nothing but tensors.

A checkpoint is a folder RUN/checkpoints/epoch-NNNN holding

* `model.safetensors` — the weights (safetensors: a JSON header and raw tensor bytes, no code);
* `state.pt` — optimiser, gradient scaler and RNG states, saved with torch.save and loaded with
  `torch.load(weights_only=True)`, which unpickles only tensors and plain containers;
* `meta.json` — epoch, step, metrics, and the SHA-256 of both files; written last.

Writing is atomic: everything goes to a temporary folder, each file is fsynced, the folder is
renamed into place and its parent fsynced. A crash at any moment leaves either the new complete
checkpoint or none — never a half-written one in place of the last good one; older checkpoints are
pruned only after the new one is on disk. Loading checks the hashes, so a truncated or corrupted
file is named in a clear error while older checkpoints stay usable.

A run's final weights RUN/model.safetensors carry their SHA-256 beside them in
RUN/model.safetensors.sha256 (the `sha256sum` format, so `sha256sum -c` checks it too); every load
(`load_final_weights`, hence eval, predict, export and the pictures) verifies it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import CnnAtlasError

FORMAT = "cnnatlas-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_FILE, STATE_FILE, META_FILE = "model.safetensors", "state.pt", "meta.json"
CHECKPOINT_DIR = "checkpoints"
FINAL_WEIGHTS = "model.safetensors"  # RUN/model.safetensors, with RUN/model.safetensors.sha256


class CheckpointError(CnnAtlasError, ValueError):
    """A checkpoint that is missing, incomplete, corrupted, or would run code when loaded."""


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    weights: dict[str, torch.Tensor]
    state: dict[str, Any]
    meta: dict[str, Any]

    @property
    def epoch(self) -> int:
        return int(self.meta["epoch"])


# -- writing ------------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to `path` through a temporary file, fsync and rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def save_weights(path: Path, state_dict: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Model weights to safetensors (contiguous CPU copies; channels_last tensors included)."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    save_file(tensors, str(path), metadata=metadata)


def save_final_weights(run_dir: str | Path, state_dict: dict[str, torch.Tensor]) -> Path:
    """RUN/model.safetensors and its RUN/model.safetensors.sha256, each replaced atomically.

    The old hash file goes first, so at any moment a hash file present is that of the weights beside
    it (a crash in between leaves weights without a hash: `load_final_weights` then says so).
    """
    run_dir = Path(run_dir)
    final, digest_file = run_dir / FINAL_WEIGHTS, run_dir / (FINAL_WEIGHTS + ".sha256")
    tmp = run_dir / f".{FINAL_WEIGHTS}.tmp-{os.getpid()}"
    save_weights(tmp, state_dict, {"format": "cnnatlas-model"})
    _fsync_file(tmp)
    digest = sha256(tmp)
    digest_file.unlink(missing_ok=True)
    os.replace(tmp, final)
    tmp_digest = run_dir / f".{digest_file.name}.tmp-{os.getpid()}"
    with open(tmp_digest, "w", encoding="utf-8") as f:
        f.write(f"{digest}  {FINAL_WEIGHTS}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp_digest, digest_file)
    _fsync_dir(run_dir)
    return final


def recorded_sha256(weights_file: Path) -> str | None:
    """The SHA-256 recorded for a weights file: FILE.sha256 beside it, or its checkpoint's meta.json."""
    side = weights_file.with_name(weights_file.name + ".sha256")
    if side.is_file():
        try:
            digest = side.read_text(encoding="utf-8").split()[0].lower()
        except (OSError, UnicodeDecodeError, IndexError):
            digest = ""
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise CheckpointError(f"{side}: damaged (expected a 64-digit hex SHA-256 and the file name)")
        return digest
    meta = weights_file.with_name(META_FILE)
    if meta.is_file():
        try:
            return json.loads(meta.read_text(encoding="utf-8"))["sha256"][weights_file.name]
        except (OSError, ValueError, KeyError, TypeError):
            raise CheckpointError(f"{meta}: corrupted (expected the JSON record of the checkpoint)") from None
    return None


def verify_sha256(file: Path, digest: str) -> None:
    """A clear CheckpointError when `file` no longer has the SHA-256 recorded when it was written."""
    if not file.is_file():
        raise CheckpointError(f"{file}: missing (its SHA-256 was recorded when it was written)")
    if sha256(file) != digest:
        raise CheckpointError(
            f"{file}: corrupted — its SHA-256 differs from the one recorded when it was "
            f"written ({file.stat().st_size:,} bytes now; truncated or modified)"
        )


def load_verified_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Weights from a safetensors file, checked against the SHA-256 a run recorded for it (beside it
    in FILE.sha256, or in its checkpoint's meta.json); a file no run wrote is loaded as it is."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: a folder; expected a .safetensors file")
    digest = recorded_sha256(path)
    if digest is not None:
        verify_sha256(path, digest)
    return load_weights(path)


def load_final_weights(run_dir: str | Path) -> tuple[dict[str, torch.Tensor], Path]:
    """RUN/model.safetensors, verified against RUN/model.safetensors.sha256."""
    path = Path(run_dir) / FINAL_WEIGHTS
    if not path.with_name(FINAL_WEIGHTS + ".sha256").is_file():
        raise CheckpointError(
            f"{path}: no SHA-256 recorded beside it ({FINAL_WEIGHTS}.sha256 is missing: written "
            f"by an older cnnatlas, or interrupted while finishing); use --checkpoint with a "
            f"checkpoint folder, or `cnnatlas train ... --resume` to write both again"
        )
    return load_verified_weights(path), path


def fit_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], source: str | Path, what: str) -> None:
    """`model.load_state_dict(weights)`, or ONE line naming the first tensor that does not fit:
    its shape in the model (expected) and in the file (found), and how many more differ."""
    own = model.state_dict()
    problems = [
        f"{k} is {_shape(v)} in {what} but {_shape(weights[k])} in the file"
        for k, v in own.items()
        if k in weights and tuple(v.shape) != tuple(weights[k].shape)
    ]
    problems += [f"{k} is missing from the file" for k in own if k not in weights]
    problems += [f"the file has {k}, which {what} does not" for k in weights if k not in own]
    if problems:
        more = f" (and {len(problems) - 1} more differences)" if len(problems) > 1 else ""
        raise CheckpointError(f"{source}: weights do not fit {what}: {problems[0]}{more}")
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        lines = [x.strip() for x in str(err).splitlines() if x.strip()]
        raise CheckpointError(f"{source}: weights do not fit {what}: {lines[-1] if lines else err}") from None


def _shape(t: torch.Tensor) -> str:
    return "×".join(map(str, t.shape)) or "a scalar"


def save_checkpoint(
    run_dir: str | Path,
    epoch: int,
    weights: dict[str, torch.Tensor],
    state: dict[str, Any],
    meta: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Write RUN/checkpoints/epoch-NNNN atomically, then prune all but the newest `keep`."""
    root = Path(run_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"epoch-{epoch:04d}"
    tmp = root / f".{final.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_weights(tmp / WEIGHTS_FILE, weights, {"format": FORMAT, "epoch": str(epoch)})
    torch.save(state, tmp / STATE_FILE)
    for name in (WEIGHTS_FILE, STATE_FILE):
        _fsync_file(tmp / name)
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "epoch": epoch,
        **(meta or {}),
        "sha256": {name: sha256(tmp / name) for name in (WEIGHTS_FILE, STATE_FILE)},
    }
    write_json_atomic(tmp / META_FILE, record)
    _fsync_dir(tmp)
    if final.exists():  # an older attempt at this epoch (resumed from an earlier checkpoint): set it aside
        old = root / f".{final.name}.old-{os.getpid()}"
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old)
    else:
        os.rename(tmp, final)
    _fsync_dir(root)
    for stale in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def clean_partial_checkpoints(run_dir: str | Path) -> list[Path]:
    """Remove temporary folders left by a run killed while writing; returns what was removed."""
    root = Path(run_dir) / CHECKPOINT_DIR
    removed = sorted(root.glob(".epoch-*")) if root.is_dir() else []
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Checkpoint folders of a run, oldest first (complete or not; `load_checkpoint` checks)."""
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("epoch-*") if p.is_dir() and p.name[6:].isdigit())


# -- reading ------------------------------------------------------------------------------------


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file; a clear CheckpointError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        size = path.stat().st_size
        raise CheckpointError(
            f"{path}: not a readable safetensors file ({err}; {size:,} bytes) — truncated or corrupted"
        ) from None


def load_state(path: str | Path) -> dict[str, Any]:
    """torch.load with weights_only=True: tensors and plain containers only, never code."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path}: refused — the file holds pickled Python objects other than tensors and plain "
            f"containers, which could run code when loaded; cnnatlas loads state only with "
            f"torch.load(weights_only=True) ({first})"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        raise CheckpointError(
            f"{path}: not a readable torch.save file ({str(err).splitlines()[0]}) — truncated or corrupted"
        ) from None


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load and verify one checkpoint folder (or the run folder's newest one)."""
    path = Path(path)
    if (path / CHECKPOINT_DIR).is_dir() and not (path / META_FILE).exists():
        return load_checkpoint(latest_checkpoint(path))
    meta_path = path / META_FILE
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint folder")
    if not meta_path.is_file():
        raise CheckpointError(f"{path}: incomplete checkpoint (no {META_FILE}; it was not finished writing)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{meta_path}: corrupted ({str(err).splitlines()[0]})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(f"{meta_path}: not a cnnatlas checkpoint (format {found!r})")
    digests = meta.get("sha256")
    epoch = meta.get("epoch")
    if (
        not isinstance(digests, dict)
        or set(digests) != {WEIGHTS_FILE, STATE_FILE}
        or not isinstance(epoch, int)
        or isinstance(epoch, bool)
        or epoch < 1
    ):
        raise CheckpointError(
            f"{meta_path}: corrupted (expected the epoch, a whole number ≥ 1, and the SHA-256 of "
            f"{WEIGHTS_FILE} and {STATE_FILE})"
        )
    for name, digest in digests.items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"{file}: missing from the checkpoint")
        verify_sha256(file, digest)
    return Checkpoint(path, load_weights(path / WEIGHTS_FILE), load_state(path / STATE_FILE), meta)


def latest_checkpoint(run_dir: str | Path) -> Path:
    """The newest checkpoint folder of a run (not verified)."""
    found = list_checkpoints(run_dir)
    if not found:
        raise CheckpointError(f"{run_dir}: no checkpoint to resume from (no {CHECKPOINT_DIR}/epoch-NNNN folder)")
    return found[-1]


def load_latest_checkpoint(run_dir: str | Path) -> Checkpoint:
    """The newest checkpoint; if it is damaged the error says which older one is intact."""
    found = list_checkpoints(run_dir)
    if not found:
        raise CheckpointError(f"{run_dir}: no checkpoint to resume from (no {CHECKPOINT_DIR}/epoch-NNNN folder)")
    try:
        return load_checkpoint(found[-1])
    except CheckpointError as err:
        for older in reversed(found[:-1]):
            try:
                load_checkpoint(older)
            except CheckpointError:
                continue
            raise CheckpointError(
                f"{err}. The previous checkpoint {older} is intact: resume from it with --resume {older}"
            ) from None
        raise


def read_init_weights(source: str | Path) -> dict[str, torch.Tensor]:
    """The weights `--init SOURCE` names: a run folder's final weights, a checkpoint folder's, or a
    .safetensors file (each checked against its recorded SHA-256 where a run wrote one)."""
    path = Path(source)
    if not path.exists():
        raise CheckpointError(
            f"--init {path}: no such file or folder (expected a run folder, a checkpoint folder or a .safetensors file)"
        )
    if path.is_dir() and (path / META_FILE).is_file():
        return load_checkpoint(path).weights
    if path.is_dir():
        if not (path / FINAL_WEIGHTS).is_file():
            raise CheckpointError(
                f"--init {path}: a folder without {FINAL_WEIGHTS} or {META_FILE} (expected a finished run "
                "or a checkpoint folder)"
            )
        return load_final_weights(path)[0]
    return load_verified_weights(path)


def transfer_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], source: str | Path) -> tuple[int, int]:
    """Start `model` from another model's weights (transfer learning): each tensor of `weights` goes
    where the model has the same name, or the same name under `backbone.` (a classifier's weights
    into a segmentation model's backbone), and must have the same shape there; tensors with no place
    (the classifier's head) are left out. Returns (tensors loaded, tensors of the model); refuses, in
    one line, a shape that differs or a file of which nothing fits."""
    own = model.state_dict()
    placed = {}
    for name, tensor in weights.items():
        target = name if name in own else f"backbone.{name}" if f"backbone.{name}" in own else None
        if target is None:
            continue
        if tuple(own[target].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"--init {source}: {name} is {_shape(tensor)} in the file but {target} is "
                f"{_shape(own[target])} in the model"
            )
        placed[target] = tensor
    if not placed:
        raise CheckpointError(
            f"--init {source}: none of its {len(weights)} tensors has a place in the model "
            f"(expected names like {next(iter(own))!r}, or the same under 'backbone.'; the file has "
            f"{next(iter(weights), 'none')!r})"
        )
    model.load_state_dict(placed, strict=False)
    return len(placed), len(own)
