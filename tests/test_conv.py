"""Convolution and pooling (docs/arithmetic.md §3.1, §3.2, §7.5): the Numba oracle against a
plain numpy reading of the spec, every backend against the oracle bit for bit, model checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_cross_backend import _assert_same, _train

import graia
from graia import layers as L
from graia import spec
from graia.backends.numba import NumbaBackend
from graia.errors import GraiaValueError

# Tiny random problems collapse often; the warning is not what these tests are about.
pytestmark = pytest.mark.filterwarnings("ignore:training has collapsed")


def _conv_model(
    image, filters, kernel, strides, padding, pool, kmax, seed, hidden=(), classes=3, bias=False
):
    layers = [L.Input(image), L.Conv2D(filters, kernel, strides, padding, kmax=kmax, use_bias=bias)]
    if pool is not None:
        layers.append(pool[0](*pool[1:]))
    layers += [L.Flatten()] + [L.Dense(u) for u in hidden] + [L.Dense(classes)]
    return graia.Sequential(layers, seed=seed)


def _numpy_block(x, model):
    """§3.1-§3.2 written directly with numpy: the first block's output."""
    b = model.blocks[0]
    n = x.shape[0]
    img = x.reshape(n, b.in_h, b.in_w, b.in_c).astype(np.int64)
    kmax = model.weighted_layers[0].kmax
    w = np.vectorize(lambda c: spec.fixed_weight(c, kmax))(model.get_codes()[0]).astype(np.int64)
    bias = spec.BIAS_INPUT * w[-1] if b.bias else 0  # §3: the bias input's row is the last
    w = w[: b.k_h * b.k_w * b.in_c]
    pad = np.zeros((n, b.in_h + 2 * b.k_h + b.stride_h * b.out_h, b.in_w + 2 * b.k_w + b.stride_w * b.out_w, b.in_c), np.int64)  # fmt: skip
    pad[:, b.pad_top : b.pad_top + b.in_h, b.pad_left : b.pad_left + b.in_w] = img
    z = np.zeros((n, b.out_h, b.out_w, b.out_c), np.int64)
    for oy in range(b.out_h):
        for ox in range(b.out_w):
            y0, x0 = oy * b.stride_h, ox * b.stride_w
            z[:, oy, ox] = pad[:, y0 : y0 + b.k_h, x0 : x0 + b.k_w].reshape(n, -1) @ w + bias
    a = np.clip(z >> model.weighted_layers[0].shift, 0, 255)
    if b.pool:
        ph, pw = b.out_h // b.pool_h, b.out_w // b.pool_w
        win = a[:, : ph * b.pool_h, : pw * b.pool_w].reshape(n, ph, b.pool_h, pw, b.pool_w, -1)
        a = win.max(axis=(2, 4)) if b.pool == 1 else win.sum(axis=(2, 4)) // (b.pool_h * b.pool_w)
    return a.reshape(n, -1)


POOLS = [
    None,
    (L.MaxPooling2D, 2),
    (L.AveragePooling2D, (2, 3)),
    (L.AveragePooling2D, 3),
    (L.GlobalAveragePooling2D,),
]


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(3, 9),
    w=st.integers(3, 9),
    c=st.integers(1, 3),
    kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    strides=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    padding=st.sampled_from(["valid", "same"]),
    pool=st.sampled_from(POOLS),
    kmax=st.integers(0, 8),
    seed=st.integers(0, 2**63),
    bias=st.booleans(),
)
def test_oracle_forward_is_the_spec(h, w, c, kernel, strides, padding, pool, kmax, seed, bias):
    try:
        model = _conv_model((h, w, c), 3, kernel, strides, padding, pool, kmax, seed, bias=bias)
        model.blocks  # noqa: B018 - the plan may refuse a pool larger than the image
    except GraiaValueError:
        return
    x = np.random.default_rng(seed % 1000).integers(0, 256, (4, h * w * c)).astype(np.uint8)
    with graia.backend.use("numba"):
        model.build()
        acts = NumbaBackend().activations(model.get_state(), x)
    np.testing.assert_array_equal(acts[1], _numpy_block(x, model))


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    h=st.integers(4, 8),
    c=st.integers(1, 2),
    kernel=st.integers(1, 3),
    stride=st.integers(1, 2),
    padding=st.sampled_from(["valid", "same"]),
    pool=st.sampled_from([*POOLS[:3], POOLS[4]]),
    kmax=st.integers(2, 8),
    hidden=st.sampled_from([(), (6,)]),
    rule=st.sampled_from(["dfa", "local_heads"]),
    head_step=st.sampled_from([0, 16384]),
    dropout=st.sampled_from([0, 90]),
    batch_size=st.integers(1, 9),
    seed=st.integers(0, 2**63),
    bias=st.booleans(),
)
def test_property_conv_training_matches_reference(
    futhark_backend,
    h,
    c,
    kernel,
    stride,
    padding,
    pool,
    kmax,
    hidden,
    rule,
    head_step,
    dropout,
    batch_size,
    seed,
    bias,
):
    """Random conv/pool shapes, strides, paddings, kmax, biases, rules (fixed or learned local
    heads): weights after two epochs and predictions identical to the oracle."""
    rng = np.random.default_rng(seed % 997)
    x = rng.integers(0, 256, (23, h * h * c)).astype(np.uint8)
    x[x < 70] = 0
    y = rng.integers(0, 3, 23).astype(np.int32)
    try:
        _conv_model(
            (h, h, c), 4, kernel, stride, padding, pool, kmax, seed, hidden, 3, bias
        ).build()
    except GraiaValueError:
        assume(False)  # a pool larger than the convolution's output
    results = []
    for name in ("numba", futhark_backend):
        model = _conv_model(
            (h, h, c), 4, kernel, stride, padding, pool, kmax, seed, hidden, 3, bias
        )
        with graia.backend.use("numba"):
            heads = {"head_step": head_step} if rule == "local_heads" else {}
            model.compile(rule, step=4096, dropout=dropout, **heads)
        results.append(_train(name, model, x, y, 2, batch_size))
    _assert_same(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_two_conv_blocks_several_epochs_match(futhark_backend):
    """A small two-block network trained for three epochs, each block with its own head shift:
    same bits on every backend."""
    layers = [
        L.Input((12, 12)),
        L.Conv2D(4, 3, padding="same", shift=9),
        L.MaxPooling2D(2),
        L.Conv2D(6, 3, padding="same"),
        L.AveragePooling2D(2),
        L.Flatten(),
        L.Dense(5),
    ]
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (40, 12, 12)).astype(np.uint8)
    y = rng.integers(0, 5, 40).astype(np.int32)
    results = []
    for name in ("numba", futhark_backend):
        model = graia.Sequential([type(la)(**_options(la)) for la in layers], seed=9)
        with graia.backend.use("numba"):
            model.compile("local_heads", step=2048, dropout=30, head_shift=(6, 3), head_step=16384)
        results.append(_train(name, model, x, y, 3, 8))
    _assert_same(results[0][0], results[1][0])


def test_global_average_pooling_without_flatten_matches(futhark_backend):
    """GlobalAveragePooling2D averages each channel over a whole 7x7 output (a window that is no
    power of two), gives a vector a Dense layer reads without Flatten, round-trips through its
    config, and trains to the same bits on every backend."""
    layers = [L.Input((7, 7, 2)), L.Conv2D(5, 3, padding="same"), L.GlobalAveragePooling2D()]
    layers += [L.Dense(6), L.Dense(3)]
    assert isinstance(L.from_config(layers[2].get_config()), L.GlobalAveragePooling2D)
    rng = np.random.default_rng(11)
    x = rng.integers(0, 256, (30, 7 * 7 * 2)).astype(np.uint8)
    y = rng.integers(0, 3, 30).astype(np.int32)
    results = []
    for name in ("numba", futhark_backend):
        model = graia.Sequential([type(la)(**_options(la)) for la in layers], seed=4)
        assert model.blocks[0].pool_h == model.blocks[0].pool_w == 7
        with graia.backend.use("numba"):
            model.compile("dfa", step=2048)
        results.append(_train(name, model, x, y, 2, 7))
    _assert_same(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def _options(layer):
    config = layer.get_config()
    config.pop("class")
    if isinstance(layer, L.Input):
        return {"shape": tuple(config["shape"])}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}


def test_conv_model_saves_and_loads_across_backends(tmp_path, futhark_backend):
    model = _conv_model((8, 8, 1), 3, 3, 1, "same", (L.MaxPooling2D, 2), 6, 4, hidden=(7,))
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (30, 8, 8)).astype(np.uint8)
    y = rng.integers(0, 3, 30).astype(np.int32)
    with graia.backend.use(futhark_backend):
        model.compile("dfa", step=4096)
        model.fit(x, y, epochs=2, batch_size=8, verbose=0)
        model.save(tmp_path / "conv.graia")
        expected = model.predict(x)
    with graia.backend.use("numba"):
        loaded = graia.load_model(tmp_path / "conv.graia")
        np.testing.assert_array_equal(loaded.predict(x), expected)
        assert [la.get_config() for la in loaded.layers] == [la.get_config() for la in model.layers]


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([L.Input(64), L.Conv2D(2, 3), L.Flatten(), L.Dense(3)], "needs an image input"),
        ([L.Input((8, 8)), L.MaxPooling2D(2), L.Flatten(), L.Dense(3)], "directly follow a Conv2D"),
        ([L.Input((8, 8)), L.GlobalAveragePooling2D(), L.Dense(3)], "directly follow a Conv2D"),
        ([L.Input((8, 8)), L.Conv2D(2, 3), L.Dense(3)], "add Flatten()"),
        ([L.Input((4, 4)), L.Conv2D(2, 5), L.Flatten(), L.Dense(3)], "does not fit"),
        ([L.Input((4, 4)), L.Conv2D(2, 3), L.MaxPooling2D(3), L.Flatten(), L.Dense(3)], "larger"),
        ([L.Input((8, 8)), L.Conv2D(2, 3)], "last layer must be the Dense"),
        ([L.Input((30, 30, 40)), L.Conv2D(2, 5, kmax=14), L.Flatten(), L.Dense(3)], "overflow"),
    ],
)
def test_bad_stacks_are_refused_before_any_compute(layers, message):
    with pytest.raises(GraiaValueError, match=message):
        graia.Sequential(layers, seed=1).build()


def test_seed_hebbian_refuses_conv_layers():
    model = _conv_model((6, 6), 2, 3, 1, "valid", None, 4, 1)
    with pytest.raises(GraiaValueError, match="Dense layers only"):
        model.compile("seed_hebbian")


def test_image_input_shapes():
    """``Input((h, w))`` and ``Input((h, w, 1))`` are the same image; x may come in either form."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5, 6, 6)).astype(np.uint8)
    outs = []
    for shape in ((6, 6), (6, 6, 1)):
        model = _conv_model(shape, 2, 3, 1, "same", (L.MaxPooling2D, 2), 6, 3)
        with graia.backend.use("numba"):
            model.build()
            outs.append(model.predict(x))
            np.testing.assert_array_equal(model.predict(x[..., None]), outs[-1])
    np.testing.assert_array_equal(outs[0], outs[1])


def test_layer_configs_round_trip():
    for layer in (
        L.Conv2D(5, (3, 2), strides=(2, 1), padding="same", kmax=6, shift=8, name="c"),
        L.MaxPooling2D((2, 3)),
        L.AveragePooling2D(2),
        L.Flatten(),
    ):
        again = L.from_config(layer.get_config())
        assert again.get_config() == layer.get_config()


@pytest.mark.parametrize("architecture", ["conv", "dense"])
def test_every_recipe_builds(architecture):
    """Every dataset's recipes fit their images (no overflow, shapes that plan) and the Futhark
    backends' depth."""
    from graia.backends.futhark.backend import MAX_LAYERS
    from graia.recipes import ARCHITECTURES

    shapes = {
        "digits": (8, 8),
        "fashion-mnist": (28, 28),
        "mnist": (28, 28),
        "cifar10": (32, 32, 3),
    }
    for dataset, recipe in ARCHITECTURES[architecture].items():
        model = recipe.build(shapes[dataset], 10, seed=0)
        assert model.blocks[-1].n_out == 10
        assert (len(model.blocks) > len(recipe.hidden) + 1) == (architecture == "conv")
        assert len(model.blocks) <= MAX_LAYERS, dataset
        flips = [la for la in model.layers if isinstance(la, L.RandomFlip)]
        assert len(flips) == recipe.flip, dataset
        shifts = [la for la in model.layers if isinstance(la, L.RandomTranslation)]
        assert len(shifts) == bool(recipe.translate), dataset
    # Digits are not mirror images of one another.
    assert not any(ARCHITECTURES[architecture][d].flip for d in ("digits", "mnist"))


def test_conv_block_without_pooling():
    """A recipe's ``ConvBlock(pool=None)`` is a convolution alone, and ``describe`` says so."""
    from graia.recipes import ConvBlock, Recipe

    blocks = (ConvBlock(8, pool=None), ConvBlock(16, kernel=5, pool=2))
    assert [type(la) for la in blocks[0].layers()] == [L.Conv2D]
    assert [type(la) for la in blocks[1].layers()] == [L.Conv2D, L.MaxPooling2D]
    recipe = Recipe(hidden=(32,), rule="local_heads", conv=blocks)
    assert recipe.describe() == "conv8x3 - conv16x5/pool2 - 32 - classes"


@pytest.mark.slow
def test_cli_trains_the_conv_recipe(tmp_path):
    """``graia train --architecture conv`` trains and saves a convolutional model."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "graia", "--backend", "numba", "train", "--dataset", "digits",
         "--architecture", "conv", "--epochs", "4", "--quiet", "--json",
         "--output", str(tmp_path / "run")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "conv64x3 - conv64x3/pool2" in result["architecture"]
    assert result["test_accuracy"] > 0.5
    loaded = graia.load_model(result["model_path"])
    assert any(isinstance(layer, L.Conv2D) for layer in loaded.layers)


def test_summary_and_export_of_a_conv_model(tmp_path, capsys):
    """summary() shows every layer's output shape and parameters; export names what it lacks."""
    model = _conv_model((8, 8), 4, 3, 1, "same", (L.MaxPooling2D, 2), 8, 1)
    with graia.backend.use("numba"):
        model.compile("dfa")
        model.summary()
        text = capsys.readouterr().out
        assert "(None, 8, 8, 4)" in text and "(None, 4, 4, 4)" in text and "(None, 64)" in text
        assert f"Total params: {model.count_params():,}" in text
        with pytest.raises(GraiaValueError, match="Dense layers only so far; layer 'conv2d_0'"):
            model.export(tmp_path / "out", format="c")
