"""Packaging: the version, and how CMakeLists.txt chooses the C it compiles when futhark is absent
(the release sdist's generated/ directory, checked against the hashes of the Futhark sources).
The whole release path (sdist, wheel, fresh install, digest test) is scripts/check-sdist."""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import subprocess
import sys
import types
from importlib import metadata
from pathlib import Path

import pytest

from graia import cli
from graia.backends.futhark import ffi
from graia.backends.futhark.multicore import Multicore
from graia.backends.futhark.opencl import OpenCL

ROOT = Path(__file__).resolve().parent.parent


def test_version_comes_from_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"graia {metadata.version('graia')}"


def test_reason_recorded_by_the_build_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    notes = types.ModuleType("graia.backends._build_notes")
    notes.NOT_BUILT = {"opencl": "graia was built without it: no CL/cl.h"}
    monkeypatch.setitem(sys.modules, "graia.backends._build_notes", notes)
    assert ffi.not_built_reason(OpenCL()) == "graia was built without it: no CL/cl.h"
    assert ffi.not_built_reason(Multicore()) == Multicore.not_built


# --------------------------------------------------------------------------- CMake configure


def _source_tree(tmp_path: Path) -> Path:
    """What the sdist holds that CMake reads: CMakeLists.txt, futhark/, the CFFI script."""
    tree = tmp_path / "src"
    shutil.copytree(ROOT / "futhark", tree / "futhark")
    (tree / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "futhark_cffi.py", tree / "scripts")
    shutil.copy(ROOT / "CMakeLists.txt", tree)
    return tree


def _write_generated(tree: Path) -> None:
    """generated/ as the sdist build leaves it, with `sha256sum` lines of every input."""
    futhark_files = sorted(
        p.relative_to(tree).as_posix()
        for p in (tree / "futhark").rglob("*.fut")
        if not p.relative_to(tree).as_posix().startswith("futhark/tests/")
    )
    lines = [
        f"{hashlib.sha256((tree / f).read_bytes()).hexdigest()}  {f}\n"
        for f in futhark_files + ["scripts/futhark_cffi.py"]
    ]
    generated = tree / "generated"
    generated.mkdir()
    (generated / "futhark-sources.sha256").write_text("".join(lines))
    # configure only: the files must exist, not compile
    for backend in ("multicore", "opencl", "cuda"):
        (generated / f"_futhark_{backend}.c").write_text("")


def _path_without_futhark(tmp_path: Path) -> str:
    """PATH with every directory that holds futhark replaced by links to its other files."""
    dirs = []
    for i, entry in enumerate(os.environ.get("PATH", "").split(os.pathsep)):
        directory = Path(entry)
        if (directory / "futhark").exists():
            shadow = tmp_path / f"path{i}"
            shadow.mkdir()
            for item in directory.iterdir():
                if item.name != "futhark":
                    (shadow / item.name).symlink_to(item)
            directory = shadow
        dirs.append(str(directory))
    return os.pathsep.join(dirs)


def _configure(
    tree: Path, tmp_path: Path, *options: str, **env: str
) -> subprocess.CompletedProcess[str]:
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed")
    return subprocess.run(
        [
            cmake,
            "-S",
            str(tree),
            "-B",
            str(tmp_path / "build"),
            "-DSKBUILD_STATE=wheel",
            f"-DPython_EXECUTABLE={sys.executable}",
            *options,
        ],
        env=dict(os.environ, PATH=_path_without_futhark(tmp_path), **env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_matching_generated_c_is_used_without_futhark(tmp_path: Path) -> None:
    tree = _source_tree(tmp_path)
    _write_generated(tree)
    result = _configure(tree, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "compiling the C shipped in generated/" in result.stdout


@pytest.mark.slow
def test_stale_generated_c_fails_naming_the_changed_sources(tmp_path: Path) -> None:
    tree = _source_tree(tmp_path)
    _write_generated(tree)
    with open(tree / "futhark" / "dense.fut", "a") as f:
        f.write("-- changed after the C was generated\n")
    (tree / "futhark" / "layers").mkdir()
    (tree / "futhark" / "layers" / "new.fut").write_text("def f (x: i32) = x\n")
    result = _configure(tree, tmp_path)
    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert "made from other Futhark sources" in message, result.stderr
    assert "futhark/dense.fut" in message and "futhark/layers/new.fut" in message


@pytest.mark.slow
def test_no_futhark_and_no_generated_c_builds_numba_only_and_says_why(tmp_path: Path) -> None:
    tree = _source_tree(tmp_path)
    result = _configure(tree, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stderr.splitlines() if "graia: warning" in line]
    assert len(warnings) == 3, result.stderr  # one line per backend left out
    notes = ast.parse((tmp_path / "build" / "_build_notes.py").read_text())
    not_built = next(
        ast.literal_eval(node.value)
        for node in notes.body
        if isinstance(node, ast.Assign) and node.targets[0].id == "NOT_BUILT"
    )
    assert set(not_built) == {"multicore", "opencl", "cuda"}
    assert all("futhark compiler is not on PATH" in reason for reason in not_built.values())


def _not_built(tmp_path: Path) -> dict[str, str]:
    notes = ast.parse((tmp_path / "build" / "_build_notes.py").read_text())
    return next(
        ast.literal_eval(node.value)
        for node in notes.body
        if isinstance(node, ast.Assign) and node.targets[0].id == "NOT_BUILT"
    )


def test_futhark_off_needs_no_c_compiler_and_says_how_to_build(tmp_path: Path) -> None:
    # scripts/demo's quick setup: a fresh machine may have no C compiler yet.
    tree = _source_tree(tmp_path)
    result = _configure(tree, tmp_path, "-DGRAIA_FUTHARK=OFF", CC=str(tmp_path / "no-cc"))
    assert result.returncode == 0, result.stdout + result.stderr
    not_built = _not_built(tmp_path)
    assert set(not_built) == {"multicore", "opencl", "cuda"}
    assert all("bash scripts/setup" in reason for reason in not_built.values())
