"""Hypothesis fuzzing of the IDX reader: corrupt input raises DatasetError and nothing else."""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graia.datasets import idx
from graia.errors import DatasetError

_LIMIT = 1 << 20  # keep mutated headers from asking for big allocations during the fuzz


def _valid_files() -> list[bytes]:
    rng = np.random.default_rng(0)
    arrays = [
        rng.integers(0, 256, (3, 5, 4), dtype=np.uint8),
        rng.integers(0, 10, 17, dtype=np.uint8),
        rng.integers(-1000, 1000, (2, 3)).astype(">i4"),
        rng.standard_normal((4, 2)).astype(">f8"),
    ]
    raw = [idx.encode_idx(a) for a in arrays]
    return raw + [gzip.compress(r, mtime=0) for r in raw]


VALID = _valid_files()


def _decode(data: bytes) -> None:
    try:
        out = idx.decode_idx(data, "fuzz", max_bytes=_LIMIT)
    except DatasetError as exc:
        assert "fuzz" in str(exc)
        return
    # A mutation can leave a valid file (e.g. a changed data byte): then it decodes sanely.
    assert isinstance(out, np.ndarray) and out.nbytes <= _LIMIT and out.dtype.isnative


settings_ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings_
@given(which=st.integers(0, len(VALID) - 1), data=st.data())
def test_mutations(which: int, data: st.DataObject) -> None:
    raw = bytearray(VALID[which])
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    _decode(bytes(raw))


#: How a file may come compressed: gzip (read), others (never inflated: refused as bad magic),
#: and gzip whose trailer's declared size lies.
COMPRESSIONS = {
    "none": lambda raw: raw,
    "gzip": lambda raw: gzip.compress(raw, mtime=0),
    "gzip, lying size": lambda raw: gzip.compress(raw, mtime=0)[:-4] + b"\xff\xff\xff\x7f",
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zlib": zlib.compress,
}


@settings_
@given(
    which=st.integers(0, len(VALID) // 2 - 1),
    dims=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4),
    compression=st.sampled_from(sorted(COMPRESSIONS)),
)
def test_header_sizes_and_compressions(which: int, dims: list[int], compression: str) -> None:
    """The sizes an IDX header carries set to anything, under every compression."""
    raw = bytearray(VALID[which])
    for i, dim in enumerate(dims[: raw[3]]):
        struct.pack_into(">I", raw, 4 + 4 * i, dim)
    _decode(COMPRESSIONS[compression](bytes(raw)))


@settings_
@given(which=st.integers(0, len(VALID) - 1), data=st.data())
def test_truncations_always_fail(which: int, data: st.DataObject) -> None:
    good = VALID[which]
    cut = data.draw(st.integers(0, len(good) - 1))
    with pytest.raises(DatasetError):
        idx.decode_idx(good[:cut], "fuzz", max_bytes=_LIMIT)


@settings_
@given(
    which=st.integers(0, len(VALID) - 1),
    at=st.integers(0, 10_000),
    junk=st.binary(min_size=1, max_size=32),
)
def test_insertions(which: int, at: int, junk: bytes) -> None:
    raw = bytearray(VALID[which])
    at %= len(raw) + 1
    raw[at:at] = junk
    _decode(bytes(raw))


@settings_
@given(st.binary(max_size=64))
def test_random_bytes(data: bytes) -> None:
    _decode(data)
    _decode(b"\x1f\x8b" + data)
    _decode(b"\x00\x00\x08\x01" + data)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=48))
def test_files_on_disk(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "f.idx"
    p.write_bytes(data)
    try:
        idx.read_idx(p, max_bytes=_LIMIT)
    except DatasetError as exc:
        assert str(p) in str(exc)


@settings(max_examples=50, deadline=None)
@given(
    shape=st.lists(st.integers(0, 5), min_size=1, max_size=4),
    code=st.sampled_from(sorted(idx.IDX_TYPES)),
)
def test_round_trip_any_shape(shape: list[int], code: int) -> None:
    dtype = idx.IDX_TYPES[code]
    a = np.arange(int(np.prod(shape)), dtype=np.int64).astype(dtype).reshape(shape)
    b = idx.decode_idx(idx.encode_idx(a))
    assert b.shape == a.shape
    np.testing.assert_array_equal(a, b)
