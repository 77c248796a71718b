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
    """The "Software" text chunk (tEXt, zTXt or iTXt) among the chunks before the image data of the PNG at
    `path`, where image readers find it: what says it wrote the file. None where `path` is not a readable
    PNG or has no such chunk. Read chunk by chunk, without decoding the image, so a file of any size costs
    a few small reads."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != PNG_SIGNATURE:
                return None
            while len(head := f.read(8)) == 8:
                length, kind = struct.unpack(">I", head[:4])[0], head[4:]
                if kind in (b"IDAT", b"IEND"):
                    return None
                if kind not in (b"tEXt", b"zTXt", b"iTXt") or length > 1 << 20:
                    f.seek(length + 4, os.SEEK_CUR)  # the data and its CRC
                    continue
                keyword, _, text = f.read(length).partition(b"\0")
                f.seek(4, os.SEEK_CUR)
                if keyword == b"Software":
                    return _png_text(kind, text)
    except (OSError, ValueError, zlib.error):
        return None
    return None


def _png_text(kind: bytes, text: bytes) -> str:
    """A text chunk's text after its keyword (PNG specification §11.3.4): tEXt Latin-1; zTXt a method
    byte, then zlib; iTXt flags, language and translated keyword, then UTF-8 (zlib where flagged)."""
    if kind == b"tEXt":
        return text.decode("latin-1")
    if kind == b"zTXt":
        return zlib.decompress(text[1:]).decode("latin-1")
    compressed, rest = text[0], text[2:]
    _language, _, rest = rest.partition(b"\0")
    _translated, _, rest = rest.partition(b"\0")
    return (zlib.decompress(rest) if compressed else rest).decode("utf-8")


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
