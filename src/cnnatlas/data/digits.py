"""scikit-learn's handwritten digits: the embedded default, nothing to download.

1,797 grey 8×8 images of the digits 0–9 with intensities 0–16 (the UCI "Optical Recognition of
Handwritten Digits" test set, bundled with scikit-learn as `load_digits`). cnnatlas splits them
once, stratified by class, 80/20 with a fixed seed (1,437 train / 360 test) and upsamples them
bilinearly to the model's input.
"""

from __future__ import annotations

import torch

from .base import DataSplits, fit_to_size, image_splits

DIGITS_CLASSES = tuple(str(d) for d in range(10))
DIGITS_SPLIT_SEED = 0  # the fixed split; changing it changes every published digits result
DIGITS_TEST_FRACTION = 0.2
DIGITS_AUGMENT = ("crop",)  # digits are not mirror-symmetric: no flip


def digits_arrays() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train images, train labels, test images, test labels); images float (N, 1, 8, 8) in [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float().div(16.0).unsqueeze(1)
    labels = torch.from_numpy(bunch.target).long()
    train_idx, test_idx = train_test_split(
        torch.arange(len(labels)).numpy(),
        test_size=DIGITS_TEST_FRACTION,
        stratify=labels.numpy(),
        random_state=DIGITS_SPLIT_SEED,
    )
    train_idx, test_idx = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
    return images[train_idx], labels[train_idx], images[test_idx], labels[test_idx]


def load_digits_splits(image_size: int = 32, augment: str | tuple[str, ...] | None = "auto") -> DataSplits:
    """The digits at `image_size`×`image_size`, one channel, train and test sets."""
    x_train, y_train, x_test, y_test = digits_arrays()
    x_train = fit_to_size(x_train, image_size).clamp_(0, 1)
    x_test = fit_to_size(x_test, image_size).clamp_(0, 1)
    return image_splits(
        "digits",
        DIGITS_CLASSES,
        (x_train, y_train),
        (x_test, y_test),
        8,
        image_size,
        augment,
        DIGITS_AUGMENT,
        source="scikit-learn load_digits (1,797 8×8 images), stratified 80/20 split, seed 0",
    )


__all__ = ["DIGITS_CLASSES", "digits_arrays", "load_digits_splits"]
