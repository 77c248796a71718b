"""What every dataset of cnnatlas shares: the description a trained run keeps (`DataInfo`), the
train/test pair (`DataSplits`), an in-memory image dataset, and the augmentations.

Images go through one pipeline: native size → fitted to the model's input (`fit_to_size`: a
centred zero pad when the model is at most 4 pixels larger — 28×28 Fashion-MNIST into LeNet-5's
32×32, as LeCun et al. 1998 padded MNIST — else a bilinear resize) → augmentation on the training
set only → per-channel normalisation (x − mean) / std with the training set's statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset
from torchvision.transforms import v2

from ..errors import CnnAtlasError

AUGMENTATIONS = ("crop", "flip", "jitter")


class DatasetError(CnnAtlasError, ValueError):
    """A dataset that is missing, malformed or does not fit what was asked of it."""


@dataclass(frozen=True)
class DataInfo:
    """Everything needed to feed a new image to a model trained on this dataset (kept in a run)."""

    name: str
    classes: tuple[str, ...]
    in_channels: int
    native_size: int  # side of the stored images (8 for the digits, 28 for Fashion-MNIST)
    image_size: int  # side of what the model sees
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: tuple[str, ...] = ()
    task: str = "classification"  # or "segmentation": a label per pixel, (H, W) int64 masks
    frames: int | None = None  # a clip's frames for video data (None: images or sound, or a run before it was kept)
    sample_rate: int | None = None  # samples per second for sound (None: images or clips, or a run before it was kept)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> DataInfo:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def prepare(self, image: torch.Tensor) -> torch.Tensor:
        """A float image (C, H, W) in [0, 1] of any size → the normalised model input, as the test
        set was prepared: resized to the native size, fitted to the input size, normalised."""
        if image.shape[-2:] != (self.native_size, self.native_size):
            image = F.interpolate(
                image[None], size=(self.native_size,) * 2, mode="bilinear", antialias=True, align_corners=False
            )[0]
        image = fit_to_size(image[None], self.image_size)[0]
        return normalise(image, self.mean, self.std)


@dataclass(frozen=True)
class DataSplits:
    """A training and a test set (standard torch Datasets yielding (image, label)) and their description."""

    train: Dataset
    test: Dataset
    info: DataInfo
    source: str  # where the data came from, for people
    folder: str | None = None  # the folder it was read from (absolute), which a run records; None: built in


def fit_to_size(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, h, w) float images → (N, C, size, size): centred zero pad for a small enlargement
    (≤ 4 pixels), bilinear resize otherwise."""
    h, w = images.shape[-2:]
    if (h, w) == (size, size):
        return images
    if h == w and 0 < size - h <= 4:
        before = (size - h) // 2
        return F.pad(images, (before, size - h - before, before, size - h - before))
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=size < h, align_corners=False)


def normalise(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    shape = (-1, 1, 1)
    return (x - torch.tensor(mean).view(shape)) / torch.tensor(std).view(shape)


def parse_augment(spec: str | tuple[str, ...] | list[str] | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """'auto' → the dataset's default; 'none' → nothing; 'crop,flip' → those, validated."""
    if spec is None or spec == "auto":
        return default
    if spec == "none" or spec == ():
        return ()
    names = tuple(s.strip() for s in spec.split(",")) if isinstance(spec, str) else tuple(spec)
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise DatasetError(
            f"unknown augmentation {unknown[0]!r}; choose 'auto', 'none' or a comma-separated "
            f"list of {', '.join(AUGMENTATIONS)}"
        )
    return names


def build_augmentation(names: tuple[str, ...], image_size: int, in_channels: int) -> Callable | None:
    """torchvision.transforms.v2 augmentation for float images in [0, 1] (before normalisation).

    crop: random crop of the image padded by size/8 on each side (4 px at 32×32, the CIFAR recipe
    of He et al. 2016 §4.2); flip: horizontal flip with p = 0.5; jitter: brightness, contrast (and
    for colour images saturation) ±0.4 — AlexNet's crops, flips and colour changes (Krizhevsky et
    al. 2012 §4.1), in torchvision's form.
    """
    steps: list = []
    if "crop" in names:
        steps.append(v2.RandomCrop(image_size, padding=max(1, image_size // 8)))
    if "flip" in names:
        steps.append(v2.RandomHorizontalFlip())
    if "jitter" in names:
        colour = in_channels == 3
        steps.append(v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4 if colour else None))
    return v2.Compose(steps) if steps else None


class TensorImageDataset(Dataset):
    """Images held in memory as one (N, C, H, W) tensor (uint8 0–255 or float 0–1) already fitted
    to the model's size; each item is augmented (optionally) and normalised when it is read."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        augment: Callable | None = None,
    ) -> None:
        if images.shape[0] != labels.shape[0]:
            raise DatasetError(f"{images.shape[0]} images but {labels.shape[0]} labels")
        self.images = images
        self.labels = labels.long()
        self.scale = 255.0 if images.dtype == torch.uint8 else 1.0
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)
        self.augment = augment

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = self.images[index].float() / self.scale
        if self.augment is not None:
            x = self.augment(x)
        return (x - self.mean) / self.std, int(self.labels[index])


def _held_labels(dataset: Dataset) -> torch.Tensor | None:
    """The labels a dataset keeps as a whole (`masks`, `labels` or `targets`; a Subset's, of its parent's
    at its indices), or None."""
    if isinstance(dataset, Subset):
        parent = _held_labels(dataset.dataset)
        return None if parent is None else parent[torch.as_tensor(dataset.indices, dtype=torch.long)]
    held = next((getattr(dataset, k) for k in ("masks", "labels", "targets") if hasattr(dataset, k)), None)
    if isinstance(held, list) and all(isinstance(v, int) for v in held):  # torchvision's ImageFolder.targets
        held = torch.tensor(held, dtype=torch.long)
    return held if isinstance(held, torch.Tensor) else None


def label_counts(dataset: Dataset, num_classes: int) -> torch.Tensor:
    """How often each class occurs among a dataset's labels (num_classes,) int64: one count per image for
    a classifier's labels, one per pixel for segmentation masks. Read from the dataset's `masks`,
    `labels` or `targets` where it keeps them, else item by item."""
    held = _held_labels(dataset)
    if held is None:
        held = torch.cat([torch.as_tensor(dataset[i][1]).reshape(-1) for i in range(len(dataset))])
    held = held.reshape(-1).long()
    if held.numel() and (held.min() < 0 or held.max() >= num_classes):
        raise DatasetError(
            f"labels must be class indices 0–{num_classes - 1}; got values {int(held.min())}–{int(held.max())}"
        )
    return torch.bincount(held, minlength=num_classes)


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation (N − 1 in the denominator) of (N, C, H, W) images scaled
    to [0, 1], summed in float64 over chunks of images, so a large uint8 set is never copied whole as floats."""
    scale = 255.0 if images.dtype == torch.uint8 else 1.0
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    for chunk in images.split(4096):
        x = chunk.to(torch.float64).div_(scale).transpose(0, 1).reshape(channels, -1)
        total += x.sum(1)
        squares += x.square().sum(1)
    n = images.numel() // channels
    mean = total / n
    std = ((squares - n * mean.square()).clamp_min(0) / max(n - 1, 1)).sqrt()
    return tuple(round(v, 4) for v in mean.tolist()), tuple(round(v, 4) for v in std.tolist())


def image_splits(
    name: str,
    classes: tuple[str, ...],
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    native_size: int,
    image_size: int,
    augment: str | tuple[str, ...] | None,
    default_augment: tuple[str, ...],
    source: str,
    folder: str | None = None,
) -> DataSplits:
    """In-memory (images, labels) train and test sets, images (N, C, image_size, image_size) already fitted,
    normalised with the training set's per-channel statistics; `augment` ("auto": `default_augment`) applies to
    the training set only."""
    (x_train, y_train), (x_test, y_test) = train, test
    channels = x_train.shape[1]
    mean, std = channel_stats(x_train)
    names = parse_augment(augment, default_augment)
    return DataSplits(
        train=TensorImageDataset(x_train, y_train, mean, std, build_augmentation(names, image_size, channels)),
        test=TensorImageDataset(x_test, y_test, mean, std),
        info=DataInfo(name, tuple(classes), channels, native_size, image_size, mean, std, names),
        source=source,
        folder=folder,
    )
