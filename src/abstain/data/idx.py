"""A small, strict parser for the IDX format of MNIST and FashionMNIST (LeCun et al.).

Layout: 2 zero bytes, 1 byte type code, 1 byte number of dimensions, then one big-endian
uint32 per dimension, then the data in row-major order.
"""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from ..errors import DataError

_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into an array; raise DataError naming `source` on any inconsistency."""
    if len(raw) < 4:
        raise DataError(f"{source}: too short to be an IDX file ({len(raw)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in _DTYPES or not 1 <= ndim <= 4:
        raise DataError(f"{source}: bad IDX magic number {raw[:4].hex()}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{source}: truncated IDX header")
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    dtype = np.dtype(_DTYPES[code])
    expected = int(np.prod(dims)) * dtype.itemsize
    body = len(raw) - header
    if body != expected:
        what = "truncated" if body < expected else "has trailing bytes"
        raise DataError(f"{source}: IDX file {what}: {body} data bytes, dims {dims} need {expected}")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Read a `.idx*` file, gzipped or not."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    return parse_idx(raw, str(path))


def write_idx(path: str | Path, arr: np.ndarray) -> None:
    """Write a uint8 array as an (uncompressed) IDX file; used by tests and caches."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    Path(path).write_bytes(header + arr.tobytes())
