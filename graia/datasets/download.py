"""Finding dataset files on disk and downloading them, verified, into the cache.

Search order for a dataset called ``<name>`` (first directory holding *all* its files wins):

1. the explicit ``path`` argument (``--data-dir`` on the command line); when given, it is the only
   place looked at and nothing is downloaded;
2. ``$GRAIA_DATA/<name>`` when the ``GRAIA_DATA`` environment variable is set;
3. ``~/.graia/datasets/<name>``;
4. ``/usr/share/datasets/<name>`` (Debian's ``dataset-*`` packages install there);
5. otherwise the files are downloaded into the cache directory, ``$GRAIA_DATA/<name>`` if
   ``GRAIA_DATA`` is set, else ``~/.graia/datasets/<name>``.

A file counts as present under its published name (``train-images-idx3-ubyte.gz``) or without
the ``.gz`` suffix (uncompressed). Downloads are checked against the published SHA-256 checksum
(and MD5, where the publisher lists one) and size, written to a temporary file in the cache
directory and renamed into place only once verified, so an interrupted or corrupt download
never leaves a file in the cache.

The download source can be replaced by a mirror: the ``mirror`` argument of the loaders or the
``GRAIA_DATASET_MIRROR`` environment variable, a base URL to which the file name is appended;
``{name}`` in it is replaced by the dataset name.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from graia.errors import DatasetError
from graia.files import atomic_write

__all__ = [
    "SYSTEM_DATA_DIRS",
    "Resource",
    "cache_dir",
    "data_home",
    "download_file",
    "fetch",
    "find_files",
    "search_dirs",
    "sha256_file",
]

_log = logging.getLogger("graia.datasets")

#: System-wide directories searched last, each holding one sub-directory per dataset.
SYSTEM_DATA_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets"),)

_CHUNK = 1 << 16
_DEFAULT_MAX_DOWNLOAD = 1 << 30  # when a resource has no known size


@dataclass(frozen=True)
class Resource:
    """One file of a dataset, as published.

    Attributes:
        filename: The published file name, e.g. ``"train-images-idx3-ubyte.gz"``.
        sha256: Hex SHA-256 of the published file.
        size: Size in bytes of the published file, when known.
        md5: Hex MD5 the publisher lists, when it lists one; checked as well as the SHA-256,
            so a download matches the value on the publisher's own page.
    """

    filename: str
    sha256: str
    size: int | None = None
    md5: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """Names under which the file is accepted on disk: as published, and without ``.gz``."""
        if self.filename.endswith(".gz"):
            return (self.filename, self.filename[: -len(".gz")])
        return (self.filename,)


def data_home() -> Path:
    """Root of Graia's dataset cache: ``$GRAIA_DATA`` if set, else ``~/.graia/datasets``."""
    env = os.environ.get("GRAIA_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".graia" / "datasets"


def cache_dir(name: str) -> Path:
    """Directory downloads of dataset ``name`` go to: ``data_home() / name``."""
    return data_home() / name


def search_dirs(name: str, path: str | os.PathLike[str] | None = None) -> list[Path]:
    """Directories searched for dataset ``name``, in order (see the module docstring).

    Args:
        name: Dataset directory name, e.g. ``"fashion-mnist"``.
        path: An explicit directory; when given it is the only one returned.
    """
    if path is not None:
        return [Path(path).expanduser()]
    dirs: list[Path] = []
    env = os.environ.get("GRAIA_DATA")
    if env:
        dirs.append(Path(env).expanduser() / name)
    dirs.append(Path.home() / ".graia" / "datasets" / name)
    dirs.extend(d / name for d in SYSTEM_DATA_DIRS)
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def find_files(directory: Path, resources: Sequence[Resource]) -> dict[str, Path]:
    """Map each resource's ``filename`` to the file present for it in ``directory``.

    Resources with no file in ``directory`` are left out of the result.
    """
    found: dict[str, Path] = {}
    for res in resources:
        for candidate in res.names:
            p = directory / candidate
            if p.is_file():
                found[res.filename] = p
                break
    return found


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class _Failed(Exception):
    """One download attempt failed; the message says why."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, ConnectionRefusedError):
            return "connection refused"
        if isinstance(reason, OSError) and reason.strerror:
            return reason.strerror
        return str(reason)
    if isinstance(exc, http.client.IncompleteRead):
        return f"truncated download: connection closed after {len(exc.partial)} more bytes"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


def _progress_bar(total: int | None, desc: str, progress: bool | None):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency, but stay usable without it
        return None
    # disable=None lets tqdm hide the bar when stderr is not a terminal.
    disable = None if progress is None else not progress
    return tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=disable,
        leave=False,
    )


def _download_once(
    url: str, res: Resource, dest_dir: Path, timeout: float, progress: bool | None
) -> Path:
    final = dest_dir / res.filename
    limit = res.size if res.size is not None else _DEFAULT_MAX_DOWNLOAD
    with atomic_write(final, suffix=".part") as out:
        request = urllib.request.Request(url, headers={"User-Agent": "graia"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                declared = resp.length
                if declared is not None and declared > limit:
                    raise _Failed(f"server announces {declared} bytes, expected {limit}")
                h = hashlib.sha256()
                h_md5 = hashlib.md5(usedforsecurity=False) if res.md5 is not None else None
                written = 0
                bar = _progress_bar(declared or res.size, res.filename, progress)
                try:
                    while chunk := resp.read(_CHUNK):
                        written += len(chunk)
                        if written > limit:
                            raise _Failed(f"download larger than the expected {limit} bytes")
                        out.write(chunk)
                        h.update(chunk)
                        if h_md5 is not None:
                            h_md5.update(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
                finally:
                    if bar is not None:
                        bar.close()
                if resp.length:  # bytes announced by Content-Length but never received
                    raise _Failed(
                        f"truncated download: got {written} bytes, "
                        f"{resp.length} announced bytes missing"
                    )
        except _Failed:
            raise
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise _Failed(_describe(exc)) from exc
        # Verified inside the block: a failed check removes the temporary file, renames nothing.
        if res.size is not None and written != res.size:
            raise _Failed(f"truncated download: got {written} bytes, expected {res.size}")
        digest = h.hexdigest()
        if digest != res.sha256.lower():
            raise _Failed(f"SHA-256 mismatch: got {digest}, expected {res.sha256.lower()}")
        if h_md5 is not None and res.md5 is not None and h_md5.hexdigest() != res.md5.lower():
            raise _Failed(f"MD5 mismatch: got {h_md5.hexdigest()}, expected {res.md5.lower()}")
    return final


def download_file(
    res: Resource,
    base_urls: Sequence[str],
    dest_dir: str | os.PathLike[str],
    *,
    timeout: float = 60.0,
    progress: bool | None = None,
) -> Path:
    """Download one verified file into ``dest_dir``, trying each base URL in turn.

    The file is streamed to a temporary file in ``dest_dir``, its size and SHA-256 are checked,
    and only then is it renamed to ``dest_dir / res.filename``. On any failure nothing is left
    behind.

    Args:
        res: The file to fetch and its expected checksum.
        base_urls: Base URLs; the file is fetched from ``base_url + "/" + res.filename``.
        dest_dir: Destination directory, created if needed.
        timeout: Socket timeout in seconds.
        progress: Show a tqdm progress bar; ``None`` shows it only on a terminal.

    Returns:
        The path of the verified file.

    Raises:
        DatasetError: Every URL failed; the message lists each URL and why it failed.
    """
    dest = Path(dest_dir)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot create dataset cache directory {dest}: {exc}") from exc
    errors: list[str] = []
    for base in base_urls:
        url = base.rstrip("/") + "/" + res.filename
        _log.info("downloading %s", url)
        try:
            return _download_once(url, res, dest, timeout, progress)
        except _Failed as exc:
            errors.append(f"{url}: {exc}")
        except OSError as exc:  # e.g. the cache directory is not writable
            raise DatasetError(f"cannot write {res.filename} into {dest}: {exc}") from exc
    raise DatasetError(f"cannot download {res.filename}:\n  " + "\n  ".join(errors))


def _mirror_urls(name: str, mirrors: Sequence[str], mirror: str | None) -> list[str]:
    chosen = mirror or os.environ.get("GRAIA_DATASET_MIRROR") or None
    urls = [chosen] if chosen else list(mirrors)
    return [u.replace("{name}", name) for u in urls]


def _where_to_put(
    name: str,
    resources: Sequence[Resource],
    dirs: Sequence[Path],
    debian_package: str | None,
) -> str:
    files = ", ".join(r.filename for r in resources)
    text = (
        f"Put the files {files} (gzip-compressed or not) into {cache_dir(name)}, "
        f"or into one of the searched directories ({', '.join(map(str, dirs))}), "
        "or pass their directory as path=... (--data-dir on the command line)."
    )
    if debian_package:
        text += f" On Debian: apt install {debian_package}."
    return text


def fetch(
    name: str,
    resources: Sequence[Resource],
    mirrors: Sequence[str],
    *,
    path: str | os.PathLike[str] | None = None,
    download: bool = True,
    mirror: str | None = None,
    progress: bool | None = None,
    timeout: float = 60.0,
    debian_package: str | None = None,
) -> dict[str, Path]:
    """Find all files of dataset ``name``, downloading missing ones into the cache.

    Args:
        name: Dataset directory name, e.g. ``"fashion-mnist"``.
        resources: The dataset's files.
        mirrors: Default base URLs, tried in order.
        path: Explicit directory holding the files; when given, nothing else is searched and
            nothing is downloaded.
        download: Download missing files; if False, a missing dataset is an error.
        mirror: Base URL overriding ``mirrors`` (and ``$GRAIA_DATASET_MIRROR``).
        progress: Show a progress bar while downloading; ``None``: only on a terminal.
        timeout: Socket timeout in seconds.
        debian_package: Debian package providing the files, named in error messages.

    Returns:
        Each resource's ``filename`` mapped to the path of its file.

    Raises:
        DatasetError: The files cannot be found or downloaded; the message says where to put
            them.
    """
    dirs = search_dirs(name, path)
    if path is not None:
        found = find_files(dirs[0], resources)
        missing = [r.filename for r in resources if r.filename not in found]
        if not dirs[0].is_dir():
            raise DatasetError(f"{name}: data directory {dirs[0]} does not exist")
        if missing:
            raise DatasetError(
                f"{name}: {dirs[0]} lacks {', '.join(missing)} "
                "(each may also be uncompressed, without .gz)"
            )
        return found
    for d in dirs:
        found = find_files(d, resources)
        if len(found) == len(resources):
            return found
    dest = cache_dir(name)
    if not download:
        raise DatasetError(
            f"{name}: dataset not found and download=False. "
            + _where_to_put(name, resources, dirs, debian_package)
        )
    found = find_files(dest, resources)
    urls = _mirror_urls(name, mirrors, mirror)
    for res in resources:
        if res.filename in found:
            continue
        try:
            found[res.filename] = download_file(res, urls, dest, timeout=timeout, progress=progress)
        except DatasetError as exc:
            raise DatasetError(
                f"{name}: {exc}\n" + _where_to_put(name, resources, dirs, debian_package)
            ) from exc
    return found
