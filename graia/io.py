"""Graia's model file format: a zip of JSON and ``.npy`` members, safe to load.

A model file is a zip archive holding exactly:

* ``config.json`` - a JSON object; ``"format_version"`` (:data:`FORMAT_VERSION`) plus whatever the
  caller stores (architecture, rule, seed, ...);
* ``metadata.json`` - a JSON object of free-form information (library version, date, history...);
* ``arrays.json`` - the manifest: ``{name: {"dtype": "<i4", "shape": [..]}}`` for every array;
* ``arrays/<name>.npy`` - one NumPy ``.npy`` file (format 1.0 or 2.0) per array.

Array names match ``[A-Za-z0-9_.-]+`` and do not start with a dot. Only numeric and boolean
dtypes are stored; object arrays are refused on write and on read, and ``.npy`` headers are
parsed here (never with pickle), so loading a file cannot execute code.

:func:`write_model_file` writes to a temporary file in the destination's directory, fsyncs it and
renames it into place, so a crash never leaves a half-written model. :func:`read_model_file`
raises :class:`graia.errors.ModelFileError` naming the problem for anything unexpected: not a
zip, truncated or corrupt, a member missing or unexpected, invalid JSON, a newer
``format_version``, a bad ``.npy`` header, an object dtype, arrays not matching the manifest, or
members so large they look like a zip bomb. Shapes and dtypes the *model* expects are checked with
:func:`check_arrays` (or the ``expected`` argument of :func:`read_model_file`).
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from graia.errors import GraiaValueError, ModelFileError
from graia.files import atomic_write

__all__ = [
    "FORMAT_VERSION",
    "MAX_JSON_BYTES",
    "MAX_TOTAL_BYTES",
    "check_arrays",
    "read_model_file",
    "write_model_file",
]

#: Version of the file format written by this Graia; files with a larger version are refused.
FORMAT_VERSION = 1

#: Largest uncompressed size accepted for all members together (and for any one member).
MAX_TOTAL_BYTES = 4 << 30
#: Largest uncompressed size accepted for each JSON member.
MAX_JSON_BYTES = 64 << 20

_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
_CONFIG, _METADATA, _MANIFEST = "config.json", "metadata.json", "arrays.json"
_PREFIX, _SUFFIX = "arrays/", ".npy"
_NPY_MAGIC = b"\x93NUMPY"
_MAX_NPY_HEADER = 64 * 1024
_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: same content, same bytes


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise GraiaValueError(
            f"arrays: name {name!r} must match [A-Za-z0-9_.-]+ and not start with a dot"
        )
    return name


def _check_array(name: str, value: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.hasobject or arr.dtype.kind not in "biufc" or arr.dtype.fields is not None:
        raise GraiaValueError(
            f"arrays[{name!r}]: dtype {arr.dtype} cannot be stored; use a numeric or bool dtype"
        )
    return arr


def _json_bytes(what: str, obj: Any) -> bytes:
    if not isinstance(obj, Mapping):
        raise GraiaValueError(f"{what}: expected a dict, got {type(obj).__name__}")
    try:
        text = json.dumps(dict(obj), indent=2, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise GraiaValueError(f"{what}: not JSON-serialisable: {exc}") from exc
    return text.encode("utf-8")


def write_model_file(
    path: str | os.PathLike[str],
    config: Mapping[str, Any],
    metadata: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
) -> Path:
    """Write a model file atomically.

    Args:
        path: Destination. An existing file is replaced only once the new one is complete.
        config: JSON-serialisable dict; ``"format_version": FORMAT_VERSION`` is added (a
            different value is refused).
        metadata: JSON-serialisable dict.
        arrays: Name -> numeric or bool array; names match ``[A-Za-z0-9_.-]+``, no leading dot.

    Returns:
        The destination path.

    Raises:
        GraiaValueError: Bad names, object/structured dtypes, non-JSON config or metadata, or a
            conflicting ``format_version``.
        OSError: The file cannot be written (nothing is left behind).
    """
    cfg = dict(config) if isinstance(config, Mapping) else config
    if isinstance(cfg, dict):
        version = cfg.setdefault("format_version", FORMAT_VERSION)
        if version != FORMAT_VERSION or isinstance(version, bool):
            raise GraiaValueError(
                f"config: format_version must be {FORMAT_VERSION}, got {version!r}"
            )
    config_bytes = _json_bytes("config", cfg)
    metadata_bytes = _json_bytes("metadata", metadata)
    if not isinstance(arrays, Mapping):
        raise GraiaValueError(f"arrays: expected a dict of arrays, got {type(arrays).__name__}")
    checked = {_check_name(k): _check_array(k, v) for k, v in arrays.items()}
    manifest = {k: {"dtype": v.dtype.str, "shape": list(v.shape)} for k, v in checked.items()}
    manifest_bytes = _json_bytes("arrays", manifest)

    dest = Path(path)
    with (
        atomic_write(dest) as f,
        zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as zf,
    ):
        for member, data in (
            (_CONFIG, config_bytes),
            (_METADATA, metadata_bytes),
            (_MANIFEST, manifest_bytes),
        ):
            zf.writestr(_info(member), data)
        for name, arr in checked.items():
            with zf.open(_info(_PREFIX + name + _SUFFIX), "w", force_zip64=True) as m:
                np.lib.format.write_array(m, arr, allow_pickle=False)
    return dest


def _info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


# --------------------------------------------------------------------------- reading


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> bytes:
    """Read a whole member, refusing more bytes than its declared size."""
    with zf.open(info) as m:
        data = m.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise ModelFileError(
            f"{source}: member {info.filename} holds {len(data)} bytes, "
            f"its header declares {info.file_size}"
        )
    return data


def _read_json(zf: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> dict[str, Any]:
    if info.file_size > MAX_JSON_BYTES:
        raise ModelFileError(
            f"{source}: member {info.filename} is {info.file_size} bytes, "
            f"over the {MAX_JSON_BYTES}-byte limit for JSON members"
        )
    raw = _read_member(zf, info, source)
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{source}: {info.filename} is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ModelFileError(
            f"{source}: {info.filename} must hold a JSON object, got {type(obj).__name__}"
        )
    return obj


def _read_exactly(f: IO[bytes], n: int, source: str, member: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ModelFileError(f"{source}: {member} is truncated")
    return data


def _parse_npy_header(f: IO[bytes], source: str, member: str) -> tuple[np.dtype, tuple, bool, int]:
    """Parse a .npy header without numpy's pickle-capable reader; return the header length too."""
    magic = _read_exactly(f, 8, source, member)
    if magic[:6] != _NPY_MAGIC:
        raise ModelFileError(f"{source}: {member} is not a .npy file (bad magic)")
    major = magic[6]
    if major == 1:
        (hlen,) = struct.unpack("<H", _read_exactly(f, 2, source, member))
        start = 10
    elif major == 2:
        (hlen,) = struct.unpack("<I", _read_exactly(f, 4, source, member))
        start = 12
    else:
        raise ModelFileError(f"{source}: {member} has unsupported .npy version {major}")
    if hlen > _MAX_NPY_HEADER:
        raise ModelFileError(f"{source}: {member} has a {hlen}-byte .npy header (too large)")
    text = _read_exactly(f, hlen, source, member)
    try:
        header = ast.literal_eval(text.decode("latin1"))
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError) as exc:
        raise ModelFileError(f"{source}: {member} has an unreadable .npy header") from exc
    if (
        not isinstance(header, dict)
        or set(header) != {"descr", "fortran_order", "shape"}
        or not isinstance(header["descr"], str)
        or not isinstance(header["fortran_order"], bool)
        or not isinstance(header["shape"], tuple)
        or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in header["shape"]
        )
    ):
        raise ModelFileError(f"{source}: {member} has an invalid .npy header {header!r:.200}")
    try:
        dtype = np.dtype(header["descr"])
    except Exception as exc:  # any failure to parse an untrusted dtype
        raise ModelFileError(
            f"{source}: {member} has an unknown dtype {header['descr']!r}"
        ) from exc
    if dtype.hasobject or dtype.kind not in "biufc" or dtype.fields is not None:
        raise ModelFileError(
            f"{source}: {member} has dtype {dtype}; only numeric and bool arrays are allowed"
        )
    return dtype, header["shape"], header["fortran_order"], start + hlen


def _read_array(zf: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> np.ndarray:
    member = info.filename
    with zf.open(info) as f:
        dtype, shape, fortran, header_len = _parse_npy_header(f, source, member)
        nbytes = math.prod(shape) * dtype.itemsize
        if header_len + nbytes != info.file_size:
            raise ModelFileError(
                f"{source}: {member} declares shape {shape} of {dtype} ({nbytes} bytes) but holds "
                f"{info.file_size - header_len} bytes of data"
            )
        buf = bytearray(nbytes)
        view = memoryview(buf)
        got = 0
        while got < nbytes:
            n = f.readinto(view[got:])  # type: ignore[attr-defined]
            if not n:
                raise ModelFileError(f"{source}: {member} is truncated")
            got += n
        if f.read(1):
            raise ModelFileError(f"{source}: {member} has bytes after its data")
    arr = np.frombuffer(buf, dtype=dtype)
    return arr.reshape(shape, order="F" if fortran else "C")


def read_model_file(
    path: str | os.PathLike[str],
    expected: Mapping[str, tuple[Any, tuple[int, ...] | None]] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    """Read and validate a model file written by :func:`write_model_file`.

    Args:
        path: The file.
        expected: Optional ``{name: (dtype, shape)}`` checked with :func:`check_arrays`.

    Returns:
        ``(config, metadata, arrays)``: two dicts from the JSON members and a dict of arrays
        (native byte order, writable).

    Raises:
        ModelFileError: The file is missing, unreadable, not a zip, truncated or corrupt, lacks a
            member or has an unexpected one, holds invalid JSON, has a ``format_version`` newer
            than :data:`FORMAT_VERSION` (or none), an unsafe or malformed ``.npy`` member, arrays
            not matching its manifest (or ``expected``), or oversized members.
    """
    source = os.fspath(path)
    try:
        return _read(source, expected)
    except ModelFileError:
        raise
    except FileNotFoundError as exc:
        raise ModelFileError(f"{source}: no such model file") from exc
    except IsADirectoryError as exc:
        raise ModelFileError(f"{source}: is a directory, not a model file") from exc
    except zipfile.BadZipFile as exc:
        raise ModelFileError(f"{source}: not a valid model file (corrupt zip: {exc})") from exc
    except (zlib.error, EOFError) as exc:
        raise ModelFileError(f"{source}: corrupt or truncated compressed data ({exc})") from exc
    except NotImplementedError as exc:  # unsupported compression method
        raise ModelFileError(f"{source}: unsupported zip feature ({exc})") from exc
    except RuntimeError as exc:  # encrypted members
        raise ModelFileError(f"{source}: unreadable zip member ({exc})") from exc
    except (OSError, ValueError, struct.error, OverflowError, MemoryError) as exc:
        raise ModelFileError(f"{source}: cannot read model file: {exc}") from exc


def _read(
    source: str, expected: Mapping[str, tuple[Any, tuple[int, ...] | None]] | None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    if not zipfile.is_zipfile(source):
        if not os.path.exists(source):
            raise FileNotFoundError(source)
        raise ModelFileError(f"{source}: not a model file (not a zip archive)")
    with zipfile.ZipFile(source, "r") as zf:
        infos = zf.infolist()
        by_name: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            if info.filename in by_name:
                raise ModelFileError(f"{source}: duplicate member {info.filename}")
            by_name[info.filename] = info
            if info.file_size > MAX_TOTAL_BYTES:
                raise ModelFileError(
                    f"{source}: member {info.filename} declares {info.file_size} bytes, over "
                    f"the {MAX_TOTAL_BYTES}-byte limit"
                )
            total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise ModelFileError(
                f"{source}: members declare {total} bytes in all, over the "
                f"{MAX_TOTAL_BYTES}-byte limit"
            )
        for required in (_CONFIG, _METADATA, _MANIFEST):
            if required not in by_name:
                raise ModelFileError(f"{source}: missing member {required}")
        config = _read_json(zf, by_name[_CONFIG], source)
        version = config.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise ModelFileError(f"{source}: config.json has no integer format_version")
        if version > FORMAT_VERSION:
            raise ModelFileError(
                f"{source}: format_version {version} is newer than this Graia supports "
                f"({FORMAT_VERSION}); upgrade graia to load it"
            )
        if version < 1:
            raise ModelFileError(f"{source}: invalid format_version {version}")
        metadata = _read_json(zf, by_name[_METADATA], source)
        manifest = _read_json(zf, by_name[_MANIFEST], source)

        members = {n for n in by_name if n not in (_CONFIG, _METADATA, _MANIFEST)}
        array_members: dict[str, zipfile.ZipInfo] = {}
        for member in sorted(members):
            name = member[len(_PREFIX) : -len(_SUFFIX)]
            if not (member.startswith(_PREFIX) and member.endswith(_SUFFIX)) or not _NAME.match(
                name
            ):
                raise ModelFileError(f"{source}: unexpected member {member}")
            array_members[name] = by_name[member]
        for name in manifest:
            if not isinstance(name, str) or not _NAME.match(name):
                raise ModelFileError(f"{source}: arrays.json lists an invalid name {name!r}")
        if set(manifest) != set(array_members):
            missing = sorted(set(manifest) - set(array_members))
            extra = sorted(set(array_members) - set(manifest))
            parts = []
            if missing:
                parts.append(f"missing arrays {', '.join(missing)}")
            if extra:
                parts.append(f"arrays not listed in arrays.json: {', '.join(extra)}")
            raise ModelFileError(f"{source}: {'; '.join(parts)}")

        arrays: dict[str, np.ndarray] = {}
        for name in manifest:
            arr = _read_array(zf, array_members[name], source)
            entry = manifest[name]
            if not isinstance(entry, dict):
                raise ModelFileError(f"{source}: arrays.json entry for {name!r} is not an object")
            try:
                _check_one(name, arr, entry.get("dtype"), entry.get("shape"), "arrays.json")
            except ModelFileError as exc:
                raise ModelFileError(f"{source}: {exc} as listed in arrays.json") from None
            arrays[name] = arr.astype(arr.dtype.newbyteorder("="), copy=False)
    if expected is not None:
        try:
            check_arrays(arrays, expected)
        except ModelFileError as exc:
            raise ModelFileError(f"{source}: {exc}") from None
    return config, metadata, arrays


def _check_one(name: str, arr: np.ndarray, dtype: Any, shape: Any, where: str) -> None:
    if where == "arrays.json" and dtype is not None and not isinstance(dtype, str):
        raise ModelFileError(f"{where} gives array {name!r} an invalid dtype {dtype!r}")
    if dtype is not None:
        try:
            want = np.dtype(dtype)
        except Exception as exc:  # any failure to parse an untrusted dtype
            raise ModelFileError(
                f"{where} gives array {name!r} an invalid dtype {dtype!r}"
            ) from exc
        if arr.dtype.newbyteorder("=") != want.newbyteorder("="):
            raise ModelFileError(f"array {name!r} has dtype {arr.dtype}, expected {want}")
    if shape is not None:
        if not isinstance(shape, (list, tuple)):
            raise ModelFileError(f"{where} gives array {name!r} an invalid shape {shape!r}")
        want_shape = tuple(shape)
        if len(want_shape) != arr.ndim or any(
            w is not None and w != -1 and w != d for w, d in zip(want_shape, arr.shape, strict=True)
        ):
            raise ModelFileError(f"array {name!r} has shape {arr.shape}, expected {want_shape}")


def check_arrays(
    arrays: Mapping[str, np.ndarray],
    expected: Mapping[str, tuple[Any, tuple[int | None, ...] | None]],
    *,
    allow_extra: bool = False,
) -> None:
    """Check that ``arrays`` holds exactly the expected names, dtypes and shapes.

    Args:
        arrays: As returned by :func:`read_model_file`.
        expected: ``{name: (dtype, shape)}``; ``dtype`` or ``shape`` may be ``None`` (not
            checked) and a shape entry ``None`` or ``-1`` matches any size (byte order is
            ignored).
        allow_extra: Accept arrays not listed in ``expected``.

    Raises:
        ModelFileError: A name is missing (or unexpected), or a dtype or shape differs.
    """
    missing = [n for n in expected if n not in arrays]
    if missing:
        raise ModelFileError(f"missing arrays {', '.join(missing)}")
    if not allow_extra:
        extra = [n for n in arrays if n not in expected]
        if extra:
            raise ModelFileError(f"unexpected arrays {', '.join(extra)}")
    for name, (dtype, shape) in expected.items():
        _check_one(name, np.asarray(arrays[name]), dtype, shape, "expected")
