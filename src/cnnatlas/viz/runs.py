"""Pictures of a training run folder (written by `cnnatlas train`): loss and accuracy per epoch from
RUN/metrics.jsonl, and the confusion matrix of the run's weights on its test set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..train import CheckpointError
from ..train import read_history as train_history
from ..train.folder import is_run_folder
from .common import new_figure, save_figure, set_title


def _run_dir(run_dir: str | Path) -> Path:
    path = Path(run_dir)
    if not is_run_folder(path):
        raise CheckpointError(
            f"{run_dir}: not a training run folder (no config.json; `cnnatlas train MODEL --out {run_dir}` makes one)"
        )
    return path


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The per-epoch lines of RUN/metrics.jsonl, in order."""
    path = _run_dir(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise CheckpointError(f"{run_dir}: no metrics.jsonl yet (no epoch has finished)")
    rows = train_history(path)  # one line for a damaged file (not UTF-8, not JSON, no epoch)
    if not rows:
        raise CheckpointError(f"{path}: empty (no epoch has finished)")
    return rows


def run_title(run_dir: str | Path) -> str:
    """'lenet5 on digits' from RUN/config.json."""
    try:
        saved = json.loads((_run_dir(run_dir) / "config.json").read_text(encoding="utf-8"))
        return f"{saved['train']['model']} on {saved['data']['name']}"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        return Path(run_dir).name


def plot_training(run_dir: str | Path, out: str | Path | None = None) -> Figure:
    """Training and test loss, and training, test top-1 and top-5 accuracy, against the epoch (a
    segmentation run: training and test pixel accuracy and test mean IoU)."""
    rows = read_history(run_dir)
    epochs = [r["epoch"] for r in rows]
    fig = new_figure(10, 4.2)
    loss_ax, acc_ax = fig.subplots(1, 2)
    for key, label, colour in (("train_loss", "training loss", "#1f77b4"), ("test_loss", "test loss", "#d62728")):
        if all(key in r for r in rows):
            loss_ax.plot(epochs, [r[key] for r in rows], marker="o", markersize=3, label=label, color=colour)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("cross-entropy loss")
    loss_ax.set_title("loss", fontsize=10)
    loss_ax.grid(alpha=0.3)
    loss_ax.legend(fontsize=8)
    dense = all("test_miou" in r for r in rows)  # a segmentation run: accuracy over pixels, and mean IoU
    series = (
        (
            ("train_acc", "training pixel accuracy", "#1f77b4"),
            ("test_acc", "test pixel accuracy", "#d62728"),
            ("test_miou", "test mean IoU", "#2ca02c"),
        )
        if dense
        else (
            ("train_acc", "training top-1", "#1f77b4"),
            ("test_acc", "test top-1", "#d62728"),
            ("test_top5", "test top-5", "#2ca02c"),
        )
    )
    for key, label, colour in series:
        if all(key in r for r in rows):
            acc_ax.plot(epochs, [100 * r[key] for r in rows], marker="o", markersize=3, label=label, color=colour)
    acc_ax.set_xlabel("epoch")
    last = rows[-1]
    if dense:
        acc_ax.set_ylabel("pixel accuracy, mean IoU (%)")
        acc_ax.set_title(f"last test mean IoU {100 * last['test_miou']:.2f}%", fontsize=10)
    else:
        acc_ax.set_ylabel("accuracy (%)")
        acc_ax.set_title(f"accuracy (last test top-1 {100 * last.get('test_acc', float('nan')):.2f}%)", fontsize=10)
    acc_ax.grid(alpha=0.3)
    acc_ax.legend(fontsize=8)
    for ax in (loss_ax, acc_ax):  # epochs are whole: one run of one epoch has the single tick 1
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    epochs_trained = f"{len(rows)} epoch{'s' if len(rows) != 1 else ''}"
    set_title(fig, f"{run_title(run_dir)}: {epochs_trained} ({Path(run_dir).name}/metrics.jsonl)")
    return save_figure(fig, out)


def run_confusion(run_dir: str | Path, data: str | None = None, checkpoint: str | Path | None = None) -> dict[str, Any]:
    """Evaluate the run's weights on its test set (or `data`'s) as `cnnatlas eval` does
    (`TrainedRun.evaluate`): accuracy, class names and the confusion matrix (rows: true class, columns:
    predicted); for a segmentation run, over every test pixel, with the mean IoU."""
    from ..train import load_run

    run = load_run(_run_dir(run_dir), checkpoint)
    result, splits = run.evaluate(data)
    dense = run.info.task == "segmentation"
    return {
        "model": run.config.model,
        "data": splits.info.name,
        "acc": result.acc,
        "count": result.count,
        "images": len(splits.test),
        "miou": result.miou if dense else None,
        "classes": list(run.info.classes),
        "confusion": result.confusion.numpy(),
    }


def plot_confusion(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    data: str | None = None,
    checkpoint: str | Path | None = None,
    result: dict[str, Any] | None = None,
) -> Figure:
    """The confusion matrix of a run on its test set: colour = share of the true class (recall),
    numbers = counts. `result` may be a `run_confusion` result already computed."""
    r = result if result is not None else run_confusion(run_dir, data, checkpoint)
    m = np.asarray(r["confusion"], dtype=np.int64)
    classes = r["classes"]
    n = len(classes)
    rows = m.sum(1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros(m.shape, dtype=float), where=rows > 0)
    side = max(4.5, 0.55 * n + 2.5)
    fig = new_figure(side + 1.2, side)
    ax = fig.add_subplot()
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, shrink=0.8, label="share of the true class")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    ax.text(
                        j,
                        i,
                        str(m[i, j]),
                        ha="center",
                        va="center",
                        fontsize=7 if n > 12 else 8,
                        color="white" if share[i, j] > 0.6 else "#222222",
                    )
    short = [c if len(c) <= 12 else c[:11] + "…" for c in classes]
    ax.set_xticks(
        range(n),
        short,
        rotation=45 if max(map(len, short)) > 2 else 0,
        ha="right" if max(map(len, short)) > 2 else "center",
        fontsize=8,
    )
    ax.set_yticks(range(n), short, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if r.get("miou") is not None:  # a segmentation run: every test pixel is one prediction
        score = (
            f"test mean IoU {100 * r['miou']:.2f}%, pixel accuracy {100 * r['acc']:.2f}% over {r['count']:,} pixels "
            f"of {r['images']:,} images"
        )
    else:
        score = f"test accuracy {100 * r['acc']:.2f}% over {r['count']:,} images"
    set_title(fig, f"{r['model']} on {r['data']}: {score}", fontsize=10)
    return save_figure(fig, out)
