"""Long clips through a fixed-window video model: slide the window, average the scores.

A clip of T frames and a model that takes `window` frames: windows start at 0, stride, 2·stride, …
and one more ends on the last frame where the stride does not land there, so every frame is seen.
Each window gives class probabilities (softmax of its logits); the clip's prediction is their mean
— the clip-level averaging of Simonyan & Zisserman 2014 (two-stream, §6: scores averaged over 25
frames) and of torchvision's video references (several clips per video). A clip shorter than the
window is looped to fill it, as `i3d` and torchvision's samplers repeat frames.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .errors import InvalidArgumentError


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """The first frame of each window over `length` frames; the last window ends on the last frame."""
    if window < 1 or stride < 1:
        raise InvalidArgumentError(f"window and stride must be ≥ 1 frame; got window {window}, stride {stride}")
    if length <= window:
        return [0]
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


def sliding_window(
    scores: Callable[[torch.Tensor], torch.Tensor], clip: torch.Tensor, window: int, stride: int, time_dim: int = 1
) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """(starts, per-window probabilities (W, classes), their mean (classes,)) for one clip.

    `scores` maps a batch of windows (N, …) to logits (N, classes); `clip` holds time at `time_dim`
    (1 for (C, T, H, W)). Windows are run one at a time, so memory does not grow with the clip.
    """
    length = clip.shape[time_dim]
    if length < window:  # loop the clip to one window
        reps = -(-window // length)
        clip = torch.cat([clip] * reps, dim=time_dim).narrow(time_dim, 0, window)
        length = window
    starts = window_starts(length, window, stride)
    probs = torch.stack([scores(clip.narrow(time_dim, s, window)[None]).float().softmax(-1)[0] for s in starts])
    return starts, probs, probs.mean(0)


__all__ = ["sliding_window", "window_starts"]
