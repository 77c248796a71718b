"""The IDX file format of MNIST and Fashion-MNIST, read strictly.

Layout (LeCun's MNIST page): a 4-byte magic number — two zero bytes, one byte naming the element
type (0x08 unsigned byte, 0x09 signed byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64)
and one byte giving the number of dimensions d — then d big-endian uint32 sizes, then the data in
C order, big-endian. Files are usually gzip-compressed. Every way a file can be wrong (bad gzip,
wrong magic, truncated data, trailing bytes) raises DatasetError naming the file and the problem.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np
import torch

from .base import DatasetError

IDX_TYPES: dict[int, tuple[str, np.dtype]] = {
    0x08: ("unsigned byte", np.dtype(">u1")),
    0x09: ("signed byte", np.dtype(">i1")),
    0x0B: ("int16", np.dtype(">i2")),
    0x0C: ("int32", np.dtype(">i4")),
    0x0D: ("float32", np.dtype(">f4")),
    0x0E: ("float64", np.dtype(">f8")),
}
GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it is a gzip file (checking its CRC and length)."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    raw = path.read_bytes()
    if not raw.startswith(GZIP_MAGIC):
        if path.suffix == ".gz":
            raise DatasetError(f"{path}: not a gzip file (it does not start with the gzip magic bytes 1f 8b)")
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise DatasetError(
            f"{path}: truncated gzip file (the compressed stream ends early; {len(raw):,} bytes on disk)"
        ) from None
    except (gzip.BadGzipFile, zlib.error, OSError) as err:
        raise DatasetError(f"{path}: corrupted gzip file ({err})") from None


def read_idx(path: str | Path) -> torch.Tensor:
    """Parse one IDX file (optionally gzipped) into a tensor of its declared type and shape."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DatasetError(f"{path}: {len(data)} bytes is too short for an IDX header (4-byte magic number)")
    zero1, zero2, type_code, ndim = data[:4]
    if zero1 or zero2 or type_code not in IDX_TYPES or ndim == 0:
        raise DatasetError(
            f"{path}: bad IDX magic number 0x{data[:4].hex()} (expected 0x0000TTDD: two zero bytes, a type "
            f"code among {', '.join(f'0x{c:02X}' for c in IDX_TYPES)}, and the number of dimensions ≥ 1)"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{path}: truncated header: {ndim} dimensions need {header} bytes, file has {len(data)}")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    type_name, dtype = IDX_TYPES[type_code]
    expected = math.prod(dims) * dtype.itemsize
    got = len(data) - header
    if got < expected:
        raise DatasetError(
            f"{path}: truncated data: the header declares {'×'.join(map(str, dims))} {type_name} "
            f"values ({expected:,} bytes) but only {got:,} bytes follow"
        )
    if got > expected:
        raise DatasetError(
            f"{path}: {got - expected:,} unexpected bytes after the {'×'.join(map(str, dims))} "
            f"{type_name} values the header declares"
        )
    array = np.frombuffer(data, dtype=dtype, count=math.prod(dims), offset=header).reshape(dims)
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=True))


def write_idx(path: str | Path, tensor: torch.Tensor | np.ndarray, compress: bool | None = None) -> None:
    """Write an IDX file (gzipped when the name ends in .gz or compress=True) — for tests and tools."""
    path = Path(path)
    array = np.asarray(tensor)
    codes = {dt.newbyteorder("="): code for code, (_, dt) in IDX_TYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DatasetError(f"{path}: IDX cannot store dtype {array.dtype}")
    body = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    body += array.astype(IDX_TYPES[code][1]).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        body = gzip.compress(body, mtime=0)
    path.write_bytes(body)
