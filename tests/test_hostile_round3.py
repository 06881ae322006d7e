"""Hostile inputs, round 3 (issue 33): zip compression methods and directories, the demo's
headers and client errors, MPI ranks that disagree, C comments, non-regular paths, counters,
Ctrl-C and the one input contract of fit/evaluate/predict. Each defect is tested as a class."""

from __future__ import annotations

import base64
import bz2
import email.message
import http.client
import io
import json
import lzma
import os
import signal
import socket
import struct
import subprocess
import sys
import urllib.parse
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import test_demo
from hypothesis import given, settings
from hypothesis import strategies as st

import graia
from graia import cli, layers
from graia import io as gio
from graia.datasets import cifar10, idx
from graia.demo import core, server
from graia.errors import DatasetError, GraiaValueError, ModelFileError
from graia.export.c import _comment_text
from graia.saving import MAX_STEP

REPO = Path(__file__).resolve().parents[1]
#: The demo server (test_demo's module-scoped fixture, registered here under this name).
demo_url = test_demo.url
ENV = {**os.environ, "GRAIA_BACKEND": "numba", "PYTHONPATH": str(REPO)}


def _model(shape=(8, 8), hidden=6, name=None) -> graia.Sequential:
    model = graia.Sequential(
        [layers.Input(shape), layers.Dense(hidden), layers.Dense(10)], seed=5, name=name
    )
    model.compile("dfa")
    return model


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _patch(raw: bytes, name: str, **fields: int) -> bytes:
    """``raw`` (a zip) with ``name``'s ``method``, ``crc`` or ``size`` (uncompressed) changed in
    both its local header and its central directory entry."""
    data, encoded = bytearray(raw), name.encode()
    offsets = {"method": (8, 10, "<H"), "crc": (14, 16, "<L"), "size": (22, 24, "<L")}
    for signature, start in ((b"PK\x03\x04", 30), (b"PK\x01\x02", 46)):
        at = data.find(signature)
        while at >= 0:
            if data[at + start : at + start + len(encoded)] == encoded:
                for key, value in fields.items():
                    local, central, fmt = offsets[key]
                    where = at + (local if start == 30 else central)
                    data[where : where + struct.calcsize(fmt)] = struct.pack(fmt, value)
            at = data.find(signature, at + 1)
    return bytes(data)


#: The compression methods zipfile writes.
WRITABLE = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)


def _rezip(members: dict[str, bytes], methods: dict[str, int] | None = None) -> bytes:
    """A zip of ``members``, each deflated unless ``methods`` names another method (one that
    zipfile cannot write is patched into the headers of a stored member)."""
    methods = methods or {}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            method = methods.get(name, zipfile.ZIP_DEFLATED)
            written = method if method in WRITABLE else zipfile.ZIP_STORED
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=written)
    raw = out.getvalue()
    for name, method in methods.items():
        if method not in WRITABLE:
            raw = _patch(raw, name, method=method)
    return raw


# A child process whose address space may grow by at most 100 MB over what its imports took: a
# loader that inflates a bomb or parses a huge directory dies with MemoryError instead.
_LIMITED = r"""
import json, resource, sys
import graia
from graia.demo import core
kind, path = sys.argv[1], sys.argv[2]
with open("/proc/self/status") as f:
    vm = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + (100 << 20), resource.RLIM_INFINITY))
try:
    if kind == "model":
        graia.load_model(path)
    else:
        core.DemoModel.load(path, "upload.graia")
    outcome = "loaded"
except graia.GraiaError as exc:
    outcome = f"{type(exc).__name__}: {exc}"
print(json.dumps({"outcome": outcome}))
"""


def _limited(kind: str, path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _LIMITED, kind, str(path)],
        capture_output=True, text=True, env=ENV, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])["outcome"]


# ------------------------------------------------------------------ 1: compression methods


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("saved")
    model = _model()
    model.save(base / "model.graia")
    model.save_weights(base / "weights.graia")
    np.save(base / "x.npy", np.zeros((2, 64), np.uint8))
    return {"model": base / "model.graia", "weights": base / "weights.graia", "x": base / "x.npy"}


def _loaders(saved: dict[str, Path]):
    """Every way a model file is read: the API, each CLI command, the demo."""

    def cli_call(*args: str):
        def call(path: Path) -> None:
            code = cli.main([*args[:1], str(path), *args[1:]])
            assert code == 2

        return call

    return {
        "load_model": graia.load_model,
        "load_weights": lambda p: _model().load_weights(p),
        "cli summary": cli_call("summary"),
        "cli evaluate": cli_call("evaluate", "--dataset", "digits"),
        "cli predict": cli_call("predict", str(saved["x"])),
        "cli export": cli_call("export", "--format", "c", "--output", "/nonexistent/out"),
        "demo": lambda p: core.DemoModel.load(p, p.name),
    }


# bzip2 and LZMA (zipfile inflates them without a limit), and methods zipfile cannot read.
METHODS = [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA, 93, 99, 1]


@pytest.mark.parametrize("method", METHODS)
def test_every_loader_refuses_compression_methods_but_stored_and_deflate(
    saved, tmp_path, method, capsys
):
    for kind in ("model", "weights"):
        members = _members(saved[kind])
        for member in ("config.json", max(members)):  # a JSON member, an array
            path = tmp_path / f"{kind}-{method}.graia"
            path.write_bytes(_rezip(members, {member: method}))
            for name, load in _loaders(saved).items():
                if (kind == "weights") != (name == "load_weights"):
                    continue
                try:
                    load(path)
                except ModelFileError as exc:
                    message = str(exc)
                else:
                    message = capsys.readouterr().err
                assert f"compression method {method}" in message, (name, member, message)
                assert "Traceback" not in message


def _bomb(members: dict[str, bytes], method: int, size: int = 160 << 20) -> bytes:
    """``config.json`` replaced by a ``method`` stream of ``size`` zero bytes, its headers
    declaring the real config's size and CRC (LZMA with preset 0: fast to make)."""
    config = members["config.json"]
    if method == zipfile.ZIP_BZIP2:
        engine = bz2.BZ2Compressor(1)
        head = b""
    else:  # zip's LZMA: version, size of the properties, the LZMA1 properties, a raw stream
        lzma1 = {"id": lzma.FILTER_LZMA1, "preset": 0}
        engine = lzma.LZMACompressor(lzma.FORMAT_RAW, filters=[lzma1])
        props = lzma._encode_filter_properties(lzma1)
        head = struct.pack("<BBH", 9, 4, len(props)) + props
    chunk = bytes(1 << 20)
    stream = head + b"".join(engine.compress(chunk) for _ in range(size >> 20)) + engine.flush()
    raw = _rezip({**members, "config.json": stream}, {"config.json": zipfile.ZIP_STORED})
    return _patch(raw, "config.json", method=method, size=len(config), crc=zlib.crc32(config))


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
@pytest.mark.parametrize("kind", ["model", "demo"])
def test_compression_bombs_refused_in_bounded_memory(saved, tmp_path, method, kind):
    """A small file whose config.json inflates to 160 MB of zeros while declaring its real
    size: refused from the headers, under a 100 MB address-space limit."""
    path = tmp_path / "bomb.graia"
    path.write_bytes(_bomb(_members(saved["model"]), method))
    assert path.stat().st_size < 200_000
    outcome = _limited(kind, path)
    assert outcome.startswith("ModelFileError") and f"compression method {method}" in outcome


def _many_members(count: int) -> bytes:
    """A zip64 archive of ``count`` empty stored members (like a 700k-member hostile file)."""
    names = [f"arrays/a{i}.npy".encode() for i in range(count)]
    crc = zlib.crc32(b"")
    locals_, central, offset = [], [], 0
    for name in names:
        header = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0x21, crc, 0, 0, len(name), 0)
        locals_.append(header + name)
        central.append(
            struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 45, 20, 0, 0, 0, 0x21, crc, 0, 0,
                        len(name), 0, 0, 0, 0, 0, offset) + name
        )  # fmt: skip
        offset += len(header) + len(name)
    directory = b"".join(central)
    end64_at = offset + len(directory)
    end64 = struct.pack(
        "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(directory), offset
    )
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, end64_at, 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return b"".join(locals_) + directory + end64 + locator + end


@pytest.mark.parametrize("kind", ["model", "demo"])
def test_member_count_read_from_the_end_record(tmp_path, kind):
    """500k members (in 55 MB, under the demo's upload limit): refused from the end record before the directory is parsed (which would
    take far more than the 100 MB the child may use)."""
    path = tmp_path / "many.graia"
    path.write_bytes(_many_members(500_000))
    outcome = _limited(kind, path)
    assert outcome.startswith("ModelFileError") and "500000 members" in outcome, outcome


def test_directory_size_read_from_the_end_record(saved, tmp_path):
    raw = bytearray(saved["model"].read_bytes())
    at = raw.rfind(b"PK\x05\x06")
    raw[at + 12 : at + 16] = struct.pack("<L", 5 << 20)  # a directory claiming 5 MiB
    path = tmp_path / "big-directory.graia"
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="5242880-byte zip directory"):
        graia.load_model(path)


@pytest.mark.parametrize(
    "side,hidden,refusal",
    [(100, 3_000, "at most 64 pixels a side"), (64, 9_000, "over the demo's limit")],
)
def test_demo_checks_declared_sizes_before_loading(saved, tmp_path, side, hidden, refusal):
    """Valid models of 240 MB of arrays that the demo cannot draw into (100x100 inputs), and of
    295 MB (zeros: a few hundred KB of file): refused from the config, under a 100 MB
    address-space limit."""
    members = _members(saved["model"])
    config = json.loads(members["config.json"])
    config["layers"][0]["shape"] = [side, side]
    config["layers"][1]["units"] = hidden
    synapses = side * side * hidden + hidden * 10
    manifest = json.loads(members["arrays.json"])
    manifest["latent"]["shape"] = manifest["momentum"]["shape"] = [synapses]
    manifest["head_latent"]["shape"] = manifest["head_momentum"]["shape"] = [hidden * 10]
    path = tmp_path / "huge.graia"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("metadata.json", members["metadata.json"])
        zf.writestr("arrays.json", json.dumps(manifest))
        zf.writestr("arrays/counters.npy", members["arrays/counters.npy"])
        for name, n in (("latent", synapses), ("momentum", synapses),
                        ("head_latent", hidden * 10), ("head_momentum", hidden * 10)):  # fmt: skip
            with zf.open(f"arrays/{name}.npy", "w", force_zip64=True) as m:
                header = {"descr": "<i4", "fortran_order": False, "shape": (n,)}
                np.lib.format.write_array_header_1_0(m, header)
                left = 4 * n
                chunk = bytes(1 << 20)
                while left:
                    m.write(chunk[: min(left, len(chunk))])
                    left -= min(left, len(chunk))
    assert path.stat().st_size < 2 << 20
    outcome = _limited("demo", path)
    assert outcome.startswith("ModelFileError") and refusal in outcome, outcome


# ------------------------------------------------------------------ 2, 7: the demo's HTTP


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_content_disposition_of_any_name(name):
    header = server.content_disposition(name + ".graia")
    header.encode("ascii")  # never anything but ASCII, so never a broken response
    assert "\r" not in header and "\n" not in header
    parsed = email.message.Message()
    parsed["Content-Disposition"] = header
    plain = parsed.get_param("filename", header="Content-Disposition")
    assert plain and all(c.isalnum() or c in "._-" for c in plain)
    star = header.split("filename*=UTF-8''", 1)[1]
    assert ";" not in star and '"' not in star and " " not in star
    assert urllib.parse.unquote(star, errors="strict") == (name + ".graia")[:200]


def _request(url: str, method: str, path: str, body: bytes | None = None):
    conn = http.client.HTTPConnection(urllib.parse.urlparse(url).netloc, timeout=60)
    conn.request(method, path, body=body)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response, data


HOSTILE_NAMES = [
    "evil\r\nSet-Cookie: stolen=1",
    "x\"; filename*=UTF-8''renamed.exe; a=\"",
    "modèle ünïcode ∑ 🤖",
    "\u202eexe.graia",
    "../../etc/passwd",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_download_headers_carry_no_user_text(demo_url, tmp_path, name):
    """One visitor's model name reaches another's download only encoded."""
    path = tmp_path / "named.graia"
    _model(name=name).save(path)
    response, data = _request(demo_url, "POST", "/api/model/upload?name=n.graia", path.read_bytes())
    assert response.status == 200, data
    response, data = _request(demo_url, "GET", "/api/model/download")
    assert response.status == 200
    assert response.getheader("Set-Cookie") is None
    disposition = response.getheader("Content-Disposition")
    assert disposition == server.content_disposition(f"{name}.graia")  # the fuzzed function
    names = {key.lower() for key, _ in response.getheaders()}
    assert names == {"server", "date", "content-type", "content-length", "cache-control",
                     "content-disposition"}  # fmt: skip
    star = disposition.split("filename*=UTF-8''", 1)[1]
    assert urllib.parse.unquote(star) == f"{name}.graia"
    assert graia.load_model(_save(tmp_path, data)).name == name


def _save(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "downloaded.graia"
    path.write_bytes(data)
    return path


def test_request_line_is_not_echoed_in_the_status_line(demo_url):
    """http.server would answer an unknown method with it in the status line."""
    address = urllib.parse.urlparse(demo_url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(b"SET-COOKIE:X / HTTP/1.1\r\n\r\n")
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.0 501 Not Implemented", status_line


def _ink(width: object = 8, height: object = 8, ink: object = None) -> dict:
    raw = base64.b64encode(bytes(64)).decode() if ink is None else ink
    return {"width": width, "height": height, "ink": raw}


CLIENT_ERRORS = [
    ("/api/predict", b"[" * 100_000 + b"]" * 100_000),
    ("/api/predict", b'{"width": ' + b"9" * 5000 + b', "height": 8, "ink": ""}'),
    ("/api/predict", b'{"width": Infinity, "height": 8, "ink": ""}'),
    ("/api/predict", b'{"width": NaN, "height": 8, "ink": ""}'),
    ("/api/predict", json.dumps(_ink(width=1e308)).encode()),
    ("/api/predict", json.dumps(_ink(width="8")).encode()),
    ("/api/predict", json.dumps(_ink(width=[8])).encode()),
    ("/api/predict", json.dumps(_ink(ink=["AAAA"])).encode()),
    ("/api/predict", json.dumps(_ink(ink=12)).encode()),
    ("/api/predict", b"\xff\xfe{}"),
    ("/api/model/select", b'{"name": {"a": 1}}'),
    ("/api/model/select", b'{"name": ["digits"]}'),
    ("/api/model/select", b'{"name": 1e999}'),
    ("/api/model/select", b'{"name": "' + b"x" * 10_000 + b'"}'),
    ("/api/train", b'{"dataset": {}, "rule": "dfa", "width": 8, "epochs": 1}'),
    ("/api/train", b'{"dataset": "digits", "rule": ["dfa"], "width": 8, "epochs": 1}'),
    ("/api/train", b'{"dataset": "digits", "rule": "dfa", "width": Infinity, "epochs": 1}'),
    ("/api/train", b'{"dataset": "digits", "rule": "dfa", "width": 8, "epochs": ' + b"1" * 5000 + b"}"),
]  # fmt: skip


@pytest.mark.parametrize("path,body", CLIENT_ERRORS, ids=range(len(CLIENT_ERRORS)))
def test_client_errors_are_short_400s(demo_url, path, body):
    response, data = _request(demo_url, "POST", path, body)
    assert response.status == 400, data[:300]
    message = json.loads(data)["error"]
    assert len(message) < 120 and "Error" not in message and "Traceback" not in message


@given(
    field=st.sampled_from(["width", "height", "ink", "name", "dataset", "rule", "epochs"]),
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=5,
    ),
    path=st.sampled_from(["/api/predict", "/api/model/select", "/api/train"]),
)
@settings(max_examples=150, deadline=None)
def test_no_body_gets_a_500(demo_url, field, value, path):
    base = {"dataset": "digits", "rule": "dfa", "width": 8, "epochs": 1, "name": "digits"}
    body = {**base, **_ink(), field: value}
    if path == "/api/train":
        body["epochs"] = body["epochs"] if field == "epochs" else 0  # never start a run
    response, data = _request(demo_url, "POST", path, json.dumps(body).encode())
    assert response.status in (200, 400, 422), data[:300]


# ------------------------------------------------------------------ 4: names in C comments


@given(st.text())
@settings(max_examples=500, deadline=None)
def test_comment_text_is_safe_for_any_name(name):
    text = _comment_text(name)
    assert text.isascii() and text.isprintable()
    assert "/*" not in text and "*/" not in text and "??" not in text


NAMES_FOR_C = ["a/*b", "a*/b", "*/ int x; /*", "a\u202eb", "\u2066x", "x??/", "end\\", "/**/"]


def test_hostile_names_build_under_strict_c(tmp_path):
    """Model and layer names in the generated comments: gcc with -Werror=comment and
    -Werror=bidi-chars=any (and trigraphs, -std=c99) accepts every one."""
    gcc = pytest.importorskip("shutil").which("gcc")
    if gcc is None:
        pytest.skip("gcc not found")
    for i, name in enumerate(NAMES_FOR_C):
        model = graia.Sequential(
            [layers.Input(8), layers.Dense(6, name=name + "h"), layers.Dense(3, name=name)],
            seed=1,
            name=name,
        )
        model.compile("dfa")
        out = tmp_path / f"c{i}"
        model.export(out, format="c")
        flags = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Werror=comment",
                 "-Werror=bidi-chars=any", "-Wtrigraphs"]  # fmt: skip
        subprocess.run(
            [gcc, *flags, "-c", str(out / "graia_model.c"), "-o", str(out / "m.o")],
            check=True, capture_output=True, text=True,
        )  # fmt: skip


# ------------------------------------------------------------------ 5: non-regular paths


def _non_regular(tmp_path: Path) -> dict[str, str]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return {"/dev/zero": "/dev/zero", "fifo": str(fifo), "directory": str(tmp_path)}


_READERS = r"""
import sys
import graia
from graia import io, layers
from graia.datasets import cifar10, idx
path = sys.argv[1]
model = graia.Sequential([layers.Input(4), layers.Dense(3)], seed=0)
for read in (graia.load_model, model.load_weights, io.read_npy, idx.read_idx,
             idx.read_idx_header, cifar10.read_archive):
    try:
        read(path)
    except graia.GraiaError as exc:
        print(type(exc).__name__, exc)
"""


def test_non_regular_paths_refused_before_reading(tmp_path):
    """Model, weights, .npy, IDX and CIFAR paths: /dev/zero, a FIFO (no writer: opening it
    would block) and a directory are refused at once, one line each (a child process, so a
    reader that blocks fails the test by its timeout)."""
    for what, path in _non_regular(tmp_path).items():
        done = subprocess.run(
            [sys.executable, "-c", _READERS, path],
            capture_output=True, text=True, env=ENV, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        lines = done.stdout.strip().splitlines()
        assert len(lines) == 6, (what, lines)
        expected = "is a directory" if what == "directory" else "not a regular file"
        assert all(expected in line and path in line for line in lines), (what, lines)


_CLI_PATHS = r"""
import sys
from graia.cli import main
command, model, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
for path in paths:
    argv = {
        "summary": ["summary", path],
        "predict": ["predict", model, path],  # the samples file
        "evaluate": ["evaluate", path, "--dataset", "digits"],
    }[command]
    print(main(argv), flush=True)
"""


@pytest.mark.parametrize("command", ["summary", "predict", "evaluate"])
def test_cli_refuses_non_regular_paths(tmp_path, saved, command):
    """In a child process, so a FIFO that blocks fails the test by its timeout."""
    paths = list(_non_regular(tmp_path).values())
    done = subprocess.run(
        [sys.executable, "-c", _CLI_PATHS, command, str(saved["model"]), *paths],
        capture_output=True, text=True, env=ENV, timeout=120, check=False,
    )  # fmt: skip
    assert done.stdout.split() == ["2"] * len(paths), done.stderr[-2000:]
    err = done.stderr.strip().splitlines()
    assert len(err) == len(paths)
    for line, path in zip(err, paths, strict=True):
        assert line.startswith("graia: error: ") and path in line, line


def test_dataset_files_refused_when_not_regular(tmp_path):
    with pytest.raises(DatasetError, match="not a regular file"):
        idx.read_idx("/dev/zero")
    with pytest.raises(DatasetError, match="not a regular file"):
        cifar10.read_archive("/dev/zero")


# ------------------------------------------------------------------ 6: counters


def _edited(saved: dict[str, Path], tmp_path: Path, key: str, index: int, value: int) -> Path:
    config, metadata, arrays = gio.read_model_file(saved["model"])
    arrays[key] = arrays[key].copy()
    arrays[key][index] = value
    path = tmp_path / f"{key}-{index}-{value}.graia"
    gio.write_model_file(path, config, metadata, arrays)
    return path


@pytest.mark.parametrize(
    "key,index,value",
    [
        ("counters", 1, 2**63 - 1),
        ("counters", 1, MAX_STEP + 1),
        ("counters", 1, -1),
        ("counters", 2, 256),
        ("counters", 2, -(2**63)),
        ("counters", 0, 12345),
        ("momentum", 0, -(2**31)),
        ("head_momentum", 3, -(2**31)),
        ("latent", 0, 2**31 - 1),
        ("head_latent", 0, -(2**31)),
    ],
)
def test_counters_and_state_out_of_range_refused_at_load(saved, tmp_path, key, index, value):
    path = _edited(saved, tmp_path, key, index, value)
    with pytest.raises(ModelFileError) as caught:
        graia.load_model(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_largest_step_still_trains(saved, tmp_path):
    model = graia.load_model(_edited(saved, tmp_path, "counters", 1, MAX_STEP))
    model.fit(np.zeros((4, 64), np.uint8), np.arange(4), epochs=2, batch_size=1, verbose=0)
    assert model.get_state()["counters"][1] == MAX_STEP + 8


# ------------------------------------------------------------------ 10: one input contract


def _calls(model: graia.Sequential):
    y = np.zeros(2, int)
    return {
        "fit": lambda x: model.fit(x, y[: len(x)] if hasattr(x, "__len__") else y, verbose=0),
        "evaluate": lambda x: model.evaluate(x, y[: len(x)] if hasattr(x, "__len__") else y),
        "predict": model.predict,
        "predict_classes": model.predict_classes,
        "activations": model.activations,
    }


@pytest.mark.parametrize(
    "x,match",
    [
        (np.zeros((0, 64), np.uint8), "x is empty"),
        (np.zeros((0, 8, 8), np.float32), "x is empty"),
        ([[0] * 64, [0] * 63], "ragged"),
        ([[[0] * 8] * 8, [[0] * 8] * 7], "ragged"),
        ([[0] * 64, [[0]] * 64], "ragged"),
    ],
)
def test_fit_evaluate_predict_share_one_input_contract(x, match):
    model = _model()
    for name, call in _calls(model).items():
        if name == "activations" and match == "x is empty":
            continue
        with pytest.raises(GraiaValueError, match=match):
            call(x)


def test_ragged_labels_refused():
    with pytest.raises(GraiaValueError, match="ragged"):
        _model().fit(np.zeros((2, 64), np.uint8), [[0], [1, 2]], verbose=0)


@pytest.mark.parametrize("shape", [(0, 64), (0, 8, 8)])
def test_cli_predict_of_no_samples_is_one_error_line(saved, tmp_path, capsys, shape):
    samples = tmp_path / "empty.npy"
    np.save(samples, np.zeros(shape, np.uint8))
    assert cli.main(["predict", str(saved["model"]), str(samples)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "is empty" in captured.err


# ------------------------------------------------------------------ 9: Ctrl-C, first to last


def test_ctrl_c_during_the_imports():
    """SIGINT once numpy is imported (numba and the backends still loading): cli.md's line and
    exit 130, no traceback. ``-X importtime`` reports each import as it ends."""
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "graia", "info"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.split("|")[-1].strip() == "numpy":
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "graia: interrupted; nothing saved"
    assert "Traceback" not in err and out == ""


# The graia command's main, then a pause standing for the interpreter's shutdown.
_AFTER = r"""
import sys, time
from graia.cli import main
sys.argv = ["graia", "summary", sys.argv[1]]
main()
print("returned", flush=True)
time.sleep(120)
"""


def test_ctrl_c_after_the_result_line(saved):
    proc = subprocess.Popen(
        [sys.executable, "-c", _AFTER, str(saved["model"])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line == "returned\n":
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err == "graia: interrupted; nothing saved\n"
    assert any(line.startswith("Total params") for line in lines), lines
