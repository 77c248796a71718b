"""Datasets that fetch themselves into cnnatlas's one data folder, `cnnatlas.download.data_dir()`
(`$CNNATLAS_DATA`, else the platform's user cache folder: `~/.cache/cnnatlas` on Linux).

Every file comes through `cnnatlas.download.download` (checksummed, atomic, locked, a progress bar
on a terminal, an offline message naming the file, the URL and the folder to put it in by hand):

* Fashion-MNIST: the four official gzipped IDX files, kept as they are in DATA/fashion-mnist/;
  their MD5s are the ones torchvision.datasets.FashionMNIST checks.
* CIFAR-10: the authors' *binary* archive (one label byte and 3,072 pixel bytes per record), MD5
  from its page https://www.cs.toronto.edu/~kriz/cifar.html, unpacked into DATA/cifar-10-batches-bin/.
  Never the pickled Python version: loading data, like loading checkpoints, unpickles nothing.
* FSDD: upstream's release v1.0.10 (3,000 recordings, 6 speakers), unpacked into DATA/fsdd/recordings/.
  No checksum of that archive is published (GitHub builds tag archives on the fly), so the
  recordings are checked instead: the git tree hash of the unpacked recordings/ folder must be the
  one upstream's tag names, `git rev-parse v1.0.10:recordings` = FSDD_RECORDINGS_TREE, which fixes
  every recording's name, bytes and mode.

Archives are unpacked under a lock, into a temporary folder beside the final one: only the
expected regular files, each written under a name this module builds (no links, no path leaving
the folder); checked; renamed into place; the archive is then deleted. A failed check keeps nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

from ..download import DownloadError, data_dir, download, file_lock
from .base import DatasetError

FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"  # torchvision's mirror
FASHION_MNIST_FOLDER = "fashion-mnist"
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-bin"  # the archive's own folder name
CIFAR10_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin", "batches.meta.txt")
FSDD_VERSION = "1.0.10"
FSDD_URL = f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v{FSDD_VERSION}.tar.gz"
# git rev-parse v1.0.10:recordings in github.com/Jakobovski/free-spoken-digit-dataset (tag commit d6938f9b).
# The one archive checksum found published is TensorFlow Datasets' for v1.0.9 (spoken_digit/checksums.tsv:
# SHA-256 8bc44cde…, 2,500 recordings of 5 speakers); v1.0.10 is pinned instead, as cnnatlas's FSDD
# results are measured on its 3,000 recordings.
FSDD_RECORDINGS_TREE = "d04322e322a9f937f6f4f7c8546693755184df5b"
FSDD_FOLDER = "fsdd"
FSDD_RECORDING = re.compile(r"^\d_[A-Za-z]+_\d+\.wav$")

# URL → (algorithm, published digest). Fashion-MNIST: torchvision.datasets.FashionMNIST.resources;
# CIFAR-10: the authors' page. The FSDD archive has none (see the module docstring).
CHECKSUMS: dict[str, tuple[str, str]] = {
    FASHION_MNIST_URL + "train-images-idx3-ubyte.gz": ("md5", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    FASHION_MNIST_URL + "train-labels-idx1-ubyte.gz": ("md5", "25c81989df183df01b3e8a0aad5dffbe"),
    FASHION_MNIST_URL + "t10k-images-idx3-ubyte.gz": ("md5", "bef4ecab320f06d8554ea6380940ec79"),
    FASHION_MNIST_URL + "t10k-labels-idx1-ubyte.gz": ("md5", "bb300cfdad3c16e7a12a480ee83cd310"),
    CIFAR10_URL: ("md5", "c32a1d4ab5d03f1284b67883e8d87530"),
}


def fetch_file(url: str, dest: Path, what: str, hint: str = "") -> Path:
    """`dest`, downloaded from `url` unless already there, checked against CHECKSUMS[url]."""
    algorithm, digest = CHECKSUMS.get(url, ("sha256", None))
    try:
        return download(url, dest, what=what, **{algorithm: digest})
    except DownloadError as err:
        raise DownloadError(f"{err}{'; ' + hint if hint else ''}") from None


def fetch_fashion_mnist() -> Path:
    """DATA/fashion-mnist holding the four official gzipped IDX files (downloaded where missing)."""
    folder = data_dir() / FASHION_MNIST_FOLDER
    hint = "or install Debian's dataset-fashion-mnist, or give a folder of the four files with --data fashion-mnist:DIR"
    for name in FASHION_MNIST_FILES:
        fetch_file(FASHION_MNIST_URL + name, folder / name, "Fashion-MNIST file", hint)
    return folder


def fetch_cifar10() -> Path:
    """DATA/cifar-10-batches-bin, unpacked from the official binary archive if it is not there."""
    final = data_dir() / CIFAR10_FOLDER
    pattern = re.compile(rf"^{CIFAR10_FOLDER}/([^/]+)$")

    def pick(name: str) -> str | None:
        m = pattern.match(name)
        return m.group(1) if m and m.group(1) in CIFAR10_FILES else None

    def check(folder: Path, modes: dict[str, int]) -> None:
        missing = [f for f in CIFAR10_FILES if f not in modes]
        if missing:
            raise DatasetError(
                f"the CIFAR-10 archive lacks {', '.join(missing)} (expected {CIFAR10_FOLDER}/ with "
                f"{', '.join(CIFAR10_FILES)})"
            )

    hint = "or give a folder of the binary batches with --data cifar10:DIR"
    return _fetch_archive(CIFAR10_URL, "cifar-10-binary.tar.gz", final, "CIFAR-10 binary archive", pick, check, hint)


def fetch_fsdd() -> Path:
    """DATA/fsdd (its recordings/ folder), unpacked from upstream's release archive if it is not there."""
    final = data_dir() / FSDD_FOLDER
    pattern = re.compile(r"^[^/]+/recordings/([^/]+)$")

    def pick(name: str) -> str | None:
        m = pattern.match(name)
        return f"recordings/{m.group(1)}" if m and FSDD_RECORDING.match(m.group(1)) else None

    def check(folder: Path, modes: dict[str, int]) -> None:
        files = {Path(rel).name: (folder / rel, mode) for rel, mode in modes.items()}
        tree = git_tree_hash(files)
        if tree != FSDD_RECORDINGS_TREE:
            raise DatasetError(
                f"the FSDD archive's {len(files):,} recordings are not those of release "
                f"v{FSDD_VERSION}: their git tree hash is {tree}, upstream's is "
                f"{FSDD_RECORDINGS_TREE}; nothing was kept"
            )

    hint = "or give a folder of the recordings with --data fsdd:DIR"
    return _fetch_archive(
        FSDD_URL,
        f"free-spoken-digit-dataset-{FSDD_VERSION}.tar.gz",
        final,
        f"FSDD v{FSDD_VERSION} archive",
        pick,
        check,
        hint,
    )


def git_tree_hash(files: dict[str, tuple[Path, int]]) -> str:
    """The git object id of a folder of plain files {name: (path, mode)}, as `git rev-parse REV:DIR` gives it:
    SHA-1 of 'tree SIZE\\0' + the entries sorted by name, each 'MODE NAME\\0' + the raw SHA-1 of the blob
    'blob SIZE\\0' + the file's bytes; MODE is 100755 for an executable file, else 100644."""
    body = b""
    for name in sorted(files, key=lambda n: n.encode()):
        path, mode = files[name]
        data = path.read_bytes()
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).digest()
        body += f"{'100755' if mode & 0o111 else '100644'} {name}".encode() + b"\0" + blob
    return hashlib.sha1(b"tree %d\0" % len(body) + body).hexdigest()


def _fetch_archive(
    url: str,
    archive_name: str,
    final: Path,
    what: str,
    pick: Callable[[str], str | None],
    check: Callable[[Path, dict[str, int]], None],
    hint: str,
) -> Path:
    """`final`, or: download the archive into the data folder, unpack what `pick` names, `check` it, rename."""
    if final.is_dir():
        return final
    root = data_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadError(
            f"cannot write {what} into the data folder {root} ({err.strerror or err}); "
            f"set $CNNATLAS_DATA to a writable folder, {hint}"
        ) from None
    with file_lock(root / f"{final.name}.lock"):
        if final.is_dir():  # another process unpacked it while this one waited
            return final
        archive = fetch_file(url, root / archive_name, what, hint)
        try:
            unpack(archive, final, pick, check)
        except DatasetError:
            archive.unlink(missing_ok=True)
            raise
        archive.unlink(missing_ok=True)
    return final


def unpack(
    archive: Path, final: Path, pick: Callable[[str], str | None], check: Callable[[Path, dict[str, int]], None]
) -> None:
    """Unpack the members of a tar archive that `pick` maps to a relative path (only names it builds
    from checked parts) into a temporary folder, `check(folder, {path: mode})`, rename it to `final`."""
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    modes: dict[str, int] = {}
    try:
        tmp.mkdir(parents=True)
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                rel = pick(member.name)
                if rel is None:
                    continue
                if not member.isfile():  # a link or device where a data file belongs
                    raise DatasetError(f"{archive}: {member.name} is not a regular file; nothing was kept")
                if rel in modes:
                    raise DatasetError(f"{archive}: {member.name} appears twice; nothing was kept")
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
                modes[rel] = member.mode
        check(tmp, modes)
        os.replace(tmp, final)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DatasetError(f"{archive}: cannot be unpacked ({err}); nothing was kept") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
