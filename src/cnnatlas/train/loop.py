"""The training loop: one function, `train(config)`, that reads top to bottom.

Per step: forward under autocast (on a GPU, or on the CPU with `precision="bfloat16"`), cross-entropy
with optional label smoothing (per pixel for segmentation, where the dataset's `DataInfo.task` is
"segmentation": labels (H, W), logits (classes, H, W), plus 0.5 × that of an auxiliary head where the
model has one, as torchvision),
backward through the gradient scaler (fp16 only), optional gradient clipping, optimiser step,
learning rate from the schedule, and with `ema` the weights' moving average (ema.py), which is then
what the run evaluates and keeps. Per epoch: test-set evaluation (float32), one line in metrics.jsonl,
an atomic checkpoint. Under torchrun the model is wrapped in DistributedDataParallel, each process
reads its shard through DistributedSampler, and only rank 0 prints and writes.

The run folder: rank 0 claims it and holds its lock (lock.py) until the run ends; a resume
continues only the run it read, and `check_resume` refuses changes to what the run is (the fields
FIXED_ON_RESUME, and --epochs below the epochs trained); the rest is recorded in config.json's
"resumes" list. `check_memory` refuses, before allocating, a run past the machine's memory.

Reproducibility: the model is initialised from `seed`, each epoch's data order from (seed, epoch)
and each epoch's augmentation and dropout from (seed, epoch, rank), so an epoch replayed after a
crash draws exactly what it drew the first time; `deterministic=True` also makes PyTorch use
deterministic kernels.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset

from .. import hardware
from ..data import DataInfo, DataSplits, data_origin, dataset_channels, dataset_kind, load_dataset, own_input_size
from ..data.base import label_counts
from ..data.scenes import TEST_SCENES, TRAIN_SCENES
from ..errors import CnnAtlasError, InvalidArgumentError
from ..registry import get_entry
from ..version import __version__
from ..zoo import create_model
from .checkpoint import (
    FINAL_WEIGHTS,
    Checkpoint,
    CheckpointError,
    clean_partial_checkpoints,
    fit_weights,
    load_checkpoint,
    load_latest_checkpoint,
    read_init_weights,
    save_checkpoint,
    save_final_weights,
    transfer_weights,
    write_json_atomic,
)
from .config import TrainConfig
from .distributed import DistContext, all_reduce_sum, barrier, broadcast_object, init_distributed, shutdown_distributed
from .ema import WeightAverage
from .folder import CONFIG_FILE, HISTORY_FILE, is_run_folder, read_config_json, read_history, resolve_resume
from .lock import LOCK_FILE, RunLock, RunLockedError

LOG_EVERY = 10  # steps between progress updates (and finite-loss checks)
RUNS_DIR = Path("runs")


class TrainingDivergedError(CnnAtlasError, FloatingPointError):
    """The loss became NaN or infinite; the run stopped without saving the damaged weights."""


class RunExistsError(CnnAtlasError, ValueError):
    """A run folder that already holds a run, given without --resume; or a --out that cannot be a run folder."""


class ResumeError(CnnAtlasError, ValueError):
    """A --resume that would write elsewhere than it read, or change what the run is."""


class MemoryEstimateError(CnnAtlasError, MemoryError):
    """A run whose estimated memory exceeds the machine's, refused before allocating it."""


# What a resumed run must keep: they fix the architecture, the data and its geometry, the optimiser's
# state and the data order. Everything else (epochs, lr and its schedule, regularisation, logging,
# device) may change; each change is recorded in config.json's "resumes" list.
FIXED_ON_RESUME = (
    "model",
    "data",
    "image_size",
    "augment",
    "train_scenes",
    "sample_rate",
    "mu_law",
    "frames",
    "model_kwargs",
    "inflate",
    "init",
    "optimizer",
    "batch_size",
    "seed",
)


@dataclass(frozen=True)
class EvalResult:
    """For segmentation every pixel is one prediction: acc is the pixel accuracy, count the pixels."""

    loss: float
    acc: float  # fraction of correct top-1 predictions
    top5: float  # fraction with the label among the 5 (or num_classes, if fewer) best
    count: int
    confusion: torch.Tensor  # [true, predicted] counts

    @property
    def iou(self) -> list[float]:
        return iou_from_confusion(self.confusion)

    @property
    def miou(self) -> float:
        return mean_iou(self.confusion)


def iou_from_confusion(confusion: torch.Tensor) -> list[float]:
    """Per-class intersection over union from a [true, predicted] confusion matrix:
    IoU_c = TP_c / (TP_c + FP_c + FN_c) (Everingham et al. 2010, PASCAL VOC); NaN for a class
    that is neither in the labels nor in the predictions."""
    c = confusion.double()
    tp = c.diagonal()
    union = c.sum(0) + c.sum(1) - tp
    return [float(t / u) if u > 0 else float("nan") for t, u in zip(tp.tolist(), union.tolist())]


def mean_iou(confusion: torch.Tensor) -> float:
    """Mean of the per-class IoUs over the classes present in the labels or the predictions."""
    values = [v for v in iou_from_confusion(confusion) if not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")


def segmentation_metrics(result: EvalResult, classes: tuple[str, ...]) -> dict[str, Any]:
    """What a segmentation run reports beside test_acc (the pixel accuracy): mean and per-class IoU."""
    return {
        "test_pixel_acc": result.acc,
        "test_miou": result.miou,
        "test_iou": {name: (None if math.isnan(v) else v) for name, v in zip(classes, result.iou)},
    }


# -- the pieces -----------------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """'auto' → cuda when a GPU is visible, else cpu; 'cuda' without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidArgumentError(
            f"--device {name}: no CUDA GPU is visible to PyTorch "
            f"(torch.cuda.is_available() is False); use --device cpu or auto"
        )
    return torch.device(name)


def choose_image_size(config: TrainConfig) -> int:
    """The model's own input size when it is small (LeNet-5 32, CIFAR ResNets 32), else the
    smallest size ≥ 32 that the network accepts (ImageNet models on 8×8 or 28×28 data); for sound, the
    window in samples: one second."""
    if config.image_size:
        return config.image_size
    own = own_input_size(config.data, config.sample_rate)  # the scenes' canvas, a second of sound
    if own:
        return own
    size = get_entry(config.model).input_size[-1]
    if size <= 64:
        return size
    with torch.device("meta"):
        model = create_model(config.model, **config.model_kwargs)
    return max(32, getattr(model, "min_input_size", 32))


def data_model_kwargs(config: TrainConfig, info: DataInfo) -> dict[str, Any]:
    """What the data tells the model beyond classes and channels: a model on sound that takes
    `sample_rate` (the spectrogram CNN's mel filterbank) gets the rate of the recordings, so its bands
    sit at the frequencies they name. A `sample_rate` in --model-arg that differs is refused."""
    if not info.sample_rate or "sample_rate" not in get_entry(config.model).accepted_kwargs():
        return {}
    asked = config.model_kwargs.get("sample_rate", info.sample_rate)
    if asked != info.sample_rate:
        raise InvalidArgumentError(
            f"{config.model}: --model-arg sample_rate={asked!r} but {config.data}'s recordings are at "
            f"{info.sample_rate} Hz; expected the recordings' rate (--sample-rate sets it), or no sample_rate"
        )
    return {"sample_rate": info.sample_rate}


def build_model(config: TrainConfig, info: DataInfo) -> nn.Module:
    """The model the config names for the data: its classes and channels (and the rate of sound, see
    `data_model_kwargs`), with the config's model arguments; inflated to 3-D with `inflate`."""
    try:
        model = create_model(
            config.model,
            num_classes=info.num_classes,
            in_channels=info.in_channels,
            **{**config.model_kwargs, **data_model_kwargs(config, info)},
        )
    except (TypeError, ValueError, AssertionError) as err:
        if isinstance(err, CnnAtlasError):
            raise
        args = ", ".join(f"{k}={v!r}" for k, v in config.model_kwargs.items()) or "no model arguments"
        raise InvalidArgumentError(
            f"{config.model} cannot be built with {args} for {info.num_classes} classes "
            f"and {info.in_channels} channel(s): {type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}"
        ) from None
    if config.inflate:
        from ..inflate import inflate

        model = inflate(model)
    return model


def check_model_fits_data(
    model: nn.Module, config: TrainConfig, sample: torch.Tensor, target: torch.Tensor | int | None = None
) -> None:
    """A clear error where a 2-D model meets 3-D clips (or the other way round), where a segmentation
    dataset (a mask per sample) meets a model that does not give logits per pixel, or where a
    classification dataset (one class per sample) meets one that does."""
    dims = getattr(model, "dims", None)
    if dims is not None and sample.dim() - 1 != dims:
        shape = "×".join(map(str, sample.shape))
        hint = "; pass --inflate (inflate=True) to train its 3-D inflation" if dims == 2 and sample.dim() == 4 else ""
        raise InvalidArgumentError(
            f"{config.model} takes {dims}-D inputs but {config.data} holds samples of "
            f"{sample.dim() - 1} dimensions after the channels ({shape}){hint}"
        )
    if target is None:
        return
    was = model.training
    model.eval()
    with torch.no_grad():
        out = model(sample[None])
    model.train(was)
    if isinstance(target, torch.Tensor) and target.dim() >= 1:
        if tuple(out.shape[2:]) != tuple(target.shape):
            mask = "×".join(map(str, target.shape))
            raise InvalidArgumentError(
                f"{config.data} is a segmentation dataset (a {mask} mask per image); "
                f"{config.model} gives outputs of shape {tuple(out.shape[1:])}, "
                f"expected (classes, "
                f"{', '.join(map(str, target.shape))}) — use a dense model such as deeplabv3"
            )
    elif out.dim() > 2:
        raise InvalidArgumentError(
            f"{config.data} is a classification dataset (one class per sample); {config.model} gives a map "
            f"of class scores, shape {tuple(out.shape[1:])}, for segmentation — train it on "
            f"--data fashion-mnist-scenes, or use a classifier such as resnet20"
        )


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Weight decay on weights of rank ≥ 2 only; biases and norm scales are not decayed."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)


def learning_rate(step: int, steps_per_epoch: int, config: TrainConfig) -> float:
    """Linear warm-up from lr/100, then cosine to 0 (Loshchilov & Hutter 2017, no restarts) or
    ÷10 at 50% and 75% of the epochs (He et al. 2016, §4.2), never before the first epoch ends."""
    total = config.epochs * steps_per_epoch
    warmup = min(round(config.warmup_epochs * steps_per_epoch), total - 1)
    if step < warmup:
        return config.lr * (0.01 + 0.99 * step / warmup)
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
    epoch = step // steps_per_epoch
    return config.lr * 0.1 ** sum(epoch >= max(1, int(config.epochs * m)) for m in (0.5, 0.75))


def class_weights(kind: str, counts: torch.Tensor) -> torch.Tensor | None:
    """The loss's weight per class from the training labels' counts n_c (frequency f_c = n_c / Σn).

    "median-frequency": w_c = median(f) / f_c (median frequency balancing, Eigen & Fergus 2015, with f
    over all training labels and the median over the classes present); "sqrt-median-frequency": its
    square root; "none": None. Scaled so that Σ f_c·w_c = 1 (a label's mean weight is 1); a class
    absent from training gets weight 0."""
    if kind == "none":
        return None
    freq = counts.double() / counts.sum().clamp(min=1)
    present = freq > 0
    weights = torch.zeros_like(freq)
    weights[present] = torch.quantile(freq[present], 0.5) / freq[present]
    if kind == "sqrt-median-frequency":
        weights = weights.sqrt()
    return (weights / (weights * freq).sum()).float()


def top_k(num_classes: int) -> int:
    """How many best classes `test_top5` counts: 5, or every class where there are fewer."""
    return min(5, num_classes)


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: DataLoader, num_classes: int, device: torch.device, ctx: DistContext | None = None
) -> EvalResult:
    """Loss, top-1, top-5 and confusion matrix over a (possibly sharded) test set; for segmentation
    (labels of shape (N, H, W), logits (N, classes, H, W)) every pixel counts as one prediction.

    Always in float32, on a GPU without autocast and without TF32 convolutions, so the accuracy a
    run reports is that of its float32 weights, the figure `cnnatlas eval` gives on any device.
    Without ctx, one process (not distributed).
    """
    ctx = DistContext() if ctx is None else ctx
    model.eval()
    k = top_k(num_classes)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    top1 = torch.zeros((), device=device, dtype=torch.long)
    topk = torch.zeros((), device=device, dtype=torch.long)
    confusion = torch.zeros(num_classes * num_classes, device=device, dtype=torch.long)
    with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, deterministic=True, allow_tf32=False):
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if device.type == "cuda" and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            logits = model(x).float()
            if logits.dim() > 2:  # per-pixel logits: one row per pixel
                logits, y = logits.movedim(1, -1).reshape(-1, num_classes), y.reshape(-1)
            loss_sum += F.cross_entropy(logits, y, reduction="sum")
            best = logits.topk(k, dim=1).indices
            top1 += (best[:, 0] == y).sum()
            topk += (best == y[:, None]).any(dim=1).sum()
            confusion += torch.bincount(y * num_classes + best[:, 0], minlength=num_classes * num_classes)
    totals = torch.stack([loss_sum, top1.double(), topk.double()])
    all_reduce_sum(totals, ctx)
    all_reduce_sum(confusion, ctx)
    count = int(confusion.sum())
    loss, acc, top5 = (totals / max(1, count)).tolist()
    return EvalResult(loss, acc, top5, count, confusion.view(num_classes, num_classes).cpu())


def rng_state() -> dict[str, Any]:
    """Every RNG a run draws from, as tensors and plain values (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "cached_gaussian": cached,
        },
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 1_009 + rank) % (2**63)


def data_label(spec: str) -> str:
    """digits, fashion-mnist, or the folder's name: the DATA of runs/MODEL-DATA."""
    if spec in ("digits", "fashion-mnist") or spec.startswith("fashion-mnist:"):
        return spec.split(":", 1)[0]
    return Path(spec).resolve().name or "data"


def resolve_run_dir(config: TrainConfig, resume: bool | str = False) -> Path:
    """--out, or runs/MODEL-DATA (the newest for --resume; a new run takes the first free of
    runs/MODEL-DATA, -2, -3 … when it is claimed, see `claim_run_dir`)."""
    if config.out:
        return Path(config.out)
    base = RUNS_DIR / f"{config.model}-{data_label(config.data)}"
    taken = [base] + [base.with_name(f"{base.name}-{i}") for i in range(2, 1000)]
    existing = [p for p in taken if p.exists()]
    if resume:
        if not existing:
            raise RunExistsError(f"nothing to resume: no {base} folder (give the run's folder with --out)")
        return existing[-1]
    return next(p for p in taken if not p.exists())


def _holds_run(path: Path) -> bool:
    return any((path / name).exists() for name in ("checkpoints", "metrics.json", "model.safetensors")) or bool(
        (path / HISTORY_FILE).is_file() and (path / HISTORY_FILE).stat().st_size
    )


def _make_dir(path: Path) -> Path | None:
    """mkdir -p; the outermost folder it made (`path` or a folder above it), None if `path` was there. One
    clear line when it cannot."""
    if path.exists() and not path.is_dir():
        raise RunExistsError(f"--out {path}: a file; expected a folder for the run (or a path to create one)")
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    try:
        path.mkdir(parents=True)
        return missing[-1] if missing else path
    except FileExistsError:
        if not path.is_dir():
            raise RunExistsError(f"--out {path}: a file; expected a folder for the run") from None
        return None
    except OSError as err:
        raise RunExistsError(f"--out {path}: cannot create the run folder there ({err.strerror or err})") from None


def claim_run_dir(
    config: TrainConfig, resume: bool | str | Path = False
) -> tuple[Path, Path | None, RunLock, Path | None]:
    """The run folder this process will write, locked: (folder, checkpoint to resume or None for the
    newest, the lock, the outermost folder made for it here or None). A resume always writes where it
    reads."""
    checkpoint = None
    if resume is not False and resume is not True:  # a run folder or one of its checkpoint folders
        run_dir, checkpoint = resolve_resume(resume)
        if config.out and Path(config.out).resolve() != run_dir.resolve():
            raise ResumeError(
                f"--resume {resume} belongs to the run {run_dir}, not --out {config.out}; a resumed "
                f"run is continued where it was read (drop --out, or resume a checkpoint of "
                f"{config.out})"
            )
        made = None
    elif resume:
        run_dir = resolve_run_dir(config, resume=True)
        if not run_dir.is_dir():
            raise CheckpointError(f"{run_dir}: nothing to resume (no such folder)")
        made = None
    elif config.out:
        run_dir = Path(config.out)
        made = _make_dir(run_dir)
    else:
        run_dir, made = _new_numbered_run_dir(config)
    lock = RunLock(run_dir)
    try:
        lock.acquire()
    except OSError as err:
        raise RunExistsError(f"{run_dir}: cannot write into the run folder ({err.strerror or err})") from None
    try:
        if resume and not is_run_folder(run_dir):
            raise CheckpointError(f"{run_dir}: nothing to resume (not a run folder: no {CONFIG_FILE} or checkpoints/)")
        if not resume and _holds_run(run_dir):
            raise RunExistsError(f"{run_dir} already holds a run; continue it with --resume, or choose another --out")
        if not resume and (run_dir / CONFIG_FILE).exists():
            try:
                read_config_json(run_dir)
            except CheckpointError:
                raise RunExistsError(
                    f"{run_dir / CONFIG_FILE}: not a cnnatlas run's config (it would be "
                    f"overwritten); choose another --out"
                ) from None
    except BaseException:
        _release(lock, run_dir, made)
        raise
    return run_dir, checkpoint, lock, made


def _new_numbered_run_dir(config: TrainConfig) -> tuple[Path, Path]:
    """runs/MODEL-DATA, else -2, -3 …, made here (mkdir is atomic, so two new runs never share a number):
    the folder, and the outermost folder made for it (`runs/` where it was not there yet)."""
    base = RUNS_DIR / f"{config.model}-{data_label(config.data)}"
    made_runs = _make_dir(RUNS_DIR)
    for i in range(1, 1000):
        run_dir = base if i == 1 else base.with_name(f"{base.name}-{i}")
        try:
            run_dir.mkdir()
            return run_dir, made_runs or run_dir
        except FileExistsError:
            continue
        except OSError as err:
            raise RunExistsError(f"cannot create the run folder {run_dir} ({err.strerror or err})") from None
    raise RunExistsError(f"{base}-2 … -999 are all taken; give the run a folder with --out")


def _release(lock: RunLock, run_dir: Path, made: Path | None) -> None:
    """Give the lock back; a run folder made by this run that holds nothing but the lock goes too, and so
    do the folders made above it (`runs/`, the parents of --out) that it leaves empty."""
    lock.release()
    if made is None or not run_dir.is_dir() or {p.name for p in run_dir.iterdir()} - {LOCK_FILE}:
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    for folder in run_dir.parents:
        if folder != made and made not in folder.parents:
            break  # above what this run made
        try:
            folder.rmdir()  # only where empty
        except OSError:
            break


def as_saved(value: Any) -> Any:
    """`value` as config.json gives it back: tuples become lists (`blocks=(1, 3, 5)` is `[1, 3, 5]`)."""
    return json.loads(json.dumps(value))


def check_resume(config: TrainConfig, saved: dict[str, Any] | None, ckpt: Checkpoint) -> dict[str, list[Any]]:
    """Refuse a resume that changes what the run is; return what it changes ({field: [old, new]})."""
    if config.epochs < ckpt.epoch:
        raise ResumeError(
            f"--epochs {config.epochs}: {ckpt.path} is already after epoch {ckpt.epoch}; expected "
            f"--epochs ≥ {ckpt.epoch} (a resumed run goes on from where it stopped)"
        )
    meta_model = ckpt.meta.get("model")
    if meta_model is not None and meta_model != config.model:
        raise ResumeError(f"{ckpt.path} holds {meta_model} weights, not {config.model}'s")
    if saved is None:
        return {}
    old = TrainConfig.from_json(saved["train"])
    changed = {
        f.name: [getattr(old, f.name), getattr(config, f.name)]
        for f in fields(TrainConfig)
        if f.name != "out" and as_saved(getattr(old, f.name)) != as_saved(getattr(config, f.name))
    }
    size = choose_image_size(config)
    saved_size = saved["data"].get("image_size")
    fixed = [name for name in FIXED_ON_RESUME if name in changed and name != "image_size"]
    if size != saved_size:
        fixed.append("image_size")
        changed["image_size"] = [saved_size, size]
    if fixed:
        what = ", ".join(f"{name} {changed[name][0]!r} → {changed[name][1]!r}" for name in fixed)
        raise ResumeError(
            f"--resume cannot change {what}: they fix the architecture, the data, the optimiser's "
            f"state or the data order of the run (expected them as trained; start a new run with "
            f"another --out instead)"
        )
    return changed


def optimizer_state_copies(config: TrainConfig) -> int:
    """Tensors the size of the weights that the optimiser keeps: AdamW's two moments, SGD's momentum
    buffer (none without momentum)."""
    if config.optimizer == "adamw":
        return 2
    return 1 if config.momentum else 0


def memory_needed(config: TrainConfig, image_size: int, per_rank_batch: int) -> tuple[int | None, int]:
    """(bytes of one training step, bytes of the images held in memory) of a run. The step is the
    analyser's `training_peak_bytes` (weights and buffers, gradients, activations kept for backward)
    plus the optimiser's state and, with --ema, the moving average's copy of weights and buffers;
    None where the model cannot be built at this size or the data are not images (clips, audio)."""
    from ..analysis import analyze

    entry = get_entry(config.model)
    channels = dataset_channels(config.data)
    kind = dataset_kind(config.data)
    if kind == "fashion-mnist-scenes":  # uint8 scenes and masks: 2 bytes a pixel
        held = ((config.train_scenes or TRAIN_SCENES) + TEST_SCENES) * image_size * image_size * 2
    else:  # float32 while they are fitted to size
        held = {"digits": 1797, "fashion-mnist": 70000}.get(kind, 0) * channels * image_size * image_size * 4
    if config.inflate or len(entry.input_size) != 3:  # images only; clips and audio have other shapes
        return None, held
    try:
        with torch.device("meta"):
            model = create_model(config.model, num_classes=10, in_channels=channels, **config.model_kwargs)
        report = analyze(model, (per_rank_batch, channels, image_size, image_size), training=True)
    except (CnnAtlasError, RuntimeError, TypeError, ValueError):
        return None, held  # the model cannot take this size: building it for real says why
    step = report.training_peak_bytes
    if step is None:
        return None, held
    step += optimizer_state_copies(config) * report.param_bytes
    if config.ema:
        step += report.param_bytes + report.buffer_bytes
    return step, held


def check_memory(config: TrainConfig, image_size: int, per_rank_batch: int, device: torch.device) -> None:
    """Refuse, before allocating anything, a run whose training step (`memory_needed`: activations kept
    for backward, weights, gradients, optimiser state and the moving average) plus the images held in
    memory exceed the machine's memory (the GPU's for the step on a GPU). Where the step cannot be
    estimated, the images held are still checked against the machine's memory."""
    step, held = memory_needed(config, image_size, per_rank_batch)
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    gpu = torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else 0
    if step is None:
        checks = [("the machine's", held, ram)]
    elif gpu:
        checks = [("the GPU's", step, gpu), ("the machine's", held, ram)]
    else:
        checks = [("the machine's", step + held, ram)]
    for where, need, have in checks:
        if have and need > have:
            step_size = "not estimated" if step is None else _gib(step)
            raise MemoryEstimateError(
                f"{config.model} at {image_size}×{image_size}, batch {per_rank_batch}: about {_gib(need)} needed "
                f"(training step {step_size}, images {_gib(held)}), more than {where} {_gib(have)} of memory; "
                f"expected a smaller --image-size or --batch-size"
            )


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


def _progress(console: Console) -> Progress:
    """The live bar of the epoch under way; off where no terminal shows it (a log file keeps the epoch
    lines, not the bar's last frame repeating the last of them)."""
    return Progress(
        TextColumn("[bold]epoch {task.fields[epoch]}"),
        BarColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:6.2%}  {task.fields[ips]:>7,.0f} img/s"),
        TextColumn("[dim]left"),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )


# -- the loop -------------------------------------------------------------------------------------


def train(
    config: TrainConfig,
    resume: bool | str = False,
    data: DataSplits | None = None,
    model: nn.Module | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Train `config.model` on `config.data` and return the final metrics (also in RUN/metrics.json).

    resume: False; True to continue the run in `config.out` (or the newest runs/MODEL-DATA) from its
    newest checkpoint; or a run folder (its newest checkpoint) or one checkpoint folder of a run — the
    run is always continued in the folder it was read from (`ResumeError` if `config.out` differs),
    and `check_resume` refuses changes to what the run is. The run folder is locked (`RunLock`) by
    rank 0 while it trains. `data` and `model` replace the ones the config names (API use).
    """
    device = resolve_device(config.device)
    was_initialised = torch.distributed.is_available() and torch.distributed.is_initialized()
    ctx = init_distributed(device.type)
    if ctx.enabled and device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = device.type == "cuda" and not config.deterministic
    try:
        return _train(config, resume, data, model, console, device, ctx)
    finally:
        torch.use_deterministic_algorithms(deterministic_before)
        if not was_initialised:
            shutdown_distributed()


def _train(
    config: TrainConfig,
    resume: bool | str,
    data: DataSplits | None,
    model: nn.Module | None,
    console: Console | None,
    device: torch.device,
    ctx: DistContext,
) -> dict[str, Any]:
    main = ctx.is_main
    if config.batch_size % ctx.world_size:
        raise InvalidArgumentError(
            f"batch size {config.batch_size} does not split evenly over "
            f"{ctx.world_size} processes (it is the global batch)"
        )
    # rank 0 claims (and locks) the folder and checks a resume; a refusal is raised on every rank
    claim: dict[str, Any] = {}
    lock, made, ckpt = None, None, None
    if main:
        try:
            run_dir, ckpt_path, lock, made = claim_run_dir(config, resume)
            claim["run_dir"] = run_dir
            if resume:
                ckpt = load_checkpoint(ckpt_path) if ckpt_path else load_latest_checkpoint(run_dir)
                saved = read_config_json(run_dir) if (run_dir / CONFIG_FILE).exists() else None
                claim.update(ckpt=str(ckpt.path), saved=saved, changed=check_resume(config, saved, ckpt))
        except BaseException as err:
            if lock is not None:
                _release(lock, claim["run_dir"], made)
            if not ctx.enabled or not isinstance(err, CnnAtlasError):
                raise
            claim = {"problem": (type(err).__name__, str(err))}
    claim = broadcast_object(claim, ctx)
    if "problem" in claim:
        kinds = {
            c.__name__: c for c in (RunExistsError, ResumeError, CheckpointError, RunLockedError, InvalidArgumentError)
        }
        raise kinds.get(claim["problem"][0], RunExistsError)(claim["problem"][1])
    try:
        return _train_in(config, resume, data, model, console, device, ctx, claim, ckpt)
    finally:
        if lock is not None:
            _release(lock, claim["run_dir"], made)


def _train_in(
    config: TrainConfig,
    resume: bool | str,
    data: DataSplits | None,
    model: nn.Module | None,
    console: Console | None,
    device: torch.device,
    ctx: DistContext,
    claim: dict[str, Any],
    ckpt: Checkpoint | None,
) -> dict[str, Any]:
    """The recipe in the claimed folder: set up, restore a resume, record the config, train, finish."""
    run = _Run.set_up(config, data, model, console or Console(), device, ctx, claim)
    if resume:
        if ckpt is None:  # the other ranks load what rank 0 checked
            ckpt = load_checkpoint(claim["ckpt"])
        run.restore(ckpt)
    if ctx.is_main:
        run.record_config(claim, resume, ckpt)
    run.wrap_for_processes()
    if run.show:
        run.announce(resume)
    last = run.train_epochs()
    return run.finish(last)


def _load_data(
    config: TrainConfig, data: DataSplits | None, model: nn.Module | None, per_rank_batch: int, device: torch.device
) -> DataSplits:
    """The datasets the config names (after `check_memory` where the config builds the model), unless given."""
    if data is not None:
        return data
    image_size = choose_image_size(config)
    if model is None:
        check_memory(config, image_size, per_rank_batch, device)
    return load_dataset(
        config.data,
        image_size,
        config.augment,
        dataset_channels(config.data),
        train_scenes=config.train_scenes,
        sample_rate=config.sample_rate,
        mu_law=config.mu_law,
        frames=config.frames,
    )


def _check_same_data(config: TrainConfig, info: DataInfo, saved: dict[str, Any] | None, run_dir: Path) -> None:
    """A resume reads the data the run was trained on: the same classes, channels and size."""
    if saved is None:
        return
    before = saved["data"]
    for key in ("classes", "in_channels", "image_size"):
        now = list(info.classes) if key == "classes" else getattr(info, key)
        if before.get(key) != now:
            raise ResumeError(
                f"{config.data} now gives {key} {now!r}; the run {run_dir} was trained with "
                f"{before.get(key)!r} (expected the same data to resume it)"
            )


def _make_loaders(
    config: TrainConfig, data: DataSplits, ctx: DistContext, per_rank_batch: int, on_gpu: bool
) -> tuple[DistributedSampler, DataLoader, DataLoader]:
    """Each process reads its own shard of the training set (shuffled from `seed`) and of the test set."""
    sampler = DistributedSampler(data.train, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=config.seed)
    workers = config.workers if config.workers is not None else (4 if on_gpu else 0)
    shard = math.ceil(len(data.train) / ctx.world_size)
    train_loader = DataLoader(
        data.train,
        batch_size=per_rank_batch,
        sampler=sampler,
        num_workers=workers,
        pin_memory=on_gpu,
        drop_last=shard > per_rank_batch,
    )
    test_shard = Subset(data.test, range(ctx.rank, len(data.test), ctx.world_size))
    test_loader = DataLoader(test_shard, batch_size=2 * per_rank_batch, num_workers=workers, pin_memory=on_gpu)
    return sampler, train_loader, test_loader


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype the forward autocasts to, or None for float32 throughout: `precision` "auto" is mixed
    precision on a GPU (bfloat16 where it has it, else float16 with loss scaling) and float32 on the
    CPU; "bfloat16" autocasts on either; "float16" needs a GPU."""
    if precision == "float32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "bfloat16":
        return torch.bfloat16
    if precision == "float16" and device.type != "cuda":
        raise InvalidArgumentError(
            f"train: precision float16 needs a GPU (its loss scaling); on the {device.type} use bfloat16 or float32"
        )
    if precision == "float16" or not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def _seeded_model(
    config: TrainConfig, data: DataSplits, model: nn.Module | None, device: torch.device, mixed: bool
) -> tuple[nn.Module, bool]:
    """The model from `seed` (the same initial weights on every rank), checked against the data, on the
    device; and whether it runs channels_last (2-D images on a GPU, where NHWC suits tensor cores, or in
    mixed precision on the CPU, where oneDNN's bfloat16 convolutions are faster in NHWC)."""
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed % 2**32)
    model = model if model is not None else build_model(config, data.info)
    check_model_fits_data(model, config, *data.train[0])
    channels_last = (device.type == "cuda" or mixed) and getattr(model, "dims", 2) == 2
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    return model, channels_last


@dataclass
class _Tally:
    """One epoch's running training totals on this process."""

    loss_sum: torch.Tensor
    correct: torch.Tensor
    seen: int = 0
    pixels: int = 1  # labels per sample: 1, or H·W for segmentation
    start: float = field(default_factory=time.perf_counter)
    train_seconds: float = 0.0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Count one batch: its summed loss, correct top-1 predictions, samples and labels per sample."""
        self.loss_sum += loss.detach() * len(y)
        # max(1).indices is argmax(1) (the first of equal maxima) without its slow path on (N, C, H, W) maps
        self.correct += (logits.detach().max(1).indices == y).sum()
        self.seen += len(y)
        self.pixels = y[0].numel()


@dataclass
class _Run:
    """One process's run while it trains: what it trains with, and where it stands (epoch, step)."""

    config: TrainConfig
    ctx: DistContext
    device: torch.device
    console: Console
    run_dir: Path
    data: DataSplits
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    sampler: DistributedSampler
    train_loader: DataLoader
    test_loader: DataLoader
    amp_dtype: torch.dtype | None
    channels_last: bool
    loss_weight: torch.Tensor | None = None  # per class (config.class_weights), on the device
    init_note: str = ""  # which weights --init loaded, for the announcement
    net: nn.Module | None = None  # the model, wrapped in DistributedDataParallel under torchrun
    ema: WeightAverage | None = None  # config.ema > 0: the weights' moving average, evaluated and kept
    start_epoch: int = 1
    step: int = 0
    progress: Progress | None = None
    task: Any = None

    @classmethod
    def set_up(
        cls,
        config: TrainConfig,
        data: DataSplits | None,
        model: nn.Module | None,
        console: Console,
        device: torch.device,
        ctx: DistContext,
        claim: dict[str, Any],
    ) -> _Run:
        """Data and loaders, then the model, optimiser and gradient scaler (fp16 only)."""
        per_rank_batch = config.batch_size // ctx.world_size
        on_gpu = device.type == "cuda"
        amp_dtype = autocast_dtype(config.precision, device)
        data = _load_data(config, data, model, per_rank_batch, device)
        _check_same_data(config, data.info, claim.get("saved"), claim["run_dir"])
        sampler, train_loader, test_loader = _make_loaders(config, data, ctx, per_rank_batch, on_gpu)
        model, channels_last = _seeded_model(config, data, model, device, amp_dtype is not None)
        init_note = ""
        if config.init and "ckpt" not in claim:  # transfer, for a new run (a resumed one restores its checkpoint)
            loaded, total = transfer_weights(model, read_init_weights(config.init), config.init)
            init_note = f"initial weights: {loaded} of the model's {total} tensors from {config.init}"
        optimizer = make_optimizer(model, config)
        ema = WeightAverage(model, config.ema) if config.ema else None
        scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        weights = None  # counting the labels may read every item: only when asked
        if config.class_weights != "none":
            weights = class_weights(config.class_weights, label_counts(data.train, data.info.num_classes))
        return cls(
            config=config,
            ctx=ctx,
            device=device,
            console=console,
            run_dir=claim["run_dir"],
            data=data,
            model=model,
            optimizer=optimizer,
            scaler=scaler,
            sampler=sampler,
            train_loader=train_loader,
            test_loader=test_loader,
            amp_dtype=amp_dtype,
            channels_last=channels_last,
            loss_weight=None if weights is None else weights.to(device),
            init_note=init_note,
            ema=ema,
        )

    @property
    def info(self) -> DataInfo:
        return self.data.info

    @property
    def main(self) -> bool:
        return self.ctx.is_main

    @property
    def show(self) -> bool:
        return self.ctx.is_main and not self.config.quiet

    @property
    def on_gpu(self) -> bool:
        return self.device.type == "cuda"

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_loader)

    @property
    def evaluated(self) -> nn.Module:
        """What the run evaluates: the weights' moving average with --ema, else the model (as wrapped)."""
        return self.ema.module if self.ema else self.net

    def kept_weights(self) -> dict[str, torch.Tensor]:
        """The weights checkpoints and the run's result hold: the moving average with --ema, else the model's."""
        return (self.ema.module if self.ema else self.model).state_dict()

    def restore(self, ckpt: Checkpoint) -> None:
        """Weights, optimiser, scaler and RNG state of the resumed checkpoint; training goes on after its epoch.

        A checkpoint of a run with --ema holds the moving average as its weights and the weights the
        optimiser steps in its state ("training_weights"); the average goes on from the one saved, or
        starts from the weights where --ema is new to the run."""
        config, info = self.config, self.info
        what = f"{config.model} ({info.num_classes} classes, {info.in_channels} channel(s))"
        averaged = "training_weights" in ckpt.state
        fit_weights(self.model, ckpt.state["training_weights"] if averaged else ckpt.weights, ckpt.path, what)
        if self.ema:
            self.ema = WeightAverage(self.model, config.ema)
            if averaged:
                fit_weights(self.ema.module, ckpt.weights, ckpt.path, what)
        try:
            self.optimizer.load_state_dict(ckpt.state["optimizer"])
            self.scaler.load_state_dict(ckpt.state["scaler"])
            set_rng_state(ckpt.state["rng"])
            self.start_epoch, self.step = ckpt.epoch + 1, int(ckpt.meta["step"])
        except (KeyError, ValueError, TypeError, RuntimeError) as err:
            raise CheckpointError(
                f"{ckpt.path}: its optimiser or RNG state does not fit this run (expected the "
                f"state of a {config.optimizer} run; {type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''})"
            ) from None

    def record_config(self, claim: dict[str, Any], resume: bool | str, ckpt: Checkpoint | None) -> None:
        """Rank 0: config.json (what the run is; a resume appended to its "resumes"), the history cut
        to the epochs kept, and a resume's later timeline set aside."""
        run_dir, config, ctx = self.run_dir, self.config, self.ctx
        clean_partial_checkpoints(run_dir)
        record = {
            "train": {**config.to_json(), "out": str(run_dir)},
            "data": self.info.to_json(),
            "data_origin": data_origin(config.data, self.data),
            "world_size": ctx.world_size,
            "cnnatlas": __version__,
        }
        discarded = _keep_history(run_dir / HISTORY_FILE, self.start_epoch - 1)
        set_aside = _set_aside_later_timeline(run_dir, self.start_epoch - 1) if resume else []
        saved = claim.get("saved")
        if saved is not None:
            record["resumes"] = saved.get("resumes", []) if isinstance(saved.get("resumes"), list) else []
            record["resumes"].append(
                {
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "checkpoint": str(ckpt.path),
                    "after_epoch": self.start_epoch - 1,
                    "changed": claim.get("changed", {}),
                    "world_size": ctx.world_size,
                    "cnnatlas": __version__,
                    "discarded_epochs": discarded,
                    "set_aside": set_aside,
                }
            )
            for key in ("world_size", "cnnatlas"):  # what the run was started with stays on record
                record[key] = saved.get(key, record[key])
        write_json_atomic(run_dir / CONFIG_FILE, record)

    def wrap_for_processes(self) -> None:
        """Under torchrun, DistributedDataParallel around the model; else the model itself."""
        device_ids = [self.device.index] if self.on_gpu else None
        self.net = DistributedDataParallel(self.model, device_ids=device_ids) if self.ctx.enabled else self.model

    def announce(self, resume: bool | str) -> None:
        """Two lines: the model and data; the recipe, the devices and the run folder (and a third: the
        weights --init started from)."""
        config, info = self.config, self.info
        self.console.print(
            f"[bold]{config.model}[/] on {self.data.source}; {info.in_channels}×{info.image_size}×"
            f"{info.image_size}, augment {','.join(info.augment) or 'none'}"
        )
        self.console.print(
            f"{config.epochs} epoch{'' if config.epochs == 1 else 's'}, batch {config.batch_size}, "
            f"{config.optimizer} lr {config.lr:g} "
            f"{config.schedule}, {self.device.type} × {self.ctx.world_size} process(es)"
            + (f", amp {str(self.amp_dtype)[6:]}" if self.amp_dtype else "")
            + (", channels_last" if self.channels_last else "")
            + (f", EMA of the weights {config.ema:g}" if config.ema else "")
            + f" → {self.run_dir}"
            + (f" (resumed after epoch {self.start_epoch - 1})" if resume else "")
        )
        if self.init_note and not resume:
            self.console.print(self.init_note)
        if self.amp_dtype == torch.bfloat16 and self.device.type == "cpu" and hardware.bfloat16_emulated():
            self.console.print(
                "[yellow]note:[/] this CPU has no bfloat16 instructions (AVX-512 BF16 or AMX), so bfloat16 is "
                "emulated here and slower than float32; --precision float32 is the faster choice on it"
            )

    def start_progress(self) -> None:
        """The progress bar, where this process shows its progress."""
        if not self.show:
            return
        self.progress = _progress(self.console)
        self.progress.start()
        self.task = self.progress.add_task(
            "train",
            total=self.config.epochs * self.steps_per_epoch,
            completed=self.step,
            epoch=f"{self.start_epoch}/{self.config.epochs}",
            loss=0.0,
            acc=0.0,
            ips=0.0,
        )

    def train_epochs(self) -> dict[str, Any]:
        """Every epoch still to train: train, evaluate, log, checkpoint; the last epoch's metrics ({} if none)."""
        self.start_progress()
        last: dict[str, Any] = {}
        try:
            for epoch in range(self.start_epoch, self.config.epochs + 1):
                tally = self.train_epoch(epoch)
                last, result = self.end_epoch(epoch, tally)
                if self.main:
                    self.log_and_checkpoint(epoch, last)
                if self.progress:
                    self.print_epoch(epoch, last, result)
                barrier(self.ctx)
        finally:
            if self.progress:
                self.progress.stop()
        return last

    def train_epoch(self, epoch: int) -> _Tally:
        """One pass over this process's shard: data order from (seed, epoch), augmentation and dropout
        from (seed, epoch, rank); a finite-loss check every LOG_EVERY steps."""
        config, ctx, device = self.config, self.ctx, self.device
        self.net.train()
        self.sampler.set_epoch(epoch)
        torch.manual_seed(epoch_seed(config.seed, epoch, ctx.rank))
        tally = _Tally(
            torch.zeros((), device=device, dtype=torch.float64), torch.zeros((), device=device, dtype=torch.long)
        )
        for i, (x, y) in enumerate(self.train_loader, 1):
            loss, logits, y = self.train_step(x, y)
            tally.add(loss, logits, y)
            if i % LOG_EVERY == 0 or i == self.steps_per_epoch:
                mean_loss = tally.loss_sum.item() / tally.seen
                _check_finite(mean_loss, epoch, i, self.run_dir, ctx, device)
                if self.progress:
                    self.progress.update(
                        self.task,
                        completed=self.step,
                        epoch=f"{epoch}/{config.epochs}",
                        loss=mean_loss,
                        acc=tally.correct.item() / (tally.seen * tally.pixels),
                        ips=tally.seen * ctx.world_size / (time.perf_counter() - tally.start),
                    )
        tally.train_seconds = time.perf_counter() - tally.start
        return tally

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One optimiser step on one batch (autocast and channels_last where `precision` asks); (loss, logits,
        labels)."""
        config, device, optimizer, scaler = self.config, self.device, self.optimizer, self.scaler
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(self.step, self.steps_per_epoch, config)
        with torch.autocast(device.type, dtype=self.amp_dtype or torch.bfloat16, enabled=self.amp_dtype is not None):
            logits = self.net(x)
            aux = None
            if isinstance(logits, tuple) and hasattr(logits, "aux"):  # a segmentation model's auxiliary head
                logits, aux = logits.out, logits.aux
            smoothing, weight = config.label_smoothing, self.loss_weight
            loss = F.cross_entropy(logits.float(), y, weight=weight, label_smoothing=smoothing)
            if aux is not None:  # torchvision's segmentation recipe: loss(out) + 0.5 · loss(aux)
                loss = loss + 0.5 * F.cross_entropy(aux.float(), y, weight=weight, label_smoothing=smoothing)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if config.grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        self.step += 1
        if self.ema:
            self.ema.update(self.model, self.step)
        return loss, logits, y

    def end_epoch(self, epoch: int, tally: _Tally) -> tuple[dict[str, Any], EvalResult]:
        """Totals over processes, finite loss and weights, the test set: the epoch's metrics.jsonl line."""
        ctx, device, info = self.ctx, self.device, self.info
        totals = all_reduce_sum(
            torch.stack(
                [
                    tally.loss_sum,
                    tally.correct.double(),
                    torch.tensor(float(tally.seen), device=device, dtype=torch.float64),
                ]
            ),
            ctx,
        ).tolist()
        train_loss, train_acc = totals[0] / totals[2], totals[1] / (totals[2] * tally.pixels)
        _check_finite(train_loss, epoch, self.steps_per_epoch, self.run_dir, ctx, device)
        weights_ok = bool(torch.stack([torch.isfinite(p).all() for p in self.model.parameters()]).all())
        nan_if_bad = 0.0 if weights_ok else float("nan")
        _check_finite(nan_if_bad, epoch, self.steps_per_epoch, self.run_dir, ctx, device, "a weight")
        result = evaluate(self.evaluated, self.test_loader, info.num_classes, device, ctx)
        last = {
            "epoch": epoch,
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": train_loss,
            "train_acc": train_acc,
            "test_loss": result.loss,
            "test_acc": result.acc,
            "test_top5": result.top5,
            "train_seconds": tally.train_seconds,
            "seconds": time.perf_counter() - tally.start,
            "images_per_s": totals[2] / tally.train_seconds,
        }
        if info.task == "segmentation":
            last.update(segmentation_metrics(result, info.classes))
        return last, result

    def log_and_checkpoint(self, epoch: int, last: dict[str, Any]) -> None:
        """Rank 0: the epoch's line in metrics.jsonl, then its checkpoint (written atomically)."""
        with open(self.run_dir / HISTORY_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(last) + "\n")
        state = {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(), "rng": rng_state()}
        if self.ema:  # the checkpoint's weights are those its metrics describe: the average
            state["training_weights"] = self.model.state_dict()
        save_checkpoint(
            self.run_dir,
            epoch,
            self.kept_weights(),
            state,
            {
                "step": self.step,
                "model": self.config.model,
                "data": self.info.name,
                "metrics": {k: last[k] for k in ("train_loss", "test_acc", "test_top5", "test_miou") if k in last},
            },
            keep=self.config.keep_checkpoints,
        )

    @property
    def top_k(self) -> str:
        """'top-5', or 'top-k' for k < 5 classes: what `test_top5` counts (`evaluate`)."""
        return f"top-{top_k(self.info.num_classes)}"

    def print_epoch(self, epoch: int, last: dict[str, Any], result: EvalResult) -> None:
        """The epoch's line above the progress bar (one line: a log keeps it whole)."""
        second = f"mIoU {result.miou:6.1%}" if self.info.task == "segmentation" else f"{self.top_k} {result.top5:6.1%}"
        self.progress.console.print(
            f"epoch {epoch:>3}/{self.config.epochs}  loss {last['train_loss']:.4f}  train {last['train_acc']:6.1%}  "
            f"test {result.acc:6.1%}  {second}  "
            f"{last['images_per_s']:>6,.0f} img/s  "
            f"{last['seconds']:.1f} s",
            soft_wrap=True,  # one line in a log file, however wide
        )

    def finish(self, last: dict[str, Any]) -> dict[str, Any]:
        """The run's result: metrics.json and the final weights (rank 0), and its summary lines."""
        history = read_history(self.run_dir / HISTORY_FILE) if self.main else []
        if not last:  # resumed a finished run: evaluate what is there
            last = self.evaluate_as_is(history)
        metrics = self.final_metrics(last, history)
        if self.main:
            save_final_weights(self.run_dir, self.kept_weights())
            write_json_atomic(self.run_dir / "metrics.json", metrics)
            if self.show:
                self.print_result(metrics)
        barrier(self.ctx)
        return metrics

    def evaluate_as_is(self, history: list[dict[str, Any]]) -> dict[str, Any]:
        """A finished run resumed: the test set on the weights it has, the train loss from its history."""
        info = self.info
        result = evaluate(self.evaluated, self.test_loader, info.num_classes, self.device, self.ctx)
        last = {
            "train_loss": history[-1].get("train_loss", float("nan")) if history else float("nan"),
            "test_acc": result.acc,
            "test_top5": result.top5,
        }
        if info.task == "segmentation":
            last.update(segmentation_metrics(result, info.classes))
        return last

    def final_metrics(self, last: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
        """metrics.json: the last epoch's test figures, the run's time and its throughput over all epochs."""
        train_seconds = sum(h.get("train_seconds", 0.0) for h in history)
        images = sum(h.get("images_per_s", 0.0) * h.get("train_seconds", 0.0) for h in history)
        metrics = {
            "model": self.config.model,
            "data": self.info.name,
            "test_acc": last["test_acc"],
            "test_top5": last["test_top5"],
            "train_loss": last["train_loss"],
            "epochs": self.config.epochs,
            "seconds": sum(h.get("seconds", 0.0) for h in history),
            "images_per_s": images / train_seconds if train_seconds else 0.0,
            "world_size": self.ctx.world_size,
            "device": self.device.type,
            "run_dir": str(self.run_dir),
        }
        if self.info.task == "segmentation":
            metrics = {
                **metrics,
                "task": "segmentation",
                **{k: last[k] for k in ("test_pixel_acc", "test_miou", "test_iou")},
            }
        return metrics

    def print_result(self, metrics: dict[str, Any]) -> None:
        """The run's result in one line: mean IoU and pixel accuracy for segmentation, else top-1 and top-5."""
        if self.info.task == "segmentation":
            miou, pixel_acc = metrics["test_miou"], metrics["test_acc"]
            result = f"[bold green]test mean IoU {miou:.2%}[/] (pixel accuracy {pixel_acc:.2%})"
        else:
            result = f"[bold green]test accuracy {metrics['test_acc']:.2%}[/] ({self.top_k} {metrics['test_top5']:.2%})"
        epochs = self.config.epochs
        self.console.print(
            f"{result} after {epochs} epoch{'' if epochs == 1 else 's'}, {metrics['seconds']:.1f} s, "
            f"{metrics['images_per_s']:,.0f} img/s → {self.run_dir}",
            soft_wrap=True,
        )


def _check_finite(
    value: float, epoch: int, batch: int, run_dir: Path, ctx: DistContext, device: torch.device, what: str = "the loss"
) -> None:
    """Stop every process if any process saw a NaN or infinite loss; nothing is saved."""
    bad = all_reduce_sum(torch.tensor([0.0 if math.isfinite(value) else 1.0], device=device), ctx)
    if bad.item():
        from .checkpoint import list_checkpoints

        kept = list_checkpoints(run_dir)
        where = (
            f"the last good checkpoint is {kept[-1]}; resume from it with a lower --lr or with --grad-clip"
            if kept
            else "no checkpoint was written before it"
        )
        raise TrainingDivergedError(
            f"{what} became {value if not math.isfinite(value) else 'NaN'} in epoch "
            f"{epoch} (batch {batch}); training stopped, the damaged weights were not "
            f"saved; {where}"
        )


def _set_aside_later_timeline(run_dir: Path, after_epoch: int) -> list[str]:
    """Before a resume trains: the final weights and metrics.json go (they are those of the last
    checkpoint, and would outlive a crash of the resumed run as if they were its result), and the
    checkpoints after `after_epoch` (an earlier checkpoint resumed) move to
    RUN/superseded/<time>-after-epoch-NNNN/ — kept, but no longer what --resume or eval finds."""
    from .checkpoint import list_checkpoints

    for name in (FINAL_WEIGHTS + ".sha256", FINAL_WEIGHTS, "metrics.json"):  # the hash first (see save_final_weights)
        (run_dir / name).unlink(missing_ok=True)
    later = [p for p in list_checkpoints(run_dir) if int(p.name[6:]) > after_epoch]
    if not later:
        return []
    aside = run_dir / "superseded" / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-after-epoch-{after_epoch:04d}"
    aside.mkdir(parents=True, exist_ok=True)
    for path in later:
        os.rename(path, aside / path.name)
    return [str((aside / p.name).relative_to(run_dir)) for p in later]


def _keep_history(path: Path, up_to_epoch: int) -> list[dict[str, Any]]:
    """Keep the metrics lines of the epochs a resumed run keeps; return those of the epochs it
    trains again (an earlier checkpoint resumed), for config.json's record of the resume."""
    history = read_history(path)
    kept = [h for h in history if h["epoch"] <= up_to_epoch]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(h) + "\n" for h in kept), encoding="utf-8")
    os.replace(tmp, path)
    return [h for h in history if h["epoch"] > up_to_epoch]
