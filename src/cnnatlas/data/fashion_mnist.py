"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747): 70,000 grey 28×28 images of
clothing in 10 classes, the official split of 60,000 training and 10,000 test images, stored in
MNIST's IDX format, gzipped or not. `--data fashion-mnist` reads $CNNATLAS_FASHION_MNIST if set,
else Debian's `dataset-fashion-mnist` package (/usr/share/datasets/fashion-mnist/) where installed,
else DATA/fashion-mnist in the data folder (`cnnatlas.download.data_dir()`), downloading the four
official files there the first time (MD5s checked, `cnnatlas.data.fetch`); `fashion-mnist:DIR`
reads them from any folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..download import data_dir
from .base import DatasetError, DataSplits, fit_to_size, image_splits
from .fetch import FASHION_MNIST_FOLDER, fetch_fashion_mnist
from .idx import read_idx

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_MNIST_AUGMENT = ("crop", "flip")
IDX_FILES = {  # split → (images, labels), as named by MNIST and Fashion-MNIST
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
OFFICIAL_SIZES = {"train": 60_000, "test": 10_000}


def install_hint() -> str:
    """Where a user can get Fashion-MNIST (the end of every missing-data message)."""
    return (
        f"give a folder holding the four IDX files with --data fashion-mnist:DIR, or use --data fashion-mnist "
        f"(with $CNNATLAS_FASHION_MNIST unset) to download them into {data_dir()}, or install Debian's "
        f"package: apt-get install dataset-fashion-mnist"
    )


def default_fashion_mnist_dir() -> Path:
    """Where `--data fashion-mnist` looks (downloading nothing): $CNNATLAS_FASHION_MNIST if set; else
    Debian's package folder where it holds the four files; else DATA/fashion-mnist in the data folder."""
    if os.environ.get("CNNATLAS_FASHION_MNIST"):
        return Path(os.environ["CNNATLAS_FASHION_MNIST"]).expanduser()
    if has_idx_files(FASHION_MNIST_DIR):
        return FASHION_MNIST_DIR
    return data_dir() / FASHION_MNIST_FOLDER


def find_fashion_mnist(root: str | Path | None = None) -> Path:
    """`root` if given; else `default_fashion_mnist_dir()`, with the four official files downloaded
    into the data folder when neither $CNNATLAS_FASHION_MNIST nor a complete copy is there."""
    if root is not None:
        return Path(root)
    folder = default_fashion_mnist_dir()
    if os.environ.get("CNNATLAS_FASHION_MNIST") or has_idx_files(folder):
        return folder
    return fetch_fashion_mnist()


def find_idx_file(folder: Path, stem: str) -> Path | None:
    """`stem`, `stem.gz`, or MNIST's dotted variant (train-images.idx3-ubyte) in `folder`."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem + ".gz", stem, dotted + ".gz", dotted):
        if (folder / name).is_file():
            return folder / name
    return None


def has_idx_files(folder: str | Path) -> bool:
    folder = Path(folder)
    return folder.is_dir() and all(find_idx_file(folder, stem) for pair in IDX_FILES.values() for stem in pair)


def read_idx_split(
    folder: Path, split: str, num_classes: int = 10, expected_count: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One split's images (N, 28, 28 uint8) and labels (N,), checked against each other."""
    stems = IDX_FILES[split]
    paths = [find_idx_file(folder, stem) for stem in stems]
    for stem, path in zip(stems, paths):
        if path is None:
            raise DatasetError(
                f"{folder}: no {stem} (or {stem}.gz) file — Fashion-MNIST needs the four files "
                f"{', '.join(s for pair in IDX_FILES.values() for s in pair)}"
            )
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.dtype != torch.uint8 or images.dim() != 3:
        raise DatasetError(
            f"{paths[0]}: expected unsigned-byte images of 3 dimensions (N, rows, columns); "
            f"got {images.dtype} with {images.dim()} dimensions {tuple(images.shape)}"
        )
    if tuple(images.shape[1:]) != (28, 28):
        raise DatasetError(f"{paths[0]}: expected 28×28 images; got {images.shape[1]}×{images.shape[2]}")
    if labels.dtype != torch.uint8 or labels.dim() != 1:
        raise DatasetError(
            f"{paths[1]}: expected unsigned-byte labels of 1 dimension; got {labels.dtype} "
            f"with shape {tuple(labels.shape)}"
        )
    if labels.shape[0] != images.shape[0]:
        raise DatasetError(
            f"{paths[1]}: {labels.shape[0]:,} labels for the {images.shape[0]:,} images of {paths[0].name}"
        )
    if expected_count is not None and images.shape[0] != expected_count:
        raise DatasetError(f"{paths[0]}: {images.shape[0]:,} images; the official {split} split has {expected_count:,}")
    bad = (labels >= num_classes).nonzero()
    if len(bad):
        i = int(bad[0])
        raise DatasetError(
            f"{paths[1]}: label {int(labels[i])} at index {i} is out of range 0–{num_classes - 1} "
            f"({len(bad):,} such labels)"
        )
    return images, labels.long()


def load_fashion_mnist_splits(
    root: str | Path | None = None, image_size: int = 32, augment: str | tuple[str, ...] | None = "auto"
) -> DataSplits:
    """Fashion-MNIST's official 60k/10k split at `image_size`, one channel."""
    folder = find_fashion_mnist(root)
    if not folder.is_dir():
        raise DatasetError(f"Fashion-MNIST not found: {folder} is not a folder; {install_hint()}")
    return load_idx_folder(folder, "fashion-mnist", FASHION_MNIST_CLASSES, image_size, augment, official=True)


def load_idx_folder(
    folder: str | Path,
    name: str = "idx",
    classes: tuple[str, ...] = tuple("0123456789"),
    image_size: int = 32,
    augment: str | tuple[str, ...] | None = "auto",
    official: bool = False,
) -> DataSplits:
    """Any folder of the four MNIST-format IDX files (MNIST itself, KMNIST, Fashion-MNIST).
    `official=True` also checks the 60,000/10,000 split sizes."""
    folder = Path(folder)
    sizes = OFFICIAL_SIZES if official else {"train": None, "test": None}
    x_train, y_train = read_idx_split(folder, "train", len(classes), sizes["train"])
    x_test, y_test = read_idx_split(folder, "test", len(classes), sizes["test"])
    # fitted once, kept as bytes: 70,000 × 32 × 32 is 72 MB
    fit = lambda x: fit_to_size(x.unsqueeze(1).float(), image_size).round_().clamp_(0, 255).to(torch.uint8)  # noqa: E731
    x_train, x_test = fit(x_train), fit(x_test)
    return image_splits(
        name,
        classes,
        (x_train, y_train),
        (x_test, y_test),
        28,
        image_size,
        augment,
        FASHION_MNIST_AUGMENT,
        source=f"{name}, IDX files in {folder} ({len(y_train):,} train / {len(y_test):,} test)",
        folder=str(folder.resolve()),
    )
