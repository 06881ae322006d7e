"""Atomic writes (graia.files) and their users: modes follow the umask, failures leave nothing."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from graia import files
from graia import io as gio
from graia.datasets import download, idx
from graia.errors import DatasetError

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes and umask are POSIX")


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --------------------------------------------------------------------------- success


def test_success_creates_file(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    with files.atomic_write(path) as f:
        f.write(b"hello")
        # Nothing at the destination until the block ends; only the temporary file.
        assert not path.exists()
        (tmp,) = tmp_path.iterdir()
        assert tmp.name.startswith(".out.bin.") and tmp.name.endswith(".tmp")
    assert path.read_bytes() == b"hello"
    assert _names(tmp_path) == ["out.bin"]


def test_success_replaces_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    path.write_bytes(b"old contents, longer than the new")
    with files.atomic_write(str(path), suffix=".part") as f:
        f.write(b"new")
        assert [p.name for p in tmp_path.glob(".out.bin.*.part")] != []
    assert path.read_bytes() == b"new"
    assert _names(tmp_path) == ["out.bin"]


def test_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with files.atomic_write("rel.bin") as f:
        f.write(b"x")
    assert (tmp_path / "rel.bin").read_bytes() == b"x"
    assert _names(tmp_path) == ["rel.bin"]


# --------------------------------------------------------------------------- failure


class Boom(Exception):
    pass


@pytest.mark.parametrize("exc", [Boom("boom"), KeyboardInterrupt()])
def test_failure_leaves_no_temp_and_keeps_destination(tmp_path: Path, exc: BaseException) -> None:
    path = tmp_path / "out.bin"
    path.write_bytes(b"precious")
    with pytest.raises(type(exc)), files.atomic_write(path) as f:
        f.write(b"partial")
        raise exc
    assert path.read_bytes() == b"precious"
    assert _names(tmp_path) == ["out.bin"]


def test_failure_without_destination_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(Boom), files.atomic_write(tmp_path / "new.bin") as f:
        f.write(b"partial")
        raise Boom
    assert _names(tmp_path) == []


def test_fsync_failure_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "out.bin"
    path.write_bytes(b"precious")

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"), files.atomic_write(path) as f:
        f.write(b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"precious"
    assert _names(tmp_path) == ["out.bin"]


def test_replace_failure_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "out.bin"
    path.write_bytes(b"precious")

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError("cross-device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="cross-device"), files.atomic_write(path) as f:
        f.write(b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"precious"
    assert _names(tmp_path) == ["out.bin"]


def test_missing_directory_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), files.atomic_write(tmp_path / "nope" / "out.bin"):
        pass
    assert _names(tmp_path) == []


# --------------------------------------------------------------------------- modes


@posix_only
def test_file_mode_matches_umask(tmp_path: Path) -> None:
    assert files.FILE_MODE == 0o666 & ~_current_umask()
    path = tmp_path / "out.bin"
    with files.atomic_write(path) as f:
        f.write(b"x")
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    assert _mode(path) == _mode(plain) == files.FILE_MODE


@posix_only
def test_reading_umask_does_not_change_it() -> None:
    before = _current_umask()
    assert files._read_umask() == before
    assert _current_umask() == before


@posix_only
def test_umask_fallback_without_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_proc(*args: Any, **kwargs: Any) -> Any:
        raise OSError("no /proc")

    before = _current_umask()
    monkeypatch.setattr("builtins.open", no_proc)
    assert files._read_umask() == before
    monkeypatch.undo()
    assert _current_umask() == before


_CHILD = """
import os, stat, sys
os.umask(int(sys.argv[2], 8))
from pathlib import Path
import numpy as np
from graia import files, io as gio
from graia.datasets import idx
d = Path(sys.argv[1])
with files.atomic_write(d / "a.bin") as f:
    f.write(b"x")
idx.write_idx(d / "b.idx", np.arange(3, dtype=np.uint8))
gio.write_model_file(d / "c.graia", {}, {}, {"w": np.zeros(2, np.int32)})
print(" ".join(oct(stat.S_IMODE((d / n).stat().st_mode)) for n in ("a.bin", "b.idx", "c.graia")))
"""


@posix_only
@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_mode_follows_umask_of_process(tmp_path: Path, umask: int, expected: int) -> None:
    root = Path(__file__).resolve().parent.parent
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    )
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path), oct(umask)[2:]],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [oct(expected)] * 3


# --------------------------------------------------------------------------- users


@posix_only
def test_write_idx_and_model_file_modes(tmp_path: Path) -> None:
    a = idx.write_idx(tmp_path / "a.idx", np.arange(4, dtype=np.uint8))
    m = gio.write_model_file(tmp_path / "m.graia", {}, {}, {"w": np.ones(3, np.int8)})
    assert _mode(a) == _mode(m) == files.FILE_MODE
    assert _names(tmp_path) == ["a.idx", "m.graia"]


def test_save_figure_failure_keeps_existing(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from graia import plot

    path = tmp_path / "fig.png"
    path.write_bytes(b"old png")

    class BadFigure:
        def savefig(self, f: Any, **kwargs: Any) -> None:
            f.write(b"\x89PNG partial")
            raise RuntimeError("render failed")

    with pytest.raises(RuntimeError, match="render failed"):
        plot.save_figure(BadFigure(), path)  # type: ignore[arg-type]
    assert path.read_bytes() == b"old png"
    assert _names(tmp_path) == ["fig.png"]

    fig = plot._new_figure(2, 2)
    plot.save_figure(fig, path)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    if os.name == "posix":
        assert _mode(path) == files.FILE_MODE
    assert _names(tmp_path) == ["fig.png"]


class _FakeResponse(io.BytesIO):
    """What urlopen returns, minus the network: no Content-Length."""

    length: int | None = None


def _serve(monkeypatch: pytest.MonkeyPatch, payload: bytes) -> None:
    def fake_urlopen(request: Any, timeout: float = 0) -> _FakeResponse:
        return _FakeResponse(payload)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)


def test_download_verified_then_renamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = b"dataset bytes" * 100
    res = download.Resource("d.bin", hashlib.sha256(payload).hexdigest(), len(payload))
    _serve(monkeypatch, payload)
    path = download.download_file(res, ["http://example.invalid"], tmp_path, progress=False)
    assert path == tmp_path / "d.bin"
    assert path.read_bytes() == payload
    if os.name == "posix":
        assert _mode(path) == files.FILE_MODE
    assert _names(tmp_path) == ["d.bin"]


def test_download_bad_checksum_keeps_existing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "d.bin").write_bytes(b"existing")
    payload = b"tampered"
    res = download.Resource("d.bin", "0" * 64, len(payload))
    _serve(monkeypatch, payload)
    with pytest.raises(DatasetError, match="SHA-256 mismatch"):
        download.download_file(res, ["http://example.invalid"], tmp_path, progress=False)
    assert (tmp_path / "d.bin").read_bytes() == b"existing"
    assert _names(tmp_path) == ["d.bin"]
