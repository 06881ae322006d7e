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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from graia.errors import GraiaError, GraiaValueError, ModelFileError
from graia.files import atomic_write, open_regular

__all__ = [
    "FORMAT_VERSION",
    "MAX_DIRECTORY_BYTES",
    "MAX_JSON_BYTES",
    "MAX_MEMBERS",
    "MAX_TOTAL_BYTES",
    "check_arrays",
    "read_model_file",
    "read_npy",
    "write_model_file",
]

#: Version of the file format written by this Graia; files with a larger version are refused.
#: Version 2 model files add the local heads' ``head_latent`` and ``head_momentum`` (docs/rules.md);
#: version 1 files still load, their heads starting as the fixed feedback matrices. Version 3 files
#: may leave a layer's ``shift`` null (chosen from the data at the first fit, docs/arithmetic.md
#: §3.3) and add class names, preprocessing layers and the rule's ``step_decay``; versions 1 and 2
#: load as before. Version 4 weighted layers say ``use_bias`` (docs/arithmetic.md §3); those of
#: earlier files have none.
FORMAT_VERSION = 4

#: Largest uncompressed size accepted for all members together (and for any one member).
MAX_TOTAL_BYTES = 4 << 30
#: Largest uncompressed size accepted for each JSON member (a model's config is a few kB).
MAX_JSON_BYTES = 4 << 20
#: Most members a model file may hold (three JSON members and the arrays).
MAX_MEMBERS = 1024
#: Longest array name (so the zip's central directory of :data:`MAX_MEMBERS` members stays small).
MAX_NAME_LENGTH = 200
#: Largest central directory accepted (checked in the end record, before the directory is read).
MAX_DIRECTORY_BYTES = 1 << 20
#: The only compression methods a member may use: Graia writes deflate. Python's ``zipfile``
#: decompresses bzip2 and LZMA without an output limit, so those are refused before any read.
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)

_NAME = re.compile(rf"^[A-Za-z0-9_-][A-Za-z0-9_.-]{{0,{MAX_NAME_LENGTH - 1}}}$")
_CONFIG, _METADATA, _MANIFEST = "config.json", "metadata.json", "arrays.json"
_PREFIX, _SUFFIX = "arrays/", ".npy"
_NPY_MAGIC = b"\x93NUMPY"
_MAX_NPY_HEADER = 64 * 1024
_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: same content, same bytes


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise GraiaValueError(
            f"arrays: name {name!r:.80} must match [A-Za-z0-9_.-]+, not start with a dot and "
            f"have at most {MAX_NAME_LENGTH} characters"
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
    # Never write a file that read_model_file would refuse.
    for what, data in (("config", config_bytes), ("metadata", metadata_bytes)):
        if len(data) > MAX_JSON_BYTES:
            raise GraiaValueError(
                f"{what}: {len(data)} bytes of JSON, over the {MAX_JSON_BYTES}-byte limit"
            )
    if len(checked) + 3 > MAX_MEMBERS:
        raise GraiaValueError(f"arrays: {len(checked)} arrays, more than {MAX_MEMBERS - 3}")
    total = sum(v.nbytes for v in checked.values())
    if total + len(manifest_bytes) > MAX_TOTAL_BYTES:
        raise GraiaValueError(
            f"arrays: {total} bytes in all, over the {MAX_TOTAL_BYTES}-byte limit of a model file"
        )

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


def _read_exactly(f: IO[bytes], n: int, where: str, error: type[GraiaError]) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise error(f"{where} is truncated")
    return data


def _parse_npy_header(
    f: IO[bytes], where: str, error: type[GraiaError] = ModelFileError
) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    """Parse a .npy header without numpy's pickle-capable reader; return the header length too.

    ``where`` names the file (and member) in the ``error`` raised for anything malformed."""
    magic = f.read(8)
    if magic[:6] != _NPY_MAGIC[: len(magic)]:
        raise error(f"{where} is not a .npy file (bad magic)")
    if len(magic) != 8:
        raise error(f"{where} is truncated")
    major = magic[6]
    if major == 1:
        (hlen,) = struct.unpack("<H", _read_exactly(f, 2, where, error))
        start = 10
    elif major == 2:
        (hlen,) = struct.unpack("<I", _read_exactly(f, 4, where, error))
        start = 12
    else:
        raise error(f"{where} has unsupported .npy version {major}")
    if hlen > _MAX_NPY_HEADER:
        raise error(f"{where} has a {hlen}-byte .npy header (too large)")
    text = _read_exactly(f, hlen, where, error)
    try:
        header = ast.literal_eval(text.decode("latin1"))
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError) as exc:
        raise error(f"{where} has an unreadable .npy header") from exc
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
        raise error(f"{where} has an invalid .npy header {header!r:.200}")
    try:
        dtype = np.dtype(header["descr"])
    except Exception as exc:  # any failure to parse an untrusted dtype
        raise error(f"{where} has an unknown dtype {header['descr']!r}") from exc
    if dtype.hasobject or dtype.kind not in "biufc" or dtype.fields is not None:
        raise error(f"{where} has dtype {dtype}; only numeric and bool arrays are allowed")
    return dtype, header["shape"], header["fortran_order"], start + hlen


def read_npy(
    path: str | os.PathLike[str],
    check: Callable[[np.dtype, tuple[int, ...]], None] | None = None,
) -> np.ndarray:
    """Read a numeric ``.npy`` file safely: never unpickling, bounded by the file's size.

    The header is parsed here (not by numpy's pickle-capable reader), its dtype and shape are
    passed to ``check`` (which raises to refuse them) and compared with the file's size, all
    before the array is allocated; so a header claiming a huge shape costs nothing.

    Raises:
        GraiaValueError: The file is missing or unreadable, not a ``.npy`` file, has an object,
            string or structured dtype, a malformed header, or fewer or more bytes than its
            header declares; or whatever ``check`` raises.
    """
    source = os.fspath(path)
    try:
        with open_regular(source, GraiaValueError, ".npy file") as f:
            dtype, shape, fortran, header_len = _parse_npy_header(f, source, GraiaValueError)
            if check is not None:
                check(dtype, shape)
            nbytes = math.prod(shape) * dtype.itemsize
            held = os.fstat(f.fileno()).st_size - header_len
            if held != nbytes:
                raise GraiaValueError(
                    f"{source}: its header declares shape {shape} of {dtype} ({nbytes} bytes), "
                    f"but the file holds {held} bytes of data"
                )
            data = np.empty(nbytes, np.uint8)
            if f.readinto(memoryview(data)) != nbytes:
                raise GraiaValueError(f"{source} is truncated")
    except OSError as exc:
        raise GraiaValueError(f"{source}: cannot read: {exc.strerror or exc}") from exc
    arr = data.view(dtype).reshape(shape, order="F" if fortran else "C")
    return arr.astype(dtype.newbyteorder("="), copy=False)


def _manifest_entry(source: str, name: str, entry: Any) -> tuple[np.dtype, tuple[int, ...]]:
    """The dtype and shape ``arrays.json`` gives an array, checked before anything is read."""
    where = f"{source}: arrays.json entry for {name!r}"
    if not isinstance(entry, dict):
        raise ModelFileError(f"{where} is not an object")
    dtype, shape = entry.get("dtype"), entry.get("shape")
    if not isinstance(dtype, str):
        raise ModelFileError(f"{where} has an invalid dtype {dtype!r:.80}")
    try:
        dt = np.dtype(dtype)
    except Exception as exc:  # any failure to parse an untrusted dtype
        raise ModelFileError(f"{where} has an invalid dtype {dtype!r:.80}") from exc
    if dt.hasobject or dt.kind not in "biufc" or dt.fields is not None:
        raise ModelFileError(f"{where} has dtype {dt}; only numeric and bool arrays are allowed")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ModelFileError(f"{where} has an invalid shape {shape!r:.80}")
    return dt, tuple(shape)


def _read_array(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    source: str,
    dtype: np.dtype,
    shape: tuple[int, ...],
) -> np.ndarray:
    """Read one ``.npy`` member whose dtype and shape are already known from the manifest.

    The member's declared size is checked before decompressing, its header before allocating,
    and no more than the expected number of bytes is ever decompressed.
    """
    member = info.filename
    nbytes = math.prod(shape) * dtype.itemsize
    if not nbytes + 10 <= info.file_size <= nbytes + 12 + _MAX_NPY_HEADER:
        raise ModelFileError(
            f"{source}: {member} declares {info.file_size} bytes, but arrays.json gives it "
            f"shape {shape} of {dtype} ({nbytes} bytes of data)"
        )
    with zf.open(info) as f:
        got_dtype, got_shape, fortran, header_len = _parse_npy_header(f, f"{source}: {member}")
        if got_dtype != dtype or got_shape != shape:
            raise ModelFileError(
                f"{source}: {member} holds {got_dtype} {got_shape}, but arrays.json lists "
                f"{dtype} {shape}"
            )
        if header_len + nbytes != info.file_size:
            raise ModelFileError(
                f"{source}: {member} declares shape {shape} of {dtype} ({nbytes} bytes) but holds "
                f"{info.file_size - header_len} bytes of data"
            )
        buf = np.empty(nbytes, np.uint8)
        view = memoryview(buf)
        got = 0
        while got < nbytes:
            n = f.readinto(view[got:])  # type: ignore[attr-defined]
            if not n:
                raise ModelFileError(f"{source}: {member} is truncated")
            got += n
        if f.read(1):
            raise ModelFileError(f"{source}: {member} has bytes after its data")
    arr = buf.view(dtype).reshape(shape, order="F" if fortran else "C")
    return arr.astype(dtype.newbyteorder("="), copy=False)


#: What :func:`read_model_file` checks the arrays against: ``{name: (dtype, shape)}``, or a
#: function of the file's config returning it (so the architecture decides before any array is
#: read).
Expected = (
    Mapping[str, tuple[Any, tuple[int | None, ...] | None]]
    | Callable[[dict[str, Any]], Mapping[str, tuple[Any, tuple[int | None, ...] | None]]]
)


def read_model_file(
    path: str | os.PathLike[str],
    expected: Expected | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    """Read and validate a model file written by :func:`write_model_file`.

    Reading is bounded: the members' declared sizes, the manifest and (when given) ``expected``
    are checked before any array is decompressed, and no member is decompressed past the size
    its manifest entry implies. Memory is about the size of the arrays the file really holds.

    Args:
        path: The file.
        expected: Optional ``{name: (dtype, shape)}`` as for :func:`check_arrays`, or a function
            that receives ``config`` and returns it (it may raise ``ModelFileError``). It is
            checked against ``arrays.json`` before any array is read.

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


_END = struct.Struct("<4s4H2LH")  # end of central directory record
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")


def _check_end_record(f: IO[bytes], source: str) -> None:
    """Check the member count and the central directory's size in the zip's end record, found
    as ``zipfile`` finds it, before ``zipfile`` parses (and allocates) the whole directory."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    tail_start = max(0, size - _END.size - 0xFFFF)
    f.seek(tail_start)
    tail = f.read()
    at = len(tail) - _END.size
    if at < 0 or tail[at : at + 4] != b"PK\x05\x06" or tail[-2:] != b"\0\0":
        at = tail.rfind(b"PK\x05\x06")  # a zip comment follows the record
    if at < 0 or len(tail) - at < _END.size:
        raise ModelFileError(f"{source}: not a model file (not a zip archive)")
    _sig, _disk, _disk_cd, _here, members, directory, _offset, _comment = _END.unpack_from(tail, at)
    locator_at = tail_start + at - _END64_LOCATOR.size
    if locator_at >= 0:
        f.seek(locator_at)
        locator = f.read(_END64_LOCATOR.size)
        if locator[:4] == b"PK\x06\x07":
            _sig, _disk, end64_at, _disks = _END64_LOCATOR.unpack(locator)
            f.seek(end64_at)
            end64 = f.read(_END64.size)
            if len(end64) == _END64.size and end64[:4] == b"PK\x06\x06":
                fields = _END64.unpack(end64)
                members, directory = fields[7], fields[8]
    if members > MAX_MEMBERS:
        raise ModelFileError(
            f"{source}: {members} members, more than the {MAX_MEMBERS} a model file may hold"
        )
    if directory > MAX_DIRECTORY_BYTES:
        raise ModelFileError(
            f"{source}: a {directory}-byte zip directory, over the {MAX_DIRECTORY_BYTES}-byte "
            "limit of a model file"
        )
    f.seek(0)


def _read(
    source: str, expected: Expected | None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    with open_regular(source, ModelFileError, "model file") as f:
        _check_end_record(f, source)
        with zipfile.ZipFile(f, "r") as zf:
            return _read_zip(zf, source, expected)


def _read_zip(
    zf: zipfile.ZipFile, source: str, expected: Expected | None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ModelFileError(
            f"{source}: {len(infos)} members, more than the {MAX_MEMBERS} a model file may hold"
        )
    by_name: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        if info.filename in by_name:
            raise ModelFileError(f"{source}: duplicate member {info.filename}")
        by_name[info.filename] = info
        if info.compress_type not in _METHODS:
            raise ModelFileError(
                f"{source}: member {info.filename} uses zip compression method "
                f"{info.compress_type}; model files use only stored or deflate"
            )
        if info.flag_bits & 0x1:
            raise ModelFileError(f"{source}: member {info.filename} is encrypted")
        if info.file_size > MAX_TOTAL_BYTES:
            raise ModelFileError(
                f"{source}: member {info.filename} declares {info.file_size} bytes, over "
                f"the {MAX_TOTAL_BYTES}-byte limit"
            )
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise ModelFileError(
            f"{source}: members declare {total} bytes in all, over the {MAX_TOTAL_BYTES}-byte limit"
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
        if not (member.startswith(_PREFIX) and member.endswith(_SUFFIX)) or not _NAME.match(name):
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

    # Everything about the arrays is checked here, before the first one is decompressed.
    declared = {name: _manifest_entry(source, name, manifest[name]) for name in manifest}
    declared_bytes = sum(math.prod(shape) * dt.itemsize for dt, shape in declared.values())
    if declared_bytes > MAX_TOTAL_BYTES:
        raise ModelFileError(
            f"{source}: arrays.json declares {declared_bytes} bytes of arrays, over the "
            f"{MAX_TOTAL_BYTES}-byte limit"
        )
    if expected is not None:
        wanted = expected(config) if callable(expected) else expected
        try:
            _check_declared(declared, wanted)
        except ModelFileError as exc:
            raise ModelFileError(f"{source}: {exc}") from None

    arrays: dict[str, np.ndarray] = {}
    for name, (dt, shape) in declared.items():
        arrays[name] = _read_array(zf, array_members[name], source, dt, shape)
    return config, metadata, arrays


def _check_one(
    name: str, dtype: np.dtype, shape: tuple[int, ...], want_dtype: Any, want_shape: Any
) -> None:
    if want_dtype is not None:
        try:
            want = np.dtype(want_dtype)
        except Exception as exc:  # any failure to parse a dtype
            raise ModelFileError(f"invalid expected dtype {want_dtype!r} for {name!r}") from exc
        if dtype.newbyteorder("=") != want.newbyteorder("="):
            raise ModelFileError(f"array {name!r} has dtype {dtype}, expected {want}")
    if want_shape is not None:
        want_shape = tuple(want_shape)
        if len(want_shape) != len(shape) or any(
            w is not None and w != -1 and w != d for w, d in zip(want_shape, shape, strict=True)
        ):
            raise ModelFileError(f"array {name!r} has shape {shape}, expected {want_shape}")


def _check_declared(
    found: Mapping[str, tuple[np.dtype, tuple[int, ...]]],
    expected: Mapping[str, tuple[Any, tuple[int | None, ...] | None]],
    allow_extra: bool = False,
) -> None:
    missing = [n for n in expected if n not in found]
    if missing:
        raise ModelFileError(f"missing arrays {', '.join(missing)}")
    if not allow_extra:
        extra = [n for n in found if n not in expected]
        if extra:
            raise ModelFileError(f"unexpected arrays {', '.join(extra)}")
    for name, (dtype, shape) in expected.items():
        _check_one(name, *found[name], dtype, shape)


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
    found = {}
    for name, value in arrays.items():
        arr = np.asarray(value)
        found[name] = (arr.dtype, arr.shape)
    _check_declared(found, expected, allow_extra)
