"""Datasets for training, each a pair of standard `torch.utils.data` datasets.

`load_dataset(spec)` takes what `cnnatlas train --data` takes:

* `digits` — scikit-learn's 1,797 8×8 digits, stratified 80/20 (the embedded default);
* `fashion-mnist` — the official 60k/10k split: $CNNATLAS_FASHION_MNIST, else Debian's
  dataset-fashion-mnist (/usr/share/datasets/fashion-mnist) where installed, else the data folder,
  else the four official files downloaded there (MD5s checked);
* `cifar10` — the official 50k/10k split of CIFAR-10, 3×32×32, from the authors' binary batches in
  the data folder, downloaded there the first time (MD5 checked; never the pickled version);
* `fsdd` — the Free Spoken Digit Dataset's waveforms, 1 s at 8 kHz, official split: $CNNATLAS_FSDD,
  else the data folder, else upstream's release v1.0.10 downloaded there (every recording checked);
* `fashion-mnist-scenes` — segmentation: 64×64 scenes of Fashion-MNIST items, each pixel labelled
  with the class of the item on top or background (11 classes; `cnnatlas.data.scenes`);
* `moving-fashion-mnist` — 16-frame clips of a Fashion-MNIST item moving in one of four directions
  (the label), from Fashion-MNIST found as above;
* `NAME:DIR` (for each NAME above but digits) — the same dataset's files read from DIR, anywhere;
* a path — a folder of the four MNIST-format IDX files, or an image folder (one sub-folder per class).

The data folder is `cnnatlas.download.data_dir()`: `$CNNATLAS_DATA`, else the platform's user cache
folder (`~/.cache/cnnatlas` on Linux). Downloads go through `cnnatlas.download.download`
(`cnnatlas.data.fetch`). A training run records where its data came from (`data_origin`), so that
`cnnatlas eval RUN` finds it again on any machine that has it (`data_spec_for_eval`).
"""

from __future__ import annotations

from pathlib import Path

from .base import AUGMENTATIONS, DataInfo, DatasetError, DataSplits, TensorImageDataset, build_augmentation, fit_to_size
from .cifar import CIFAR10_CLASSES, load_cifar10_splits
from .digits import DIGITS_CLASSES, load_digits_splits
from .fashion_mnist import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    has_idx_files,
    load_fashion_mnist_splits,
    load_idx_folder,
)
from .folder import load_folder_splits
from .fsdd import FSDD_CLASSES, FSDD_SAMPLE_RATE, load_fsdd_splits
from .idx import read_idx, write_idx
from .moving_fashion import DIRECTIONS, MOVING_FASHION_FRAMES, load_moving_fashion_splits
from .scenes import SCENE_CLASSES, TRAIN_SCENES, load_scene_splits

DATASETS = ("digits", "fashion-mnist", "cifar10")
PREFIXED = ("fashion-mnist-scenes", "fashion-mnist", "cifar10", "fsdd", "moving-fashion-mnist")  # NAME or NAME:DIR


def dataset_kind(spec: str) -> str:
    """'digits', 'fashion-mnist', 'fashion-mnist-scenes', 'cifar10', 'fsdd', 'moving-fashion-mnist',
    'idx' (a folder of IDX files) or 'folder' (an image folder)."""
    if spec in DATASETS:
        return spec
    for name in PREFIXED:
        if spec == name or spec.startswith(name + ":"):
            return name
    if has_idx_files(spec):
        return "idx"
    if Path(spec).is_dir():
        return "folder"
    raise DatasetError(
        f"unknown dataset {spec!r}: --data takes digits, fashion-mnist, "
        f"fashion-mnist-scenes, cifar10, fsdd, moving-fashion-mnist, one of those as NAME:DIR "
        f"(its files in DIR), or an existing folder (of IDX files, or of images with one sub-folder per class)"
    )


def dataset_channels(spec: str) -> int:
    """Channels of the images a dataset yields (1 for digits and IDX files, 3 for CIFAR-10 and image folders)."""
    return 3 if dataset_kind(spec) in ("folder", "cifar10") else 1


def load_dataset(
    spec: str = "digits",
    image_size: int | None = None,
    augment: str | tuple[str, ...] | None = "auto",
    in_channels: int | None = None,
    train_scenes: int | None = None,
    sample_rate: int | None = None,
    mu_law: bool = False,
    frames: int | None = None,
) -> DataSplits:
    """Train and test sets named by `spec` (see the module docstring), images `image_size` square
    (default 32; the scenes' 64); for sound, windows of `image_size` samples (default one second).

    `augment`: 'auto' (the dataset's default), 'none', or a comma list of crop, flip, jitter.
    `in_channels` only matters for image folders (3 = RGB, 1 = grey).
    `train_scenes`: how many training scenes `fashion-mnist-scenes` draws (None: its default, 10,000).
    `sample_rate` and `mu_law`: `fsdd`'s recordings at that rate (default 8 kHz), μ-law companded.
    `frames`: the frames of a `moving-fashion-mnist` clip (None: its default, MOVING_FASHION_FRAMES).
    """
    kind = dataset_kind(spec)
    if train_scenes is not None and kind != "fashion-mnist-scenes":
        raise DatasetError(
            f"train_scenes={train_scenes!r} is for --data fashion-mnist-scenes (the number of scenes drawn); "
            f"got --data {spec}"
        )
    if (sample_rate is not None or mu_law) and kind != "fsdd":
        said = f"sample_rate={sample_rate!r}" if sample_rate is not None else "mu_law=True"
        raise DatasetError(f"{said} is for --data fsdd (its recordings); got --data {spec}")
    if frames is not None and kind != "moving-fashion-mnist":
        raise DatasetError(f"frames={frames!r} is for --data moving-fashion-mnist (its clips); got --data {spec}")
    image_size = image_size or own_input_size(spec, sample_rate) or 32
    if kind == "fsdd":
        return load_fsdd_splits(
            dataset_root(spec),
            image_size,
            shift=augment != "none",
            sample_rate=sample_rate or FSDD_SAMPLE_RATE,
            mu_law=mu_law,
        )
    if kind == "digits":
        return load_digits_splits(image_size, augment)
    root = dataset_root(spec)
    if kind == "fashion-mnist":
        return load_fashion_mnist_splits(root, image_size, augment)
    if kind == "cifar10":
        return load_cifar10_splits(root, image_size, augment)
    if kind == "idx":
        return load_idx_folder(spec, image_size=image_size, augment=augment)
    if kind == "moving-fashion-mnist":
        return load_moving_fashion_splits(root, size=image_size, frames=frames or MOVING_FASHION_FRAMES)
    if kind == "fashion-mnist-scenes":
        return load_scene_splits(root, size=image_size, train_scenes=train_scenes or TRAIN_SCENES)
    return load_folder_splits(spec, image_size, in_channels or 3, augment)


def own_input_size(spec: str, sample_rate: int | None = None) -> int | None:
    """The input size a dataset fixes itself: the scenes' 64×64 canvas, one second of sound at
    `sample_rate` (default FSDD's 8 kHz); None where the model's input decides."""
    kind = dataset_kind(spec)
    if kind == "fashion-mnist-scenes":
        return 64
    if kind == "fsdd":
        return sample_rate or FSDD_SAMPLE_RATE
    return None


def dataset_root(spec: str) -> str | None:
    """The folder a named dataset is read from, as NAME:DIR gives it; None for its own lookup."""
    return spec.split(":", 1)[1] if dataset_kind(spec) in PREFIXED and ":" in spec else None


def data_origin(spec: str, splits: DataSplits | None = None) -> dict:
    """Where a run's data came from, as the run records it: the --data it was given, the dataset's
    name (`dataset_kind`), the folder it was read from, absolute (None for the built-in digits), and,
    given the splits, their one-line description (`DataSplits.source`: sizes, seed)."""
    kind = dataset_kind(spec)
    folder = getattr(splits, "folder", None)
    if folder is None and kind in ("idx", "folder"):
        folder = spec
    origin = {"spec": spec, "name": kind, "folder": str(Path(folder).resolve()) if folder else None}
    return origin if splits is None else {**origin, "source": splits.source}


def data_spec_for_eval(origin: dict | None, trained_on: str) -> str:
    """The --data that reads a run's data on this machine: NAME:FOLDER (or FOLDER) where the recorded
    folder is here, else the named dataset's own lookup (and download); `trained_on` for a run that
    recorded nothing. A user's folder that is not here is an error naming it."""
    if not origin:
        return trained_on
    name, folder = origin.get("name"), origin.get("folder")
    if folder and Path(folder).is_dir():
        return f"{name}:{folder}" if name in PREFIXED else folder
    if name in DATASETS or name in PREFIXED:
        return name
    raise DatasetError(
        f"the run's data folder {folder} (--data {origin.get('spec', trained_on)}) is not on this "
        f"machine; give the test data with --data"
    )


__all__ = [
    "AUGMENTATIONS",
    "CIFAR10_CLASSES",
    "DATASETS",
    "DIRECTIONS",
    "FSDD_CLASSES",
    "DIGITS_CLASSES",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "SCENE_CLASSES",
    "DataInfo",
    "DataSplits",
    "DatasetError",
    "TensorImageDataset",
    "build_augmentation",
    "data_origin",
    "data_spec_for_eval",
    "dataset_channels",
    "dataset_kind",
    "dataset_root",
    "fit_to_size",
    "load_cifar10_splits",
    "load_dataset",
    "load_digits_splits",
    "load_fashion_mnist_splits",
    "load_folder_splits",
    "load_fsdd_splits",
    "load_moving_fashion_splits",
    "load_scene_splits",
    "load_idx_folder",
    "own_input_size",
    "read_idx",
    "write_idx",
]
