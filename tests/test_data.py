"""Datasets: the digits split, strict IDX parsing, Fashion-MNIST, image folders, augmentation."""

from __future__ import annotations

import gzip
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnatlas.data import (
    DataInfo,
    DatasetError,
    build_augmentation,
    dataset_kind,
    fit_to_size,
    load_dataset,
    load_idx_folder,
    read_idx,
    write_idx,
)
from cnnatlas.data.fashion_mnist import load_fashion_mnist_splits

# -- digits -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", 32, "none")


def test_digits_split_is_fixed_stratified_80_20(digits):
    from sklearn.datasets import load_digits

    assert len(digits.train) + len(digits.test) == 1797
    assert len(digits.test) == 360  # ceil(0.2 × 1797)
    all_counts = Counter(load_digits().target.tolist())
    test_counts = Counter(digits.test.labels.tolist())
    for c, n in all_counts.items():  # every class keeps its share within one image
        assert abs(test_counts[c] - n * 0.2) <= 1
    again = load_dataset("digits", 32, "none")
    assert torch.equal(again.test.images, digits.test.images)  # the same split every time


def test_digits_upsampled_to_model_input(digits):
    x, y = digits.train[0]
    assert x.shape == (1, 32, 32) and 0 <= y < 10
    assert digits.info.native_size == 8 and digits.info.image_size == 32 and digits.info.in_channels == 1
    # normalised with the training set's own statistics: mean ≈ 0, std ≈ 1 over the training set
    xs = torch.stack([digits.train[i][0] for i in range(len(digits.train))])
    assert abs(xs.mean().item()) < 1e-3 and abs(xs.std().item() - 1) < 1e-3
    small = load_dataset("digits", 16, "none")
    assert small.train[0][0].shape == (1, 16, 16)


def test_data_info_prepare_matches_the_test_set(digits):
    """An 8×8 image fed through DataInfo.prepare is exactly the test set's item (predict uses it)."""
    from cnnatlas.data.digits import digits_arrays

    _, _, x_test, _ = digits_arrays()
    prepared = digits.info.prepare(x_test[0])
    assert torch.allclose(prepared, digits.test[0][0], atol=1e-6)
    assert DataInfo.from_json(digits.info.to_json()) == digits.info


def test_dataset_defaults_and_override_of_augmentation():
    assert load_dataset("digits", 32).info.augment == ("crop",)
    assert load_dataset("digits", 32, "none").info.augment == ()
    assert load_dataset("digits", 32, "crop,flip").info.augment == ("crop", "flip")
    with pytest.raises(DatasetError, match="unknown augmentation 'rotate'"):
        load_dataset("digits", 32, "rotate")


def test_augmentation_is_torchvision_v2_and_random():
    from torchvision.transforms import v2

    aug = build_augmentation(("crop", "flip", "jitter"), 32, 3)
    assert isinstance(aug, v2.Compose)
    assert [type(t).__name__ for t in aug.transforms] == ["RandomCrop", "RandomHorizontalFlip", "ColorJitter"]
    x = torch.rand(3, 32, 32)
    torch.manual_seed(0)
    outs = [aug(x) for _ in range(8)]
    assert all(o.shape == x.shape for o in outs)
    assert any(not torch.equal(outs[0], o) for o in outs[1:])
    assert build_augmentation((), 32, 1) is None


def test_fit_to_size_pads_small_enlargements_and_resizes_others():
    x = torch.rand(2, 1, 28, 28)
    padded = fit_to_size(x, 32)
    assert padded.shape == (2, 1, 32, 32)
    assert torch.equal(padded[..., 2:30, 2:30], x) and padded[..., :2, :].abs().sum() == 0
    assert fit_to_size(x, 64).shape == (2, 1, 64, 64)
    assert fit_to_size(x, 28) is x


def test_unknown_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")
    with pytest.raises(DatasetError, match="not a folder"):
        load_dataset(f"fashion-mnist:{tmp_path / 'missing'}")


# -- IDX files ----------------------------------------------------------------------------------


def _write_mnist_folder(folder: Path, n_train: int = 50, n_test: int = 20, gz: bool = True, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    suffix = ".gz" if gz else ""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", rng.integers(0, 10, (n,), dtype=np.uint8))
    return folder


def test_idx_round_trip_every_type(tmp_path):
    for dtype in (np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64):
        a = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
        if dtype == np.uint8:
            a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
        for name in ("a.idx", "a.idx.gz"):
            write_idx(tmp_path / name, a)
            assert np.array_equal(read_idx(tmp_path / name).numpy(), a)


def test_idx_folder_loads_and_checks(tmp_path):
    folder = _write_mnist_folder(tmp_path / "mnist", gz=False)
    assert dataset_kind(str(folder)) == "idx"
    data = load_dataset(str(folder), 32, "none")
    assert len(data.train) == 50 and len(data.test) == 20
    assert data.train[0][0].shape == (1, 32, 32)
    with pytest.raises(DatasetError, match="the official train split has 60,000"):
        load_fashion_mnist_splits(folder)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda raw: raw[: len(raw) // 2], "truncated gzip file"),
        (lambda raw: raw[:-8] + bytes(8), "corrupted gzip file"),  # CRC and length overwritten
        (lambda raw: b"not gzip at all", "not a gzip file"),
        (lambda raw: gzip.compress(b"\x00\x00\x08"), "too short for an IDX header"),
        (lambda raw: gzip.compress(b"\x01\x02\x08\x03" + gzip.decompress(raw)[4:]), "bad IDX magic number 0x01020803"),
        (lambda raw: gzip.compress(b"\x00\x00\x07\x03" + gzip.decompress(raw)[4:]), "bad IDX magic number"),
        (lambda raw: gzip.compress(gzip.decompress(raw)[:-100]), "truncated data: the header declares 50×28×28"),
        (lambda raw: gzip.compress(gzip.decompress(raw) + b"xx"), "2 unexpected bytes after"),
        (lambda raw: gzip.compress(gzip.decompress(raw)[:10]), "truncated header"),
    ],
)
def test_bad_idx_image_file_names_file_and_problem(tmp_path, corrupt, message):
    folder = _write_mnist_folder(tmp_path / "bad")
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(DatasetError, match=message) as err:
        load_idx_folder(folder)
    assert str(path) in str(err.value)


def test_bad_idx_contents_are_caught(tmp_path):
    folder = _write_mnist_folder(tmp_path / "labels")
    labels = folder / "train-labels-idx1-ubyte.gz"
    bad = np.zeros(50, dtype=np.uint8)
    bad[7] = 12
    write_idx(labels, bad)
    with pytest.raises(DatasetError, match=r"label 12 at index 7 is out of range 0–9") as err:
        load_idx_folder(folder)
    assert str(labels) in str(err.value)

    write_idx(labels, np.zeros(49, dtype=np.uint8))
    with pytest.raises(DatasetError, match="49 labels for the 50 images"):
        load_idx_folder(folder)

    write_idx(labels, np.zeros((50, 1), dtype=np.uint8))
    with pytest.raises(DatasetError, match="expected unsigned-byte labels of 1 dimension"):
        load_idx_folder(folder)

    images = folder / "t10k-images-idx3-ubyte.gz"
    write_idx(labels, np.zeros(50, dtype=np.uint8))
    write_idx(images, np.zeros((20, 32, 32), dtype=np.uint8))
    with pytest.raises(DatasetError, match="expected 28×28 images; got 32×32"):
        load_idx_folder(folder)
    write_idx(images, np.zeros((20, 28, 28), dtype=np.float32))
    with pytest.raises(DatasetError, match="expected unsigned-byte images"):
        load_idx_folder(folder)

    images.unlink()
    with pytest.raises(DatasetError, match="no t10k-images-idx3-ubyte"):
        load_idx_folder(folder)


@pytest.mark.needs("fashion-mnist")
def test_fashion_mnist_official_split():
    data = load_dataset("fashion-mnist", 32, "none")
    assert (len(data.train), len(data.test)) == (60_000, 10_000)
    assert data.info.classes[0] == "T-shirt/top" and data.info.classes[9] == "Ankle boot"
    counts = Counter(data.test.labels.tolist())
    assert all(counts[c] == 1_000 for c in range(10))  # the test set is balanced, 1,000 per class
    x, _ = data.train[0]
    assert x.shape == (1, 32, 32)


# -- image folders ------------------------------------------------------------------------------


def _image_folder(root: Path, classes=("cat", "dog"), n=5) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_image_folder_split_and_layout(tmp_path):
    root = _image_folder(tmp_path / "pets")
    assert dataset_kind(str(root)) == "folder"
    data = load_dataset(str(root), 16)
    assert data.info.classes == ("cat", "dog") and data.info.in_channels == 3
    assert len(data.train) == 8 and len(data.test) == 2
    x, y = data.train[0]
    assert x.shape == (3, 16, 16) and y in (0, 1)
    grey = load_dataset(str(root), 16, "none", in_channels=1)
    assert grey.test[0][0].shape == (1, 16, 16)

    both = tmp_path / "split"
    _image_folder(both / "train")
    _image_folder(both / "test", n=2)
    data = load_dataset(str(both), 16)
    assert (len(data.train), len(data.test)) == (10, 4)


def test_image_folder_errors(tmp_path):
    root = _image_folder(tmp_path / "pets")
    (root / "dog" / "broken.png").write_bytes(b"not a png")
    data = load_dataset(str(root), 16, "none")
    with pytest.raises(DatasetError, match="broken.png: cannot be read as an image"):
        [data.train[i] for i in range(len(data.train))] + [data.test[i] for i in range(len(data.test))]
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    (empty / "a" / "notes.txt").write_text("no image")
    with pytest.raises(DatasetError, match=r"empty: the class folder\(s\) 'a' hold no image \(jpg, jpeg, png, "):
        load_dataset(str(empty))
    (empty / "a").rename(tmp_path / "a")
    shutil.copy(root / "cat" / "0.png", empty / "loose.png")  # an image, but in no class folder
    with pytest.raises(DatasetError, match="empty: no class folders; expected one sub-folder per class"):
        load_dataset(str(empty))
