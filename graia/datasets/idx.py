"""Reading and writing IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number, one 4-byte big-endian size per dimension, then the data in
row-major (C) order, big-endian:

=======  ===========================================================================
bytes    meaning
=======  ===========================================================================
0-1      always zero
2        element type: 0x08 ubyte, 0x09 sbyte, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64
3        number of dimensions (1 to 255)
4...     each dimension's size, unsigned 32-bit big-endian
...      ``prod(dims) * itemsize`` bytes of data, nothing after them
=======  ===========================================================================

Files may be gzip-compressed; compression is detected from the content (gzip's magic bytes
``1f 8b``), not from the file name. Every malformed file raises :class:`graia.errors.DatasetError`
naming the file and the problem.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from graia.datasets._streams import maybe_gunzip, open_dataset_file, read_into
from graia.errors import DatasetError, GraiaValueError
from graia.files import atomic_write

__all__ = [
    "DEFAULT_MAX_BYTES",
    "IDX_TYPES",
    "decode_idx",
    "encode_idx",
    "read_idx",
    "read_idx_header",
    "write_idx",
]

#: IDX type code -> numpy dtype (big-endian, as stored in the file).
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("=").str[1:]: code for code, dt in IDX_TYPES.items()}

#: Largest data payload :func:`read_idx` accepts unless told otherwise (2 GiB).
DEFAULT_MAX_BYTES = 2 << 30


#: An expected shape for :func:`read_idx`: one entry per dimension, ``None`` for any size.
Shape = tuple[int | None, ...]


def _read_exact(stream: BinaryIO, n: int, source: str, what: str) -> bytes:
    """Read exactly ``n`` (a few) bytes or raise a DatasetError saying the file is truncated."""
    data = stream.read(n)
    if len(data) != n:
        raise DatasetError(
            f"{source}: truncated IDX file: expected {n} bytes of {what}, got {len(data)}"
        )
    return data


def _parse_header(stream: BinaryIO, source: str) -> tuple[np.dtype, tuple[int, ...]]:
    magic = _read_exact(stream, 4, source, "magic number")
    if magic[0] != 0 or magic[1] != 0:
        raise DatasetError(
            f"{source}: not an IDX file: magic number starts with {magic[:2].hex()}, expected 0000"
        )
    code, ndim = magic[2], magic[3]
    if code not in IDX_TYPES:
        known = ", ".join(f"0x{c:02x}" for c in IDX_TYPES)
        raise DatasetError(f"{source}: unknown IDX element type 0x{code:02x} (known: {known})")
    if ndim == 0:
        raise DatasetError(f"{source}: IDX header declares 0 dimensions")
    dims = struct.unpack(f">{ndim}I", _read_exact(stream, 4 * ndim, source, "dimensions"))
    return IDX_TYPES[code], dims


def _check_header(
    source: str,
    dtype: np.dtype,
    dims: tuple[int, ...],
    max_bytes: int,
    want_dtype: npt.DTypeLike | None,
    want_shape: Shape | None,
) -> int:
    """Refuse a header that does not match what the caller expects; return the data's size."""
    if want_dtype is not None and dtype.newbyteorder("=") != np.dtype(want_dtype):
        raise DatasetError(
            f"{source}: IDX element type is {dtype.newbyteorder('=')}, expected "
            f"{np.dtype(want_dtype)}"
        )
    if want_shape is not None and (
        len(want_shape) != len(dims)
        or any(w is not None and w != d for w, d in zip(want_shape, dims, strict=True))
    ):
        entries = ["n" if w is None else str(w) for w in want_shape]
        wanted = "(" + ", ".join(entries) + ("," if len(entries) == 1 else "") + ")"
        raise DatasetError(f"{source}: IDX header declares dimensions {dims}, expected {wanted}")
    nbytes = math.prod(dims) * dtype.itemsize
    if nbytes > max_bytes:
        raise DatasetError(
            f"{source}: IDX header declares dimensions {dims} = {nbytes} bytes of data, "
            f"more than the limit of {max_bytes} bytes"
        )
    return nbytes


def _parse(
    stream: BinaryIO,
    source: str,
    max_bytes: int,
    want_dtype: npt.DTypeLike | None,
    want_shape: Shape | None,
    raw_size: int | None,
) -> np.ndarray:
    dtype, dims = _parse_header(stream, source)
    nbytes = _check_header(source, dtype, dims, max_bytes, want_dtype, want_shape)
    header_bytes = 4 + 4 * len(dims)
    # Uncompressed, the file's size is known: a lying header is refused before reading.
    if raw_size is not None and raw_size < header_bytes + nbytes:
        raise DatasetError(
            f"{source}: truncated IDX file: dimensions {dims} declare {nbytes} bytes of data, "
            f"the file holds {raw_size - header_bytes}"
        )
    if raw_size is not None and raw_size > header_bytes + nbytes:
        raise DatasetError(
            f"{source}: extra bytes after the {nbytes} bytes of data that dimensions {dims} declare"
        )
    # Read straight into the result: memory is the data's size, and never more is decompressed.
    data = np.empty(nbytes, np.uint8)
    got = read_into(stream, memoryview(data))
    if got < nbytes:
        raise DatasetError(
            f"{source}: truncated IDX file: expected {nbytes} bytes of data for dimensions "
            f"{dims}, got {got}"
        )
    if stream.read(1):
        raise DatasetError(
            f"{source}: extra bytes after the {nbytes} bytes of data that dimensions {dims} declare"
        )
    return data.view(dtype).reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def _parse_maybe_gzip(
    raw: BinaryIO,
    source: str,
    max_bytes: int,
    want_dtype: npt.DTypeLike | None = None,
    want_shape: Shape | None = None,
    header_only: bool = False,
) -> Any:
    size = raw.seek(0, os.SEEK_END)
    raw.seek(0)
    with maybe_gunzip(raw, source) as (stream, compressed):
        if header_only:
            return _parse_header(stream, source)
        # Uncompressed, the file's size is known and checked against the header.
        raw_size = None if compressed else size
        return _parse(stream, source, max_bytes, want_dtype, want_shape, raw_size)


def read_idx_header(path: str | os.PathLike[str]) -> tuple[np.dtype, tuple[int, ...]]:
    """Read only an IDX file's header: its element dtype (native byte order) and dimensions.

    Cheap even for a large or hostile file: only the first bytes are read (and decompressed).

    Raises:
        DatasetError: The file cannot be opened, is not IDX, or its header is corrupt.
    """
    source = os.fspath(path)
    with open_dataset_file(source, "IDX file") as f:
        dtype, dims = _parse_maybe_gzip(f, source, 0, header_only=True)
    return dtype.newbyteorder("="), dims


def read_idx(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    dtype: npt.DTypeLike | None = None,
    shape: Shape | None = None,
) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) into a numpy array.

    The header is checked (against ``max_bytes``, ``dtype`` and ``shape``) before the data is
    read, and no more data than the header declares is ever read or decompressed.

    Args:
        path: The file. Compression is detected from its first bytes, not its name.
        max_bytes: Refuse files whose header declares more data than this many bytes.
        dtype: Refuse files of another element type (native byte order, e.g. ``np.uint8``).
        shape: Refuse files of other dimensions; ``None`` entries match any size.

    Returns:
        An array with the file's dimensions and a native-byte-order dtype
        (``uint8`` for the usual ubyte files).

    Raises:
        DatasetError: The file cannot be opened, is not IDX, is corrupt, truncated, has extra
            bytes after the data, is larger than ``max_bytes``, or does not match ``dtype`` or
            ``shape``.
    """
    source = os.fspath(path)
    with open_dataset_file(source, "IDX file") as f:
        return _parse_maybe_gzip(f, source, max_bytes, dtype, shape)


def decode_idx(
    data: bytes, source: str = "<bytes>", *, max_bytes: int = DEFAULT_MAX_BYTES
) -> np.ndarray:
    """Decode IDX content (gzip-compressed or raw) held in memory; see :func:`read_idx`.

    Args:
        data: The file's bytes.
        source: Name used in error messages.
        max_bytes: Refuse content whose header declares more data than this many bytes.
    """
    return _parse_maybe_gzip(io.BytesIO(data), source, max_bytes)


def encode_idx(array: np.ndarray) -> bytes:
    """Return the uncompressed IDX encoding of ``array``.

    Raises:
        GraiaValueError: The dtype has no IDX type code, ``array`` has 0 or more than 255
            dimensions, or a dimension does not fit in 32 bits.
    """
    arr = np.asarray(array)
    key = arr.dtype.newbyteorder("=").str[1:] if arr.dtype.kind in "iuf" else None
    if key not in _CODES:
        raise GraiaValueError(
            f"array: dtype {arr.dtype} has no IDX type code "
            "(expected uint8, int8, int16, int32, float32 or float64)"
        )
    if not 1 <= arr.ndim <= 255:
        raise GraiaValueError(f"array: IDX needs 1 to 255 dimensions, got {arr.ndim}")
    if any(d > 0xFFFFFFFF for d in arr.shape):
        raise GraiaValueError(f"array: shape {arr.shape} has a dimension over 2**32 - 1")
    code = _CODES[key]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + np.ascontiguousarray(arr, dtype=IDX_TYPES[code]).tobytes()


def write_idx(
    path: str | os.PathLike[str], array: np.ndarray, *, compress: bool | None = None
) -> Path:
    """Write ``array`` to an IDX file, atomically.

    Args:
        path: Destination. Written to a temporary file in the same directory, then renamed.
        array: Array of dtype uint8, int8, int16, int32, float32 or float64, 1 to 255 dims.
        compress: gzip the file; ``None`` (default) compresses when ``path`` ends in ``.gz``.

    Returns:
        The destination path.
    """
    dest = Path(path)
    payload = encode_idx(array)
    if compress is None:
        compress = dest.name.endswith(".gz")
    if compress:
        payload = gzip.compress(payload, mtime=0)
    with atomic_write(dest) as f:
        f.write(payload)
    return dest
