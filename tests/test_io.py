"""The model file format (graia.io), independent of the model class; plus a Hypothesis fuzz test."""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graia import io as gio
from graia.errors import GraiaError, GraiaValueError, ModelFileError

CONFIG = {"layers": [{"units": 4}], "rule": "dfa", "seed": 7}
META = {"graia_version": "0.1.0", "history": {"loss": [1.0, 0.5]}}


def _arrays() -> dict[str, np.ndarray]:
    return {
        "latent": np.arange(-6, 6, dtype=np.int32).reshape(3, 4),
        "feedback": np.array([[1, -1], [0, 1]], dtype=np.int8),
        "sizes": np.array([3, 4], dtype=np.int64),
        "counters.rng": np.array([2**62, -5], dtype=">i8"),  # big-endian in, native out
        "fortran": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
        "empty": np.zeros((0, 5), dtype=np.uint8),
        "flag": np.array(True),
    }


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return gio.write_model_file(tmp_path / "m.graia", CONFIG, META, _arrays())


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _rezip(path: Path, members: dict[str, bytes]) -> Path:
    out = path.with_name("bad.graia")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out


def test_round_trip(good: Path) -> None:
    config, metadata, arrays = gio.read_model_file(good)
    assert config == {**CONFIG, "format_version": gio.FORMAT_VERSION}
    assert metadata == META
    want = _arrays()
    assert set(arrays) == set(want)
    for name, a in want.items():
        np.testing.assert_array_equal(arrays[name], a)
        assert arrays[name].shape == a.shape
        assert arrays[name].dtype == a.dtype.newbyteorder("=")
        assert arrays[name].dtype.isnative and arrays[name].flags.writeable
    names = set(_members(good))
    assert names == {"config.json", "metadata.json", "arrays.json"} | {
        f"arrays/{n}.npy" for n in want
    }
    # The .npy members are ordinary .npy files numpy itself reads without pickle.
    with zipfile.ZipFile(good) as zf, zf.open("arrays/latent.npy") as f:
        np.testing.assert_array_equal(
            np.load(io.BytesIO(f.read()), allow_pickle=False), want["latent"]
        )


def test_write_is_deterministic_and_replaces(tmp_path: Path) -> None:
    a = gio.write_model_file(tmp_path / "a.graia", CONFIG, META, _arrays()).read_bytes()
    p = tmp_path / "b.graia"
    p.write_bytes(b"old")
    gio.write_model_file(p, CONFIG, META, _arrays())
    assert p.read_bytes() == a
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.graia", "b.graia"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"arrays": {"../evil": np.zeros(2)}}, "name"),
        ({"arrays": {".hidden": np.zeros(2)}}, "name"),
        ({"arrays": {"a/b": np.zeros(2)}}, "name"),
        ({"arrays": {"": np.zeros(2)}}, "name"),
        ({"arrays": {"obj": np.array([None, 1], dtype=object)}}, "dtype"),
        ({"arrays": {"s": np.array(["a"])}}, "dtype"),
        ({"arrays": {"rec": np.zeros(2, dtype=[("a", "i4")])}}, "dtype"),
        ({"config": {"x": object()}}, "config"),
        ({"config": {"format_version": gio.FORMAT_VERSION + 1}}, "format_version"),
        ({"metadata": [1, 2]}, "metadata"),
        ({"arrays": [np.zeros(2)]}, "arrays"),
    ],
)
def test_write_rejects_bad_input(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    args = {"config": CONFIG, "metadata": META, "arrays": {"a": np.zeros(2)}, **kwargs}
    with pytest.raises(GraiaValueError, match=match):
        gio.write_model_file(tmp_path / "m.graia", **args)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "m.graia"
    p.write_bytes(b"previous model")

    def boom(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", boom)
    with pytest.raises(OSError, match="disk full"):
        gio.write_model_file(p, CONFIG, META, _arrays())
    assert [x.name for x in tmp_path.iterdir()] == ["m.graia"]
    assert p.read_bytes() == b"previous model"


# --------------------------------------------------------------------------- bad files


def _expect(path: Path, match: str) -> None:
    with pytest.raises(ModelFileError, match=match) as info:
        gio.read_model_file(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, GraiaError) and isinstance(info.value, ValueError)


def test_missing_and_not_zip(tmp_path: Path) -> None:
    _expect(tmp_path / "nope.graia", "no such")
    (tmp_path / "t.graia").write_text("hello")
    _expect(tmp_path / "t.graia", "not a zip")
    (tmp_path / "empty.graia").write_bytes(b"")
    _expect(tmp_path / "empty.graia", "not a zip")
    (tmp_path / "d.graia").mkdir()
    _expect(tmp_path / "d.graia", "not a zip|directory")


def test_truncated(good: Path) -> None:
    data = good.read_bytes()
    for cut in (len(data) - 1, len(data) - 30, len(data) // 2, 100, 10):
        good.with_name("cut.graia").write_bytes(data[:cut])
        with pytest.raises(ModelFileError):
            gio.read_model_file(good.with_name("cut.graia"))


def test_corrupt_member_crc(tmp_path: Path) -> None:
    p = tmp_path / "m.graia"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("config.json", json.dumps({"format_version": 1}))
        zf.writestr("metadata.json", "{}")
        zf.writestr("arrays.json", json.dumps({"a": {"dtype": "<i4", "shape": [64]}}))
        buf = io.BytesIO()
        np.save(buf, np.arange(64, dtype=np.int32))
        zf.writestr("arrays/a.npy", buf.getvalue())
    data = bytearray(p.read_bytes())
    at = data.find(buf.getvalue()) + len(buf.getvalue()) - 5
    data[at] ^= 0xFF
    p.write_bytes(bytes(data))
    _expect(p, "CRC|corrupt")


def _manifest_with(members: dict[str, bytes], **entries: Any) -> bytes:
    manifest = json.loads(members["arrays.json"])
    manifest.update(entries)
    return json.dumps(manifest).encode()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m: m.pop("config.json"), "missing member config.json"),
        (lambda m: m.pop("metadata.json"), "missing member metadata.json"),
        (lambda m: m.pop("arrays.json"), "missing member arrays.json"),
        (lambda m: m.update({"config.json": b"{not json"}), "config.json is not valid JSON"),
        (lambda m: m.update({"metadata.json": b"[1]"}), "JSON object"),
        (lambda m: m.update({"config.json": b"\xff\xfe"}), "not valid JSON"),
        (lambda m: m.update({"config.json": b'{"format_version": 99}'}), "newer"),
        (lambda m: m.update({"config.json": b'{"format_version": 0}'}), "invalid format_version"),
        (lambda m: m.update({"config.json": b'{"format_version": "1"}'}), "format_version"),
        (lambda m: m.update({"config.json": b'{"format_version": true}'}), "format_version"),
        (lambda m: m.update({"config.json": b"{}"}), "format_version"),
        (lambda m: m.pop("arrays/latent.npy"), "missing arrays latent"),
        (lambda m: m.update({"arrays/extra.npy": m["arrays/sizes.npy"]}), "not listed"),
        (lambda m: m.update({"evil.py": b"print(1)"}), "unexpected member evil.py"),
        (lambda m: m.update({"arrays/../x.npy": b""}), "unexpected member"),
        (lambda m: m.update({"arrays/latent.npy": m["arrays/sizes.npy"]}), "arrays.json"),
        (lambda m: m.update({"arrays/latent.npy": b"garbage"}), "declares 7 bytes"),
        (
            lambda m: m.update({"arrays/latent.npy": b"\x93NUMPX" + m["arrays/latent.npy"][6:]}),
            "not a .npy",
        ),
        (lambda m: m.update({"arrays/latent.npy": m["arrays/latent.npy"][:-4]}), "holds"),
        (lambda m: m.update({"arrays/latent.npy": m["arrays/latent.npy"] + b"x"}), "holds"),
        (lambda m: m.update({"arrays.json": _manifest_with(m, latent=3)}), "not an object"),
        (
            lambda m: m.update(
                {"arrays.json": _manifest_with(m, latent={"dtype": "<i4", "shape": 7})}
            ),
            "invalid shape",
        ),
        (
            lambda m: m.update({"arrays.json": _manifest_with(m, latent={"dtype": "??"})}),
            "invalid dtype",
        ),
        (
            lambda m: m.update(
                {"arrays.json": _manifest_with(m, latent={"dtype": "|O", "shape": [3, 4]})}
            ),
            "dtype object; only numeric",
        ),
        (lambda m: m.update({"arrays.json": b'{"../x": {}}'}), "invalid name"),
    ],
)
def test_bad_members(good: Path, change: Any, match: str) -> None:
    members = _members(good)
    change(members)
    _expect(_rezip(good, members), match)


def _npy(header: dict[str, Any] | str, data: bytes = b"", version: int = 1) -> bytes:
    text = header if isinstance(header, str) else repr(header)
    text = text.encode("latin1")
    if version == 1:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(text)) + text + data


@pytest.mark.parametrize(
    ("npy", "match"),
    [
        (_npy({"descr": "|O", "fortran_order": False, "shape": (1,)}, b"\0" * 8), "dtype object"),
        (_npy({"descr": "<U3", "fortran_order": False, "shape": (1,)}, b"\0" * 12), "only numeric"),
        (_npy({"descr": [("a", "<i4")], "fortran_order": False, "shape": (1,)}), "invalid"),
        (
            _npy({"descr": "<i4", "fortran_order": False, "shape": (2**40, 2**40)}),
            "lists int32 \\(1,\\)",
        ),
        (_npy({"descr": "<i4", "fortran_order": False, "shape": (-1,)}), "invalid .npy header"),
        (_npy({"descr": "<i4", "fortran_order": 0, "shape": (1,)}, b"\0" * 4), "invalid"),
        (_npy("__import__('os').system('echo pwned')"), "unreadable"),
        (_npy({"descr": "<i4", "fortran_order": False, "shape": (1,)}, b"\0" * 4, 3), "version"),
        (_npy({"descr": "zz", "fortran_order": False, "shape": (1,)}, b"\0" * 4), "unknown dtype"),
    ],
)
def test_unsafe_or_bad_npy(good: Path, npy: bytes, match: str) -> None:
    members = _members(good)
    members["arrays/x.npy"] = npy
    manifest = json.loads(members["arrays.json"])
    manifest["x"] = {"dtype": "<i4", "shape": [1]}
    members["arrays.json"] = json.dumps(manifest).encode()
    _expect(_rezip(good, members), match)


def test_npy_version_2_accepted(good: Path) -> None:
    members = _members(good)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.arange(3, dtype="<i2"), version=(2, 0))
    members["arrays/x.npy"] = buf.getvalue()
    manifest = json.loads(members["arrays.json"])
    manifest["x"] = {"dtype": "<i2", "shape": [3]}
    members["arrays.json"] = json.dumps(manifest).encode()
    _, _, arrays = gio.read_model_file(_rezip(good, members))
    np.testing.assert_array_equal(arrays["x"], [0, 1, 2])


def test_zip_bomb_declared_sizes(good: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gio, "MAX_TOTAL_BYTES", 2000)
    members = _members(good)
    members["arrays/latent.npy"] = (
        members["arrays/latent.npy"][:-48] + b"\0" * 1500 + members["arrays/latent.npy"][-48:]
    )
    _expect(_rezip(good, members), "limit|declares")
    members = _members(good)
    members["arrays/big.npy"] = b"\0" * 2500
    _expect(_rezip(good, members), "over the 2000-byte limit")
    monkeypatch.setattr(gio, "MAX_JSON_BYTES", 10)
    _expect(good, "JSON members")


def test_zip_member_larger_than_declared(good: Path) -> None:
    """A member whose real content exceeds its declared size is refused, not read in full."""
    members = _members(good)
    cfg = members["config.json"]
    p = _rezip(good, members)
    data = bytearray(p.read_bytes())
    # Shrink the declared uncompressed size of config.json (the first member) in the central
    # directory: bytes 24..28 of its entry.
    first_cd = data.find(b"PK\x01\x02")
    assert struct.unpack("<I", data[first_cd + 24 : first_cd + 28])[0] == len(cfg)
    data[first_cd + 24 : first_cd + 28] = struct.pack("<I", 5)
    p.write_bytes(bytes(data))
    _expect(p, "CRC|declares 5")


# --------------------------------------------------------------------------- expected shapes


def test_check_arrays_and_expected(good: Path) -> None:
    expected = {name: (a.dtype, a.shape) for name, a in _arrays().items()}
    gio.read_model_file(good, expected=expected)
    expected["latent"] = (np.int32, (3, None))
    gio.read_model_file(good, expected=expected)
    expected["latent"] = (np.int32, (4, 3))
    with pytest.raises(ModelFileError, match=r"'latent' has shape \(3, 4\), expected \(4, 3\)"):
        gio.read_model_file(good, expected=expected)
    expected["latent"] = (np.int16, None)
    with pytest.raises(ModelFileError, match="'latent' has dtype int32, expected int16"):
        gio.read_model_file(good, expected=expected)
    _, _, arrays = gio.read_model_file(good)
    with pytest.raises(ModelFileError, match="missing arrays nope"):
        gio.check_arrays(arrays, {"nope": (None, None)})
    with pytest.raises(ModelFileError, match="unexpected arrays"):
        gio.check_arrays(arrays, {"latent": (None, None)})
    gio.check_arrays(arrays, {"latent": (None, None)}, allow_extra=True)


# --------------------------------------------------------------------------- fuzz


@pytest.fixture(scope="module")
def good_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    arrays = {"w": np.arange(-20, 20, dtype=np.int32).reshape(5, 8), "b": np.arange(3, dtype="u1")}
    path = tmp_path_factory.mktemp("fuzz") / "m.graia"
    return gio.write_model_file(path, {"a": 1}, {"b": [1, 2]}, arrays).read_bytes()


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_fuzz_corrupt_files_raise_only_model_file_error(
    good_bytes: bytes, tmp_path: Path, data: st.DataObject
) -> None:
    raw = bytearray(good_bytes)
    kind = data.draw(st.sampled_from(["flip", "truncate", "splice", "delete"]))
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
    elif kind == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "splice":
        i = data.draw(st.integers(0, len(raw)))
        raw[i:i] = data.draw(st.binary(min_size=1, max_size=64))
    else:
        i = data.draw(st.integers(0, len(raw) - 1))
        del raw[i : i + data.draw(st.integers(1, 64))]
    path = tmp_path / f"fuzz-{os.getpid()}.graia"
    path.write_bytes(bytes(raw))
    try:
        config, metadata, arrays = gio.read_model_file(path)
    except ModelFileError:
        return
    # Survived corruption (e.g. a flipped byte in a timestamp): the content must still be sane.
    assert isinstance(config, dict) and isinstance(metadata, dict)
    for a in arrays.values():
        assert isinstance(a, np.ndarray) and not a.dtype.hasobject
