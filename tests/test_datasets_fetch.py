"""Datasets that fetch themselves: every download path runs for real against a server on 127.0.0.1
(tests/mirror.py) serving files made here in the official formats — an FSDD release archive built
from the shared copy of the recordings, gzipped IDX files, a CIFAR-10 binary archive — and a run
trained on downloaded data evaluates from another folder, and after its data folder is gone."""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from mirror import Mirror
from needs import FSDD_FIXTURE

from cnnatlas.cli import main
from cnnatlas.data import (
    DatasetError,
    data_origin,
    data_spec_for_eval,
    dataset_channels,
    fashion_mnist,
    fetch,
    load_dataset,
    write_idx,
)
from cnnatlas.data.cifar import read_cifar_batch
from cnnatlas.download import DownloadError

# the shared copy of FSDD v1.0.10 (3,000 recordings): ../shared/data/fsdd from the repository
SHARED_FSDD = FSDD_FIXTURE / "recordings" if (FSDD_FIXTURE / "recordings").is_dir() else FSDD_FIXTURE
needs_shared_fsdd = pytest.mark.needs("fsdd")
FSDD_PREFIX = "free-spoken-digit-dataset-1.0.10"


@pytest.fixture
def mirror(monkeypatch, tmp_path):
    """The download server, and an empty data folder ($CNNATLAS_DATA) with no dataset overrides."""
    for var in ("CNNATLAS_FSDD", "CNNATLAS_FASHION_MNIST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CNNATLAS_DATA", str(tmp_path / "data"))
    with Mirror() as m:
        monkeypatch.setenv("CNNATLAS_MIRROR", m.url)
        yield m


def _tar_gz(members: list[tuple[str, bytes | None, int]], level: int = 1) -> bytes:
    """A .tar.gz of (name, bytes, mode) members as `git archive` writes them; bytes None: a symbolic link."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=level) as tar:
        for name, data, mode in members:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if data is None:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _wav(samples: np.ndarray) -> bytes:
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def _leftovers(folder: Path) -> list[str]:
    """What a failed fetch left in the data folder, lock files aside."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.is_dir() else []


# -- FSDD -------------------------------------------------------------------------------------------


@needs_shared_fsdd
def test_fsdd_downloads_the_release_and_checks_every_recording(mirror, tmp_path):
    """The real pin: an archive laid out as GitHub's v1.0.10 tag archive (recordings of nicolas and theo
    are executable upstream) passes the git-tree check of the recordings against upstream's tree."""
    members = [
        (f"{FSDD_PREFIX}/README.md", b"# FSDD\n", 0o664),
        (f"{FSDD_PREFIX}/recordings/../../escape.wav", b"x", 0o664),
    ]
    for path in sorted(SHARED_FSDD.iterdir()):
        executable = path.name.split("_")[1] in ("nicolas", "theo")
        members.append((f"{FSDD_PREFIX}/recordings/{path.name}", path.read_bytes(), 0o775 if executable else 0o664))
    mirror.put(fetch.FSDD_URL, _tar_gz(members))
    data = load_dataset("fsdd", augment="none")
    assert (len(data.train), len(data.test)) == (2700, 300)
    folder = tmp_path / "data" / "fsdd" / "recordings"
    assert data.folder == str(folder) and len(list(folder.iterdir())) == 3000
    assert _leftovers(tmp_path / "data") == ["fsdd"]  # the archive is deleted once unpacked
    assert not (tmp_path / "escape.wav").exists() and not (tmp_path / "data" / "escape.wav").exists()
    load_dataset("fsdd", augment="none")  # the copy in the data folder: nothing downloaded again
    assert mirror.requests == ["github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz"]


def _small_fsdd(extra: list | None = None) -> list[tuple[str, bytes | None, int]]:
    rng = np.random.default_rng(0)
    members = [
        (f"{FSDD_PREFIX}/recordings/{d}_ann_{t}.wav", _wav(rng.normal(0, 0.1, 800)), 0o664)
        for d in (1, 2)
        for t in (0, 7)
    ]
    return members + (extra or [])


def test_fsdd_archive_with_other_recordings_is_refused_and_nothing_kept(mirror, tmp_path):
    mirror.put(fetch.FSDD_URL, _tar_gz(_small_fsdd()))
    expected = f"not those of release v1.0.10: .* upstream's is {fetch.FSDD_RECORDINGS_TREE}; nothing was kept"
    with pytest.raises(DatasetError, match=expected):
        load_dataset("fsdd")
    assert _leftovers(tmp_path / "data") == []  # no archive, no recordings, no temporary folder


def test_fsdd_unpacks_only_recordings_and_refuses_links(mirror, tmp_path, monkeypatch):
    members = _small_fsdd(
        [
            (f"{FSDD_PREFIX}/recordings/notes.txt", b"x", 0o664),
            (f"{FSDD_PREFIX}/recordings/../../../escape.wav", b"x", 0o664),
            ("/tmp/1_abs_0.wav", b"x", 0o664),
            (f"{FSDD_PREFIX}/utils/3_ann_5.wav", b"x", 0o664),
        ]
    )
    mirror.put(fetch.FSDD_URL, _tar_gz(members))
    expected = {Path(n).name: d for n, d, _ in _small_fsdd()}
    folder = tmp_path / "expected"
    folder.mkdir()
    for name, data in expected.items():
        (folder / name).write_bytes(data)
    monkeypatch.setattr(fetch, "FSDD_RECORDINGS_TREE", fetch.git_tree_hash({n: (folder / n, 0o664) for n in expected}))
    data = load_dataset("fsdd", augment="none")
    assert (len(data.train), len(data.test)) == (2, 2)
    unpacked = tmp_path / "data" / "fsdd" / "recordings"
    assert sorted(p.name for p in unpacked.iterdir()) == sorted(expected)
    assert all((unpacked / n).read_bytes() == d for n, d in expected.items())
    assert not (tmp_path / "escape.wav").exists() and not Path("/tmp/1_abs_0.wav").exists()

    shutil.rmtree(tmp_path / "data" / "fsdd")
    mirror.put(fetch.FSDD_URL, _tar_gz(_small_fsdd([(f"{FSDD_PREFIX}/recordings/3_ann_9.wav", None, 0o777)])))
    with pytest.raises(DatasetError, match="3_ann_9.wav is not a regular file; nothing was kept"):
        load_dataset("fsdd")
    assert _leftovers(tmp_path / "data") == []


def test_fsdd_offline_error_says_where_to_get_the_data(mirror, tmp_path):
    with pytest.raises(DownloadError) as err:  # nothing served: the mirror answers 404
        load_dataset("fsdd")
    assert "v1.0.10.tar.gz" in str(err.value) and "--data fsdd:DIR" in str(err.value)


def test_git_tree_hash_is_gits(tmp_path):
    """The empty tree, and a file 'a' ("hello\\n") beside an executable 'b.wav' ("x"), as `git write-tree`
    gives them."""
    assert fetch.git_tree_hash({}) == "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
    (tmp_path / "a").write_bytes(b"hello\n")
    (tmp_path / "b.wav").write_bytes(b"x")
    files = {"b.wav": (tmp_path / "b.wav", 0o775), "a": (tmp_path / "a", 0o664)}
    assert fetch.git_tree_hash(files) == "a0cfa7e68fccc7d963c1839c9a670bf55d799ee3"
    files["b.wav"] = (tmp_path / "b.wav", 0o664)  # the mode is part of the tree
    assert fetch.git_tree_hash(files) != "a0cfa7e68fccc7d963c1839c9a670bf55d799ee3"


# -- Fashion-MNIST ----------------------------------------------------------------------------------


def _fashion_files(folder: Path, n_train: int = 300, n_test: int = 100) -> dict[str, bytes]:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,), dtype=np.uint8))
    return {name: (folder / name).read_bytes() for name in fetch.FASHION_MNIST_FILES}


@pytest.fixture
def no_debian_package(monkeypatch, tmp_path):
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_DIR", tmp_path / "not-installed")


def test_fashion_mnist_downloads_the_four_files(mirror, tmp_path, monkeypatch, no_debian_package):
    files = _fashion_files(tmp_path / "made")
    for name, data in files.items():
        mirror.put(fetch.FASHION_MNIST_URL + name, data)
    table = {fetch.FASHION_MNIST_URL + n: ("md5", hashlib.md5(d).hexdigest()) for n, d in files.items()}
    monkeypatch.setattr(fetch, "CHECKSUMS", table)
    monkeypatch.setattr(fashion_mnist, "OFFICIAL_SIZES", {"train": 300, "test": 100})
    data = load_dataset("fashion-mnist", 32, "none")
    assert (len(data.train), len(data.test)) == (300, 100)
    folder = tmp_path / "data" / "fashion-mnist"
    assert data.folder == str(folder) and all((folder / n).read_bytes() == d for n, d in files.items())
    assert len(mirror.requests) == 4
    load_dataset("fashion-mnist", 32, "none")
    assert len(mirror.requests) == 4  # the copy in the data folder


def test_fashion_mnist_prefers_the_debian_package(mirror, tmp_path, monkeypatch):
    _fashion_files(tmp_path / "debian")
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_DIR", tmp_path / "debian")
    monkeypatch.setattr(fashion_mnist, "OFFICIAL_SIZES", {"train": 300, "test": 100})
    assert load_dataset("fashion-mnist", 32, "none").folder == str(tmp_path / "debian")
    assert mirror.requests == []


def test_fashion_mnist_with_other_bytes_than_published_is_refused(mirror, tmp_path, no_debian_package):
    for name, data in _fashion_files(tmp_path / "made").items():
        mirror.put(fetch.FASHION_MNIST_URL + name, data)
    with pytest.raises(
        DownloadError,
        match="published one is 8d4fb7e6c68d591d4c3dfef9ec88bf0d; the file was not "
        "kept; or install Debian's dataset-fashion-mnist.*fashion-mnist:DIR",
    ):
        load_dataset("fashion-mnist")
    assert _leftovers(tmp_path / "data" / "fashion-mnist") == []


def test_fashion_mnist_missing_folder_says_what_a_user_can_do(tmp_path):
    with pytest.raises(DatasetError) as err:
        load_dataset(f"fashion-mnist:{tmp_path / 'missing'}")
    message = str(err.value)
    assert "not a folder" in message and "setup-env" not in message
    assert "--data fashion-mnist:DIR" in message and "download" in message and "apt-get install" in message


# -- CIFAR-10 ---------------------------------------------------------------------------------------

CIFAR_META = b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n"


def _cifar_records(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, bytes]:
    """n records of the binary format: labels (n,), images (n, 3, 32, 32), and the bytes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    raw = np.concatenate([labels[:, None], images.reshape(n, -1)], axis=1).tobytes()
    return labels, images, raw


def _cifar_archive(n_train: int = 40, n_test: int = 50, extra: list | None = None) -> tuple[bytes, np.ndarray]:
    members = [
        ("cifar-10-batches-bin/batches.meta.txt", CIFAR_META, 0o644),
        ("cifar-10-batches-bin/readme.html", b"<html></html>", 0o644),
    ]
    for i in range(1, 6):
        members.append((f"cifar-10-batches-bin/data_batch_{i}.bin", _cifar_records(n_train, i)[2], 0o644))
    _, test_images, raw = _cifar_records(n_test, 9)
    members.append(("cifar-10-batches-bin/test_batch.bin", raw, 0o644))
    return _tar_gz(members + (extra or [])), test_images


@pytest.fixture
def served_cifar(mirror, monkeypatch):
    """A small CIFAR-10 binary archive at the official URL, its MD5 in the checksum table."""
    archive, test_images = _cifar_archive()
    mirror.put(fetch.CIFAR10_URL, archive)
    monkeypatch.setitem(fetch.CHECKSUMS, fetch.CIFAR10_URL, ("md5", hashlib.md5(archive).hexdigest()))
    return test_images


def test_cifar10_downloads_and_reads_the_binary_batches(mirror, served_cifar, tmp_path):
    assert dataset_channels("cifar10") == 3
    data = load_dataset("cifar10", 32, "none")
    assert (len(data.train), len(data.test)) == (200, 50)
    assert data.info.classes[0] == "airplane" and data.info.classes[9] == "truck" and data.info.in_channels == 3
    assert torch.equal(data.test.images, torch.from_numpy(served_cifar))  # label byte, then R, G, B planes row by row
    folder = tmp_path / "data" / "cifar-10-batches-bin"
    assert data.folder == str(folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted(fetch.CIFAR10_FILES)  # readme.html not kept
    assert _leftovers(tmp_path / "data") == ["cifar-10-batches-bin"]  # the archive is deleted once unpacked
    assert load_dataset("cifar10", 32).info.augment == ("crop", "flip")
    assert len(mirror.requests) == 1
    assert len(load_dataset(f"cifar10:{tmp_path / 'data'}", 32, "none").test) == 50  # NAME:DIR, or its sub-folder


def test_cifar10_with_other_bytes_than_published_is_refused(mirror, tmp_path):
    mirror.put(fetch.CIFAR10_URL, _cifar_archive()[0])
    with pytest.raises(DownloadError, match="published one is c32a1d4ab5d03f1284b67883e8d87530; the file was not kept"):
        load_dataset("cifar10")
    assert _leftovers(tmp_path / "data") == []


def test_cifar10_archive_lacking_a_batch_or_with_a_link_keeps_nothing(mirror, tmp_path, monkeypatch):
    archive, _ = _cifar_archive()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = [(m.name, tar.extractfile(m).read(), m.mode) for m in tar if "test_batch" not in m.name]
    link = ("cifar-10-batches-bin/test_batch.bin", None, 0o777)
    for bad, message in ((_tar_gz(members), "lacks test_batch.bin"), (_tar_gz([*members, link]), "not a regular file")):
        mirror.put(fetch.CIFAR10_URL, bad)
        monkeypatch.setitem(fetch.CHECKSUMS, fetch.CIFAR10_URL, ("md5", hashlib.md5(bad).hexdigest()))
        with pytest.raises(DatasetError, match=message):
            load_dataset("cifar10")
        assert _leftovers(tmp_path / "data") == []


def _fetch_cifar_in_child(md5: str, data: str, mirror_url: str, queue) -> None:
    os.environ["CNNATLAS_MIRROR"], os.environ["CNNATLAS_DATA"] = mirror_url, data
    fetch.CHECKSUMS[fetch.CIFAR10_URL] = ("md5", md5)
    try:
        queue.put(str(fetch.fetch_cifar10()))
    except Exception as err:  # reported to the parent
        queue.put(repr(err))


@pytest.mark.slow
def test_two_processes_fetch_and_unpack_cifar10_once(mirror, tmp_path):
    archive, _ = _cifar_archive()
    mirror.put(fetch.CIFAR10_URL, archive)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    args = (hashlib.md5(archive).hexdigest(), str(tmp_path / "data"), mirror.url, queue)
    procs = [ctx.Process(target=_fetch_cifar_in_child, args=args) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    folder = tmp_path / "data" / "cifar-10-batches-bin"
    assert [queue.get(timeout=5) for _ in procs] == [str(folder)] * 2
    assert mirror.requests == ["www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"]  # the second found the first's
    assert sorted(p.name for p in folder.iterdir()) == sorted(fetch.CIFAR10_FILES)
    assert _leftovers(tmp_path / "data") == ["cifar-10-batches-bin"]


def test_cifar10_batches_are_read_strictly(tmp_path):
    path = tmp_path / "test_batch.bin"
    path.write_bytes(_cifar_records(3, 0)[2][:-1])
    with pytest.raises(DatasetError, match="is not a whole number of 3,073-byte records"):
        read_cifar_batch(path)
    raw = bytearray(_cifar_records(3, 0)[2])
    raw[3073] = 10
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="label 10 of record 1 is out of range 0–9"):
        read_cifar_batch(path)
    with pytest.raises(DatasetError, match="not a folder.*--data cifar10:DIR"):
        load_dataset(f"cifar10:{tmp_path / 'missing'}")


# -- a run records where its data came from ---------------------------------------------------------


def test_a_run_on_downloaded_cifar10_evaluates_from_anywhere(mirror, served_cifar, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "lenet5",
                "--data",
                "cifar10",
                "--epochs",
                "1",
                "--batch-size",
                "50",
                "--out",
                str(run),
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    folder = tmp_path / "data" / "cifar-10-batches-bin"
    origin = json.loads((run / "config.json").read_text())["data_origin"]
    assert str(folder) in origin.pop("source")
    assert origin == {"spec": "cifar10", "name": "cifar10", "folder": str(folder)}

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["data"] == f"cifar10:{folder}" and report["images"] == 50 and report["classes"][0] == "airplane"

    shutil.rmtree(folder)  # the recorded folder is gone: the name's own lookup downloads it again
    assert main(["eval", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["data"] == "cifar10" and len(mirror.requests) == 2


def test_recorded_origin_of_a_users_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    origin = data_origin("mine")
    assert origin == {"spec": "mine", "name": "folder", "folder": str(tmp_path / "mine")}
    monkeypatch.chdir("/")
    assert data_spec_for_eval(origin, "mine") == str(tmp_path / "mine")  # absolute: any working folder
    (tmp_path / "mine").rmdir()
    with pytest.raises(DatasetError, match=r"run's data folder .*mine \(--data mine\) is not on this machine"):
        data_spec_for_eval(origin, "mine")
    assert data_spec_for_eval({"spec": "digits", "name": "digits", "folder": None}, "digits") == "digits"
    assert data_spec_for_eval(None, "fashion-mnist") == "fashion-mnist"  # a run that recorded nothing
