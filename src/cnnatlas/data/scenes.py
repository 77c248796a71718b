"""Fashion-MNIST scenes: a segmentation dataset built from real images.

Each scene is a `size`×`size` black canvas (64×64 by default) on which 1 to `max_items` Fashion-MNIST
items (28×28, unscaled) are pasted at uniformly random positions, one after another, so that later
items cover earlier ones where they overlap. An item's pixel belongs to the item where its
intensity exceeds `ITEM_THRESHOLD` (> 0.1, i.e. > 25 of 255 in the IDX bytes): a pasted item
replaces the canvas there and only there (its faint fringe does not hide what lies below). The
mask labels each pixel with the class (0–9) of the item on top, and 10 ("background") where no
item covers it — 11 classes.

Scenes are drawn once from `seed`: training scenes only from the official training images, test
scenes only from the official test images, so no test item was seen in training. The two splits
have generators of their own (seeds 2·seed and 2·seed + 1), so the test scenes do not depend on
how many training scenes are drawn.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from .base import DataInfo, DatasetError, DataSplits, channel_stats
from .fashion_mnist import FASHION_MNIST_CLASSES, find_fashion_mnist, install_hint, read_idx_split

SCENE_CLASSES = FASHION_MNIST_CLASSES + ("background",)
BACKGROUND = len(FASHION_MNIST_CLASSES)  # 10
ITEM_THRESHOLD = 25  # of 255: an item's pixel is one brighter than this (intensity > ~0.1)


def make_scenes(
    images: torch.Tensor, labels: torch.Tensor, count: int, size: int, max_items: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`count` scenes from (N, h, w) uint8 items and their (N,) classes → images (count, 1, size, size)
    uint8, masks (count, size, size) uint8 (class indices), and the indices of the items used
    (count, max_items; −1: none)."""
    n, h, w = images.shape
    if size < max(h, w):
        raise DatasetError(f"Fashion-MNIST scenes: the canvas ({size}) must be at least the items' size ({h})")
    scenes = torch.zeros(count, size, size, dtype=torch.uint8)
    masks = torch.full((count, size, size), BACKGROUND, dtype=torch.uint8)
    k = torch.randint(1, max_items + 1, (count,), generator=generator)
    picks = torch.randint(0, n, (count, max_items), generator=generator)
    rows = torch.randint(0, size - h + 1, (count, max_items), generator=generator)
    cols = torch.randint(0, size - w + 1, (count, max_items), generator=generator)
    used = torch.full((count, max_items), -1, dtype=torch.long)
    for j in range(max_items):  # item j of every scene that has more than j items, pasted on top
        for i in (k > j).nonzero().flatten().tolist():
            item = images[picks[i, j]]
            on = item > ITEM_THRESHOLD
            r, c = int(rows[i, j]), int(cols[i, j])
            scenes[i, r : r + h, c : c + w][on] = item[on]
            masks[i, r : r + h, c : c + w][on] = int(labels[picks[i, j]])
            used[i, j] = picks[i, j]
    return scenes[:, None], masks, used


class SceneDataset(Dataset):
    """Scenes (N, 1, H, W) uint8 and masks (N, H, W) of class indices, kept as uint8 (a 64×64 int64 mask
    is 32 KiB a scene); items are (normalised float image, int64 mask)."""

    def __init__(self, images: torch.Tensor, masks: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]):
        if images.shape[0] != masks.shape[0]:
            raise DatasetError(f"{images.shape[0]} scenes but {masks.shape[0]} masks")
        self.images, self.masks = images, masks
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.images[index].float() / 255.0 - self.mean) / self.std, self.masks[index].long()


def split_seeds(seed: int) -> tuple[int, int]:
    """The generators' seeds of the training and the test scenes of `seed`: 2·seed and 2·seed + 1,
    distinct for every seed, so each split is drawn independently of the other's size."""
    return 2 * seed, 2 * seed + 1


TRAIN_SCENES, TEST_SCENES = 10_000, 2_000  # the scenes drawn by default


def load_scene_splits(
    root: str | Path | None = None,
    size: int = 64,
    train_scenes: int = TRAIN_SCENES,
    test_scenes: int = TEST_SCENES,
    max_items: int = 4,
    seed: int = 0,
) -> DataSplits:
    """Fashion-MNIST scenes (see the module docstring) from Fashion-MNIST found or downloaded as
    `--data fashion-mnist` does (or read from `root`)."""
    for name, value in (
        ("size", size),
        ("train_scenes", train_scenes),
        ("test_scenes", test_scenes),
        ("max_items", max_items),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise DatasetError(f"Fashion-MNIST scenes: {name} must be a positive integer; got {value!r}")
    folder = find_fashion_mnist(root)
    if not folder.is_dir():
        raise DatasetError(f"Fashion-MNIST not found: {folder} is not a folder; {install_hint()}")
    x_train, y_train = read_idx_split(folder, "train")
    x_test, y_test = read_idx_split(folder, "test")
    train_seed, test_seed = split_seeds(seed)
    train, m_train, _ = make_scenes(
        x_train, y_train, train_scenes, size, max_items, torch.Generator().manual_seed(train_seed)
    )
    test, m_test, _ = make_scenes(
        x_test, y_test, test_scenes, size, max_items, torch.Generator().manual_seed(test_seed)
    )
    mean, std = channel_stats(train)
    return DataSplits(
        train=SceneDataset(train, m_train, mean, std),
        test=SceneDataset(test, m_test, mean, std),
        info=DataInfo("fashion-mnist-scenes", SCENE_CLASSES, 1, size, size, mean, std, task="segmentation"),
        source=f"Fashion-MNIST scenes from {folder}: {train_scenes:,} train / {test_scenes:,} test scenes "
        f"{size}×{size}, 1–{max_items} items each (seed {seed})",
        folder=str(folder.resolve()),
    )


__all__ = [
    "BACKGROUND",
    "ITEM_THRESHOLD",
    "SCENE_CLASSES",
    "SceneDataset",
    "TEST_SCENES",
    "TRAIN_SCENES",
    "load_scene_splits",
    "make_scenes",
    "split_seeds",
]
