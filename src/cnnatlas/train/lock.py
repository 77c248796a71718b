"""One process owns a run folder at a time.

`RunLock(run_dir).acquire()` takes an exclusive, non-blocking advisory lock (`fcntl.flock`; on
Windows `msvcrt.locking`) on RUN/train.lock and writes the holder's pid, host and start time into it.
A second `cnnatlas train --out RUN` or `--resume RUN` meanwhile fails at once with `RunLockedError`
naming that pid. The operating system drops the lock when its holder exits, however it exits
(SIGKILL and crashes included), so a lock file left by a dead process is simply taken over — a
stale lock needs no cleaning. Under torchrun only rank 0 takes it (one owner per run).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from pathlib import Path
from typing import IO, Self

from ..errors import UnavailableError

LOCK_FILE = "train.lock"


class RunLockedError(UnavailableError, RuntimeError):
    """The run folder is owned by another live process (training or resuming it)."""


def read_holder(path: Path) -> str:
    """'process 1234 on host since 2026-…' from a lock file, as far as it can be read."""
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        return f"process {int(d['pid'])} on {d.get('host', '?')} since {d.get('since', '?')}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (its pid could not be read from the lock file)"


class RunLock:
    """An exclusive try-lock on RUN/train.lock; `release()` (or leaving `with`) gives it back."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._file: IO[bytes] | None = None

    def acquire(self) -> Self:
        f = open(self.path, "a+b")  # noqa: SIM115 - held until release()
        try:
            _try_lock(f)
        except BlockingIOError:
            f.close()
            raise RunLockedError(
                f"{self.path.parent} is in use by {read_holder(self.path)} (training or resuming "
                f"it); wait for it to finish, or choose another --out"
            ) from None
        except OSError as err:
            f.close()
            raise RunLockedError(f"{self.path}: cannot lock the run folder ({err.strerror or err})") from None
        f.seek(0)
        f.truncate()
        f.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            ).encode()
            + b"\n"
        )
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is None:
            return
        f, self._file = self._file, None
        try:
            f.seek(0)
            f.truncate()  # no holder any more (the file stays: unlinking it would race a newcomer)
        finally:
            _unlock(f)
            f.close()

    @property
    def held(self) -> bool:
        return self._file is not None

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _try_lock(f: IO[bytes]) -> None:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError as err:
            raise BlockingIOError(errno.EAGAIN, str(err)) from None
        return
    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock(f: IO[bytes]) -> None:
    try:
        import fcntl
    except ImportError:
        import msvcrt

        f.seek(0)
        msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(f.fileno(), fcntl.LOCK_UN)
