"""CIFAR-10 (Krizhevsky, 2009): 50,000 training and 10,000 test colour images, 32x32, ten classes.

Read from the **binary version** the authors publish, ``cifar-10-binary.tar.gz`` (no pickle
anywhere). ``load_data()`` looks for the archive as described in :mod:`graia.datasets.download`
(``path``, ``$GRAIA_DATA/cifar10``, ``~/.graia/datasets/cifar10``, ``/usr/share/datasets/cifar10``;
also accepted uncompressed as ``cifar-10-binary.tar``) and downloads it, SHA-256- and
MD5-verified, when it is nowhere to be found.

The archive holds ``cifar-10-batches-bin/data_batch_1.bin`` ... ``data_batch_5.bin`` and
``test_batch.bin``: each 10,000 records of 3073 bytes, one label byte (0..9) then the image's
1024 red, 1024 green and 1024 blue bytes, each plane row-major 32x32. The images are returned
channels-last, ``(n, 32, 32, 3)``.

The archive is read as a stream, never extracted: this module parses the tar headers itself
(512-byte POSIX ustar or GNU blocks, signature and checksum verified) and reads only the six members above, by exact name;
each must be a regular file of exactly ``records * 3073`` bytes. Other members (the archive also
holds ``batches.meta.txt`` and ``readme.html``) are skipped unread, up to
:data:`MAX_OTHER_MEMBER_BYTES` each and :data:`MAX_MEMBERS` headers in all, so memory stays at
the size of the result plus one batch and time at the size of the real data, whatever the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import BinaryIO

import numpy as np

from graia._validation import integer
from graia.datasets._streams import maybe_gunzip, open_dataset_file, read_into, skip
from graia.datasets.download import Resource, fetch
from graia.errors import DatasetError

__all__ = [
    "ARCHIVE",
    "CLASS_NAMES",
    "IMAGE_SHAPE",
    "MAX_MEMBERS",
    "MAX_OTHER_MEMBER_BYTES",
    "MIRRORS",
    "NAME",
    "RECORDS_PER_BATCH",
    "RECORD_BYTES",
    "RESOURCES",
    "TEST_MEMBERS",
    "TRAIN_MEMBERS",
    "load_data",
    "read_archive",
]

#: Directory name of the dataset in every searched location.
NAME = "cifar10"

#: Download sources, tried in order: the authors' page, then TensorFlow's mirror of it.
MIRRORS: tuple[str, ...] = (
    "https://www.cs.toronto.edu/~kriz/",
    "https://storage.googleapis.com/mirror.tensorflow.org/www.cs.toronto.edu/~kriz/",
)

#: The binary archive as published: SHA-256, size in bytes, and the MD5 listed on
#: https://www.cs.toronto.edu/~kriz/cifar.html ("CIFAR-10 binary version").
ARCHIVE = Resource(
    "cifar-10-binary.tar.gz",
    "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
    170052171,
    md5="c32a1d4ab5d03f1284b67883e8d87530",
)
#: The dataset's files, for :func:`graia.datasets.download.fetch`.
RESOURCES: tuple[Resource, ...] = (ARCHIVE,)

#: Archive members holding the training images, in the order they are concatenated.
TRAIN_MEMBERS: tuple[str, ...] = tuple(
    f"cifar-10-batches-bin/data_batch_{i}.bin" for i in range(1, 6)
)
#: Archive member holding the test images.
TEST_MEMBERS: tuple[str, ...] = ("cifar-10-batches-bin/test_batch.bin",)

#: Shape of one image as returned: height, width, channels (red, green, blue).
IMAGE_SHAPE = (32, 32, 3)
#: Bytes of one record: a label byte, then the red, green and blue 32x32 planes.
RECORD_BYTES = 1 + 3 * 32 * 32
#: Records in each batch file of the published archive.
RECORDS_PER_BATCH = 10000
#: Largest member other than the six batches that is skipped rather than refused.
MAX_OTHER_MEMBER_BYTES = 1 << 20
#: Most tar headers read before the archive is refused (the published one has 8 or 9).
MAX_MEMBERS = 64
#: Most bytes read after the end-of-archive block (tar pads archives to 10 KiB records).
_MAX_TRAILING_BYTES = 1 << 20

#: Class names, indexed by label (``batches.meta.txt`` in the archive).
CLASS_NAMES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

Split = tuple[np.ndarray, np.ndarray]

_BLOCK = 512
_REGULAR_FILE_TYPES = (b"0", b"\0")


def _octal(field: bytes, source: str, offset: int, what: str) -> int:
    """A tar header's octal number (NUL- or space-terminated)."""
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text or any(c not in b"01234567" for c in text):
        raise DatasetError(
            f"{source}: not a valid tar archive: header at byte {offset} has {what} "
            f"{field!r}, expected an octal number"
        )
    return int(text, 8)


def _parse_header(block: bytes, source: str, offset: int) -> tuple[str, bytes, int] | None:
    """``(name, typeflag, size)`` of the tar header ``block``, or None at the end marker."""
    if block.count(0) == _BLOCK:
        return None
    if block[257:262] != b"ustar":  # both POSIX ustar and GNU tar headers carry it
        raise DatasetError(
            f"{source}: not a tar archive: no ustar signature in the header at byte {offset}"
        )
    stored = _octal(block[148:156], source, offset, "checksum")
    # The checksum counts its own 8 bytes as spaces; old tars summed signed bytes.
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    signed = unsigned - 256 * sum(1 for b in block[:148] + block[156:] if b >= 128)
    if stored not in (unsigned, signed):
        raise DatasetError(
            f"{source}: not a valid tar archive: header checksum mismatch at byte {offset}"
        )
    name = block[:100].split(b"\0", 1)[0]
    if block[257:263] == b"ustar\0" and block[345] != 0:  # POSIX ustar: a name prefix
        name = block[345:500].split(b"\0", 1)[0] + b"/" + name
    size = _octal(block[124:136], source, offset, "size")
    return name.decode("utf-8", "replace"), block[156:157], size


def _read_block(stream: BinaryIO, source: str, offset: int) -> bytes:
    block = stream.read(_BLOCK)
    if len(block) != _BLOCK:
        raise DatasetError(
            f"{source}: truncated archive: it ends at byte {offset + len(block)} "
            "before the tar end-of-archive marker"
        )
    return block


def _decode_batch(raw: np.ndarray, member: str, source: str, x: np.ndarray, y: np.ndarray) -> None:
    """Split ``raw`` records into labels ``y`` and channels-last images ``x`` (in place)."""
    records = raw.reshape(len(y), RECORD_BYTES)
    labels = records[:, 0]
    if labels.size and int(labels.max()) >= len(CLASS_NAMES):
        raise DatasetError(
            f"{source}: {member}: label {int(labels.max())} out of range 0..{len(CLASS_NAMES) - 1}"
        )
    y[:] = labels
    # Stored channel-planar (R, G, B planes); returned channels-last like keras.datasets.cifar10.
    x[:] = records[:, 1:].reshape(len(y), 3, 32, 32).transpose(0, 2, 3, 1)


def _read_members(
    stream: BinaryIO,
    source: str,
    slots: dict[str, tuple[np.ndarray, np.ndarray]],
    batch_bytes: int,
) -> None:
    """Walk the tar stream, decoding each wanted member into its ``(x, y)`` slot."""
    buffer = np.empty(batch_bytes, np.uint8)  # one batch at a time: bounded memory
    done: set[str] = set()
    offset = 0
    for _ in range(MAX_MEMBERS):
        header = _parse_header(_read_block(stream, source, offset), source, offset)
        offset += _BLOCK
        if header is None:
            break
        name, typeflag, size = header
        padded = -(-size // _BLOCK) * _BLOCK
        if name in slots:
            if typeflag not in _REGULAR_FILE_TYPES:
                raise DatasetError(f"{source}: archive member {name} is not a regular file")
            if name in done:
                raise DatasetError(f"{source}: archive member {name} appears twice")
            if size != batch_bytes:
                raise DatasetError(
                    f"{source}: archive member {name} holds {size} bytes, expected {batch_bytes} "
                    f"({batch_bytes // RECORD_BYTES} records of {RECORD_BYTES} bytes)"
                )
            got = read_into(stream, memoryview(buffer))
            if got < size:
                raise DatasetError(
                    f"{source}: truncated archive: member {name} ends after {got} "
                    f"of its {size} bytes"
                )
            _decode_batch(buffer, name, source, *slots[name])
            done.add(name)
            rest = padded - size
        else:
            if size > MAX_OTHER_MEMBER_BYTES:
                raise DatasetError(
                    f"{source}: unexpected archive member {name!r} of {size} bytes "
                    f"(other members than the CIFAR-10 batches may hold at most "
                    f"{MAX_OTHER_MEMBER_BYTES} bytes)"
                )
            rest = padded
        if skip(stream, rest) < rest:
            raise DatasetError(f"{source}: truncated archive: member {name} is cut short")
        offset += padded
    else:
        raise DatasetError(f"{source}: more than {MAX_MEMBERS} members in the archive")
    missing = [name for name in slots if name not in done]
    if missing:
        raise DatasetError(f"{source}: the archive lacks {', '.join(missing)}")
    # Read to the end, so that gzip checks its CRC, but never more than tar's padding.
    if skip(stream, _MAX_TRAILING_BYTES + 1) > _MAX_TRAILING_BYTES:
        raise DatasetError(
            f"{source}: more than {_MAX_TRAILING_BYTES} bytes after the end of the tar archive"
        )


def _allocate(members: Iterable[str], records: int) -> tuple[Split, dict[str, Split]]:
    """The split's arrays and, for each member, the views its records are decoded into."""
    names = tuple(members)
    x = np.empty((len(names) * records, *IMAGE_SHAPE), np.uint8)
    y = np.empty(len(names) * records, np.uint8)
    slots = {
        name: (x[i * records : (i + 1) * records], y[i * records : (i + 1) * records])
        for i, name in enumerate(names)
    }
    return (x, y), slots


def read_archive(
    path: str | os.PathLike[str], *, records_per_batch: int = RECORDS_PER_BATCH
) -> tuple[Split, Split]:
    """Read a CIFAR-10 binary archive (``.tar.gz`` or uncompressed ``.tar``), without extracting it.

    Args:
        path: The archive. Compression is detected from its first bytes, not its name.
        records_per_batch: Records each of the six batch members must hold exactly; the
            published archive has 10,000 (a smaller count reads small archives in the same
            format, as the tests do).

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: images uint8 ``(n, 32, 32, 3)``,
        labels uint8 ``(n,)``, training batches 1..5 concatenated in order.

    Raises:
        GraiaValueError: ``records_per_batch`` is not an int in ``1..RECORDS_PER_BATCH``.
        DatasetError: The file cannot be opened, is not a (gzip-compressed) tar archive, is
            truncated or corrupt, lacks a batch, holds one of another size or twice, holds a
            label above 9, or holds unexpected large members.
    """
    source = os.fspath(path)
    records_per_batch = integer(records_per_batch, "records_per_batch", 1, RECORDS_PER_BATCH)
    train, train_slots = _allocate(TRAIN_MEMBERS, records_per_batch)
    test, test_slots = _allocate(TEST_MEMBERS, records_per_batch)
    with (
        open_dataset_file(source, "CIFAR-10 archive") as raw,
        maybe_gunzip(raw, source) as (stream, _),
    ):
        _read_members(
            stream, source, {**train_slots, **test_slots}, records_per_batch * RECORD_BYTES
        )
    return train, test


def load_data(
    path: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    mirror: str | None = None,
    progress: bool | None = None,
) -> tuple[Split, Split]:
    """Load CIFAR-10 as ``((x_train, y_train), (x_test, y_test))``, like ``keras.datasets.cifar10``.

    Args:
        path: Directory holding ``cifar-10-binary.tar.gz`` (or ``cifar-10-binary.tar``). When
            given, only this directory is used and nothing is downloaded.
        download: Download the archive into the cache when it is not found.
        mirror: Base URL to download from instead of the default sources (also settable with
            ``$GRAIA_DATASET_MIRROR``).
        progress: Show a download progress bar; ``None``: only on a terminal.

    Returns:
        ``x_train`` uint8 (50000, 32, 32, 3), ``y_train`` uint8 (50000,), ``x_test`` uint8
        (10000, 32, 32, 3), ``y_test`` uint8 (10000,); pixels 0..255 channels-last (RGB),
        labels 0..9 (:data:`CLASS_NAMES`). Unlike Keras, whose labels are ``(n, 1)``, labels
        are ``(n,)`` like every Graia dataset.

    Raises:
        DatasetError: The archive is missing and cannot be downloaded, fails its checksums, or
            is malformed (see :func:`read_archive`).
    """
    files = fetch(
        NAME,
        RESOURCES,
        MIRRORS,
        path=path,
        download=download,
        mirror=mirror,
        progress=progress,
    )
    return read_archive(files[ARCHIVE.filename], records_per_batch=RECORDS_PER_BATCH)
