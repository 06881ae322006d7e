"""The web demo's functions without a browser: preprocessing, analysis, training, the HTTP API."""

from __future__ import annotations

import base64
import itertools
import json
import math
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

import graia
from graia.demo import core, server
from graia.errors import GraiaValueError, ModelFileError


def _stroke(points: list[tuple[float, float]], side: int = 112, radius: float = 8.0) -> np.ndarray:
    """Ink (u8) of a pen stroke through ``points`` (fractions of the side), like the page sends."""
    ys, xs = np.mgrid[0:side, 0:side] + 0.5
    ink = np.zeros((side, side), bool)
    pts = [(fx * side, fy * side) for fx, fy in points]
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((xs - x0) * dx + (ys - y0) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
        ink |= np.hypot(xs - x0 - t * dx, ys - y0 - t * dy) <= radius
    return ink.astype(np.uint8) * 255


def _arc(cx: float, cy: float, r: float, a0: float, a1: float, n: int = 12):
    return [
        (cx + r * math.cos(math.radians(a)), cy + r * math.sin(math.radians(a)))
        for a in np.linspace(a0, a1, n)
    ]


THREE = _arc(0.5, 0.32, 0.17, -160, 90) + _arc(0.5, 0.66, 0.19, -90, 160)


@pytest.fixture(scope="module")
def digits_model() -> core.DemoModel:
    return core.DemoModel.load(core.PRETRAINED["digits"], "digits", "digits")


# ----------------------------------------------------------------------------- preprocessing
def test_preprocess_empty_drawing_is_blank():
    assert not core.preprocess(np.zeros((50, 70)), (28, 28)).any()


def test_preprocess_mnist_like_box_and_centre_of_mass():
    ink = np.zeros((100, 100))
    ink[10:30, 60:65] = 1.0  # a short bar in a corner
    x = core.preprocess(ink, (28, 28))
    assert x.dtype == np.uint8 and x.shape == (28, 28) and x.max() == 255
    rows = np.flatnonzero(x.any(axis=1))
    assert rows[-1] - rows[0] + 1 <= 21  # the larger side fits the 20-pixel box
    ys, xs = np.indices(x.shape) + 0.5
    mass = x.astype(float).sum()
    assert abs((ys * x).sum() / mass - 14) < 1 and abs((xs * x).sum() / mass - 14) < 1


def test_preprocess_8x8_fills_the_height_and_is_centred():
    x = core.preprocess(_stroke([(0.2, 0.3), (0.2, 0.6)]), (8, 8))
    assert x[0].any() and x[-1].any()  # top and bottom rows inked
    cols = np.flatnonzero(x.any(axis=0))
    assert cols[0] + cols[-1] in (6, 7, 8)  # centred horizontally


def test_preprocess_rejects_bad_input():
    with pytest.raises(GraiaValueError, match="2-D"):
        core.preprocess(np.zeros(10), (8, 8))
    with pytest.raises(GraiaValueError, match="NaN"):
        core.preprocess(np.full((4, 4), np.nan), (8, 8))


# ------------------------------------------------------------------------------- prediction
def test_a_drawn_three_is_a_three(digits_model):
    result = digits_model.analyse(core.preprocess(_stroke(THREE), digits_model.shape))
    assert result["chosen"] == 3
    assert [layer["name"] for layer in result["layers"]] == ["input", "hidden 1", "output"]
    assert result["layers"][0]["values"] == core.preprocess(_stroke(THREE), (8, 8)).ravel().tolist()
    hidden = result["layers"][1]
    assert hidden["height"] * hidden["width"] >= digits_model.model.sizes[1]
    assert 1 <= len(result["fields"]) <= core.TOP_UNITS
    assert all(len(f["values"]) == 64 for f in result["fields"])
    assert max(abs(v) for f in result["fields"] for v in f["values"]) <= result["field_max"]


def test_analyse_matches_predict(digits_model):
    (_, _), (x_test, _) = graia.datasets.digits.load_data()
    result = digits_model.analyse(x_test[0])
    assert result["outputs"] == digits_model.model.predict(x_test[:1])[0].tolist()


def test_model_checks(tmp_path):
    bad = tmp_path / "bad.graia"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="not a model file"):
        core.DemoModel.load(bad, "bad.graia")
    odd = graia.Sequential([graia.layers.Input((3, 5, 2)), graia.layers.Dense(10)], seed=0)
    odd.compile("dfa")
    odd.save(tmp_path / "odd.graia")
    with pytest.raises(ModelFileError, match="input shape"):
        core.DemoModel.load(tmp_path / "odd.graia", "odd.graia")


# --------------------------------------------------------------------------------- training
@pytest.mark.slow
def test_training_job_reports_every_epoch():
    job = core.TrainingJob(dataset="digits", rule="dfa", width=16, epochs=2)
    job.run()
    assert job.phase == "done", job.error
    status = job.status()
    assert status["epoch"] == 2 and len(status["history"]["val_accuracy"]) == 2
    assert status["backend"] == graia.backend.name()
    assert job.result is not None and job.result.model.sizes == [64, 16, 10]


def test_progress_callback_stops_a_cancelled_run():
    job = core.TrainingJob(dataset="digits", rule="local_heads", width=8, epochs=5, backend="numba")
    job.cancelled.set()
    job.run()
    assert job.phase == "cancelled" and job.epoch == 1
    assert job.status()["backend"] == "numba"


@pytest.mark.parametrize(
    "kwargs",
    [{"dataset": "cifar"}, {"rule": "backprop"}, {"width": 0}, {"epochs": True}, {"width": 10**6}],
)
def test_training_job_rejects_bad_settings(kwargs):
    settings = {"dataset": "digits", "rule": "dfa", "width": 8, "epochs": 1, **kwargs}
    with pytest.raises(GraiaValueError):
        core.TrainingJob(**settings)


# ---------------------------------------------------------------------------------- HTTP API
@pytest.fixture(scope="module")
def url():
    srv = server.make_server("127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _call(url: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url + path, data=body, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_api_predicts_a_drawing(url):
    ink = _stroke(THREE)
    body = {"width": 112, "height": 112, "ink": base64.b64encode(ink.tobytes()).decode()}
    status, result = _call(url, "/api/predict", json.dumps(body).encode())
    assert status == 200 and result["chosen"] == 3


def test_api_refuses_bad_requests_and_keeps_running(url):
    status, result = _call(url, "/api/predict", b'{"width": 9, "height": 9, "ink": "AAAA"}')
    assert status == 400 and "9x9" in result["error"]
    status, result = _call(url, "/api/model/upload?name=evil.graia", b"PK\x03\x04garbage")
    assert status == 422 and "evil.graia" in result["error"]
    status, result = _call(url, "/api/sample?dataset=digits&index=999999")
    assert status == 400
    status, result = _call(url, "/api/state")
    assert status == 200 and result["model"]["label"] == "pretrained: digits"


def test_api_download_roundtrip(url, tmp_path):
    with urllib.request.urlopen(url + "/api/model/download", timeout=30) as response:
        data = response.read()
    status, result = _call(url, "/api/model/upload?name=again.graia", data)
    assert status == 200 and result["model"]["label"] == "again.graia"


def test_cli_demo_refuses_a_bad_model(tmp_path, capsys):
    from graia import cli

    bad = tmp_path / "bad.graia"
    bad.write_bytes(b"\x00" * 10)
    assert cli.main(["demo", "--model", str(bad), "--port", "0"]) == 2
    assert "not a model file" in capsys.readouterr().err


def test_cli_demo_options():
    from graia import cli

    args = cli._parser().parse_args(["demo"])
    assert (args.host, args.port, args.model, args.share) == ("127.0.0.1", 7860, None, False)
    with pytest.raises(SystemExit):
        cli._parser().parse_args(["demo", "--port", "70000"])


def test_api_trained_models_join_the_picker_beside_the_pretrained_ones(url):
    """Each run adds a model to the picker; the pretrained ones stay selectable."""
    labels = _train_twice(url)
    status, state = _call(url, "/api/state")
    assert state["trained"] == labels and labels[0] != labels[1]
    assert state["pretrained"] == ["digits", "fashion-mnist"]
    for name, label in (("digits", "pretrained: digits"), (labels[0], labels[0])):
        status, state = _call(url, "/api/model/select", json.dumps({"name": name}).encode())
        assert status == 200 and state["model"]["label"] == label


def test_api_the_picker_keeps_the_latest_trained_models(url, monkeypatch):
    """Past ``MAX_TRAINED`` runs the oldest trained model leaves the picker (bounded memory)."""
    monkeypatch.setattr(core, "MAX_TRAINED", 1)
    labels = _train_twice(url)
    status, state = _call(url, "/api/state")
    assert state["trained"] == labels[1:]
    status, _ = _call(url, "/api/model/select", json.dumps({"name": labels[0]}).encode())
    assert status == 400


def _train_twice(url: str) -> list[str]:
    """Two tiny training runs through the API; the labels their models get."""
    labels = []
    for _ in range(2):
        body = {"dataset": "digits", "rule": "dfa", "width": 8, "epochs": 1}
        status, _ = _call(url, "/api/train", json.dumps(body).encode())
        assert status == 200
        for _ in range(600):
            status, result = _call(url, "/api/train/status")
            if not result["running"]:
                break
            threading.Event().wait(0.1)
        assert result["phase"] == "done", result
        labels.append(result["model"]["label"])
    return labels
