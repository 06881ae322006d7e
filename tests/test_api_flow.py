"""The seed notebook's flow through the public API, on every backend, and the example script.

Load digits -> build -> fit with validation_split -> learning curves -> receptive fields ->
one sample's activations -> evaluate -> save/load -> identical predictions.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

import graia
from graia import backend

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "notebook_flow.py"


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC, path


def test_notebook_flow(backend_name: str, tmp_path: Path) -> None:
    (x_train, y_train), (x_test, y_test) = graia.datasets.digits.load_data()
    assert x_train.dtype == np.uint8 and x_train.shape[1:] == (8, 8)
    with backend.use(backend_name):
        model = graia.Sequential(
            [graia.layers.Input((8, 8)), graia.layers.Dense(64), graia.layers.Dense(10)],
            seed=0,
        )
        model.compile()
        history = model.fit(
            x_train, y_train, epochs=4, batch_size=32, validation_split=0.1, verbose=0
        )
        assert model.history is history
        assert history.epoch == [0, 1, 2, 3]
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert len(history.history[key]) == 4, key

        fig = graia.plot.history(history, tmp_path / "curves.png")
        assert len(fig.axes) == 2
        assert_png(tmp_path / "curves.png")
        graia.plot.weights(model, layer=0, path=tmp_path / "weights.png")
        assert_png(tmp_path / "weights.png")

        sample = x_test[0]
        acts = model.activations(sample)
        assert [a.shape for a in acts] == [(64,), (64,), (10,)]
        assert all(a.dtype == np.uint8 for a in acts)
        np.testing.assert_array_equal(acts[0], sample.reshape(64))
        np.testing.assert_array_equal(acts[-1], model.predict(x_test[:1])[0])
        graia.plot.activations(model, sample, path=tmp_path / "activations.png")
        assert_png(tmp_path / "activations.png")

        loss, accuracy = model.evaluate(x_test, y_test)
        assert accuracy > 0.75 and 0.0 <= loss < 1.0
        assert model.evaluate(x_test, y_test, return_dict=True) == {
            "loss": loss,
            "accuracy": accuracy,
        }
        predictions = model.predict(x_test)
        assert predictions.dtype == np.uint8 and predictions.shape == (len(x_test), 10)
        # Floats in [0, 1] are quantised by floor(x * 255 + 0.5): x / 255 gives back x.
        np.testing.assert_array_equal(model.predict(x_test / 255.0), predictions)

        model.save(tmp_path / "digits.graia")
        restored = graia.load_model(tmp_path / "digits.graia")
        np.testing.assert_array_equal(restored.predict(x_test), predictions)
        assert restored.evaluate(x_test, y_test) == [loss, accuracy]


@pytest.mark.slow  # trains, plots, saves: the example end to end
def test_example_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), str(tmp_path), "2"])
    result = runpy.run_path(str(EXAMPLE), run_name="__main__")
    assert result["same"] is True
    assert len(result["history"].history["val_accuracy"]) == 2
    for name in ("learning_curve.png", "weights.png", "activations.png"):
        assert_png(tmp_path / name)
    assert graia.load_model(tmp_path / "digits.graia").evaluate(
        result["x_test"], result["y_test"]
    ) == [result["loss"], result["accuracy"]]
