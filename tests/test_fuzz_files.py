"""Seeded fuzz of model files, IDX files and CIFAR-10 archives: every mutant loads or fails with
the library's own one-line error. Short by default; ``GRAIA_FUZZ_LONG=1`` runs 10,000 of each (issue 8)."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import struct
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import graia
from graia import layers
from graia.datasets import cifar10, idx
from graia.errors import DatasetError, ModelFileError

COUNT = 10_000 if os.environ.get("GRAIA_FUZZ_LONG") == "1" else 300


def _mutate_bytes(rng: np.random.Generator, raw: bytes) -> bytes:
    data = bytearray(raw)
    kind = rng.integers(5)
    if kind == 0:  # flip bytes
        for _ in range(rng.integers(1, 9)):
            data[rng.integers(len(data))] = rng.integers(256)
    elif kind == 1:  # truncate
        data = data[: rng.integers(len(data))]
    elif kind == 2:  # splice in junk
        at = rng.integers(len(data) + 1)
        data[at:at] = rng.integers(0, 256, rng.integers(1, 65), dtype=np.uint8).tobytes()
    elif kind == 3:  # delete a run
        at = rng.integers(len(data))
        del data[at : at + rng.integers(1, 65)]
    else:  # overwrite a 4-byte word with an extreme value (sizes, counts, offsets)
        at = rng.integers(max(1, len(data) - 4))
        word = int(rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 2**31, 10**9]))
        data[at : at + 4] = word.to_bytes(4, "little" if rng.integers(2) else "big")
    return bytes(data)


def _mutate_members(rng: np.random.Generator, raw: bytes) -> bytes:
    """Valid zips with hostile content: configs, manifests and .npy headers that lie."""
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    name = str(rng.choice(sorted(members)))
    if name.endswith(".json"):
        obj = json.loads(members[name])
        key = str(rng.choice(sorted(obj))) if obj else "x"
        obj[key] = [None, -1, 2**40, "x" * 50, [], {}, 1e308, True][rng.integers(8)]
        members[name] = json.dumps(obj).encode()
    else:
        npy = members[name]
        shape = (int(rng.choice([0, 1, 2**20, 2**31, 10**11])),)
        header = {"descr": str(rng.choice(["<i4", "<i8", "|u1", "|O", "<f8"])),
                  "fortran_order": False, "shape": shape}  # fmt: skip
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, header)
        members[name] = buf.getvalue() + npy[128 : 128 + int(rng.integers(0, 200))]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    return out.getvalue()


#: Header fields that carry sizes, counts and methods: (signature, [(offset, format)]) of the
#: central directory entries, the local headers and the end record.
_HEADER_FIELDS = [
    (b"PK\x01\x02", [(10, "<H"), (16, "<L"), (20, "<L"), (24, "<L"), (42, "<L")]),
    (b"PK\x03\x04", [(8, "<H"), (18, "<L"), (22, "<L"), (26, "<H"), (28, "<H")]),
    (b"PK\x05\x06", [(8, "<H"), (10, "<H"), (12, "<L"), (16, "<L")]),
]


def _mutate_headers(rng: np.random.Generator, raw: bytes) -> bytes:
    """Compression methods and header-carried sizes: every member re-compressed with a method
    zipfile writes (stored, deflate, bzip2, LZMA), then a few methods, sizes, counts or offsets
    in the headers set to extreme values."""
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data, compress_type=int(rng.choice([0, 8, 8, 8, 12, 14])))
    data = bytearray(out.getvalue())
    for _ in range(rng.integers(0, 3)):
        signature, fields = _HEADER_FIELDS[rng.integers(len(_HEADER_FIELDS))]
        found = [m.start() for m in re.finditer(re.escape(signature), bytes(data))]
        offset, fmt = fields[rng.integers(len(fields))]
        word = int(rng.choice([0, 1, 12, 14, 99, 0xFFFF, 2**31, 0xFFFFFFFF, 10**9]))
        struct.pack_into(
            fmt, data, found[rng.integers(len(found))] + offset, word % 256 ** struct.calcsize(fmt)
        )
    return bytes(data)


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    base = tmp_path_factory.mktemp("seeds")
    out = []
    for i, hidden in enumerate([(), (5,), (4, 3)]):
        model = graia.Sequential(
            [layers.Input((2, 3))] + [layers.Dense(h) for h in hidden] + [layers.Dense(3)], seed=i
        )
        model.compile("dfa")
        model.save(base / f"m{i}.graia")
        out.append((base / f"m{i}.graia").read_bytes())
    return out


def test_fuzz_model_files(model_files: list[bytes], tmp_path: Path) -> None:
    rng = np.random.default_rng(20261125)
    path = tmp_path / "fuzz.graia"
    outcomes = {"loaded": 0, "refused": 0}
    start = time.perf_counter()
    for _ in range(COUNT):
        seed = model_files[rng.integers(len(model_files))]
        mutate = [_mutate_members, _mutate_headers, _mutate_bytes, _mutate_bytes][rng.integers(4)]
        path.write_bytes(mutate(rng, seed))
        try:
            model = graia.load_model(path)
        except ModelFileError as exc:
            message = str(exc)
            assert "\n" not in message and message.startswith(str(path)), message
            outcomes["refused"] += 1
            continue
        assert model.predict(np.zeros((1, 6), np.uint8)).shape == (1, 3)
        outcomes["loaded"] += 1
    elapsed = time.perf_counter() - start
    print(f"model files: {COUNT} in {elapsed:.1f} s: {outcomes}")
    assert outcomes["refused"] > COUNT // 2


def test_fuzz_idx_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    arrays = [
        rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, 4, dtype=np.uint8),
        rng.integers(-1000, 1000, (2, 3)).astype(np.int32),
        rng.standard_normal((3, 2)),
    ]
    seeds = [idx.encode_idx(a) for a in arrays]
    seeds += [gzip.compress(s, mtime=0) for s in seeds]
    path = tmp_path / "fuzz-idx"
    outcomes = {"read": 0, "refused": 0}
    start = time.perf_counter()
    for _ in range(COUNT):
        path.write_bytes(_mutate_bytes(rng, seeds[rng.integers(len(seeds))]))
        try:
            if rng.integers(2):
                out = idx.read_idx(path, max_bytes=1 << 22)
            else:
                out = idx.read_idx(path, dtype=np.uint8, shape=(None, 28, 28))
        except DatasetError as exc:
            message = str(exc)
            assert "\n" not in message and message.startswith(str(path)), message
            outcomes["refused"] += 1
            continue
        assert out.dtype.isnative and out.nbytes <= 1 << 22
        outcomes["read"] += 1
    elapsed = time.perf_counter() - start
    print(f"IDX files: {COUNT} in {elapsed:.1f} s: {outcomes}")
    assert outcomes["refused"] > COUNT // 2


def _cifar_archive(rng: np.random.Generator) -> bytes:
    """An uncompressed CIFAR-10 binary archive with one record per batch, plus a text member."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        members = [*cifar10.TRAIN_MEMBERS, *cifar10.TEST_MEMBERS, "cifar-10-batches-bin/x.txt"]
        for name in members:
            record = rng.integers(0, 256, cifar10.RECORD_BYTES, dtype=np.uint8)
            record[0] %= 10
            info = tarfile.TarInfo(name)
            info.size = record.nbytes
            tar.addfile(info, io.BytesIO(record.tobytes()))
    return buf.getvalue()


def test_fuzz_cifar10_archives(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    raw = _cifar_archive(rng)
    seeds = [raw, gzip.compress(raw, mtime=0)]
    path = tmp_path / "fuzz-cifar.tar.gz"
    outcomes = {"read": 0, "refused": 0}
    start = time.perf_counter()
    for _ in range(COUNT):
        path.write_bytes(_mutate_bytes(rng, seeds[rng.integers(len(seeds))]))
        try:
            (x, y), (xt, yt) = cifar10.read_archive(path, records_per_batch=1)
        except DatasetError as exc:
            message = str(exc)
            assert "\n" not in message and message.startswith(str(path)), message
            outcomes["refused"] += 1
            continue
        assert x.shape == (5, 32, 32, 3) and xt.shape == (1, 32, 32, 3)
        assert int(max(y.max(), yt.max())) < 10
        outcomes["read"] += 1
    elapsed = time.perf_counter() - start
    print(f"CIFAR-10 archives: {COUNT} in {elapsed:.1f} s: {outcomes}")
    assert outcomes["refused"] > COUNT // 2
