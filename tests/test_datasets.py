"""Datasets: digits split, IDX reading, search order, downloads from a local HTTP server, and the
CIFAR-10 binary archive (generated archives in the published format, fewer records per batch)."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import socket
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from graia import datasets
from graia.datasets import cifar10, download, fashion_mnist, idx, mnist
from graia.datasets.download import Resource
from graia.errors import DatasetError, GraiaError, GraiaValueError

# --------------------------------------------------------------------------- digits


def test_digits_shapes_split_and_quantisation() -> None:
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    (x_train, y_train), (x_test, y_test) = datasets.digits.load_data()
    assert x_train.shape == (1437, 8, 8) and x_test.shape == (360, 8, 8)
    assert y_train.shape == (1437,) and y_test.shape == (360,)
    for a in (x_train, y_train, x_test, y_test):
        assert a.dtype == np.uint8
    assert x_train.max() == 255 and x_train.min() == 0
    assert set(np.unique(y_train)) == set(range(10))

    bunch = load_digits()
    perm = np.random.default_rng(0).permutation(1797)
    p = bunch.images.astype(np.int64)
    q = ((p * 255 + 8) // 16).astype(np.uint8)
    np.testing.assert_array_equal(x_train, q[perm[:1437]])
    np.testing.assert_array_equal(x_test, q[perm[1437:]])
    np.testing.assert_array_equal(y_test, bunch.target[perm[1437:]])
    # Deterministic across calls, and by-name loading gives the same.
    (x2, _), _ = datasets.load_data("digits")
    np.testing.assert_array_equal(x_train, x2)


def test_quantize_pixels_endpoints() -> None:
    q = datasets.digits.quantize_pixels(np.arange(17))
    assert q[0] == 0 and q[8] == 128 and q[16] == 255
    assert np.all(np.diff(q.astype(int)) > 0)


def test_unknown_dataset_name() -> None:
    with pytest.raises(DatasetError, match="unknown dataset"):
        datasets.load_data("cifar")


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", ">i4", ">f4", ">f8", "<i4"])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path: Path, dtype: str, gz: bool) -> None:
    rng = np.random.default_rng(1)
    a = (rng.integers(-100, 100, size=(3, 4, 5))).astype(dtype)
    if np.dtype(dtype).kind == "u":
        a = np.abs(a).astype(dtype)
    path = tmp_path / ("a.idx" + (".gz" if gz else ""))
    idx.write_idx(path, a)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == gz
    b = idx.read_idx(path)
    np.testing.assert_array_equal(a, b)
    assert b.dtype.isnative and b.shape == a.shape


def test_idx_gzip_detected_by_content_not_name(tmp_path: Path) -> None:
    a = np.arange(10, dtype=np.uint8)
    p = tmp_path / "labels-idx1-ubyte"  # no .gz suffix but compressed
    idx.write_idx(p, a, compress=True)
    np.testing.assert_array_equal(idx.read_idx(p), a)


def _raw(a: np.ndarray) -> bytes:
    return idx.encode_idx(a)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:-1], "truncated"),
        (lambda b: b[:3], "truncated"),
        (lambda b: b[:10], "truncated"),
        (lambda b: b"", "truncated"),
        (lambda b: b + b"\x00", "extra bytes"),
        (lambda b: b"\x01" + b[1:], "not an IDX file"),
        (lambda b: b[:2] + b"\x07" + b[3:], "unknown IDX element type"),
        (lambda b: b[:3] + b"\x00" + b[4:], "0 dimensions"),
        (lambda b: b[:3] + b"\x03" + b[4:], "truncated"),  # wrong ndim: lengths mismatch
    ],
)
def test_idx_malformed(tmp_path: Path, mutate: Callable[[bytes], bytes], message: str) -> None:
    good = _raw(np.arange(24, dtype=np.uint8).reshape(4, 6))
    for compress in (False, True):
        data = mutate(good)
        p = tmp_path / "bad.idx"
        p.write_bytes(gzip.compress(data) if compress else data)
        with pytest.raises(DatasetError, match=message) as info:
            idx.read_idx(p)
        assert str(p) in str(info.value)


def test_idx_truncated_gzip(tmp_path: Path) -> None:
    data = gzip.compress(_raw(np.arange(1000, dtype=np.uint8)))
    p = tmp_path / "t.gz"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="gzip"):
        idx.read_idx(p)


def test_idx_huge_header_refused_without_allocating() -> None:
    data = b"\x00\x00\x08\x03" + b"\xff\xff\xff\xff" * 3
    with pytest.raises(DatasetError, match="limit"):
        idx.decode_idx(data, "huge")


def test_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such IDX file"):
        idx.read_idx(tmp_path / "nope")


def test_errors_are_graia_and_value_errors() -> None:
    assert issubclass(DatasetError, GraiaError) and issubclass(DatasetError, ValueError)


# --------------------------------------------------------------------------- fixtures


def _make_mnist_files(n_train: int = 12, n_test: int = 5, seed: int = 0) -> dict[str, bytes]:
    """Four small, valid, gzip-compressed MNIST-format files."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    return {k: gzip.compress(idx.encode_idx(v), mtime=0) for k, v in arrays.items()}


def _resources(files: dict[str, bytes]) -> tuple[Resource, ...]:
    return tuple(
        Resource(name, hashlib.sha256(data).hexdigest(), len(data)) for name, data in files.items()
    )


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No real data directories: HOME, GRAIA_DATA and the system dirs point into tmp_path."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("GRAIA_DATA", raising=False)
    monkeypatch.delenv("GRAIA_DATASET_MIRROR", raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(download, "SYSTEM_DATA_DIRS", (tmp_path / "system",))
    return tmp_path


class _Server:
    """A local HTTP server serving ``files``; ``truncate`` names files sent half-way."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.truncate: set[str] = set()
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.rsplit("/", 1)[-1]
                outer.requests.append(self.path)
                if name not in outer.files:
                    self.send_error(404)
                    return
                data = outer.files[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if name in outer.truncate:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server(_make_mnist_files())
    yield s
    s.close()


def _closed_port_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/"


# --------------------------------------------------------------------------- search order


def _write_dir(d: Path, files: dict[str, bytes], raw: bool = False) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        if raw:
            (d / name[: -len(".gz")]).write_bytes(gzip.decompress(data))
        else:
            (d / name).write_bytes(data)
    return d


def test_explicit_path_gz_and_raw(isolated: Path) -> None:
    files = _make_mnist_files()
    for raw in (False, True):
        d = _write_dir(isolated / f"explicit{raw}", files, raw=raw)
        (x_train, y_train), (x_test, y_test) = mnist.load_data(d, download=False)
        assert x_train.shape == (12, 28, 28) and x_train.dtype == np.uint8
        assert y_train.shape == (12,) and y_train.dtype == np.uint8
        assert x_test.shape == (5, 28, 28) and y_test.shape == (5,)
        assert y_train.max() < 10


def test_explicit_path_incomplete_is_an_error(isolated: Path) -> None:
    files = _make_mnist_files()
    del files["t10k-labels-idx1-ubyte.gz"]
    d = _write_dir(isolated / "partial", files)
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\.gz"):
        mnist.load_data(d)
    with pytest.raises(DatasetError, match="does not exist"):
        mnist.load_data(isolated / "missing")


def test_search_order(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = _write_dir(isolated / "system" / "mnist", _make_mnist_files(n_train=3))
    assert mnist.load_data(download=False)[0][0].shape[0] == 3
    home = _write_dir(isolated / "home" / ".graia" / "datasets" / "mnist", _make_mnist_files(4))
    assert mnist.load_data(download=False)[0][0].shape[0] == 4
    env = _write_dir(isolated / "env" / "mnist", _make_mnist_files(n_train=5))
    monkeypatch.setenv("GRAIA_DATA", str(isolated / "env"))
    assert mnist.load_data(download=False)[0][0].shape[0] == 5
    explicit = _write_dir(isolated / "explicit", _make_mnist_files(n_train=6))
    assert mnist.load_data(explicit, download=False)[0][0].shape[0] == 6
    assert download.search_dirs("mnist") == [env, home, system]


def test_incomplete_directory_is_skipped(isolated: Path) -> None:
    files = _make_mnist_files(n_train=7)
    partial = dict(files)
    del partial["train-images-idx3-ubyte.gz"]
    _write_dir(isolated / "home" / ".graia" / "datasets" / "mnist", partial)
    _write_dir(isolated / "system" / "mnist", files)
    assert mnist.load_data(download=False)[0][0].shape[0] == 7


def test_not_found_without_download_says_where(isolated: Path) -> None:
    with pytest.raises(DatasetError) as info:
        fashion_mnist.load_data(download=False)
    msg = str(info.value)
    assert ".graia/datasets/fashion-mnist" in msg
    assert "train-images-idx3-ubyte.gz" in msg
    assert "dataset-fashion-mnist" in msg


def test_malformed_local_files(isolated: Path) -> None:
    files = _make_mnist_files()
    files["train-labels-idx1-ubyte.gz"] = gzip.compress(idx.encode_idx(np.zeros(3, np.uint8)))
    d = _write_dir(isolated / "bad", files)
    with pytest.raises(DatasetError, match="3 labels for 12 images"):
        mnist.load_data(d)
    files = _make_mnist_files()
    files["t10k-images-idx3-ubyte.gz"] = gzip.compress(idx.encode_idx(np.zeros((2, 8, 8), "u1")))
    d = _write_dir(isolated / "bad2", files)
    with pytest.raises(DatasetError, match=r"\(n, 28, 28\)"):
        mnist.load_data(d)
    files = _make_mnist_files()
    files["t10k-labels-idx1-ubyte.gz"] = gzip.compress(idx.encode_idx(np.full(5, 10, "u1")))
    d = _write_dir(isolated / "bad3", files)
    with pytest.raises(DatasetError, match="out of range"):
        mnist.load_data(d)


# --------------------------------------------------------------------------- downloads


def _cache(isolated: Path, name: str = "mnist") -> Path:
    return isolated / "home" / ".graia" / "datasets" / name


def test_download_good(isolated: Path, server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist, "RESOURCES", _resources(server.files))
    (x_train, _), (x_test, _) = mnist.load_data(mirror=server.url, progress=False)
    assert x_train.shape == (12, 28, 28) and x_test.shape == (5, 28, 28)
    cache = _cache(isolated)
    assert sorted(p.name for p in cache.iterdir()) == sorted(server.files)
    for name, data in server.files.items():
        assert (cache / name).read_bytes() == data
    # Second call: served from the cache, no new requests.
    n = len(server.requests)
    mnist.load_data(mirror=server.url, progress=False)
    assert len(server.requests) == n


def test_download_via_env_mirror_and_graia_data(
    isolated: Path, server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mnist, "RESOURCES", _resources(server.files))
    monkeypatch.setenv("GRAIA_DATASET_MIRROR", server.url.replace("/data/", "/{name}/"))
    monkeypatch.setenv("GRAIA_DATA", str(isolated / "gd"))
    mnist.load_data(progress=False)
    assert all(r.startswith("/mnist/") for r in server.requests)
    assert sorted(p.name for p in (isolated / "gd" / "mnist").iterdir()) == sorted(server.files)


def test_download_only_missing_files(
    isolated: Path, server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mnist, "RESOURCES", _resources(server.files))
    cache = _cache(isolated)
    _write_dir(cache, {"train-images-idx3-ubyte.gz": server.files["train-images-idx3-ubyte.gz"]})
    mnist.load_data(mirror=server.url, progress=False)
    assert not any("train-images" in r for r in server.requests)
    assert len(server.requests) == 3


def test_download_bad_checksum_leaves_nothing(
    isolated: Path, server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = list(_resources(server.files))
    res[1] = Resource(res[1].filename, "0" * 64, res[1].size)
    monkeypatch.setattr(mnist, "RESOURCES", tuple(res))
    with pytest.raises(DatasetError, match="SHA-256 mismatch") as info:
        mnist.load_data(mirror=server.url, progress=False)
    assert "train-labels-idx1-ubyte.gz" in str(info.value)
    cache = _cache(isolated)
    # Only the verified first file is there: no partial or unverified file, no temp file.
    assert sorted(p.name for p in cache.iterdir()) == [res[0].filename]


def test_download_truncated_leaves_nothing(
    isolated: Path, server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mnist, "RESOURCES", _resources(server.files))
    server.truncate.add("train-images-idx3-ubyte.gz")
    with pytest.raises(DatasetError, match="truncated"):
        mnist.load_data(mirror=server.url, progress=False)
    cache = _cache(isolated)
    assert list(cache.iterdir()) == []


def test_download_truncated_without_known_size(
    isolated: Path, server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = tuple(Resource(r.filename, r.sha256, None) for r in _resources(server.files))
    monkeypatch.setattr(mnist, "RESOURCES", res)
    server.truncate.add("train-images-idx3-ubyte.gz")
    with pytest.raises(DatasetError, match="truncated"):
        mnist.load_data(mirror=server.url, progress=False)
    assert list(_cache(isolated).iterdir()) == []


def test_download_larger_than_expected_refused(
    isolated: Path, server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = list(_resources(server.files))
    res[0] = Resource(res[0].filename, res[0].sha256, res[0].size - 10)
    monkeypatch.setattr(mnist, "RESOURCES", tuple(res))
    with pytest.raises(DatasetError, match="expected"):
        mnist.load_data(mirror=server.url, progress=False)
    assert list(_cache(isolated).iterdir()) == []


def test_download_404(isolated: Path, server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist, "RESOURCES", _resources(server.files))
    del server.files["t10k-images-idx3-ubyte.gz"]
    with pytest.raises(DatasetError, match="HTTP 404"):
        mnist.load_data(mirror=server.url, progress=False)


def test_download_falls_back_to_next_mirror(
    isolated: Path, server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mnist, "RESOURCES", _resources(server.files))
    monkeypatch.setattr(mnist, "MIRRORS", (_closed_port_url(), server.url))
    mnist.load_data(progress=False)
    assert len(list(_cache(isolated).iterdir())) == 4


def test_offline_error_says_where_to_put_files(isolated: Path) -> None:
    url = _closed_port_url()
    with pytest.raises(DatasetError) as info:
        fashion_mnist.load_data(mirror=url, progress=False)
    msg = str(info.value)
    assert "connection refused" in msg
    assert url in msg
    assert str(_cache(isolated, "fashion-mnist")) in msg
    assert "path=" in msg and "dataset-fashion-mnist" in msg
    assert list(_cache(isolated, "fashion-mnist").iterdir()) == []


def test_progress_bar_runs(
    isolated: Path, server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tqdm")
    monkeypatch.setattr(mnist, "RESOURCES", _resources(server.files))
    mnist.load_data(mirror=server.url, progress=True)


# --------------------------------------------------------------------------- real data


def test_published_checksums_are_well_formed() -> None:
    for module in (mnist, fashion_mnist):
        assert len(module.RESOURCES) == 4
        for r in module.RESOURCES:
            assert len(r.sha256) == 64 and int(r.sha256, 16) >= 0
            assert r.size and r.size > 0


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz").exists(),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_debian_fashion_mnist(monkeypatch: pytest.MonkeyPatch) -> None:
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(
        "/usr/share/datasets/fashion-mnist", download=False
    )
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert np.bincount(y_train).tolist() == [6000] * 10


# --------------------------------------------------------------------------- CIFAR-10

_CIFAR_RECORDS = 4  # records per batch in the generated archives (the published one has 10000)
_CIFAR_DIR = "cifar-10-batches-bin/"
_CIFAR_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)


def _cifar_batches(records: int = _CIFAR_RECORDS, seed: int = 0) -> dict[str, bytes]:
    """Each batch member's content: ``records`` random records of 3073 bytes."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in _CIFAR_BATCHES:
        data = rng.integers(0, 256, (records, 3073), dtype=np.uint8)
        data[:, 0] = rng.integers(0, 10, records)
        out[_CIFAR_DIR + name] = data.tobytes()
    return out


def _tar(
    members: list[tuple[str, bytes]] | dict[str, bytes],
    *,
    compress: bool = True,
    fmt: int = tarfile.GNU_FORMAT,
    symlinks: tuple[str, ...] = (),
) -> bytes:
    """A tar archive of ``members`` (name, content) in order, like the published one: the
    directory first, then the batches, ``batches.meta.txt`` and ``readme.html``."""
    items = list(members.items()) if isinstance(members, dict) else list(members)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        d = tarfile.TarInfo(_CIFAR_DIR.rstrip("/"))
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
        for name, data in items:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name in symlinks:
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0) if compress else raw


def _cifar_archive(**kwargs: object) -> bytes:
    members = dict(_cifar_batches())
    members[_CIFAR_DIR + "batches.meta.txt"] = "\n".join(cifar10.CLASS_NAMES).encode() + b"\n"
    members[_CIFAR_DIR + "readme.html"] = b"<meta HTTP-EQUIV='REFRESH'>\n"
    return _tar(members, **kwargs)  # type: ignore[arg-type]


def _expected_split(batches: dict[str, bytes], names: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """Images and labels by the format's definition, pixel by pixel (no reshape shortcut)."""
    records = np.concatenate(
        [np.frombuffer(batches[_CIFAR_DIR + n], np.uint8).reshape(-1, 3073) for n in names]
    )
    n = len(records)
    i, row, col, ch = np.indices((n, 32, 32, 3))
    x = records[i, 1 + ch * 1024 + row * 32 + col]
    return x, records[:, 0]


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT, tarfile.PAX_FORMAT])
def test_cifar10_read_archive_layout(tmp_path: Path, compress: bool, fmt: int) -> None:
    path = tmp_path / "cifar-10-binary.tar.gz"
    path.write_bytes(_cifar_archive(compress=compress, fmt=fmt))
    (x_train, y_train), (x_test, y_test) = cifar10.read_archive(
        path, records_per_batch=_CIFAR_RECORDS
    )
    assert x_train.shape == (5 * _CIFAR_RECORDS, 32, 32, 3) and y_train.shape == (20,)
    assert x_test.shape == (_CIFAR_RECORDS, 32, 32, 3) and y_test.shape == (4,)
    for a in (x_train, y_train, x_test, y_test):
        assert a.dtype == np.uint8 and a.flags.c_contiguous
    batches = _cifar_batches()
    ex, ey = _expected_split(batches, _CIFAR_BATCHES[:5])
    np.testing.assert_array_equal(x_train, ex)
    np.testing.assert_array_equal(y_train, ey)
    ex, ey = _expected_split(batches, _CIFAR_BATCHES[5:])
    np.testing.assert_array_equal(x_test, ex)
    np.testing.assert_array_equal(y_test, ey)
    # The red channel of image 0's first pixel is the byte after its label.
    assert x_test[0, 0, 0, 0] == batches[_CIFAR_DIR + "test_batch.bin"][1]


def test_cifar10_member_order_does_not_matter(tmp_path: Path) -> None:
    members = list(reversed(list(_cifar_batches().items())))
    path = tmp_path / "a.tar.gz"
    path.write_bytes(_tar(members))
    (x_train, _), _ = cifar10.read_archive(path, records_per_batch=_CIFAR_RECORDS)
    np.testing.assert_array_equal(x_train, _expected_split(_cifar_batches(), _CIFAR_BATCHES[:5])[0])


def test_cifar10_records_per_batch_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "a.tar.gz"
    path.write_bytes(_cifar_archive())
    for bad in (0, True, 2.0, cifar10.RECORDS_PER_BATCH + 1):
        with pytest.raises(GraiaValueError, match="records_per_batch"):
            cifar10.read_archive(path, records_per_batch=bad)  # type: ignore[arg-type]
    # The published size is the default: a small archive is refused, naming both sizes.
    with pytest.raises(DatasetError, match=r"holds 12292 bytes, expected 30730000 \(10000 rec"):
        cifar10.read_archive(path)


def _replace(members: dict[str, bytes], name: str, data: bytes) -> dict[str, bytes]:
    out = dict(members)
    out[_CIFAR_DIR + name] = data
    return out


def _without(members: dict[str, bytes], name: str) -> dict[str, bytes]:
    return {k: v for k, v in members.items() if k != _CIFAR_DIR + name}


def _bad_label(members: dict[str, bytes]) -> dict[str, bytes]:
    data = bytearray(members[_CIFAR_DIR + "data_batch_3.bin"])
    data[3073] = 10  # second record's label
    return _replace(members, "data_batch_3.bin", bytes(data))


def _flip_in_member(archive: bytes) -> bytes:
    raw = bytearray(gzip.decompress(archive))
    raw[512 * 3 + 100] ^= 0xFF  # inside data_batch_1's pixels: only the gzip CRC can tell
    good = gzip.compress(bytes(raw), mtime=0)
    crc_at = len(good) - 8
    return good[:crc_at] + archive[-8:-4] + good[-4:]  # the original CRC: a corrupt archive


def _bad_header_checksum(archive: bytes) -> bytes:
    raw = bytearray(gzip.decompress(archive))
    raw[512 + 5] ^= 0x01  # the first batch's name, after the directory's header
    return gzip.compress(bytes(raw), mtime=0)


def _many_members() -> bytes:
    members = list(_cifar_batches().items())
    members += [(f"{_CIFAR_DIR}junk{i}", b"x") for i in range(cifar10.MAX_MEMBERS)]
    return _tar(members)


def _huge_member_header() -> bytes:
    """A header declaring a 4 GiB member (the data is absent): refused from the header alone."""
    info = tarfile.TarInfo("bomb")
    info.size = 1 << 32
    return gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT), mtime=0)


def _no_end_marker() -> bytes:
    """The uncompressed archive cut right after its last member, before the zero blocks."""
    raw = _cifar_archive(compress=False)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        last = tar.getmembers()[-1]
    return raw[: last.offset_data + -(-last.size // 512) * 512]


def _trailing_junk() -> bytes:
    return gzip.compress(_cifar_archive(compress=False) + b"\0" * (2 << 20), mtime=0)


_BATCHES = _cifar_batches()
_CORRUPT: list[tuple[str, Callable[[], bytes], str]] = [
    ("empty", lambda: b"", "truncated archive: it ends at byte 0"),
    ("not a tar", lambda: b"hello world, not a tar " * 40, "not a tar archive: no ustar"),
    ("not gzip either", lambda: b"\x1f\x8bnot really gzip", "corrupt gzip data"),
    ("gzip cut", lambda: _cifar_archive()[:-100], "truncated gzip data"),
    ("gzip crc", lambda: _flip_in_member(_cifar_archive()), "corrupt gzip data"),
    ("tar cut", lambda: _cifar_archive(compress=False)[:5000], "truncated archive: member"),
    ("no end marker", _no_end_marker, "ends at byte [0-9]+ before the tar end-of-archive marker"),
    ("header checksum", lambda: _bad_header_checksum(_cifar_archive()), "checksum mismatch"),
    (
        "short batch",
        lambda: _tar(_replace(_BATCHES, "data_batch_2.bin", b"\0" * 3073 * 3)),
        r"data_batch_2\.bin holds 9219 bytes, expected 12292 \(4 records of 3073 bytes\)",
    ),
    (
        "long batch",
        lambda: _tar(_replace(_BATCHES, "test_batch.bin", b"\0" * (3073 * 4 + 1))),
        r"test_batch\.bin holds 12293 bytes",
    ),
    ("missing", lambda: _tar(_without(_BATCHES, "data_batch_5.bin")), r"lacks .*data_batch_5"),
    (
        "duplicate",
        lambda: _tar([*_BATCHES.items(), (_CIFAR_DIR + "data_batch_1.bin", b"\0" * 12292)]),
        "data_batch_1.bin appears twice",
    ),
    (
        "symlink",
        lambda: _tar(
            _without(_BATCHES, "test_batch.bin"), symlinks=(_CIFAR_DIR + "test_batch.bin",)
        ),
        "test_batch.bin is not a regular file",
    ),
    (
        "traversal",
        lambda: _tar(
            [("../" + k if k.endswith("test_batch.bin") else k, v) for k, v in _BATCHES.items()]
        ),
        r"lacks cifar-10-batches-bin/test_batch\.bin",
    ),
    (
        "large extra member",
        lambda: _tar([*_BATCHES.items(), ("x.bin", b"\0" * (cifar10.MAX_OTHER_MEMBER_BYTES + 1))]),
        "unexpected archive member 'x.bin'",
    ),
    ("bomb header", _huge_member_header, "unexpected archive member 'bomb' of 4294967296"),
    ("too many members", _many_members, "more than 64 members"),
    ("bad label", lambda: _tar(_bad_label(_BATCHES)), r"data_batch_3\.bin: label 10 out of range"),
    ("trailing data", _trailing_junk, "bytes after the end of the tar archive"),
]


@pytest.mark.parametrize(
    ("make", "message"), [c[1:] for c in _CORRUPT], ids=[c[0] for c in _CORRUPT]
)
def test_cifar10_corrupt_archives(tmp_path: Path, make: Callable[[], bytes], message: str) -> None:
    path = tmp_path / "cifar-10-binary.tar.gz"
    path.write_bytes(make())
    with pytest.raises(DatasetError, match=message) as info:
        cifar10.read_archive(path, records_per_batch=_CIFAR_RECORDS)
    text = str(info.value)
    assert "\n" not in text and text.startswith(str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # nothing extracted


def test_cifar10_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such CIFAR-10 archive"):
        cifar10.read_archive(tmp_path / "nope.tar.gz")


@pytest.fixture
def small_cifar(monkeypatch: pytest.MonkeyPatch) -> bytes:
    """The generated archive, with the loader expecting its record count and checksums."""
    archive = _cifar_archive()
    monkeypatch.setattr(cifar10, "RECORDS_PER_BATCH", _CIFAR_RECORDS)
    res = Resource(
        cifar10.ARCHIVE.filename,
        hashlib.sha256(archive).hexdigest(),
        len(archive),
        md5=hashlib.md5(archive).hexdigest(),
    )
    monkeypatch.setattr(cifar10, "RESOURCES", (res,))
    return archive


def test_cifar10_load_data_local_and_by_name(isolated: Path, small_cifar: bytes) -> None:
    d = isolated / "explicit"
    d.mkdir()
    (d / "cifar-10-binary.tar").write_bytes(gzip.decompress(small_cifar))  # uncompressed name
    (x_train, _), (x_test, y_test) = cifar10.load_data(d)
    assert x_train.shape == (20, 32, 32, 3) and x_test.shape == (4, 32, 32, 3)
    for name in ("cifar10", "cifar-10", "CIFAR_10"):
        (x2, _), (_, y2) = datasets.load_data(name, path=d)
        np.testing.assert_array_equal(x2, x_train)
        np.testing.assert_array_equal(y2, y_test)
    home = _cache(isolated, "cifar10")
    home.mkdir(parents=True)
    (home / "cifar-10-binary.tar.gz").write_bytes(small_cifar)
    assert cifar10.load_data(download=False)[1][0].shape == (4, 32, 32, 3)
    assert "cifar10" in datasets.NAMES


def test_cifar10_download_checksum_and_cache(isolated: Path, small_cifar: bytes) -> None:
    s = _Server({cifar10.ARCHIVE.filename: small_cifar})
    try:
        (x_train, _), _ = cifar10.load_data(mirror=s.url, progress=False)
        assert x_train.shape == (20, 32, 32, 3)
        cache = _cache(isolated, "cifar10")
        assert [p.name for p in cache.iterdir()] == [cifar10.ARCHIVE.filename]
        assert (cache / cifar10.ARCHIVE.filename).read_bytes() == small_cifar
        n = len(s.requests)
        cifar10.load_data(mirror=s.url, progress=False)  # from the cache
        assert len(s.requests) == n == 1
    finally:
        s.close()


@pytest.mark.parametrize("which", ["sha256", "md5"])
def test_cifar10_checksum_mismatch_leaves_nothing(
    isolated: Path, small_cifar: bytes, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    (res,) = cifar10.RESOURCES
    wrong = {"sha256": "0" * 64} if which == "sha256" else {"md5": "0" * 32}
    fields = {"sha256": res.sha256, "size": res.size, "md5": res.md5, **wrong}
    monkeypatch.setattr(cifar10, "RESOURCES", (Resource(res.filename, **fields),))  # type: ignore[arg-type]
    s = _Server({cifar10.ARCHIVE.filename: small_cifar})
    try:
        label = "SHA-256" if which == "sha256" else "MD5"
        with pytest.raises(DatasetError, match=f"{label} mismatch"):
            cifar10.load_data(mirror=s.url, progress=False)
    finally:
        s.close()
    assert list(_cache(isolated, "cifar10").iterdir()) == []


def test_cifar10_published_archive_constants() -> None:
    a = cifar10.ARCHIVE
    assert a.filename == "cifar-10-binary.tar.gz" and a.size == 170052171
    assert len(a.sha256) == 64 and int(a.sha256, 16) >= 0
    assert a.md5 is not None and len(a.md5) == 32 and int(a.md5, 16) >= 0
    assert cifar10.RESOURCES == (a,)
    assert cifar10.RECORD_BYTES == 3073 and cifar10.RECORDS_PER_BATCH == 10000
