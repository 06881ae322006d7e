"""Datasets: digits split, IDX reading, search order, and downloads from a local HTTP server."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from graia import datasets
from graia.datasets import download, fashion_mnist, idx, mnist
from graia.datasets.download import Resource
from graia.errors import DatasetError, GraiaError

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
    with pytest.raises(DatasetError, match="cannot open"):
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
