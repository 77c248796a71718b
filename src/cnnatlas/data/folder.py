"""A user's own images: one sub-folder per class, as torchvision's ImageFolder reads them.

Either ROOT/train/<class>/… and ROOT/test/<class>/… (or val/ for test), or ROOT/<class>/…, which
cnnatlas splits 80/20 stratified by class with a fixed seed. Images are decoded with PIL, resized
to the model's input, and normalised with mean = std = 0.5 per channel (no statistics pass).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Subset
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from .base import DataInfo, DatasetError, DataSplits, build_augmentation, parse_augment

FOLDER_AUGMENT = ("crop", "flip", "jitter")
FOLDER_SPLIT_SEED = 0
# torchvision's IMG_EXTENSIONS and GIF (its first frame, as PIL opens it)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")


SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # PIL's modes of 16-bit (and 32-bit int) grey


def eight_bit(image):
    """A PIL image with 16-bit grey pixels (a 16-bit PNG or TIFF) scaled to 8 bits, v → round(v / 257),
    values past 65535 taken as 65535; any other image as it is. PIL's own conversion to "L" or "RGB" clips
    such pixels at 255 instead, turning all but the darkest white."""
    from PIL import Image

    if image.mode not in SIXTEEN_BIT_MODES:
        return image
    pixels = np.asarray(image).astype(np.float64).clip(0, 65535) / 257
    return Image.fromarray(pixels.round().astype(np.uint8))  # 2-D uint8: mode "L"


class PilMode:
    """A PIL image of any mode (palette, 1-bit, CMYK, RGBA, 16-bit grey: `eight_bit`) as "RGB"
    (`channels` 3) or "L" (1), the two that convert to a uint8 tensor of that many channels."""

    def __init__(self, channels: int) -> None:
        self.mode = "L" if channels == 1 else "RGB"

    def __call__(self, image):
        return eight_bit(image).convert(self.mode)


def _pil_loader(path: str):
    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as f:
            image = Image.open(f)
            image.load()
            return image
    except (UnidentifiedImageError, OSError) as err:
        raise DatasetError(f"{path}: cannot be read as an image ({err})") from None


def _image_folder(root: Path, transform) -> ImageFolder:
    try:
        return ImageFolder(
            str(root),
            transform=transform,
            loader=_pil_loader,
            is_valid_file=lambda p: p.lower().endswith(IMAGE_EXTENSIONS),
        )
    except FileNotFoundError as err:
        raise DatasetError(_not_an_image_folder(root, err)) from None


def _images_below(folder: Path):
    """The image files in `folder` and its sub-folders, links followed (as ImageFolder finds them)."""
    walk = os.walk(folder, followlinks=True)
    return (name for _, _, names in walk for name in names if name.lower().endswith(IMAGE_EXTENSIONS))


def _not_an_image_folder(root: Path, err: Exception) -> str:
    """What ImageFolder found wanting in `root`, in words: no class folders, or which of them hold no image."""
    kinds = ", ".join(e[1:] for e in IMAGE_EXTENSIONS)
    if not root.is_dir():
        return f"{root}: no such folder; expected a folder of images with one sub-folder per class"
    classes = sorted(d for d in root.iterdir() if d.is_dir())
    if not classes:
        return f"{root}: no class folders; expected one sub-folder per class holding its images ({kinds})"
    empty = [d.name for d in classes if not any(_images_below(d))]
    if empty:
        return (
            f"{root}: the class folder(s) {', '.join(repr(e) for e in empty)} hold no image ({kinds}); "
            "expected images in every class folder (remove or fill it)"
        )
    return f"{root}: not an image folder ({err}); expected one sub-folder per class holding its images ({kinds})"


def folder_transform(image_size: int, in_channels: int, augment, mean, std) -> v2.Compose:
    steps = [
        PilMode(in_channels),
        v2.ToImage(),
        v2.Resize((image_size, image_size), antialias=True),
        v2.ToDtype(torch.float32, scale=True),
    ]
    if augment is not None:
        steps.append(augment)
    return v2.Compose([*steps, v2.Normalize(list(mean), list(std))])


def load_test_folder(root: str | Path, transform, in_channels: int = 3) -> tuple[ImageFolder, Path]:
    """A folder's test images as published weights are measured on them (`cnnatlas eval MODEL`): ROOT/test/
    or ROOT/val/ where there is one, else ROOT itself, whole (no split: a test folder such as ImageNet's
    val/); each image decoded to uint8 (RGB, or grey for `in_channels` 1, whatever its mode: `PilMode`) and
    passed through `transform`, the weights' own preprocessing. Returns the ImageFolder (its `classes`
    sorted by name, as torchvision's) and the folder read."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder; expected a folder of images with one sub-folder per class")
    test_dir = next((root / d for d in ("test", "val") if (root / d).is_dir()), root)
    return _image_folder(test_dir, v2.Compose([PilMode(in_channels), v2.PILToTensor(), transform])), test_dir


def load_folder_splits(
    root: str | Path, image_size: int = 32, in_channels: int = 3, augment: str | tuple[str, ...] | None = "auto"
) -> DataSplits:
    """Train and test sets from an image folder (see the module docstring for the layouts)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(
            f"{root}: no such folder (--data takes digits, fashion-mnist, cifar10, fsdd, NAME:DIR, "
            f"or a folder of images with one sub-folder per class)"
        )
    names = parse_augment(augment, FOLDER_AUGMENT)
    mean = std = (0.5,) * in_channels
    train_tf = folder_transform(image_size, in_channels, build_augmentation(names, image_size, in_channels), mean, std)
    test_tf = folder_transform(image_size, in_channels, None, mean, std)
    test_dir = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    if (root / "train").is_dir() and test_dir is not None:
        train, test = _image_folder(root / "train", train_tf), _image_folder(test_dir, test_tf)
        if train.classes != test.classes:
            raise DatasetError(
                f"{root}: train/ and {test_dir.name}/ have different class folders ({train.classes} vs {test.classes})"
            )
        classes, source = train.classes, f"image folder {root} (train/ and {test_dir.name}/)"
    else:
        from sklearn.model_selection import train_test_split

        full_train, full_test = _image_folder(root, train_tf), _image_folder(root, test_tf)
        targets = full_train.targets
        try:
            train_idx, test_idx = train_test_split(
                list(range(len(targets))), test_size=0.2, stratify=targets, random_state=FOLDER_SPLIT_SEED
            )
        except ValueError as err:
            raise DatasetError(
                f"{root}: cannot split 80/20 by class ({err}); give every class at least "
                f"2 images, or provide train/ and test/ folders"
            ) from None
        train, test = Subset(full_train, sorted(train_idx)), Subset(full_test, sorted(test_idx))
        classes, source = full_train.classes, f"image folder {root} (stratified 80/20 split, seed 0)"
    if len(classes) < 2:
        raise DatasetError(f"{root}: found {len(classes)} class folder; a classifier needs at least 2")
    info = DataInfo(f"folder:{root}", tuple(classes), in_channels, image_size, image_size, mean, std, names)
    return DataSplits(
        train, test, info, f"{source}: {len(train):,} train / {len(test):,} test images", folder=str(root.resolve())
    )
