"""The Sequential API: building, validation before compute, fit/evaluate/predict, weights."""

from __future__ import annotations

import numpy as np
import pytest

import graia
from graia.errors import GraiaError, GraiaValueError
from graia.model import quantize_inputs


def small_model(seed=0, rule="dfa", **options):
    model = graia.Sequential(
        [graia.layers.Input((4, 4)), graia.layers.Dense(12), graia.layers.Dense(3)], seed=seed
    )
    model.compile(rule, **options)
    return model


def small_data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 4, 4), dtype=np.uint8), rng.integers(0, 3, n)


def test_shapes_and_outputs(backend_name):
    with graia.backend.use(backend_name):
        model = small_model()
        x, y = small_data()
        history = model.fit(x, y, epochs=2, batch_size=8, validation_split=0.25, verbose=0)
        assert set(history.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
        assert len(history.history["loss"]) == 2
        out = model.predict(x)
        assert out.dtype == np.uint8 and out.shape == (40, 3)
        np.testing.assert_array_equal(model.predict(x.reshape(40, 16)), out)
        np.testing.assert_array_equal(model.predict(x, batch_size=7), out)
        loss, acc = model.evaluate(x, y)
        assert 0.0 <= acc <= 1.0 and loss >= 0.0
        assert model.evaluate(x, y, return_dict=True) == {"loss": loss, "accuracy": acc}
        assert model.input_shape == (4, 4)


def test_float_inputs_are_quantised():
    x = np.array([[0.0, 1.0, 0.5, 0.25]])
    np.testing.assert_array_equal(quantize_inputs(x), [[0, 255, 128, 64]])


@pytest.mark.parametrize(
    "x, y, match",
    [
        (np.zeros((5, 3)), np.zeros(5, int), "shape"),
        (np.zeros((0, 16), np.uint8), np.zeros(0, int), "empty"),
        (np.full((5, 16), np.nan), np.zeros(5, int), "NaN"),
        (np.full((5, 16), 2.0), np.zeros(5, int), r"\[0, 1\]"),
        (np.full((5, 16), -1), np.zeros(5, int), "0..255"),
        (np.full((5, 16), 256), np.zeros(5, int), "0..255"),
        (np.zeros((5, 16), np.uint8), np.zeros(4, int), "samples"),
        (np.zeros((5, 16), np.uint8), np.full(5, 3), "class ids"),
        (np.zeros((5, 16), np.uint8), np.full(5, -1), "class ids"),
        (np.zeros((5, 16), np.uint8), np.zeros(5) + 0.5, "integer"),
        (np.zeros((5, 16), np.uint8), np.zeros((5, 1, 1), int), "1-D labels"),
        (np.array([["a"] * 16] * 5), np.zeros(5, int), "numeric"),
    ],
)
def test_bad_data_is_rejected_before_compute(x, y, match):
    model = small_model()
    before = model.get_weights()
    with pytest.raises(GraiaValueError, match=match):
        model.fit(x, y, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": -1}, "batch_size"),
        ({"batch_size": 20000}, "overflow"),
        ({"validation_split": 1.5}, "validation_split"),
        ({"initial_epoch": -1}, "initial_epoch"),
    ],
)
def test_bad_fit_arguments(kwargs, match):
    x, y = small_data()
    with pytest.raises(GraiaValueError, match=match):
        small_model().fit(x, y, verbose=0, **kwargs)


def test_bad_construction():
    with pytest.raises(GraiaValueError, match="units"):
        graia.layers.Dense(0)
    with pytest.raises(GraiaValueError, match="kmax"):
        graia.layers.Dense(3, kmax=15)
    with pytest.raises(GraiaValueError, match="Input"):
        graia.Sequential([graia.layers.Dense(3)])
    with pytest.raises(GraiaValueError, match="overflow"):
        graia.Sequential([graia.layers.Input(40000), graia.layers.Dense(2)]).build()
    with pytest.raises(GraiaValueError, match="unknown rule"):
        small_model(rule="backprop")
    with pytest.raises(GraiaValueError, match="unknown option"):
        small_model(stepp=3)
    with pytest.raises(GraiaValueError, match="out of range"):
        small_model(beta1_shift=40)
    with pytest.raises(GraiaValueError, match="seed"):
        graia.Sequential(seed=-1)
    with pytest.raises(GraiaError, match="compile"):
        graia.Sequential([graia.layers.Input(2), graia.layers.Dense(2)]).fit(
            np.zeros((2, 2), np.uint8), [0, 1]
        )


def test_ternary_weights_and_codes():
    model = graia.Sequential([graia.layers.Input(8), graia.layers.Dense(5, kmax=0)], seed=3)
    model.build()
    codes = model.get_codes()[0]
    assert set(np.unique(codes)) <= {-1, 0, 1}


def test_weights_round_trip_and_validation():
    model = small_model()
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(17, 12), (13, 3)]  # the bias rows last
    model.set_weights([w // 2 for w in weights])
    np.testing.assert_array_equal(model.get_weights()[0], weights[0] // 2)
    with pytest.raises(GraiaValueError, match="expected 2 arrays"):
        model.set_weights(weights[:1])
    with pytest.raises(GraiaValueError, match="shape"):
        model.set_weights([weights[1], weights[0]])


def test_same_seed_same_model_and_resume_is_exact():
    x, y = small_data(60)
    # A constant step: with step_decay the first fit's schedule is over its own two epochs.
    straight = small_model(seed=5, step_decay=False)
    straight.fit(x, y, epochs=4, batch_size=8, verbose=0)
    resumed = small_model(seed=5, step_decay=False)
    resumed.fit(x, y, epochs=2, batch_size=8, verbose=0)
    resumed.fit(x, y, epochs=4, batch_size=8, verbose=0, initial_epoch=2)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


# Random labels: the collapse warning is expected and beside the point.
@pytest.mark.filterwarnings("ignore::graia.errors.GraiaWarning")
def test_step_decay_lowers_the_step_per_epoch_and_restores_it():
    """step_decay: epoch e of fit(epochs=E) uses S * (E - e) // E, S the first step (raised for
    a fit of few updates, §7.2); the option is kept."""
    x, y = small_data(160)
    model = small_model(step=1000)
    seen = []
    probe = graia.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: seen.append(model.rule.values["step"])
    )
    # 4 epochs of 80 batches: 320 updates, no raise.
    model.fit(x, y, epochs=4, batch_size=2, verbose=0, callbacks=[probe])
    assert seen == [1000, 750, 500, 250] and model.rule.values["step"] == 1000
    # 4 epochs of 2 batches: 8 updates, so the first step is 8 times the step (the cap).
    seen.clear()
    model.fit(x[:16], y[:16], epochs=4, batch_size=8, verbose=0, callbacks=[probe])
    assert seen == [8000, 6000, 4000, 2000] and model.rule.values["step"] == 1000
    assert model.rule.get_config()["step_decay"] is True
    constant = small_model(step=1000, step_decay=False)
    assert constant.rule.step_decay is False
    assert graia.rules.get().step_decay and graia.rules.get("dfa").step_decay
    assert not graia.rules.get("seed_hebbian").step_decay


@pytest.mark.filterwarnings("ignore:training has collapsed")  # random labels
def test_set_state_takes_back_get_state_and_refuses_what_does_not_fit():
    x, y = small_data()
    trained = small_model()
    trained.fit(x, y, epochs=1, batch_size=8, verbose=0)
    learned = {key: trained.get_state()[key] for key in ("latent", "momentum", "counters")}
    # The same layers, with the shifts fit chose from the data (not learned state).
    fresh = graia.Sequential.from_config(trained.get_config())
    fresh.set_state(learned)
    np.testing.assert_array_equal(fresh.predict(x), trained.predict(x))
    before = fresh.get_state()
    latent = learned["latent"]
    for bad, match in (
        ({"feedback": before["feedback"]}, "'feedback' is not a learned array"),
        ({"latent": latent.astype(np.int64)}, "latent must be int32"),
        ({"latent": latent[:-1]}, "latent must be int32"),
        ({"momentum": before["momentum"], "latent": latent * 0 + (1 << 21)}, "outside"),
    ):
        with pytest.raises(GraiaValueError, match=match):
            fresh.set_state(bad)
    after = fresh.get_state()
    for key in before:  # nothing changed
        np.testing.assert_array_equal(before[key], after[key], err_msg=key)


def test_first_step_raises_a_short_fits_step_within_bounds():
    """§7.2: S = min(8 * step, max(step, step * 300 // U), max(step, 65536)); unknown U: step."""
    first = graia.rules.first_step
    assert first(2048, 300) == first(2048, 10_000) == 2048
    assert first(2048, 200) == 3072 and first(2048, 60) == 10240 and first(2048, 10) == 16384
    assert first(2048, None) == first(2048, 0) == 2048
    assert first(30_000, 10) == 65536 and first(65536, 1) == 65536


def test_summary_and_activations(capsys):
    model = small_model()
    model.summary()
    text = capsys.readouterr().out
    # (16 + 1) * 12 + (12 + 1) * 3: the weights and the biases (a row of each layer's weights).
    assert "dense_0" in text and "Total params: 243" in text and "backend" in text
    acts = model.activations(small_data()[0][0])
    assert [a.shape for a in acts] == [(16,), (12,), (3,)]


def test_backend_switch_keeps_the_model(backend_name):
    x, y = small_data()
    model = small_model()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    reference = model.predict(x)
    with graia.backend.use(backend_name):
        np.testing.assert_array_equal(model.predict(x), reference)


def test_diagnostics():
    x, y = small_data(60)
    model = small_model()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    report = model.diagnostics(x, y)
    assert [r["layer"] for r in report] == ["dense_0", "dense_1"]
    for r in report:
        assert 0.0 <= r["dead"] <= 1.0 and 0.0 <= r["saturated"] <= 1.0
        assert 0.0 <= r["probe_accuracy"] <= 1.0
    assert sum(report[0]["codes"]) == (16 + 1) * 12  # every synapse, the bias's included
    assert "probe_accuracy" not in model.diagnostics(x)[0]


@pytest.mark.filterwarnings("ignore::graia.errors.GraiaWarning")  # random labels do not learn
def test_fit_calls_batch_and_test_hooks_and_one_progress_line(monkeypatch, capsys):
    monkeypatch.setattr("graia.training.MIN_CHUNK_SAMPLES", 8)  # 40 samples: 5 calls of 2 batches
    calls = []

    class Recorder(graia.callbacks.Callback):
        def on_batch_begin(self, batch, logs=None):
            calls.append(("begin", batch))

        def on_batch_end(self, batch, logs=None):
            calls.append(("end", batch, logs["size"]))
            assert 0.0 <= logs["loss"] <= 1.0 and 0.0 <= logs["accuracy"] <= 1.0

        def on_test_begin(self, logs=None):
            calls.append(("test",))

        def on_test_end(self, logs=None):
            calls.append(("tested", sorted(logs)))

        def on_epoch_end(self, epoch, logs=None):
            calls.append(("epoch", epoch))

    x, y = small_data()
    model = small_model()
    given_bar = graia.callbacks.ProgbarLogger()
    model.fit(
        x,
        y,
        epochs=2,
        batch_size=4,
        validation_data=(x, y),
        verbose=2,
        callbacks=[Recorder(), given_bar],
    )
    epoch = [c for i in range(5) for c in (("begin", 2 * i), ("end", 2 * i + 1, 8))]
    tested = [("test",), ("tested", ["accuracy", "loss"])]
    assert calls == epoch + tested + [("epoch", 0)] + epoch + tested + [("epoch", 1)]
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" - ")[0] for line in lines] == ["Epoch 1/2", "Epoch 2/2"]
