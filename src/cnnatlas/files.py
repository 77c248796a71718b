"""Files written whole: a file cnnatlas writes for the user (a mask, an export, a table) is written beside
its place and renamed there in one step, so a reader, or a failure halfway, never finds it partial."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def written_whole(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; when the block ends without an error it replaces `path`
    in one rename, and in any case no temporary file is left behind."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


__all__ = ["written_whole"]
