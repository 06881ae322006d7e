"""Callbacks, driven by a tiny fake model and a fake fit loop (the real model comes later)."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from graia.callbacks import (
    Callback,
    CallbackList,
    CSVLogger,
    EarlyStopping,
    History,
    LambdaCallback,
    ModelCheckpoint,
    TerminateOnNaN,
)
from graia.errors import GraiaError, GraiaValueError


class FakeModel:
    """Weights are one int array holding the epoch number; save() records paths."""

    def __init__(self) -> None:
        self.w = np.zeros(3, dtype=np.int32)
        self.stop_training = False
        self.saved: list[str] = []
        self.weights_saved: list[str] = []
        self.set_calls = 0

    def get_weights(self) -> list[np.ndarray]:
        return [self.w]  # aliasing on purpose: callbacks must copy

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        self.set_calls += 1
        self.w[...] = weights[0]

    def save(self, path: str) -> None:
        Path(path).write_text("model")
        self.saved.append(path)

    def save_weights(self, path: str) -> None:
        Path(path).write_text("weights")
        self.weights_saved.append(path)


def fit(
    model: FakeModel,
    metrics: dict[str, Sequence[float]],
    callbacks: Sequence[Callback],
    initial_epoch: int = 0,
) -> tuple[History, list[int]]:
    """A fit loop shaped like the model's: returns the History and the epochs run."""
    epochs = len(next(iter(metrics.values())))
    cbs = CallbackList(callbacks, add_history=True, model=model, epochs=epochs, verbose=0)
    model.stop_training = False
    ran: list[int] = []
    cbs.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        cbs.on_epoch_begin(epoch)
        model.w[...] = epoch  # "training"
        cbs.on_batch_begin(0)
        cbs.on_batch_end(0, {"loss": metrics.get("loss", [0.0] * epochs)[epoch]})
        logs = {k: v[epoch] for k, v in metrics.items()}
        cbs.on_epoch_end(epoch, logs)
        ran.append(epoch)
        if model.stop_training:
            break
    cbs.on_train_end()
    assert cbs.history is not None
    return cbs.history, ran


def test_history_records_and_hooks_order() -> None:
    calls: list[str] = []

    class Spy(Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            calls.append("train_begin")

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            calls.append(f"epoch_begin{epoch}")

        def on_batch_end(self, batch: int, logs: Any = None) -> None:
            calls.append(f"batch_end{batch}")

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            calls.append(f"epoch_end{epoch}")

        def on_train_end(self, logs: Any = None) -> None:
            calls.append("train_end")

    model = FakeModel()
    spy = Spy()
    h, _ = fit(model, {"loss": [3.0, 2.0], "accuracy": [np.float64(0.5), 0.7]}, [spy])
    assert calls == [
        "train_begin",
        "epoch_begin0",
        "batch_end0",
        "epoch_end0",
        "epoch_begin1",
        "batch_end0",
        "epoch_end1",
        "train_end",
    ]
    assert h.history == {"loss": [3.0, 2.0], "accuracy": [0.5, 0.7]}
    assert type(h.history["accuracy"][0]) is float
    assert h.epoch == [0, 1]
    assert h.params == {"epochs": 2, "verbose": 0}
    assert h.model is model and model.history is h
    assert spy.model is model and spy.params["epochs"] == 2
    assert "loss" in repr(h)


def test_callbacklist_rejects_non_callbacks_and_keeps_given_history() -> None:
    with pytest.raises(GraiaValueError, match="callbacks"):
        CallbackList([object()])  # type: ignore[list-item]
    h = History()
    cbs = CallbackList([h], add_history=True)
    assert len(cbs) == 1 and cbs.history is h and list(cbs) == [h]


def test_train_batch_aliases() -> None:
    seen: list[int] = []

    class A(Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            seen.append(batch)

    cbs = CallbackList([A()])
    cbs.on_batch_end(4)
    cbs.on_train_batch_end(5)
    assert seen == [4, 5]


# --------------------------------------------------------------------------- EarlyStopping


def test_early_stopping_patience_min() -> None:
    model = FakeModel()
    es = EarlyStopping(monitor="val_loss", patience=2)
    _, ran = fit(model, {"val_loss": [5, 4, 4.5, 4.2, 1, 0]}, [es])
    assert ran == [0, 1, 2, 3]
    assert es.stopped_epoch == 3 and es.best == 4 and es.best_epoch == 1
    assert model.stop_training is True
    assert model.w[0] == 3  # not restored by default


def test_early_stopping_restore_best_weights() -> None:
    model = FakeModel()
    es = EarlyStopping(monitor="val_accuracy", patience=1, restore_best_weights=True)
    assert es.mode == "max"
    _, ran = fit(model, {"val_accuracy": [0.1, 0.6, 0.5, 0.9]}, [es])
    assert ran == [0, 1, 2]
    assert model.w.tolist() == [1, 1, 1]  # epoch 1's weights, deep-copied
    assert model.set_calls == 1


def test_early_stopping_no_restore_when_not_stopped() -> None:
    model = FakeModel()
    es = EarlyStopping(monitor="loss", patience=5, restore_best_weights=True)
    _, ran = fit(model, {"loss": [3, 2, 2.5]}, [es])
    assert ran == [0, 1, 2] and model.set_calls == 0 and model.w[0] == 2


def test_early_stopping_min_delta_mode_and_baseline() -> None:
    model = FakeModel()
    es = EarlyStopping(monitor="loss", min_delta=-0.5, patience=1)  # sign ignored
    assert es.min_delta == 0.5
    _, ran = fit(model, {"loss": [3.0, 2.8, 2.7, 1.0]}, [es])
    assert ran == [0, 1]  # 2.8 is not 0.5 better than 3.0
    es = EarlyStopping(monitor="loss", mode="max", patience=0)
    _, ran = fit(FakeModel(), {"loss": [1, 2, 1]}, [es])
    assert ran == [0, 1, 2]
    # Baseline: improvements that do not beat it still count toward patience.
    es = EarlyStopping(monitor="val_accuracy", baseline=0.9, patience=2)
    _, ran = fit(FakeModel(), {"val_accuracy": [0.1, 0.2, 0.3, 0.95, 0.96]}, [es])
    assert ran == [0, 1]


def test_early_stopping_start_from_epoch_and_nan() -> None:
    es = EarlyStopping(monitor="loss", patience=0, start_from_epoch=2)
    _, ran = fit(FakeModel(), {"loss": [1, 2, 3, 4]}, [es])
    assert ran == [0, 1, 2, 3]  # epoch 2 sets best, epoch 3 stops
    es = EarlyStopping(monitor="loss", patience=1)
    _, ran = fit(FakeModel(), {"loss": [1.0, math.nan, math.nan, 0.0]}, [es])
    assert ran == [0, 1]


def test_early_stopping_missing_metric_warns() -> None:
    es = EarlyStopping(monitor="val_loss")
    with pytest.warns(RuntimeWarning, match="val_loss.*available: loss"):
        _, ran = fit(FakeModel(), {"loss": [1, 2, 3]}, [es])
    assert ran == [0, 1, 2]


def test_early_stopping_reusable_across_fits() -> None:
    es = EarlyStopping(monitor="loss", patience=0)
    fit(FakeModel(), {"loss": [1, 2]}, [es])
    _, ran = fit(FakeModel(), {"loss": [5, 4, 3]}, [es])
    assert ran == [0, 1, 2]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"patience": -1},
        {"patience": 1.5},
        {"mode": "up"},
        {"start_from_epoch": -2},
        {"min_delta": "x"},
        {"monitor": ""},
    ],
)
def test_early_stopping_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(GraiaValueError) as info:
        EarlyStopping(**kwargs)
    assert isinstance(info.value, ValueError) and isinstance(info.value, GraiaError)
    assert next(iter(kwargs)) in str(info.value)


# --------------------------------------------------------------------------- ModelCheckpoint


def test_model_checkpoint_every_epoch_with_formatting(tmp_path: Path) -> None:
    model = FakeModel()
    pattern = str(tmp_path / "runs" / "ckpt-{epoch:02d}-{val_accuracy:.2f}.graia")
    mc = ModelCheckpoint(pattern)
    fit(model, {"val_accuracy": [0.5, 0.25], "val_loss": [1.0, 2.0]}, [mc])
    assert [Path(p).name for p in model.saved] == ["ckpt-01-0.50.graia", "ckpt-02-0.25.graia"]
    assert mc.last_saved == model.saved[-1] and Path(mc.last_saved).exists()


def test_model_checkpoint_save_best_only(tmp_path: Path) -> None:
    model = FakeModel()
    mc = ModelCheckpoint(tmp_path / "best-{epoch}.graia", monitor="val_loss", save_best_only=True)
    fit(model, {"val_loss": [3.0, 2.0, 2.5, 1.0]}, [mc])
    assert [Path(p).name for p in model.saved] == ["best-1.graia", "best-2.graia", "best-4.graia"]
    assert mc.best == 1.0


def test_model_checkpoint_weights_only_and_verbose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = FakeModel()
    mc = ModelCheckpoint(
        tmp_path / "w.graia",
        monitor="accuracy",
        save_best_only=True,
        save_weights_only=True,
        verbose=1,
    )
    fit(model, {"accuracy": [0.1, 0.05]}, [mc])
    assert model.saved == [] and len(model.weights_saved) == 1
    out = capsys.readouterr().out
    assert "improved" in out and "did not improve" in out


def test_model_checkpoint_missing_placeholder(tmp_path: Path) -> None:
    mc = ModelCheckpoint(tmp_path / "{val_auc}.graia")
    with pytest.raises(GraiaValueError, match="val_auc"):
        fit(FakeModel(), {"loss": [1.0]}, [mc])


def test_model_checkpoint_missing_monitor_warns(tmp_path: Path) -> None:
    model = FakeModel()
    mc = ModelCheckpoint(tmp_path / "m.graia", save_best_only=True)
    with pytest.warns(RuntimeWarning, match="val_loss"):
        fit(model, {"loss": [1.0]}, [mc])
    assert model.saved == []


# --------------------------------------------------------------------------- CSVLogger


def _rows(path: Path, sep: str = ",") -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter=sep))


def test_csv_logger(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    fit(FakeModel(), {"loss": [1.5, 1.25], "accuracy": [0.5, np.float32(0.75)]}, [CSVLogger(path)])
    assert _rows(path) == [
        ["epoch", "accuracy", "loss"],
        ["0", "0.5", "1.5"],
        ["1", "0.75", "1.25"],
    ]
    # Overwrite by default.
    fit(FakeModel(), {"loss": [9.0]}, [CSVLogger(path)])
    assert _rows(path) == [["epoch", "loss"], ["0", "9.0"]]


def test_csv_logger_append_and_separator(tmp_path: Path) -> None:
    path = tmp_path / "log.tsv"
    fit(FakeModel(), {"loss": [1.0, 2.0]}, [CSVLogger(path, separator="\t", append=True)])
    fit(
        FakeModel(),
        {"loss": [0, 0, 3.0]},
        [CSVLogger(path, separator="\t", append=True)],
        initial_epoch=2,
    )
    assert _rows(path, "\t") == [["epoch", "loss"], ["0", "1.0"], ["1", "2.0"], ["2", "3.0"]]
    with pytest.raises(GraiaValueError, match="separator"):
        CSVLogger(path, separator="::")


def test_csv_logger_missing_values_are_na(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    logger = CSVLogger(path)
    cbs = CallbackList([logger], model=FakeModel())
    cbs.on_train_begin()
    cbs.on_epoch_end(0, {"loss": 1.0, "val_loss": 2.0})
    cbs.on_epoch_end(1, {"loss": 0.5, "extra": 1})
    cbs.on_train_end()
    assert _rows(path) == [["epoch", "loss", "val_loss"], ["0", "1.0", "2.0"], ["1", "0.5", "NA"]]


# --------------------------------------------------------------------------- small ones


def test_lambda_callback_and_terminate_on_nan(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[tuple[int, float]] = []
    lc = LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append((epoch, logs["loss"])))
    _, ran = fit(FakeModel(), {"loss": [1.0, math.inf, 2.0]}, [lc, TerminateOnNaN()])
    assert ran == [0, 1] and seen == [(0, 1.0), (1, math.inf)]
    assert "terminating" in capsys.readouterr().out
    with pytest.raises(GraiaValueError, match="on_epoch_end"):
        LambdaCallback(on_epoch_end=3)  # type: ignore[arg-type]
