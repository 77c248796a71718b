"""Fetching files once: checksummed, atomic, safe under concurrent processes, with a clear offline message.

Every file cnnatlas downloads — pretrained weights, dataset archives — goes through `download`:

* the file lands in its cache folder only when complete and its checksum matches (it is written to a
  temporary name beside it and renamed into place), so a cut-off download or a corrupt one never
  stays in the cache, and the next call starts again;
* two processes that ask for the same file at once take turns on a lock file beside it: the second
  finds the first's finished file and downloads nothing;
* a progress bar goes to stderr (when it is a terminal, or always with `progress=True`);
* with no network, the error names the file, the URL and the folder to put the file in by hand.

`$CNNATLAS_MIRROR` replaces every download's scheme and host: with it set to
`http://127.0.0.1:8000/m`, `https://host/path/f.pth` is fetched from `http://127.0.0.1:8000/m/host/path/f.pth`
(a local mirror, an air-gapped copy, or the tests' own server).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from .errors import UnavailableError

CHUNK = 1 << 20
TIMEOUT_S = 30.0


class DownloadError(UnavailableError, OSError):
    """A download that could not be made or whose file is not the one published."""


def data_dir() -> Path:
    """cnnatlas's data folder: `$CNNATLAS_DATA`, else the platform's user cache folder
    (`$XDG_CACHE_HOME/cnnatlas`, by default `~/.cache/cnnatlas`, on Linux; `~/Library/Caches/cnnatlas`
    on macOS; `%LOCALAPPDATA%\\cnnatlas` on Windows)."""
    if os.environ.get("CNNATLAS_DATA"):
        return Path(os.environ["CNNATLAS_DATA"]).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "cnnatlas"


def resolve_url(url: str) -> str:
    """The URL actually fetched: `url`, or its path under `$CNNATLAS_MIRROR` when that is set."""
    mirror = os.environ.get("CNNATLAS_MIRROR", "").rstrip("/")
    if not mirror:
        return url
    parts = urllib.parse.urlsplit(url)
    return f"{mirror}/{parts.netloc}{parts.path}"


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes (`sha256`, `md5`, …), read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_digest(digest: str, expected: str | None) -> bool:
    """True when `digest` matches `expected`; a shorter `expected` is a prefix (torchvision's file
    names carry the first hex digits of their SHA-256)."""
    return expected is None or digest.startswith(expected.lower())


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on `path` (created if missing), held for the `with` block; other
    processes asking for it wait. Released when the block ends or the process dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        try:
            import fcntl
        except ImportError:  # Windows: msvcrt's lock on the first byte
            import msvcrt

            msvcrt.locking(f.fileno(), msvcrt.LK_LOCK, 1)
            try:
                yield
            finally:
                msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
            return
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def download(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    progress: bool | None = None,
    what: str = "file",
) -> Path:
    """`dest`, downloaded from `url` unless it is already there with the right checksum.

    `sha256` (or a prefix of it) or `md5` is the published checksum; a file that does not match is
    deleted and `DownloadError` raised. `what` names the file in messages ("ResNet-50 weights").
    """
    dest = Path(dest)
    algorithm, expected = ("sha256", sha256) if sha256 or not md5 else ("md5", md5)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadError(f"cannot write {what} {dest.name} into {dest.parent}: {err.strerror or err}") from None
    with file_lock(dest.with_name(dest.name + ".lock")):
        if dest.is_file():
            if expected is None or _check_digest(file_digest(dest, algorithm), expected):
                return dest
            dest.unlink()  # a corrupt copy, e.g. placed by hand: fetch it again
        _fetch(url, dest, algorithm, expected, progress, what)
    return dest


def _offline_message(url: str, fetched: str, dest: Path, what: str, err: object) -> str:
    via = f" (through $CNNATLAS_MIRROR: {fetched})" if fetched != url else ""
    return (
        f"could not download {what} {dest.name} from {url}{via}: {err}. Without a network, download it "
        f"elsewhere and put it in {dest.parent}/ as {dest.name}"
    )


def _fetch(url: str, dest: Path, algorithm: str, expected: str | None, progress: bool | None, what: str) -> None:
    """Stream `url` into a temporary file beside `dest`, check its length and checksum, rename it into place."""
    fetched = resolve_url(url)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        out = open(tmp, "wb")
    except OSError as err:
        raise DownloadError(f"cannot write {what} {dest.name} into {dest.parent}: {err.strerror or err}") from None
    h = hashlib.new(algorithm)
    done, total = 0, None
    try:
        with out:
            request = urllib.request.Request(fetched, headers={"User-Agent": "cnnatlas"})
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with _progress_bar(f"{what} {dest.name}", total, progress) as advance:
                    for chunk in iter(lambda: response.read(CHUNK), b""):
                        out.write(chunk)
                        h.update(chunk)
                        done += len(chunk)
                        advance(len(chunk))
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, http.client.IncompleteRead) or (done and total and done < total):
            raise DownloadError(
                f"download of {what} {dest.name} from {fetched} was cut off after {done:,} bytes; "
                f"nothing was kept, run again to retry"
            ) from None
        if isinstance(err, urllib.error.HTTPError):
            raise DownloadError(
                f"could not download {what} {dest.name}: {fetched} answered HTTP {err.code} ({err.reason})"
            ) from None
        raise DownloadError(_offline_message(url, fetched, dest, what, getattr(err, "reason", None) or err)) from None
    try:
        if total is not None and done != total:
            raise DownloadError(
                f"download of {what} {dest.name} from {fetched} was cut off after {done:,} of "
                f"{total:,} bytes; nothing was kept, run again to retry"
            )
        digest = h.hexdigest()
        if not _check_digest(digest, expected):
            raise DownloadError(
                f"{what} {dest.name} downloaded from {fetched} has {algorithm} {digest}, but the "
                f"published one is {expected}; the file was not kept"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _progress_bar(label: str, total: int | None, show: bool | None) -> Iterator:
    """A rich progress bar on stderr; yields `advance(n_bytes)`."""
    if show is None:
        show = sys.stderr.isatty()
    if not show:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as bar:
        task = bar.add_task(f"downloading {label}", total=total)
        yield lambda n: bar.advance(task, n)
