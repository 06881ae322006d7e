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
    np.testing.assert_allclose(np.median(a, axis=0), 128.0, atol=6.0)  # the mean reads 128
    # A standard deviation is 80 u8 units: one up reads 208 (§8).
    z1 = layer(x.mean(axis=0, keepdims=True) + x.std(axis=0, keepdims=True)).astype(int)
    np.testing.assert_allclose(z1.ravel(), 208, atol=1)
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
    for key, value, message in [
        ("shift", [99], "bounds of docs/arithmetic.md §8"),
        ("bias", [1.5], "lists of ints"),
        ("multiplier", [2**70], "lists of ints"),
        ("multiplier", [1, 2], "equally long"),
    ]:
        bad = json.loads(json.dumps(config))
        bad["layers"][1]["integers"][key] = value
        members["config.json"] = json.dumps(bad).encode()
        with zipfile.ZipFile(tmp_path / "bad.graia", "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        with pytest.raises(ModelFileError, match=message):
            graia.load_model(tmp_path / "bad.graia")


def test_input_fixed_rounds_half_to_even_and_saturates():
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 1e300]) / 65536
    assert spec.input_fixed(x).tolist() == [0, 2, 2, 0, -2, 2**46]
    assert spec.input_fixed(np.array([3, -(2**40)])).tolist() == [3 << 16, -(2**46)]


# ------------------------------------------------------------------------------------ labels
def _bytes_data(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 4)).astype(np.uint8), rng.integers(0, 3, n)


def _dense(seed: int = 0) -> graia.Sequential:
    model = graia.Sequential([L.Input(4), L.Dense(8), L.Dense(3)], seed=seed)
    model.compile("dfa")
    return model


@pytest.mark.parametrize(
    "form",
    [
        lambda y: y,
        lambda y: y.reshape(-1, 1),
        lambda y: np.eye(3)[y],
        lambda y: np.eye(3, dtype=np.float32)[y],
        lambda y: y.tolist(),
        lambda y: np.eye(3, dtype=int)[y].tolist(),
    ],
    ids=["ids", "column", "one-hot", "one-hot-float", "list", "one-hot-list"],
)
def test_every_integer_label_form_trains_the_same_bits(form):
    x, y = _bytes_data()
    reference, model = _dense(), _dense()
    reference.fit(x, y, epochs=2, batch_size=8, verbose=0)
    model.fit(x, form(y), epochs=2, batch_size=8, verbose=0)
    for a, b in zip(reference.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.evaluate(x, form(y)) == reference.evaluate(x, y)
    assert model.class_names is None


def test_string_labels_become_class_names(tmp_path):
    x, y = _bytes_data()
    names = np.array(["cat", "dog", "emu"])
    reference, model = _dense(), _dense()
    reference.fit(x, y, epochs=2, verbose=0)
    model.fit(x, names[y], epochs=2, verbose=0, validation_data=(x, names[y].reshape(-1, 1)))
    assert model.class_names == ["cat", "dog", "emu"]
    np.testing.assert_array_equal(model.predict_classes(x), names[reference.predict_classes(x)])
    assert model.evaluate(x, list(names[y])) == reference.evaluate(x, y)
    model.save(tmp_path / "m.graia")
    loaded = graia.load_model(tmp_path / "m.graia")
    assert loaded.class_names == ["cat", "dog", "emu"]
    np.testing.assert_array_equal(loaded.predict_classes(x), model.predict_classes(x))


def test_hashable_labels_and_set_class_names():
    x, y = _bytes_data()
    model = _dense()
    model.class_names = [(0, "a"), (1, "b"), (2, "c")]
    labels = [model.class_names[i] for i in y]
    model.fit(x, labels, epochs=1, verbose=0)
    assert all(isinstance(c, tuple) for c in model.predict_classes(x[:3]))
    with pytest.raises(GraiaValueError, match="strings or numbers to be saved"):
        model.save("unused.graia")
    odd = _dense()
    with pytest.raises(GraiaValueError, match=r"class ids in 0..2"):
        odd.fit(x, y + 10, epochs=1, verbose=0)
    odd.class_names = [10, 11, 12]
    odd.fit(x, y + 10, epochs=1, verbose=0)
    assert odd.predict_classes(x[:4]).dtype.kind == "i"


@pytest.mark.parametrize(
    "labels, message",
    [
        (["cat"] * 59 + ["cow"], "not among the model's class names: 'cow'"),
        ([1] + ["cat"] * 59, r"mixes kinds of labels \(int, str\)"),
        (np.eye(3)[np.zeros(60, int)] * 2, "row 0 is not one-hot"),
        (np.ones((60, 3)), "row 0 is not one-hot"),
        (np.eye(4)[np.zeros(60, int)], "one-hot rows need one per class"),
        (np.zeros((60, 3, 1)), "got shape"),
        (["cat"] * 30, "one label for each of the 60 samples"),
    ],
)
def test_label_errors_at_evaluate_are_one_line(labels, message):
    x, y = _bytes_data()
    model = _dense()
    model.fit(x, np.array(["cat", "dog", "emu"])[y], epochs=1, verbose=0)
    with pytest.raises(GraiaValueError, match=message) as err:
        model.evaluate(x, labels)
    assert "\n" not in str(err.value)


def test_label_errors_at_fit_are_one_line():
    x, y = _bytes_data()
    with pytest.raises(GraiaValueError, match="2 distinct labels but the output layer has 3"):
        _dense().fit(x, np.where(y > 0, "a", "b"), verbose=0)
    with pytest.raises(GraiaValueError, match="has none yet"):
        _dense().evaluate(x, np.array(["a", "b", "c"])[y])
    with pytest.raises(GraiaValueError, match="3 distinct names"):
        _dense().class_names = ["a", "a", "b"]


# ----------------------------------------------------------------------------------- weights
def test_equal_weights_change_no_bit():
    x, y = _bytes_data()
    reference, weighted, by_class = _dense(), _dense(), _dense()
    reference.fit(x, y, epochs=2, batch_size=8, verbose=0)
    weighted.fit(x, y, epochs=2, batch_size=8, verbose=0, sample_weight=np.full(60, 3.0))
    by_class.fit(x, y, epochs=2, batch_size=8, verbose=0, class_weight={0: 0.5, 1: 0.5, 2: 0.5})
    for model in (weighted, by_class):
        for a, b in zip(reference.get_weights(), model.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_weighted_order_follows_the_spec():
    from graia.training import epoch_order, sample_weights

    _, y = _bytes_data()
    model = _dense()
    f = sample_weights(model, y.astype(np.int32), {0: 2.0}, np.linspace(0, 2, 60))
    assert f[0] == 0 and f.max() <= 2 * 2 * 65536
    v = spec.normalised_weights(f)
    assert abs(int(v.sum()) - (60 << 16)) < 60  # an epoch holds about n samples
    order = epoch_order(60, model.seed, 3, False, v)
    counts = np.bincount(order, minlength=60)
    assert counts[0] == 0 and np.all(np.abs(counts - v / 65536) < 1)
    shuffled = epoch_order(60, model.seed, 3, True, v)
    np.testing.assert_array_equal(np.sort(shuffled), order)
    # Expected copies are proportional to the weights (the mean of many epochs' draws).
    mean = np.mean(
        [np.bincount(epoch_order(60, 7, e, False, v), minlength=60) for e in range(400)], 0
    )
    np.testing.assert_allclose(mean, v / 65536, atol=0.12)


def test_weights_shift_the_decision_toward_the_heavy_class(backend_name):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = np.clip(rng.normal(0, 40, (300, 4)) + y[:, None] * 30 + 60, 0, 255).astype(np.uint8)

    def trained(class_weight):
        model = graia.Sequential([L.Input(4), L.Dense(32), L.Dense(3)], seed=0)
        model.compile("dfa", step=4096)
        model.fit(x, y, epochs=3, batch_size=8, verbose=0, class_weight=class_weight)
        return model

    with graia.backend.use(backend_name):
        other = trained({2: 20.0})
    with graia.backend.use("numba"):
        heavy, plain = trained({2: 20.0}), trained(None)
    for a, b in zip(heavy.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert np.mean(heavy.predict_classes(x) == 2) > np.mean(plain.predict_classes(x) == 2)


def test_string_class_weights_and_validation_split():
    x, y = _bytes_data()
    names = np.array(["a", "b", "c"])[y]
    model = _dense()
    model.fit(x, names, verbose=0, class_weight={"c": 2.0}, validation_split=0.2)
    with pytest.raises(GraiaValueError, match="'z' is not a class"):
        model.fit(x, names, verbose=0, class_weight={"z": 2.0})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sample_weight": np.ones(5)}, "one per sample"),
        ({"sample_weight": np.full(60, -1.0)}, r"in \[0, 65536\]"),
        ({"sample_weight": np.full(60, np.nan)}, "finite"),
        ({"sample_weight": np.zeros(60)}, "every training sample weighs 0"),
        ({"class_weight": [1, 2]}, "must be a dict"),
        ({"class_weight": {3: 1.0}}, "3 is not a class"),
        ({"class_weight": {0: "x"}}, "must be a number"),
    ],
)
def test_weight_errors_are_one_line(kwargs, message):
    x, y = _bytes_data()
    with pytest.raises(GraiaValueError, match=message) as err:
        _dense().fit(x, y, verbose=0, **kwargs)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------ iterable batches
class _Loader:
    """A DataLoader-like iterable: ``__iter__`` yields fresh ``(x, y)`` batches, ``__len__``."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> None:
        self.x, self.y, self.batch_size = x, y, batch_size
        self.passes = 0

    def __iter__(self):
        self.passes += 1
        for lo in range(0, len(self.x), self.batch_size):
            yield self.x[lo : lo + self.batch_size], self.y[lo : lo + self.batch_size]

    def __len__(self) -> int:
        return (len(self.x) + self.batch_size - 1) // self.batch_size


@pytest.mark.parametrize("rule", ["dfa", "local_heads", "seed_hebbian"])
def test_iterable_fit_equals_array_fit_bit_for_bit(backend_name, rule):
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 70)
    x = np.clip(rng.normal(0, 40, (70, 4)) + y[:, None] * 30 + 60, 0, 255).astype(np.uint8)
    with graia.backend.use(backend_name):
        arrays, batches = _dense(), _dense()
        arrays.compile(rule)
        batches.compile(rule)
        h1 = arrays.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0,
                        validation_data=(x, y))  # fmt: skip
        loader = _Loader(x, y, 16)
        h2 = batches.fit(loader, epochs=3, verbose=0, validation_data=(x, y))
        assert loader.passes == 3
        for a, b in zip(arrays.get_weights(), batches.get_weights()):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(arrays.predict(x), batches.predict(x))
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert h1.history[key] == h2.history[key]


def test_a_generator_trains_one_epoch_and_callbacks_see_it():
    x, y = _bytes_data()
    names = np.array(["a", "b", "c"])
    seen = []

    class Record(graia.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append((batch, logs["size"]))

    model = _dense()
    model.class_names = ["a", "b", "c"]  # a batch need not hold every class
    gen = ((x[i : i + 25], names[y[i : i + 25]]) for i in range(0, 60, 25))
    history = model.fit(gen, callbacks=[Record()], verbose=2)
    assert seen == [(0, 25), (1, 25), (2, 10)]
    assert len(history.history["loss"]) == 1
    # A generator has no length, so its fit's first step is not raised (§7.2): the same bits
    # as the array path with a constant step.
    reference = _dense()
    reference.compile("dfa", step_decay=False)
    reference.fit(x, y, batch_size=25, shuffle=False, verbose=0)
    np.testing.assert_array_equal(model.predict(x), reference.predict(x))


class _Tensor:
    """A stand-in for a framework tensor: only ``numpy()``."""

    def __init__(self, value: np.ndarray) -> None:
        self.value = value

    def numpy(self) -> np.ndarray:
        return self.value


def test_tensor_batches_are_read_through_numpy():
    x, y = _bytes_data()
    model, reference = _dense(), _dense()
    model.fit(iter([(_Tensor(x[:30]), _Tensor(y[:30])), (_Tensor(x[30:]), _Tensor(y[30:]))]))
    reference.compile("dfa", step_decay=False)  # an iterator has no length: §7.2's S = step
    reference.fit(x, y, batch_size=30, shuffle=False, verbose=0)
    np.testing.assert_array_equal(model.predict(x), reference.predict(x))


@pytest.mark.parametrize(
    "make, kwargs, message",
    [
        (lambda x, y: iter([(x, y)]), {"epochs": 2}, "one-shot iterator"),
        (lambda x, y: _Loader(x, y, 8), {"validation_split": 0.2}, "pass validation_data"),
        (lambda x, y: _Loader(x, y, 8), {"class_weight": {0: 2.0}}, "class_weight is not"),
        (lambda x, y: _Loader(x, y, 8), {"sample_weight": np.ones(60)}, "sample_weight is not"),
        (lambda x, y: iter([x]), {}, r"batch 0 of x must be a pair \(x, y\)"),
        (lambda x, y: iter([(x, y[:3])]), {}, "y of batch 0 must hold one"),
        (lambda x, y: iter([]), {}, "yielded no batches"),
        (lambda x, y: iter([(x, y.astype(float) + 0.5)]), {}, "integer class ids"),
    ],
)
def test_iterable_errors_are_one_line(make, kwargs, message):
    x, y = _bytes_data()
    with pytest.raises(GraiaValueError, match=message) as err:
        _dense().fit(make(x, y), verbose=0, **kwargs)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------- predict_proba
def test_predict_proba_is_the_documented_softmax():
    x, y = _bytes_data()
    model = _dense()
    model.fit(x, y, epochs=1, verbose=0)
    out = model.predict(x).astype(np.float64)
    p = model.predict_proba(x)
    assert p.shape == (60, 3) and p.dtype == np.float64
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    expected = np.exp(out / 32.0) / np.exp(out / 32.0).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(p, expected)
    np.testing.assert_array_equal(np.argmax(p, axis=1), model.predict_classes(x))
    sharp = model.predict_proba(x, temperature=1)
    assert sharp.max(axis=1).mean() >= p.max(axis=1).mean()
    with pytest.raises(GraiaValueError, match="empty"):  # the contract of predict
        model.predict_proba(x[:0])
    for bad in (0, -1.0, float("nan"), "1", True):
        with pytest.raises(GraiaValueError, match="temperature must be a positive"):
            model.predict_proba(x, temperature=bad)
