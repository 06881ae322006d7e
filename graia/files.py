"""Opening untrusted files, and atomic file writes.

:func:`open_regular` is how Graia opens every file it reads that a user names (model files,
dataset files, ``.npy`` samples): anything but a regular file (``/dev/zero``, a FIFO, a directory)
is refused before a byte is read. :func:`atomic_write` is the one place Graia writes a file that
must never be seen half-written (model files, IDX files, figures, downloads): readers see either
the old file or the new one.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator
from typing import BinaryIO

from graia.errors import GraiaError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: Marks the temporary files :func:`atomic_write` creates, so stale ones can be recognised.
_MARK = "graia-"
#: Age after which an unlocked temporary of ours is considered abandoned (a killed writer).
STALE_SECONDS = 60


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


def open_regular(
    path: str | os.PathLike[str], error: type[GraiaError], kind: str = "file"
) -> BinaryIO:
    """Open ``path`` for binary reading if it is a regular file; raise ``error`` otherwise.

    The file is opened without blocking (a FIFO's ``open`` would wait for a writer forever) and
    checked with ``fstat`` on the descriptor, so what is checked is what is read: a device such
    as ``/dev/zero`` (endless), a FIFO or a directory is refused before any byte is read.

    Args:
        path: The file to read.
        error: The :class:`GraiaError` subclass raised for a missing, unreadable or non-regular
            file (``ModelFileError``, ``DatasetError``...).
        kind: What the file is, for the message (``"model file"``, ``"IDX file"``...).

    Raises:
        error: One line naming ``path`` and the problem.
    """
    source = os.fspath(path)
    try:
        fd = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise error(f"{source}: no such {kind}") from None
    except IsADirectoryError:
        raise error(f"{source}: is a directory, not a {kind}") from None
    except OSError as exc:
        raise error(f"{source}: cannot open {kind}: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise error(f"{source}: is {what}, not a {kind}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


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

    The file yielded is a temporary file ``.<name>.graia-<random><suffix>`` in the destination's
    directory, locked (``flock``) while it is written. When the ``with`` block ends normally it is flushed, fsynced, given the mode a
    plain ``open()`` would give (``0o666 & ~umask``; :func:`tempfile.mkstemp` makes 0600 files),
    renamed over ``path`` with :func:`os.replace`, and the directory is fsynced (best effort);
    then stale temporaries of earlier, killed writes are removed
    (:func:`remove_stale_temporaries`).
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
    base = os.path.basename(dest)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{base}.{_MARK}", suffix=suffix)
    try:
        try:
            if fcntl is not None:  # held while writing: tells a live temporary from a stale one
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
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
    remove_stale_temporaries(directory, base, suffix)


def remove_stale_temporaries(
    directory: str | os.PathLike[str], base: str, suffix: str = ".tmp"
) -> list[str]:
    """Delete temporaries that :func:`atomic_write` left behind (a killed process) in
    ``directory``; called after every successful write there.

    Only files of our naming pattern are candidates: ``.<any name>.graia-<8 chars><suffix>``, and
    ``.<base>.<8 chars><suffix>`` as written by earlier versions. Of those, only regular files
    older than :data:`STALE_SECONDS` that no process is writing (none holds their lock; where
    locks are unavailable, only those older than a day) are removed. Errors are ignored.

    Returns:
        The names removed.
    """
    patterns = (
        re.compile(r"\..+\." + _MARK + r"[a-z0-9_]{8}" + re.escape(suffix)),
        re.compile(r"\." + re.escape(base) + r"\.[a-z0-9_]{8}" + re.escape(suffix)),
    )
    cutoff = time.time() - (STALE_SECONDS if fcntl is not None else 86400)
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if not any(p.fullmatch(entry.name) for p in patterns):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or st.st_mtime > cutoff:
                continue
            if fcntl is None:
                os.unlink(entry.path)
            else:
                fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while being written
                    os.unlink(entry.path)
                finally:
                    os.close(fd)
        except OSError:
            continue
        removed.append(entry.name)
    return removed
