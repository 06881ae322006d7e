"""The ``graia`` command, in-process through ``graia.cli.main`` and once as ``python -m graia``."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import graia
from graia import backend, cli
from graia.cli import main

TRAIN_KEYS = {
    "dataset",
    "backend",
    "rule",
    "epochs",
    "seconds",
    "train_accuracy",
    "test_accuracy",
    "model_path",
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("graia: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, err)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One ``graia train`` on digits (2 epochs), shared by the evaluate/predict tests."""
    out_dir = tmp_path_factory.mktemp("cli") / "run"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(
            [
                "train",
                "--dataset",
                "digits",
                "--epochs",
                "2",
                "--json",
                "--quiet",
                "--output",
                str(out_dir),
            ]
        )
    assert code == 0, stderr.getvalue()
    result = json.loads(stdout.getvalue().strip().splitlines()[-1])
    result["stdout"] = stdout.getvalue()
    result["stderr"] = stderr.getvalue()
    return result


@pytest.fixture(scope="module")
def digits_test() -> tuple[np.ndarray, np.ndarray]:
    return graia.datasets.digits.load_data()[1]


# --------------------------------------------------------------------------- info


def test_info_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["info"], capsys)
    assert code == 0, err
    assert f"graia {graia.__version__}" in out
    active = backend.name()
    assert any(line.lstrip().startswith(f"* {active}") for line in out.splitlines()), out
    code, out, err = run(["info", "--json"], capsys)
    assert code == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["graia"] == graia.__version__
    assert report["active_backend"] == active
    assert set(report["backends"]) == set(backend.NAMES)
    for name, (ok, reason) in backend.available().items():
        assert report["backends"][name]["available"] == ok
        assert report["backends"][name]["reason"] == reason


def test_info_with_an_unavailable_backend(capsys: pytest.CaptureFixture[str]) -> None:
    missing = [n for n, (ok, _) in backend.available().items() if not ok]
    if not missing:
        pytest.skip("every backend runs here")
    code, _, err = run(["--backend", missing[0], "info"], capsys)
    assert_one_error_line(code, err, missing[0], "cannot run here")


@pytest.mark.parametrize(
    "details,expected",
    [
        (  # an OpenCL device (graia.backends.futhark.opencl)
            {"platform": "NVIDIA CUDA", "device": "NVIDIA H100", "index": 0},
            "NVIDIA H100 (NVIDIA CUDA; OpenCL device 0)",
        ),
        (  # a CUDA device (graia.backends.futhark.cuda), which has no platform
            {"index": 1, "device": "NVIDIA H100", "compute_capability": "9.0"},
            "NVIDIA H100 (CUDA device 1)",
        ),
        ({"threads": 2}, "2 CPU threads"),
        (None, "CPU"),
    ],
)
def test_device_description_of_every_kind_of_device(
    monkeypatch: pytest.MonkeyPatch, details: dict[str, Any] | None, expected: str
) -> None:
    """What ``graia train`` reports it ran on (once a KeyError on the cuda backend)."""
    monkeypatch.setattr(cli.backend, "details", lambda name: details)
    assert cli.device_description("any") == expected


# --------------------------------------------------------------------------- train


@pytest.mark.slow
def test_train_json_model_and_curve(trained_run: dict[str, Any]) -> None:
    assert TRAIN_KEYS <= set(trained_run)
    assert trained_run["dataset"] == "digits"
    assert trained_run["backend"] == backend.name()
    assert trained_run["rule"] == "dfa"
    assert trained_run["epochs"] == 2
    assert trained_run["seconds"] >= 0
    assert 0.5 < trained_run["test_accuracy"] <= 1.0
    assert 0.5 < trained_run["train_accuracy"] <= 1.0
    model_path = Path(trained_run["model_path"])
    assert model_path.is_file()
    curve = model_path.parent / "learning_curve.png"
    assert curve.read_bytes()[:8] == PNG_MAGIC
    assert trained_run["stderr"] == ""  # --quiet: no progress bar
    model = graia.load_model(model_path)
    assert model.seed == 0 and model.rule.name == "dfa"


@pytest.mark.slow
def test_train_on_every_backend_with_progress_bar(
    backend_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        [
            "--backend",
            backend_name,
            "train",
            "--dataset",
            "digits",
            "--epochs",
            "1",
            "--json",
            "--seed",
            "3",
            "--batch-size",
            "128",
            "--output",
            str(tmp_path),
        ],
        capsys,
    )
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])  # the bar goes to stderr
    assert result["backend"] == backend_name and result["seed"] == 3
    assert result["batch_size"] == 128
    assert "epoch 1/1" in err.lower()
    assert (tmp_path / "model.graia").is_file() and (tmp_path / "learning_curve.png").is_file()


# --------------------------------------------------------------------------- evaluate, predict


@pytest.mark.slow
def test_evaluate_json_matches_train(
    trained_run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        ["evaluate", trained_run["model_path"], "--dataset", "digits", "--json"], capsys
    )
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["dataset"] == "digits"
    assert result["test_accuracy"] == trained_run["test_accuracy"]
    assert result["test_loss"] == trained_run["test_loss"]
    code, out, err = run(["evaluate", trained_run["model_path"], "--dataset", "digits"], capsys)
    assert code == 0 and out.startswith("test accuracy: ")


@pytest.mark.slow
def test_predict_prints_class_ids(
    trained_run: dict[str, Any],
    digits_test: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    x = digits_test[0][:7]
    expected = graia.load_model(trained_run["model_path"]).predict_classes(x).tolist()
    np.save(tmp_path / "x.npy", x)
    code, out, err = run(["predict", trained_run["model_path"], str(tmp_path / "x.npy")], capsys)
    assert code == 0, err
    assert [int(line) for line in out.split()] == expected
    np.save(tmp_path / "flat.npy", x.reshape(7, 64) / 255.0)  # floats in [0, 1] are quantised
    code, out, err = run(
        ["predict", trained_run["model_path"], str(tmp_path / "flat.npy"), "--json"], capsys
    )
    assert code == 0, err
    assert json.loads(out) == expected


@pytest.mark.slow
def test_flip_recipe_scores_with_flips_averaged(
    tmp_path: Path,
    digits_test: tuple[np.ndarray, np.ndarray],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A recipe that trains on mirror images also reports its test accuracy with flips averaged
    (docs/arithmetic.md §4.2), which ``evaluate`` and ``predict`` give with ``--average-flips``."""
    from dataclasses import replace

    from graia.recipes import CONV_RECIPES

    flipped = replace(CONV_RECIPES["digits"], flip=True, conv=(), hidden=(32,), epochs=1)
    monkeypatch.setitem(CONV_RECIPES, "digits", flipped)
    argv = ["train", "--dataset", "digits", "--architecture", "conv", "--json", "--quiet"]
    code, out, err = run(argv + ["--output", str(tmp_path / "run")], capsys)
    assert code == 0, err
    trained = json.loads(out.strip().splitlines()[-1])
    assert "with flips averaged" in out
    path = trained["model_path"]
    code, out, err = run(
        ["evaluate", path, "--dataset", "digits", "--average-flips", "--json"], capsys
    )
    assert code == 0, err
    assert json.loads(out)["test_accuracy"] == trained["test_accuracy_average_flips"]
    x = digits_test[0][:9]
    np.save(tmp_path / "x.npy", x)
    code, out, err = run(["predict", path, str(tmp_path / "x.npy"), "--average-flips"], capsys)
    assert code == 0, err
    expected = graia.load_model(path).predict_classes(x, average_flips=True).tolist()
    assert [int(line) for line in out.split()] == expected


@pytest.mark.slow
def test_average_flips_without_a_flip_layer(
    trained_run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = trained_run["model_path"]
    code, _, err = run(["evaluate", path, "--dataset", "digits", "--average-flips"], capsys)
    assert_one_error_line(code, err, "average_flips needs a model with a RandomFlip layer")
    code, _, err = run(["predict", path, str(tmp_path / "absent.npy"), "--average-flips"], capsys)
    assert_one_error_line(code, err, "average_flips needs a model with a RandomFlip layer")


# --------------------------------------------------------------------------- user errors


def test_missing_model_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    absent = str(tmp_path / "absent.graia")
    code, _, err = run(["evaluate", absent, "--dataset", "digits"], capsys)
    assert_one_error_line(code, err, absent, "no such model file")
    np.save(tmp_path / "x.npy", np.zeros((1, 64), np.uint8))
    code, _, err = run(["predict", absent, str(tmp_path / "x.npy")], capsys)
    assert_one_error_line(code, err, "no such model file")


def test_corrupt_model_file(
    trained_run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "cut.graia"
    bad.write_bytes(Path(trained_run["model_path"]).read_bytes()[:500])
    code, _, err = run(["evaluate", str(bad), "--dataset", "digits"], capsys)
    assert_one_error_line(code, err, str(bad))


class _Payload:
    """Unpickling this creates a directory: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (str(self.marker),)


def test_bad_npy_files(
    trained_run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = trained_run["model_path"]
    (tmp_path / "text.npy").write_text("0 1 2\n")
    np.save(tmp_path / "shape.npy", np.zeros((3, 5), np.uint8))
    np.save(tmp_path / "range.npy", np.full((2, 64), 300))
    np.savez(tmp_path / "archive.npz", x=np.zeros((1, 64), np.uint8))
    marker = tmp_path / "pwned"
    np.save(tmp_path / "object.npy", np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    np.save(tmp_path / "good.npy", np.zeros((2, 64), np.uint8))
    (tmp_path / "truncated.npy").write_bytes((tmp_path / "good.npy").read_bytes()[:-4])
    # A header claiming 5.8 TiB of samples: refused from the header, before any allocation.
    with open(tmp_path / "huge.npy", "wb") as f:
        header = {"descr": "<f8", "fortran_order": False, "shape": (10**11, 64)}
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 512)
    cases = {
        "text.npy": "not a .npy file",
        "shape.npy": "expected (n, 8, 8) or (n, 64)",
        "range.npy": "0..255",
        "archive.npz": "not a .npy file",
        "object.npy": "only numeric and bool arrays",
        "truncated.npy": "but the file holds 124 bytes of data",
        "huge.npy": "(51200000000000 bytes), but the file holds 512 bytes",
        "absent.npy": "no such .npy file",
    }
    for name, fragment in cases.items():
        code, out, err = run(["predict", model, str(tmp_path / name)], capsys)
        assert_one_error_line(code, err, name, fragment)
        assert out == ""
    assert not marker.exists()


def test_empty_data_dir_is_an_error_not_a_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from graia.datasets import download

    def no_download(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("an explicit --data-dir must not trigger a download")

    monkeypatch.setattr(download, "download_file", no_download)
    empty = tmp_path / "empty"
    empty.mkdir()
    out_dir = tmp_path / "out"
    code, _, err = run(
        ["train", "--dataset", "fashion-mnist", "--data-dir", str(empty), "--output", str(out_dir)],
        capsys,
    )
    assert_one_error_line(code, err, "fashion-mnist", str(empty), "train-images-idx3-ubyte")
    assert not out_dir.exists()
    code, _, err = run(
        ["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "nowhere")], capsys
    )
    assert_one_error_line(code, err, "does not exist")


def test_unknown_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "out"
    code, _, err = run(
        ["train", "--dataset", "digits", "--rule", "backprop", "--output", str(out_dir)], capsys
    )
    assert_one_error_line(code, err, "unknown rule 'backprop'", "dfa")
    assert not out_dir.exists()


def test_output_under_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("")
    code, _, err = run(
        [
            "train",
            "--dataset",
            "digits",
            "--epochs",
            "1",
            "--quiet",
            "--output",
            str(tmp_path / "file" / "run"),
        ],
        capsys,
    )
    assert_one_error_line(code, err, "is not a directory")


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--dataset", "cifar"],
        ["train", "--dataset", "digits", "--epochs", "0"],
        ["train", "--dataset", "digits", "--seed", "x"],
        ["--backend", "vulkan", "info"],
        ["predict", "only-a-model"],
        [],
    ],
)
def test_bad_options_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


# --------------------------------------------------------------------------- as a process


def _env(**extra: str) -> dict[str, str]:
    """The environment for ``python -m graia``, importing the same graia as this process."""
    env = dict(os.environ)
    root = str(Path(graia.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


@pytest.mark.slow
def test_python_m_graia_train_evaluate(tmp_path: Path) -> None:
    out_dir = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "graia",
            "train",
            "--dataset",
            "digits",
            "--epochs",
            "2",
            "--json",
            "--output",
            str(out_dir),
            "--quiet",
        ],
        check=False,
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert TRAIN_KEYS <= set(result)
    assert Path(result["model_path"]) == out_dir / "model.graia"
    assert (out_dir / "model.graia").is_file()
    assert (out_dir / "learning_curve.png").read_bytes()[:8] == PNG_MAGIC
    # A model trained in another process loads here and gives the accuracy it reported.
    (_, _), (x_test, y_test) = graia.datasets.digits.load_data()
    with backend.use(result["backend"]):
        assert (
            graia.load_model(out_dir / "model.graia").evaluate(x_test, y_test)[1]
            == (result["test_accuracy"])
        )


@pytest.mark.slow
def test_python_m_graia_unknown_backend_env(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "graia", "info"],
        check=False,
        cwd=tmp_path,
        env=_env(GRAIA_BACKEND="nonsense"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("graia: error: ") and "nonsense" in lines[0]
    for name in backend.NAMES:
        assert name in lines[0]
    assert "Traceback" not in proc.stderr
