"""Inputs and labels the Keras way: preprocessing layers (docs/arithmetic.md §8), label forms,
sample and class weights (§5.1), fit on an iterable of batches, predict_proba."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import graia
from graia import layers as L
from graia import spec
from graia.errors import GraiaError, GraiaValueError, GraiaWarning, ModelFileError


def _reference_u8(x: float, m: int, b: int, s: int) -> int:
    """§8 written with Python's own integers and fractions (independent of graia/spec.py)."""
    from fractions import Fraction

    v = Fraction(x) * 65536
    q = round(v)  # Python rounds a Fraction half to even
    q = max(-(2**46), min(2**46, q))
    return max(0, min(255, (q * m + b) >> s))


def test_preprocessing_integers_follow_the_spec_on_hard_values():
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [rng.normal(0, 100, 200), np.arange(-8, 9) / 131072, [2.0**30, -(2.0**31), 1e20, -0.0]]
    )
    for layer in (
        L.Rescaling([0.01], [0.5]),
        L.Rescaling(-3.0, 7.0),
        L.Normalization(None, 3.0, 2.0),
    ):
        (m,), (b,), (s,) = (a.tolist() for a in layer.integers())
        got = layer(x.reshape(-1, 1)).ravel()
        assert got.tolist() == [_reference_u8(v, m, b, s) for v in x.tolist()]
        assert abs(m) <= 2**15 and abs(b) <= 2**61 and 0 <= s <= 54


def test_rescaling_one_over_255_is_the_identity_on_bytes():
    layer = L.Rescaling(1 / 255)
    values = np.arange(256).reshape(1, -1)
    np.testing.assert_array_equal(layer(values), values)
    np.testing.assert_array_equal(layer(values.astype(np.float32)), values)


def test_normalization_adapts_per_feature_like_keras():
    rng = np.random.default_rng(1)
    x = rng.normal([10.0, -5.0, 1000.0], [2.0, 0.1, 300.0], (500, 3))
    layer = L.Normalization()
    layer.adapt(x)
    np.testing.assert_allclose(layer.mean, x.mean(axis=0))
    np.testing.assert_allclose(layer.variance, x.var(axis=0))
    a = layer(x).astype(np.float64)
    np.testing.assert_allclose(a.mean(axis=0), 128.0, atol=2.0)  # the mean reads 128
    np.testing.assert_allclose(a.std(axis=0), 32.0, rtol=0.05)  # a standard deviation is 32
    constant = L.Normalization(mean=[4.0], variance=[0.0])
    assert constant(np.array([[4.0], [1e6]])).ravel().tolist() == [128, 128]


@pytest.fixture(autouse=True)
def _quiet_collapse_warning():
    """These small models test forms and bits, not accuracy (issue 29's defaults do that)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GraiaWarning)
        yield


def _normalized_model(x: np.ndarray, seed: int = 0) -> graia.Sequential:
    layer = L.Normalization()
    layer.adapt(x)
    model = graia.Sequential([L.Input(x.shape[1]), layer, L.Dense(32), L.Dense(3)], seed=seed)
    model.compile("dfa")
    return model


def _blobs(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 1, (n, 5)) * 40 + y[:, None] * 60 - 500
    return x, y


def test_a_normalized_model_trains_on_raw_features_the_same_on_every_backend(backend_name):
    x, y = _blobs()
    results = {}
    for name in ("numba", backend_name):
        with graia.backend.use(name):
            model = _normalized_model(x)
            model.fit(x, y, epochs=3, batch_size=16, verbose=0)
            results[name] = (model.get_weights(), model.predict(x))
    for a, b in zip(results["numba"][0], results[backend_name][0]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(results["numba"][1], results[backend_name][1])


def test_float_input_out_of_range_names_the_layer_to_add():
    model = graia.Sequential([L.Input(2), L.Dense(2)], seed=0)
    with pytest.raises(GraiaValueError, match=r"add graia.layers.Normalization\(\)") as err:
        model.predict(np.array([[0.5, 3.0]]))
    assert "\n" not in str(err.value)
    with pytest.raises(GraiaValueError, match="Rescaling"):
        model.predict(np.array([[0, 300]]))


def test_preprocessing_errors_are_one_line():
    model = graia.Sequential([L.Input(4), L.Normalization(), L.Dense(3)], seed=0)
    with pytest.raises(GraiaError, match="is not adapted: call layer.adapt"):
        model.predict(np.zeros((1, 4)))
    model.layers[1].adapt(np.ones((5, 4)))
    with pytest.raises(GraiaValueError, match="finite"):
        model.predict(np.array([[np.nan, 0, 0, 0]]))
    with pytest.raises(GraiaValueError, match="directly after Input"):
        graia.Sequential([L.Input(4), L.Dense(3), L.Rescaling(0.5), L.Dense(2)]).build()
    with pytest.raises(GraiaValueError, match="3 values per channel"):
        graia.Sequential([L.Input(4), L.Rescaling([1, 2, 3]), L.Dense(2)]).build()
    with pytest.raises(GraiaValueError, match="axis must be -1 or None"):
        L.Normalization(axis=0)
    with pytest.raises(GraiaValueError, match="both mean and variance"):
        L.Normalization(mean=1.0)
    with pytest.raises(GraiaValueError, match="variance must not be negative"):
        L.Normalization(mean=1.0, variance=-1.0)
    with pytest.raises(GraiaValueError, match="finite"):
        L.Rescaling(float("inf"))
    with pytest.raises(GraiaValueError, match="non-empty numeric"):
        L.Normalization().adapt(np.array(["a"]))


def test_preprocessing_layers_are_saved_and_shown(tmp_path):
    x, y = _blobs()
    model = _normalized_model(x)
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.graia")
    loaded = graia.load_model(tmp_path / "m.graia")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    for a, b in zip(loaded.layers[1].integers(), model.layers[1].integers()):
        np.testing.assert_array_equal(a, b)
    lines = []
    loaded.summary(print_fn=lines.append)
    assert "normalization_0" in lines[0] and "§8" in lines[0]
    rescaled = graia.Sequential([L.Input((2, 2)), L.Rescaling(1 / 255), L.Dense(2)], seed=0)
    rescaled.save(tmp_path / "r.graia")
    assert repr(graia.load_model(tmp_path / "r.graia").layers[1]) == repr(rescaled.layers[1])


def test_a_hostile_preprocessing_config_is_refused(tmp_path):
    import json
    import zipfile

    model = graia.Sequential([L.Input(2), L.Rescaling(0.5), L.Dense(2)], seed=0)
    model.save(tmp_path / "m.graia")
    with zipfile.ZipFile(tmp_path / "m.graia") as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(members["config.json"])
    config["layers"][1]["integers"]["shift"] = [99]
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "bad.graia", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    with pytest.raises(ModelFileError, match="bounds of docs/arithmetic.md §8"):
        graia.load_model(tmp_path / "bad.graia")


def test_input_fixed_rounds_half_to_even_and_saturates():
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 1e300]) / 65536
    assert spec.input_fixed(x).tolist() == [0, 2, 2, 0, -2, 2**46]
    assert spec.input_fixed(np.array([3, -(2**40)])).tolist() == [3 << 16, -(2**46)]
