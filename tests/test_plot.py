"""Plots, with fake models exposing get_weights / input_shape / activations."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from graia import plot
from graia.callbacks import History
from graia.errors import GraiaValueError

PNG = b"\x89PNG\r\n\x1a\n"


class FakeModel:
    """A 64-16-10 network on 8x8 images; its hidden layer has a bias (a last row of 100s, which
    a receptive field leaves out), its output layer none."""

    input_shape = (None, 8, 8)
    weighted_layers = (SimpleNamespace(use_bias=True), SimpleNamespace(use_bias=False))

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.w = [
            rng.integers(-8, 9, size=(64, 16)).astype(np.int32),
            rng.integers(-8, 9, size=(16, 10)).astype(np.int32),
        ]

    def get_weights(self) -> list[np.ndarray]:
        return [np.vstack([self.w[0], np.full((1, 16), 100, np.int32)]), self.w[1]]

    def activations(self, x: np.ndarray) -> list[np.ndarray]:
        assert np.asarray(x).size == 64
        out = np.zeros((1, 10), np.uint8)
        out[0, 3] = 200
        out[0, 7] = 90
        return [np.arange(16, dtype=np.uint8) * 16, out]


def _history() -> History:
    h = History()
    for epoch, (loss, acc, vl, va) in enumerate([(2.0, 0.3, 2.1, 0.25), (1.0, 0.6, 1.2, 0.55)]):
        h.on_epoch_end(epoch, {"loss": loss, "accuracy": acc, "val_loss": vl, "val_accuracy": va})
    return h


def test_plot_does_not_touch_pyplot_or_backend() -> None:
    import matplotlib

    before = matplotlib.get_backend() if "matplotlib.pyplot" in sys.modules else None
    plot.history(_history())
    plot.weights(FakeModel())
    if before is None:
        assert "matplotlib.pyplot" not in sys.modules
    else:
        assert matplotlib.get_backend() == before


def test_history_from_object_and_dict(tmp_path: Path) -> None:
    fig = plot.history(_history(), path=tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG
    acc_ax, loss_ax = fig.axes[:2]
    assert acc_ax.get_title() == "accuracy" and loss_ax.get_title() == "loss"
    assert len(acc_ax.lines) == 2 and len(loss_ax.lines) == 2
    np.testing.assert_array_equal(acc_ax.lines[0].get_xdata(), [1, 2])
    np.testing.assert_allclose(loss_ax.lines[1].get_ydata(), [2.1, 1.2])
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]  # no temp file left

    fig = plot.history({"loss": [3, 2, 1]})  # only training loss, plain dict
    assert len(fig.axes[0].lines) == 0 and len(fig.axes[1].lines) == 1
    assert "no accuracy" in fig.axes[0].texts[0].get_text()


def test_history_resumed_epochs_on_x_axis() -> None:
    h = History()
    h.on_epoch_end(5, {"loss": 1.0})
    h.on_epoch_end(6, {"loss": 0.5})
    fig = plot.history(h)
    np.testing.assert_array_equal(fig.axes[1].lines[0].get_xdata(), [6, 7])


@pytest.mark.parametrize("bad", [42, {"foo": [1]}, {"loss": ["a", "b"]}, {}])
def test_history_bad_input(bad: object) -> None:
    with pytest.raises(GraiaValueError, match="h:"):
        plot.history(bad)


def test_weights_model_grid(tmp_path: Path) -> None:
    model = FakeModel()
    fig = plot.weights(model, layer=0, path=tmp_path / "w.png")
    assert (tmp_path / "w.png").read_bytes()[:8] == PNG
    image = fig.axes[0].images[0]
    lo, hi = image.get_clim()
    assert lo == -hi == -8  # symmetric around 0
    mosaic = image.get_array()
    # 16 units of 8x8 on a 4x4 grid with 1-pixel gaps.
    assert mosaic.shape == (4 * 9 - 1, 4 * 9 - 1)
    np.testing.assert_array_equal(mosaic[:8, :8], model.w[0][:, 0].reshape(8, 8))
    np.testing.assert_array_equal(mosaic[:8, 9:17], model.w[0][:, 1].reshape(8, 8))
    assert "RdBu" in image.get_cmap().name


def test_weights_array_and_shapes() -> None:
    w = np.arange(-50, 50, dtype=np.int32).reshape(25, 4)
    fig = plot.weights(w)  # 25 = 5x5 square
    assert fig.axes[0].images[0].get_array().shape == (11, 11)  # 2x2 grid of 5x5
    fig = plot.weights(w, image_shape=(1, 5, 5, 1))
    assert "5x5" in fig.axes[0].get_title()
    # Hidden layer of a model: 16 inputs -> 4x4 squares; no input_shape used for layer 1.
    fig = plot.weights(FakeModel(), layer=1)
    assert "4x4" in fig.axes[0].get_title()
    # Not an image: one heat map, units x inputs.
    fig = plot.weights(np.ones((10, 3), np.int8))
    assert fig.axes[0].images[0].get_array().shape == (3, 10)
    fig = plot.weights([w, np.zeros((4, 2))], layer=-1)
    assert fig.axes[0].images[0].get_clim() == (-1.0, 1.0)  # all-zero weights


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((np.zeros(5),), {}, "2-D"),
        ((np.zeros((4, 3), dtype=object),), {}, "numeric"),
        ((FakeModel(),), {"layer": 2}, "layer"),
        ((np.zeros((25, 2)),), {"image_shape": (4, 4)}, "image_shape"),
    ],
)
def test_weights_bad_input(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(GraiaValueError, match=match):
        plot.weights(*args, **kwargs)


def test_activations(tmp_path: Path) -> None:
    x = np.zeros((8, 8), np.uint8)
    fig = plot.activations(FakeModel(), x, path=tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes()[:8] == PNG
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "input"
    assert any("16 units" in t for t in titles)
    assert titles[-1].startswith("output layer: class 3")
    bars = fig.axes[-1].patches
    assert len(bars) == 10 and bars[3].get_height() == 200
    fig = plot.activations(FakeModel(), x.reshape(1, 64), class_names=list("abcdefghij"))
    assert fig.axes[-1].get_title() == "output layer: class 3 (d)"


def test_activations_with_input_listed_first() -> None:
    class WithInput(FakeModel):
        def activations(self, x: np.ndarray) -> list[np.ndarray]:
            x = np.asarray(x)
            q = x if x.dtype == np.uint8 else np.round(x * 255).astype(np.uint8)
            q = q.reshape(-1)
            return [q, *super().activations(x)]

    fig = plot.activations(WithInput(), np.full((8, 8), 0.5))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "input" and len(fig.axes) == 3  # input, one hidden layer, output
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), np.full((8, 8), 128))
    fig = plot.activations(WithInput(), np.full((8, 8), 7, np.uint8))
    assert len(fig.axes) == 3


def test_activations_bad_model() -> None:
    with pytest.raises(GraiaValueError, match="activations"):
        plot.activations(object(), np.zeros(4))
