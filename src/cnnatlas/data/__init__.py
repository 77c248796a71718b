"""Datasets for training, each a pair of standard `torch.utils.data` datasets.

`load_dataset(spec)` takes what `cnnatlas train --data` takes:

* `digits` — scikit-learn's 1,797 8×8 digits, stratified 80/20 (the embedded default);
* `fashion-mnist` — the official 60k/10k split from Debian's dataset-fashion-mnist
  (/usr/share/datasets/fashion-mnist, or $CNNATLAS_FASHION_MNIST); `fashion-mnist:DIR` reads the
  four IDX files from DIR instead;
* a path — a folder of the four MNIST-format IDX files, or an image folder (one sub-folder per class);
* `fsdd` — the Free Spoken Digit Dataset's waveforms, 1 s at 8 kHz, official split (../shared/data/fsdd,
  or $CNNATLAS_FSDD); `fsdd:DIR` reads the recordings from DIR;
* `moving-fashion-mnist` — 16-frame clips of a Fashion-MNIST item moving in one of four directions
  (the label); `moving-fashion-mnist:DIR` reads the IDX files from DIR.
"""

from __future__ import annotations

from pathlib import Path

from .base import AUGMENTATIONS, DataInfo, DataSplits, DatasetError, TensorImageDataset, build_augmentation, fit_to_size
from .digits import DIGITS_CLASSES, load_digits_splits
from .fashion_mnist import (FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, has_idx_files, load_fashion_mnist_splits,
                            load_idx_folder)
from .folder import load_folder_splits
from .fsdd import FSDD_CLASSES, load_fsdd_splits
from .moving_fashion import DIRECTIONS, load_moving_fashion_splits
from .idx import read_idx, write_idx

DATASETS = ("digits", "fashion-mnist")
PREFIXED = ("fashion-mnist", "fsdd", "moving-fashion-mnist")  # NAME or NAME:DIR


def dataset_kind(spec: str) -> str:
    """'digits', 'fashion-mnist', 'fsdd', 'moving-fashion-mnist', 'idx' (a folder of IDX files) or 'folder'
    (an image folder)."""
    if spec in DATASETS:
        return spec
    for name in PREFIXED:
        if spec == name or spec.startswith(name + ":"):
            return name
    if has_idx_files(spec):
        return "idx"
    if Path(spec).is_dir():
        return "folder"
    raise DatasetError(f"unknown dataset {spec!r}: --data takes digits, fashion-mnist, fashion-mnist:DIR, fsdd, fsdd:DIR, "
                       f"moving-fashion-mnist, moving-fashion-mnist:DIR, "
                       f"or an existing folder (of IDX files, or of images with one sub-folder per class)")


def dataset_channels(spec: str) -> int:
    """Channels of the images a dataset yields (1 for digits and IDX files, 3 for image folders)."""
    return 3 if dataset_kind(spec) == "folder" else 1


def load_dataset(spec: str = "digits", image_size: int = 32, augment: str | tuple[str, ...] | None = "auto",
                 in_channels: int | None = None) -> DataSplits:
    """Train and test sets named by `spec` (see the module docstring), images `image_size` square.

    `augment`: 'auto' (the dataset's default), 'none', or a comma list of crop, flip, jitter.
    `in_channels` only matters for image folders (3 = RGB, 1 = grey).
    """
    kind = dataset_kind(spec)
    if kind == "digits":
        return load_digits_splits(image_size, augment)
    if kind == "fashion-mnist":
        root = spec.split(":", 1)[1] if ":" in spec else None
        return load_fashion_mnist_splits(root, image_size, augment)
    if kind == "idx":
        return load_idx_folder(spec, image_size=image_size, augment=augment)
    if kind in ("fsdd", "moving-fashion-mnist"):
        root = spec.split(":", 1)[1] if ":" in spec else None
        if kind == "fsdd":
            return load_fsdd_splits(root, shift=augment != "none")
        return load_moving_fashion_splits(root, size=image_size)
    return load_folder_splits(spec, image_size, in_channels or 3, augment)


__all__ = [
    "AUGMENTATIONS",
    "DATASETS",
    "DIRECTIONS",
    "FSDD_CLASSES",
    "DIGITS_CLASSES",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "DataInfo",
    "DataSplits",
    "DatasetError",
    "TensorImageDataset",
    "build_augmentation",
    "dataset_channels",
    "dataset_kind",
    "fit_to_size",
    "load_dataset",
    "load_digits_splits",
    "load_fashion_mnist_splits",
    "load_folder_splits",
    "load_fsdd_splits",
    "load_moving_fashion_splits",
    "load_idx_folder",
    "read_idx",
    "write_idx",
]
