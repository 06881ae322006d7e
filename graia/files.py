"""Atomic file writes: write to a temporary file, fsync it, then rename it into place.

:func:`atomic_write` is the one place Graia writes a file that must never be seen half-written
(model files, IDX files, figures, downloads): readers see either the old file or the new one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import BinaryIO


def _read_umask() -> int:
    """Return the process umask without changing it where possible.

    Linux exposes it in ``/proc/self/status``; elsewhere it is read by setting and restoring it
    (done once, at import).
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()
#: Mode given to written files: what a plain ``open(path, "wb")`` would create.
FILE_MODE = 0o666 & ~_UMASK


def _fsync_dir(directory: str) -> None:
    """fsync ``directory`` so a rename in it is durable; best effort, errors are ignored."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[BinaryIO]:
    """Write ``path`` atomically: yield a binary file that replaces ``path`` on success.

    The file yielded is a temporary file ``.<name>.<random><suffix>`` in the destination's
    directory. When the ``with`` block ends normally it is flushed, fsynced, given the mode a
    plain ``open()`` would give (``0o666 & ~umask``; :func:`tempfile.mkstemp` makes 0600 files),
    renamed over ``path`` with :func:`os.replace`, and the directory is fsynced (best effort).
    If the block (or any of those steps) raises, the temporary file is removed, ``path`` is left
    untouched, and the exception propagates.

    Args:
        path: Destination file.
        suffix: Suffix of the temporary file's name.

    Yields:
        The temporary file, open for binary writing.

    Raises:
        OSError: The temporary file cannot be created, written, synced or renamed.
    """
    dest = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(dest))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(dest)}.", suffix=suffix)
    try:
        try:
            f = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            raise
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), FILE_MODE)
            else:  # pragma: no cover - Windows before Python 3.13
                os.chmod(tmp, FILE_MODE)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)
