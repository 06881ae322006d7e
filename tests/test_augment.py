"""Training-time augmentation (``RandomFlip``, ``RandomTranslation``; docs/arithmetic.md §4.1):
the transform against hand-checked cases and a per-sample numpy reading of the spec, the identity
outside training, the same training bits on every backend, model files, and bad stacks."""

from __future__ import annotations

import numpy as np
import pytest
from test_cross_backend import _assert_same, _train

import graia
from graia import layers as L
from graia import spec
from graia.augment import augment, shift_bounds
from graia.errors import GraiaValueError


def _images(n, h, w, c=1, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h * w * c)).astype(np.uint8)


def _reference(layers, x, seed, epoch):
    """§4.1 read literally: one sample at a time, one layer at a time."""
    shape = layers[0].shape
    h, w = shape[0], shape[1]
    out = x.reshape(len(x), h, w, -1).copy()
    for position, layer in enumerate(layers):
        if not layer.augmentation:
            continue
        for i in range(len(x)):
            key = int(spec.augment_keys(np.uint64(seed), position, epoch, i + 1)[i])
            image = out[i]
            if isinstance(layer, L.RandomFlip):
                if layer.mode != "vertical" and key & 1:
                    image = image[:, ::-1]
                if layer.mode != "horizontal" and (key >> 1) & 1:
                    image = image[::-1]
            else:
                (ly, hy), (lx, hx) = (
                    shift_bounds(layer.height_factor, h),
                    shift_bounds(layer.width_factor, w),
                )
                dy = ly + (key & 0xFFFFFFFF) % (hy - ly + 1)
                dx = lx + (key >> 32) % (hx - lx + 1)
                moved = np.full_like(image, layer.fill_value)
                for r in range(h):
                    for col in range(w):
                        if 0 <= r - dy < h and 0 <= col - dx < w:
                            moved[r, col] = image[r - dy, col - dx]
                image = moved
            out[i] = image
    return out.reshape(len(x), -1)


def test_shift_bounds_round_half_away_from_zero():
    assert shift_bounds((-0.1, 0.1), 28) == (-3, 3)
    assert shift_bounds((-0.25, 0.25), 10) == (-3, 3)  # 2.5 rounds away from zero
    assert shift_bounds((0.0, 0.4), 5) == (0, 2)
    assert shift_bounds((-1.0, -0.5), 6) == (-6, -3)


def test_fixed_shift_by_hand():
    """A one-value range shifts every sample the same: 2 rows down, 1 column left, fill 9."""
    layers = [L.Input((4, 3)), L.RandomTranslation((0.5, 0.5), (-0.34, -0.34), fill_value=9)]
    x = np.arange(1, 13, dtype=np.uint8)[None, :].repeat(3, axis=0)
    expected = np.array([[9, 9, 9], [9, 9, 9], [2, 3, 9], [5, 6, 9]], np.uint8)
    got = augment(layers, x, seed=5, epoch=0).reshape(3, 4, 3)
    for image in got:
        np.testing.assert_array_equal(image, expected)


@pytest.mark.parametrize("mode", ["horizontal", "vertical", "horizontal_and_vertical"])
def test_flip_by_hand(mode):
    """Each sample is the image or its mirror(s), as the key's bits 0 and 1 say; both occur."""
    layers = [L.Input((2, 3)), L.RandomFlip(mode)]
    x = np.array([[1, 2, 3, 4, 5, 6]] * 64, np.uint8)
    keys = spec.augment_keys(np.uint64(7), 1, 3, 64)
    got = augment(layers, x, seed=7, epoch=3).reshape(64, 2, 3)
    image = x[0].reshape(2, 3)
    for key, out in zip(keys.tolist(), got):
        expected = image
        if mode != "vertical" and key & 1:
            expected = expected[:, ::-1]
        if mode != "horizontal" and key & 2:
            expected = expected[::-1]
        np.testing.assert_array_equal(out, expected)
    assert len({out.tobytes() for out in got}) == (4 if mode == "horizontal_and_vertical" else 2)


def test_matches_the_per_sample_reference():
    """Both layers chained on colour images: the vectorised transform is the spec's, sample by
    sample, and depends on the sample's index and the epoch, not on the rest of the array."""
    layers = [
        L.Input((5, 7, 2)),
        L.RandomFlip("horizontal_and_vertical"),
        L.RandomTranslation(0.4, (-0.3, 0.6), fill_value=200),
        L.Dense(3),
    ]
    x = _images(50, 5, 7, 2, seed=1)
    got = augment(layers, x, seed=2**64 - 3, epoch=4)
    np.testing.assert_array_equal(got, _reference(layers, x, 2**64 - 3, 4))
    np.testing.assert_array_equal(augment(layers, x[:17], 2**64 - 3, 4), got[:17])
    assert not np.array_equal(augment(layers, x, 2**64 - 3, 5), got)
    assert not np.array_equal(got, x)


def _conv_stack(augmented):
    head = (
        [L.Input((10, 10)), L.RandomFlip(), L.RandomTranslation(0.2, 0.2)]
        if augmented
        else [L.Input((10, 10))]
    )
    return head + [
        L.Conv2D(3, 3, padding="same", shift=9),
        L.MaxPooling2D(2),
        L.Flatten(),
        L.Dense(4),
    ]


@pytest.mark.filterwarnings("ignore:training has collapsed")
def test_identity_outside_training():
    """Same seed, same weights: predict and evaluate ignore the augmentation layers; training
    does not (it sees other images)."""
    x = _images(30, 10, 10, seed=3)
    y = np.arange(30, dtype=np.int32) % 4
    plain, augmented = (graia.Sequential(_conv_stack(a), seed=4) for a in (False, True))
    with graia.backend.use("numba"):
        for model in (plain, augmented):
            model.compile("dfa", step=4096)
        np.testing.assert_array_equal(plain.predict(x), augmented.predict(x))
        assert plain.evaluate(x, y) == augmented.evaluate(x, y)
        plain.fit(x, y, epochs=1, batch_size=8, verbose=0)
        augmented.fit(x, y, epochs=1, batch_size=8, verbose=0)
        assert not all(
            np.array_equal(a, b) for a, b in zip(plain.get_weights(), augmented.get_weights())
        )
        plain.set_weights(augmented.get_weights())
        np.testing.assert_array_equal(plain.predict(x), augmented.predict(x))


def test_training_matches_across_backends(futhark_backend):
    """Two epochs with flips and shifts: the same bits on the Futhark backend as on Numba."""
    x = _images(40, 10, 10, seed=5)
    y = np.arange(40, dtype=np.int32) % 4
    results = []
    for name in ("numba", futhark_backend):
        model = graia.Sequential(_conv_stack(True), seed=6)
        with graia.backend.use("numba"):
            model.compile("local_heads", step=2048, dropout=30)
        results.append(_train(name, model, x, y, 2, 8))
    _assert_same(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def _flipped_stack(mode, shape=(10, 10)):
    return [L.Input(shape), L.RandomFlip(mode), L.Conv2D(3, 3, padding="same", shift=9),
            L.MaxPooling2D(2), L.Flatten(), L.Dense(4)]  # fmt: skip


_ALL, _REVERSED = slice(None), slice(None, None, -1)


@pytest.mark.parametrize(
    ("mode", "shape", "flips"),
    [
        ("horizontal", (10, 8), [(_ALL, _REVERSED)]),
        ("vertical", (10, 8, 2), [(_REVERSED, _ALL)]),
        (
            "horizontal_and_vertical",
            (10, 8),
            [(_ALL, _REVERSED), (_REVERSED, _ALL), (_REVERSED,) * 2],
        ),
    ],
)
@pytest.mark.filterwarnings("ignore:training has collapsed")
def test_average_flips_sums_the_mirror_images(mode, shape, flips):
    """§4.2 by hand: the sum of the plain predictions of each image and of its mirrors."""
    x = _images(12, *shape, seed=8).reshape(12, *shape)
    y = np.arange(12, dtype=np.int32) % 4
    model = graia.Sequential(_flipped_stack(mode, shape), seed=9)
    with graia.backend.use("numba"):
        model.compile("dfa")
        model.fit(x, y, epochs=1, batch_size=4, verbose=0)
        expected = model.predict(x).astype(np.uint16)
        for rows, cols in flips:
            expected += model.predict(np.ascontiguousarray(x[:, rows, cols]))
        got = model.predict(x, average_flips=True)
        assert got.dtype == np.uint16
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(model.predict(x, batch_size=5, average_flips=True), got)
        np.testing.assert_array_equal(
            model.predict_classes(x, average_flips=True), np.argmax(expected, axis=1)
        )
        accuracy = model.evaluate(x, y, average_flips=True)[1]
        assert accuracy == np.mean(np.argmax(expected, axis=1) == y)
        with pytest.raises(GraiaValueError, match="x is empty"):
            model.predict(x[:0], average_flips=True)


@pytest.mark.filterwarnings("ignore:training has collapsed")
def test_average_flips_matches_across_backends(futhark_backend):
    x = _images(20, 10, 10, seed=10)
    y = np.arange(20, dtype=np.int32) % 4
    model = graia.Sequential(_flipped_stack("horizontal"), seed=11)
    with graia.backend.use("numba"):
        model.compile("local_heads", step=2048)
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
        expected = model.predict(x, average_flips=True)
    with graia.backend.use(futhark_backend):
        np.testing.assert_array_equal(model.predict(x, average_flips=True), expected)


def test_average_flips_needs_a_flip_layer():
    model = graia.Sequential(_conv_stack(False), seed=12)
    model.compile("dfa")
    x = _images(3, 10, 10)
    for call in (model.predict, model.predict_classes):
        with pytest.raises(
            GraiaValueError, match="average_flips needs a model with a RandomFlip layer"
        ):
            call(x, average_flips=True)
    with pytest.raises(
        GraiaValueError, match="average_flips needs a model with a RandomFlip layer"
    ):
        model.evaluate(x, [0, 1, 2], average_flips=True)


def test_save_load_and_resume(tmp_path):
    """Model files carry the layers; a resumed run draws the same transforms (keyed by epoch)."""
    x = _images(24, 10, 10, seed=7)
    y = np.arange(24, dtype=np.int32) % 4
    with graia.backend.use("numba"):
        whole = graia.Sequential(_conv_stack(True), seed=8)
        whole.compile("dfa", step=4096)
        whole.fit(x, y, epochs=2, batch_size=8, verbose=0)
        half = graia.Sequential(_conv_stack(True), seed=8)
        half.compile("dfa", step=4096)
        half.fit(x, y, epochs=1, batch_size=8, verbose=0)
        half.save(tmp_path / "aug.graia")
        loaded = graia.load_model(tmp_path / "aug.graia")
        assert [la.get_config() for la in loaded.layers] == [la.get_config() for la in half.layers]
        loaded.fit(x, y, epochs=2, initial_epoch=1, batch_size=8, verbose=0)
        _assert_same(whole.get_state(), loaded.get_state())


def test_layer_configs_round_trip():
    for layer in (
        L.RandomFlip("vertical", name="f"),
        L.RandomTranslation((-0.2, 0.1), 0.3, fill_value=17),
    ):
        assert L.from_config(layer.get_config()).get_config() == layer.get_config()


def test_export_skips_them(tmp_path):
    """A deployed model is the same with or without its augmentation layers."""
    stacks = [
        [L.Input((6, 6))],
        [L.Input((6, 6)), L.RandomFlip(), L.RandomTranslation(0.2, 0.2)],
    ]
    sources = []
    for i, stack in enumerate(stacks):
        model = graia.Sequential(stack + [L.Dense(5, name="a"), L.Dense(3, name="b")], seed=9)
        with graia.backend.use("numba"):
            model.compile("dfa")
            model.export(tmp_path / str(i), format="c")
        sources.append((tmp_path / str(i) / "graia_model.c").read_text())
    assert sources[0] == sources[1]


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([L.Input(36), L.RandomFlip(), L.Dense(3)], "RandomFlip needs an image input"),
        (
            [
                L.Input((6, 6)),
                L.Conv2D(2, 3),
                L.RandomTranslation(0.1, 0.1),
                L.Flatten(),
                L.Dense(3),
            ],
            "must come directly after Input",
        ),
        ([L.Input((6, 6)), L.Flatten(), L.RandomFlip(), L.Dense(3)], "directly after Input"),
    ],
)
def test_bad_placement_is_refused(layers, message):
    with pytest.raises(GraiaValueError, match=message):
        graia.Sequential(layers, seed=1).build()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: L.RandomFlip("diagonal"), "mode must be one of"),
        (lambda: L.RandomTranslation(1.5, 0.1), "height_factor must be a fraction"),
        (lambda: L.RandomTranslation(0.1, (0.3, -0.3)), "width_factor must be a pair"),
        (lambda: L.RandomTranslation(0.1, 0.1, fill_value=256), "fill_value must be"),
        (lambda: L.RandomTranslation(0.1, 0.1, fill_mode="reflect"), "fill_mode must be"),
    ],
)
def test_bad_options_are_refused(make, message):
    with pytest.raises(GraiaValueError, match=message):
        make()
