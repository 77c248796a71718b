"""Files cnnatlas writes for the user. Each (a mask, an export, a table) is written beside its place and
renamed there in one step, so a reader, or a failure halfway, never finds it partial; a PNG says in its
"Software" text chunk which part of cnnatlas wrote it, so that only such a file is ever replaced."""

from __future__ import annotations

import os
import struct
import zlib
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


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_software(path: str | Path) -> str | None:
    """The "Software" text chunk of the PNG at `path`: what says it wrote the file (None where `path` is
    not a readable PNG, or has no such chunk)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.info.get("Software") if image.format == "PNG" else None
    except (UnidentifiedImageError, OSError):
        return None


def with_png_software(png: bytes, software: str) -> bytes:
    """The PNG file `png` with a "Software" tEXt chunk saying `software`, placed after its header chunk
    (PNG specification §11.3.4.3); the image data are not re-encoded."""
    if not png.startswith(PNG_SIGNATURE) or png[12:16] != b"IHDR":
        raise ValueError("not a PNG file: it does not begin with the PNG signature and header chunk")
    end_of_header = len(PNG_SIGNATURE) + 8 + struct.unpack(">I", png[8:12])[0] + 4  # length, type, data, CRC
    body = b"tEXt" + b"Software\0" + software.encode("latin-1")
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    return png[:end_of_header] + chunk + png[end_of_header:]


__all__ = ["png_software", "with_png_software", "written_whole"]
