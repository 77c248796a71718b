"""Moving Fashion-MNIST: short clips in which one real Fashion-MNIST item slides across the frame;
the label is the direction of motion (right, left, down, up), not the item.

Each clip: an item (28×28, scaled to `item_size`) on a `size`×`size` black canvas, moving
`speed` pixels per frame (1–3, drawn per clip) for `frames` frames in one of four directions. The
canvas is a torus — what leaves one edge comes back at the other — so that every frame, on its own,
shows the item at a uniformly random place whatever the direction: a single frame carries no
information about the label, and a model that sees one frame can do no better than chance (25%).
The direction is only in how frames differ: a model needs time. Training clips use the official
training images, test clips the official test images; both are drawn once from a fixed seed.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .base import DataInfo, DatasetError, DataSplits, channel_stats
from .fashion_mnist import find_fashion_mnist, install_hint, read_idx_split

DIRECTIONS = ("right", "left", "down", "up")
_STEP = {0: (0, 1), 1: (0, -1), 2: (1, 0), 3: (-1, 0)}  # (rows, columns) per frame
MOVING_FASHION_FRAMES = 16  # frames per clip of `--data moving-fashion-mnist`


def make_clips(
    items: torch.Tensor, frames: int, size: int, item_size: int, speeds: tuple[int, int], generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 28, 28) uint8 items → clips (N, 1, frames, size, size) uint8 and directions (N,)."""
    n = items.shape[0]
    scaled = F.interpolate(
        items[:, None].float(),
        size=(item_size, item_size),
        mode="bilinear",
        antialias=item_size < items.shape[-1],
        align_corners=False,
    )
    canvas = torch.zeros(n, size, size, dtype=torch.uint8)
    canvas[:, :item_size, :item_size] = scaled[:, 0].round().clamp(0, 255).to(torch.uint8)
    labels = torch.randint(0, len(DIRECTIONS), (n,), generator=generator)
    speed = torch.randint(speeds[0], speeds[1] + 1, (n,), generator=generator)
    start = torch.randint(0, size, (n, 2), generator=generator)
    step = torch.tensor([_STEP[d] for d in range(len(DIRECTIONS))])[labels] * speed[:, None]  # (N, 2)
    t = torch.arange(frames)
    shift = start[:, None, :] + step[:, None, :] * t[None, :, None]  # (N, T, 2): where the item's corner is
    pixels = torch.arange(size)
    rows = (pixels[None, None, :, None] - shift[:, :, 0, None, None]) % size  # frame pixel ← canvas pixel
    cols = (pixels[None, None, None, :] - shift[:, :, 1, None, None]) % size
    clips = canvas[torch.arange(n)[:, None, None, None], rows, cols]  # (N, T, size, size): a roll per frame
    clips = clips[:, None]
    return clips, labels


class TensorClipDataset(Dataset):
    """Clips held in memory as (N, C, T, H, W) uint8; items are float (C, T, H, W) normalised with
    (mean, std) — or, with `frame` set, that one frame (C, H, W), for a 2-D model."""

    def __init__(
        self,
        clips: torch.Tensor,
        labels: torch.Tensor,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        frame: int | None = None,
    ) -> None:
        if clips.shape[0] != labels.shape[0]:
            raise DatasetError(f"{clips.shape[0]} clips but {labels.shape[0]} labels")
        if frame is not None and not -clips.shape[2] <= frame < clips.shape[2]:
            raise DatasetError(f"frame {frame} is not one of the clips' {clips.shape[2]} frames")
        self.clips, self.labels, self.frame = clips, labels.long(), frame
        self.mean = torch.tensor(mean).view(-1, 1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1, 1)

    def __len__(self) -> int:
        return self.clips.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = (self.clips[index].float() / 255.0 - self.mean) / self.std
        return (x if self.frame is None else x[:, self.frame]), int(self.labels[index])


def load_moving_fashion_splits(
    root: str | Path | None = None,
    size: int = 32,
    frames: int = MOVING_FASHION_FRAMES,
    train_clips: int = 4000,
    test_clips: int = 1000,
    item_size: int | None = None,
    speeds: tuple[int, int] = (1, 3),
    seed: int = 0,
    frame: int | None = None,
) -> DataSplits:
    """Moving Fashion-MNIST clips (1, `frames`, `size`, `size`) from the first `train_clips` training
    and `test_clips` test images of Fashion-MNIST (found or downloaded as `--data fashion-mnist` does, or `root`).
    `item_size` defaults to size/2. With `frame` set, items are that single frame (1, size, size)."""
    for name, value in (("size", size), ("frames", frames), ("train_clips", train_clips), ("test_clips", test_clips)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise DatasetError(f"moving Fashion-MNIST: {name} must be a positive integer; got {value!r}")
    item_size = item_size or max(1, size // 2)
    folder = find_fashion_mnist(root)
    if not folder.is_dir():
        raise DatasetError(f"Fashion-MNIST not found: {folder} is not a folder; {install_hint()}")
    x_train, _ = read_idx_split(folder, "train")
    x_test, _ = read_idx_split(folder, "test")
    for split, have, want in (("training", len(x_train), train_clips), ("test", len(x_test), test_clips)):
        if want > have:
            raise DatasetError(
                f"moving Fashion-MNIST: {want:,} {split} clips asked for, but the {split} set has {have:,} images"
            )
    g = torch.Generator().manual_seed(seed)
    train, y_train = make_clips(x_train[:train_clips], frames, size, item_size, speeds, g)
    test, y_test = make_clips(x_test[:test_clips], frames, size, item_size, speeds, g)
    mean, std = channel_stats(train.flatten(2, 3))  # (N, C, T·H, W): statistics over every frame
    name = "moving-fashion-mnist"
    return DataSplits(
        train=TensorClipDataset(train, y_train, mean, std, frame),
        test=TensorClipDataset(test, y_test, mean, std, frame),
        info=DataInfo(name, DIRECTIONS, 1, size, size, mean, std, frames=None if frame is not None else frames),
        source=f"moving Fashion-MNIST from {folder}: {train_clips:,} train / {test_clips:,} test clips of "
        f"{frames} frames at {size}×{size}, items {item_size}px moving {speeds[0]}–{speeds[1]} px/frame"
        + (f"; frame {frame} only" if frame is not None else ""),
        folder=str(folder.resolve()),
    )


__all__ = ["DIRECTIONS", "MOVING_FASHION_FRAMES", "TensorClipDataset", "load_moving_fashion_splits", "make_clips"]
