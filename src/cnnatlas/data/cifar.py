"""CIFAR-10 (Krizhevsky 2009, "Learning Multiple Layers of Features from Tiny Images"): 60,000 colour
32×32 images in 10 classes, the official split of 50,000 training and 10,000 test images — what the
CIFAR ResNets of He et al. 2016 §4.2 (resnet20 … resnet110 in the zoo) were designed for.

Read from the authors' *binary* distribution only (https://www.cs.toronto.edu/~kriz/cifar.html,
"CIFAR-10 binary version"): data_batch_1.bin … data_batch_5.bin (training), test_batch.bin (test),
each a run of 3,073-byte records — one label byte (0–9), then 1,024 red, 1,024 green and 1,024 blue
bytes, each channel's 32×32 pixels row by row — and batches.meta.txt, the class names one a line.
The pickled Python version is never read. `--data cifar10` uses DATA/cifar-10-batches-bin (the data
folder, `cnnatlas.download.data_dir()`), downloading the archive there once if it is missing;
`--data cifar10:DIR` reads the same files from DIR (or DIR/cifar-10-batches-bin).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..download import data_dir
from .base import DatasetError, DataSplits, fit_to_size, image_splits
from .fetch import CIFAR10_FOLDER, fetch_cifar10

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST = ("test_batch.bin",)
CIFAR10_AUGMENT = ("crop", "flip")  # He et al. 2016 §4.2: 4-pixel padding, random 32×32 crops, horizontal flips
RECORD = 1 + 3 * 32 * 32


def cifar10_dir(root: str | Path | None = None) -> Path:
    """DIR (or DIR/cifar-10-batches-bin) when given; else DATA/cifar-10-batches-bin, downloaded there if missing."""
    if root is None:
        return fetch_cifar10()
    folder = Path(root)
    if (folder / CIFAR10_FOLDER).is_dir():
        folder = folder / CIFAR10_FOLDER
    if not folder.is_dir():
        raise DatasetError(
            f"CIFAR-10 not found: {folder} is not a folder; give the folder of the binary batches "
            f"({', '.join(CIFAR10_TRAIN[:1])} … test_batch.bin) with --data cifar10:DIR, or use "
            f"--data cifar10 to download them into {data_dir()}"
        )
    return folder


def read_cifar_batch(path: Path, num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """One binary batch file → images (N, 3, 32, 32) uint8 and labels (N,)."""
    if not path.is_file():
        raise DatasetError(
            f"{path}: file not found — CIFAR-10's binary version has {', '.join(CIFAR10_TRAIN + CIFAR10_TEST)}"
        )
    raw = path.read_bytes()
    if not raw or len(raw) % RECORD:
        raise DatasetError(
            f"{path}: {len(raw):,} bytes is not a whole number of {RECORD:,}-byte records "
            f"(1 label byte + 3×32×32 pixel bytes)"
        )
    records = np.frombuffer(raw, np.uint8).reshape(-1, RECORD)
    labels = torch.from_numpy(records[:, 0].astype(np.int64))
    bad = (labels >= num_classes).nonzero()
    if len(bad):
        i = int(bad[0])
        raise DatasetError(f"{path}: label {int(labels[i])} of record {i} is out of range 0–{num_classes - 1}")
    images = torch.from_numpy(records[:, 1:].reshape(-1, 3, 32, 32).copy())
    return images, labels


def read_cifar_classes(folder: Path) -> tuple[str, ...]:
    """The class names of batches.meta.txt (one a line; blank lines ignored), or CIFAR-10's own if it is absent."""
    meta = folder / "batches.meta.txt"
    if not meta.is_file():
        return CIFAR10_CLASSES
    lines = meta.read_text(encoding="utf-8", errors="replace").splitlines()
    names = tuple(line.strip() for line in lines if line.strip())
    if len(names) != len(CIFAR10_CLASSES):
        raise DatasetError(f"{meta}: {len(names)} class names; CIFAR-10 has {len(CIFAR10_CLASSES)}")
    return names


def load_cifar10_splits(
    root: str | Path | None = None, image_size: int = 32, augment: str | tuple[str, ...] | None = "auto"
) -> DataSplits:
    """CIFAR-10's official split at `image_size` (32 natively), three channels, normalised with the
    training set's per-channel mean and standard deviation."""
    folder = cifar10_dir(root)
    classes = read_cifar_classes(folder)
    train = [read_cifar_batch(folder / name, len(classes)) for name in CIFAR10_TRAIN]
    test = [read_cifar_batch(folder / name, len(classes)) for name in CIFAR10_TEST]
    x_train, y_train = torch.cat([x for x, _ in train]), torch.cat([y for _, y in train])
    x_test, y_test = torch.cat([x for x, _ in test]), torch.cat([y for _, y in test])
    if image_size != 32:
        fit = lambda x: fit_to_size(x.float(), image_size).round_().clamp_(0, 255).to(torch.uint8)  # noqa: E731
        x_train, x_test = fit(x_train), fit(x_test)
    return image_splits(
        "cifar10",
        classes,
        (x_train, y_train),
        (x_test, y_test),
        32,
        image_size,
        augment,
        CIFAR10_AUGMENT,
        source=f"CIFAR-10 binary batches in {folder} ({len(y_train):,} train / {len(y_test):,} test)",
        folder=str(folder.resolve()),
    )


__all__ = ["CIFAR10_CLASSES", "cifar10_dir", "load_cifar10_splits", "read_cifar_batch"]
