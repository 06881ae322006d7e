"""Reading dataset files that may be gzip-compressed, with bounded memory and one-line errors.

Shared by the IDX reader and the CIFAR-10 archive reader: compression is detected from the
content (gzip's magic bytes ``1f 8b``), never from the file name, and every decompression or
I/O failure becomes a :class:`graia.errors.DatasetError` naming the file.
"""

from __future__ import annotations

import contextlib
import gzip
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from graia.errors import DatasetError
from graia.files import open_regular

__all__ = ["CHUNK", "GZIP_MAGIC", "maybe_gunzip", "open_dataset_file", "read_into", "skip"]

#: The first two bytes of every gzip stream.
GZIP_MAGIC = b"\x1f\x8b"
#: Largest single read: bounds the temporary memory of copies and skips.
CHUNK = 1 << 20


def open_dataset_file(source: str, kind: str) -> BinaryIO:
    """Open ``source`` for binary reading, if it is a regular file (graia.files.open_regular);
    ``kind`` (e.g. ``"IDX file"``) names it in errors."""
    return open_regular(source, DatasetError, kind)


@contextlib.contextmanager
def maybe_gunzip(raw: BinaryIO, source: str) -> Iterator[tuple[BinaryIO, bool]]:
    """Yield ``(stream, compressed)``: ``raw`` decompressed if it starts with gzip's magic.

    ``raw`` must be seekable and positioned at its start. Errors raised while the ``with`` body
    reads (truncated or corrupt gzip data, I/O errors) become one-line ``DatasetError``s naming
    ``source``; ``DatasetError``s raised by the body pass through unchanged.
    """
    head = raw.read(2)
    raw.seek(0)
    try:
        if head == GZIP_MAGIC:
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                yield gz, True  # type: ignore[misc]
        else:
            yield raw, False
    except DatasetError:
        raise
    except EOFError as exc:
        raise DatasetError(f"{source}: truncated gzip data: {exc}") from exc
    except (OSError, zlib.error) as exc:
        # gzip.BadGzipFile is an OSError.
        raise DatasetError(f"{source}: corrupt gzip data: {exc}") from exc


def read_into(stream: BinaryIO, buffer: memoryview) -> int:
    """Fill ``buffer`` from ``stream`` in chunks; return the bytes read (fewer only at the end).

    Never reads (or decompresses) past ``len(buffer)`` bytes.
    """
    got = 0
    total = len(buffer)
    while got < total:
        n = stream.readinto(buffer[got : got + CHUNK])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return got


def skip(stream: BinaryIO, n: int) -> int:
    """Read and discard up to ``n`` bytes in chunks; return how many there were."""
    done = 0
    while done < n:
        data = stream.read(min(CHUNK, n - done))
        if not data:
            break
        done += len(data)
    return done
