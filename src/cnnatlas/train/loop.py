"""The training loop: one function, `train(config)`, that reads top to bottom.

Per step: forward under autocast (GPU only), cross-entropy with optional label smoothing,
backward through the gradient scaler (fp16 only), optional gradient clipping, optimiser step,
learning rate from the schedule. Per epoch: test-set evaluation (float32), one line in metrics.jsonl,
an atomic checkpoint. Under torchrun the model is wrapped in DistributedDataParallel, each process
reads its shard through DistributedSampler, and only rank 0 prints and writes.

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
import time
from dataclasses import dataclass
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

from ..data import DataInfo, DataSplits, data_origin, dataset_channels, load_dataset
from ..version import __version__
from ..errors import CnnAtlasError, InvalidArgumentError
from ..registry import create_model, get_entry
from .checkpoint import (clean_partial_checkpoints, load_checkpoint, load_latest_checkpoint, save_checkpoint,
                         save_weights, write_json_atomic)
from .config import TrainConfig
from .distributed import DistContext, all_reduce_sum, barrier, broadcast_object, init_distributed, shutdown_distributed

LOG_EVERY = 10  # steps between progress updates (and finite-loss checks)
RUNS_DIR = Path("runs")


class TrainingDivergedError(CnnAtlasError, FloatingPointError):
    """The loss became NaN or infinite; the run stopped without saving the damaged weights."""


class RunExistsError(CnnAtlasError, ValueError):
    """A run folder that already holds a run, given without --resume."""


@dataclass(frozen=True)
class EvalResult:
    loss: float
    acc: float  # fraction of correct top-1 predictions
    top5: float  # fraction with the label among the 5 (or num_classes, if fewer) best
    count: int
    confusion: torch.Tensor  # [true, predicted] counts


# -- the pieces -----------------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """'auto' → cuda when a GPU is visible, else cpu; 'cuda' without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidArgumentError(f"--device {name}: no CUDA GPU is visible to PyTorch "
                                   f"(torch.cuda.is_available() is False); use --device cpu or auto")
    return torch.device(name)


def choose_image_size(config: TrainConfig) -> int:
    """The model's own input size when it is small (LeNet-5 32, CIFAR ResNets 32), else the
    smallest size ≥ 32 that the network accepts (ImageNet models on 8×8 or 28×28 data)."""
    if config.image_size:
        return config.image_size
    size = get_entry(config.model).input_size[-1]
    if size <= 64:
        return size
    with torch.device("meta"):
        model = create_model(config.model, **config.model_kwargs)
    return max(32, getattr(model, "min_input_size", 32))


def build_model(config: TrainConfig, info: DataInfo) -> nn.Module:
    model = create_model(config.model, num_classes=info.num_classes, in_channels=info.in_channels,
                         **config.model_kwargs)
    if config.inflate:
        from ..inflate import inflate

        model = inflate(model)
    return model


def check_model_fits_data(model: nn.Module, config: TrainConfig, sample: torch.Tensor) -> None:
    """A clear error where a 2-D model meets 3-D clips (or the other way round)."""
    dims = getattr(model, "dims", None)
    if dims is None or sample.dim() - 1 == dims:
        return
    shape = "×".join(map(str, sample.shape))
    hint = ("; pass --inflate (inflate=True) to train its 3-D inflation" if dims == 2 and sample.dim() == 4 else "")
    raise InvalidArgumentError(f"{config.model} takes {dims}-D inputs but {config.data} holds samples of "
                               f"{sample.dim() - 1} dimensions after the channels ({shape}){hint}")


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
    ÷10 at 50% and 75% of the epochs (He et al. 2016, §4.2)."""
    total = config.epochs * steps_per_epoch
    warmup = min(round(config.warmup_epochs * steps_per_epoch), total - 1)
    if step < warmup:
        return config.lr * (0.01 + 0.99 * step / warmup)
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
    epoch = step // steps_per_epoch
    return config.lr * 0.1 ** sum(epoch >= int(config.epochs * m) for m in (0.5, 0.75))


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, num_classes: int, device: torch.device,
             ctx: DistContext = DistContext()) -> EvalResult:
    """Loss, top-1, top-5 and confusion matrix over a (possibly sharded) test set.

    Always in float32, on a GPU without autocast and without TF32 convolutions, so the accuracy a
    run reports is that of its float32 weights, the figure `cnnatlas eval` gives on any device.
    """
    model.eval()
    k = min(5, num_classes)
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
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos, "has_gauss": has_gauss,
                  "cached_gaussian": cached},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 1_009 + rank) % (2**63)


def data_label(spec: str) -> str:
    """digits, fashion-mnist, or the folder's name: the DATA of runs/MODEL-DATA."""
    if spec in ("digits", "fashion-mnist") or spec.startswith("fashion-mnist:"):
        return spec.split(":", 1)[0]
    return Path(spec).resolve().name or "data"


def resolve_run_dir(config: TrainConfig, resume: bool | str = False) -> Path:
    """--out, or runs/MODEL-DATA (a new -2, -3 … for a new run; the newest for --resume)."""
    if config.out:
        out = Path(config.out)
        if not resume and ((out / "checkpoints").is_dir() or (out / "metrics.json").exists()):
            raise RunExistsError(f"{out} already holds a run; continue it with --resume, or choose another --out")
        return out
    base = RUNS_DIR / f"{config.model}-{data_label(config.data)}"
    taken = [base] + [base.with_name(f"{base.name}-{i}") for i in range(2, 1000)]
    existing = [p for p in taken if p.exists()]
    if resume:
        if not existing:
            raise RunExistsError(f"nothing to resume: no {base} folder (give the run's folder with --out)")
        return existing[-1]
    return next(p for p in taken if not p.exists())


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]epoch {task.fields[epoch]}"),
        BarColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:6.2%}  {task.fields[ips]:>7,.0f} img/s"),
        TextColumn("[dim]left"),
        TimeRemainingColumn(),
        console=console,
    )


# -- the loop -------------------------------------------------------------------------------------


def train(config: TrainConfig, resume: bool | str = False, data: DataSplits | None = None,
          model: nn.Module | None = None, console: Console | None = None) -> dict[str, Any]:
    """Train `config.model` on `config.data` and return the final metrics (also in RUN/metrics.json).

    resume: False; True to continue the run in `config.out` from its newest checkpoint; or the path
    of one checkpoint folder. `data` and `model` replace the ones the config names (API use).
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


def _train(config: TrainConfig, resume: bool | str, data: DataSplits | None, model: nn.Module | None,
           console: Console | None, device: torch.device, ctx: DistContext) -> dict[str, Any]:
    main = ctx.is_main
    show = main and not config.quiet
    console = console or Console()
    if config.batch_size % ctx.world_size:
        raise InvalidArgumentError(f"batch size {config.batch_size} does not split evenly over "
                                   f"{ctx.world_size} processes (it is the global batch)")
    per_rank_batch = config.batch_size // ctx.world_size
    on_gpu = device.type == "cuda"
    amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if on_gpu else None

    # data: each process reads its own shard of the training set and of the test set
    if data is None:
        data = load_dataset(config.data, choose_image_size(config), config.augment, dataset_channels(config.data))
    info = data.info
    sampler = DistributedSampler(data.train, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                 seed=config.seed)
    workers = config.workers if config.workers is not None else (4 if on_gpu else 0)
    shard = math.ceil(len(data.train) / ctx.world_size)
    train_loader = DataLoader(data.train, batch_size=per_rank_batch, sampler=sampler, num_workers=workers,
                              pin_memory=on_gpu, drop_last=shard > per_rank_batch)
    test_shard = Subset(data.test, range(ctx.rank, len(data.test), ctx.world_size))
    test_loader = DataLoader(test_shard, batch_size=2 * per_rank_batch, num_workers=workers, pin_memory=on_gpu)
    steps_per_epoch = len(train_loader)

    # model, optimiser, gradient scaler (fp16 only); same initial weights on every rank
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed % 2**32)
    model = model if model is not None else build_model(config, info)
    check_model_fits_data(model, config, data.train[0][0])
    channels_last = on_gpu and getattr(model, "dims", 2) == 2  # NHWC suits tensor cores; 2-D images only
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    optimizer = make_optimizer(model, config)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    run_dir, problem = None, None
    if main:  # rank 0 chooses the folder; a refusal is raised on every rank, so none waits forever
        try:
            run_dir = resolve_run_dir(config, resume)
        except RunExistsError as err:
            problem = str(err)
    run_dir, problem = broadcast_object((run_dir, problem), ctx)
    if problem:
        raise RunExistsError(problem)
    start_epoch, step = 1, 0
    if resume:
        ckpt = load_latest_checkpoint(run_dir) if resume is True else load_checkpoint(resume)
        model.load_state_dict(ckpt.weights)
        optimizer.load_state_dict(ckpt.state["optimizer"])
        scaler.load_state_dict(ckpt.state["scaler"])
        set_rng_state(ckpt.state["rng"])
        start_epoch, step = ckpt.epoch + 1, int(ckpt.meta["step"])
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        clean_partial_checkpoints(run_dir)
        write_json_atomic(run_dir / "config.json", {"train": config.to_json(), "data": info.to_json(),
                                                    "data_origin": data_origin(config.data, data),
                                                    "world_size": ctx.world_size, "cnnatlas": __version__})
        _keep_history(run_dir / "metrics.jsonl", start_epoch - 1)
    net = DistributedDataParallel(model, device_ids=[device.index] if on_gpu else None) if ctx.enabled else model

    if show:
        console.print(f"[bold]{config.model}[/] on {data.source}; {info.in_channels}×{info.image_size}×"
                      f"{info.image_size}, augment {','.join(info.augment) or 'none'}")
        console.print(f"{config.epochs} epochs, batch {config.batch_size}, {config.optimizer} lr {config.lr:g} "
                      f"{config.schedule}, {device.type} × {ctx.world_size} process(es)"
                      + (f", amp {str(amp_dtype)[6:]}" if on_gpu else "") + (", channels_last" if channels_last else "")
                      + f" → {run_dir}"
                      + (f" (resumed after epoch {start_epoch - 1})" if resume else ""))

    progress = _progress(console) if show else None
    task = None
    if progress:
        progress.start()
        task = progress.add_task("train", total=config.epochs * steps_per_epoch, completed=step,
                                 epoch=f"{start_epoch}/{config.epochs}", loss=0.0, acc=0.0, ips=0.0)
    last: dict[str, Any] = {}
    try:
        for epoch in range(start_epoch, config.epochs + 1):
            # -- one epoch of training --
            net.train()
            sampler.set_epoch(epoch)
            torch.manual_seed(epoch_seed(config.seed, epoch, ctx.rank))
            loss_sum = torch.zeros((), device=device, dtype=torch.float64)
            correct = torch.zeros((), device=device, dtype=torch.long)
            seen = 0
            start = time.perf_counter()
            for i, (x, y) in enumerate(train_loader, 1):
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(step, steps_per_epoch, config)
                with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=on_gpu):
                    logits = net(x)
                    loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if config.grad_clip:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                step += 1
                loss_sum += loss.detach() * len(y)
                correct += (logits.detach().argmax(1) == y).sum()
                seen += len(y)
                if i % LOG_EVERY == 0 or i == steps_per_epoch:
                    mean_loss = loss_sum.item() / seen
                    _check_finite(mean_loss, epoch, i, run_dir, ctx, device)
                    if progress:
                        progress.update(task, completed=step, epoch=f"{epoch}/{config.epochs}", loss=mean_loss,
                                        acc=correct.item() / seen,
                                        ips=seen * ctx.world_size / (time.perf_counter() - start))
            train_seconds = time.perf_counter() - start

            # -- end of epoch: totals over processes, test set, metrics, checkpoint --
            totals = all_reduce_sum(torch.stack([loss_sum, correct.double(), torch.tensor(float(seen), device=device,
                                                 dtype=torch.float64)]), ctx).tolist()
            train_loss, train_acc = totals[0] / totals[2], totals[1] / totals[2]
            _check_finite(train_loss, epoch, steps_per_epoch, run_dir, ctx, device)
            weights_ok = bool(torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all())
            _check_finite(0.0 if weights_ok else float("nan"), epoch, steps_per_epoch, run_dir, ctx, device, "a weight")
            result = evaluate(net, test_loader, info.num_classes, device, ctx)
            last = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], "train_loss": train_loss,
                    "train_acc": train_acc, "test_loss": result.loss, "test_acc": result.acc, "test_top5": result.top5,
                    "train_seconds": train_seconds, "seconds": time.perf_counter() - start,
                    "images_per_s": totals[2] / train_seconds}
            if main:
                with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
                    f.write(json.dumps(last) + "\n")
                save_checkpoint(run_dir, epoch, model.state_dict(),
                                {"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "rng": rng_state()},
                                {"step": step, "model": config.model, "data": info.name,
                                 "metrics": {k: last[k] for k in ("train_loss", "test_acc", "test_top5")}},
                                keep=config.keep_checkpoints)
            if progress:
                progress.console.print(
                    f"epoch {epoch:>3}/{config.epochs}  loss {train_loss:.4f}  train {train_acc:6.1%}  "
                    f"test {result.acc:6.1%}  top-5 {result.top5:6.1%}  {last['images_per_s']:>6,.0f} img/s  "
                    f"{last['seconds']:.1f} s")
            barrier(ctx)
    finally:
        if progress:
            progress.stop()

    # -- the run's result --
    history = _read_history(run_dir / "metrics.jsonl") if main else []
    if not last:  # resumed a finished run: evaluate what is there
        result = evaluate(net, test_loader, info.num_classes, device, ctx)
        last = {"train_loss": history[-1]["train_loss"] if history else float("nan"),
                "test_acc": result.acc, "test_top5": result.top5}
    train_seconds = sum(h["train_seconds"] for h in history)
    images = sum(h["images_per_s"] * h["train_seconds"] for h in history)
    metrics = {"model": config.model, "data": info.name, "test_acc": last["test_acc"], "test_top5": last["test_top5"],
               "train_loss": last["train_loss"], "epochs": config.epochs,
               "seconds": sum(h["seconds"] for h in history),
               "images_per_s": images / train_seconds if train_seconds else 0.0,
               "world_size": ctx.world_size, "device": device.type, "run_dir": str(run_dir)}
    if main:
        save_weights(run_dir / ".model.safetensors.tmp", model.state_dict(), {"format": "cnnatlas-model"})
        os.replace(run_dir / ".model.safetensors.tmp", run_dir / "model.safetensors")
        write_json_atomic(run_dir / "metrics.json", metrics)
        if show:
            console.print(f"[bold green]test accuracy {metrics['test_acc']:.2%}[/] (top-5 {metrics['test_top5']:.2%}) "
                          f"after {config.epochs} epochs, {metrics['seconds']:.1f} s, "
                          f"{metrics['images_per_s']:,.0f} img/s → {run_dir}")
    barrier(ctx)
    return metrics


def _check_finite(value: float, epoch: int, batch: int, run_dir: Path, ctx: DistContext,
                  device: torch.device, what: str = "the loss") -> None:
    """Stop every process if any process saw a NaN or infinite loss; nothing is saved."""
    bad = all_reduce_sum(torch.tensor([0.0 if math.isfinite(value) else 1.0], device=device), ctx)
    if bad.item():
        from .checkpoint import list_checkpoints

        kept = list_checkpoints(run_dir)
        where = (f"the last good checkpoint is {kept[-1]}; resume from it with a lower --lr or with --grad-clip"
                 if kept else "no checkpoint was written before it")
        raise TrainingDivergedError(f"{what} became {value if not math.isfinite(value) else 'NaN'} in epoch "
                                    f"{epoch} (batch {batch}); training stopped, the damaged weights were not "
                                    f"saved; {where}")


def _read_history(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _keep_history(path: Path, up_to_epoch: int) -> None:
    """Keep the metrics lines of the epochs a resumed run keeps (drop those of a lost epoch)."""
    kept = [h for h in _read_history(path) if h["epoch"] <= up_to_epoch]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(h) + "\n" for h in kept), encoding="utf-8")
    os.replace(tmp, path)
