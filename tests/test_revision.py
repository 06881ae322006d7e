"""Arithmetic revision 2 (docs/arithmetic.md §9): the 32-bit random words' statistical quality,
the i32 forms of the step against the spec's integers, and models saved under revision 1 loading
and predicting the same bits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import graia
from graia import spec
from graia.backends.interface import COUNTER_STEP

DATA = Path(__file__).parent / "data"
_LOW32 = np.uint64(0xFFFFFFFF)


def _mix32(x: np.ndarray) -> np.ndarray:
    """§4's finaliser on a u64 array of words below 2**32, written from the spec (not
    graia.spec), so that the test checks the implementation too."""
    x = ((x ^ (x >> np.uint64(16))) * np.uint64(0x7FEB352D)) & _LOW32
    x = ((x ^ (x >> np.uint64(15))) * np.uint64(0x846CA68B)) & _LOW32
    return x ^ (x >> np.uint64(16))


def _words(key: int, first: int, n: int) -> np.ndarray:
    """``hash(key, w)`` of §4 for the counters ``w = first .. first + n - 1`` (u64 holding u32)."""
    w = (np.arange(first, first + n, dtype=np.uint64) + np.uint64(0x9E3779B9)) & _LOW32
    return _mix32(np.uint64(key) ^ _mix32(w))


def _bits(words: np.ndarray) -> np.ndarray:
    """``(n, 32)`` bits of u32 words."""
    return ((words[:, None] >> np.arange(32, dtype=np.uint64)) & np.uint64(1)).astype(np.int64)


#: Keys as the step uses them: layers 0-2 at steps 0, 1 and a million of seed 0 and 12345.
KEYS = [
    int(spec.rounding_key(np.uint64(seed), layer, t))
    for seed in (0, 12345)
    for layer in (0, 2)
    for t in (0, 1, 10**6)
]
N = 1 << 16


def test_words_match_the_spec_functions():
    for key in KEYS[:3]:
        expected = [int(spec.hash2(np.uint64(key), q)) for q in range(0, N, 997)]
        assert _words(key, 0, N)[::997].tolist() == expected


@pytest.mark.parametrize("key", KEYS)
def test_bit_balance(key):
    """Every bit of 65,536 consecutive counters' words is set half of the time: |z| < 5 per bit
    (the whole battery makes about 3,000 such tests; 5 sigma is a 1-in-1.7-million event)."""
    ones = _bits(_words(key, 0, N)).sum(axis=0)
    z = (ones - N / 2) / np.sqrt(N / 4)
    assert np.abs(z).max() < 5, z


@pytest.mark.parametrize("key", KEYS)
def test_neighbouring_counters_are_uncorrelated(key):
    """Words of counters q and q + 1 (neighbouring synapses): every bit of one is independent of
    every bit of the other (each of the 32 x 32 pairs agrees half of the time), and their values
    are uncorrelated."""
    words = _words(key, 0, N + 1)
    a, b = _bits(words[:-1]), _bits(words[1:])
    agree = (a[:, :, None] == b[:, None, :]).sum(axis=0)
    z = (agree - N / 2) / np.sqrt(N / 4)
    assert np.abs(z).max() < 5.5, np.abs(z).max()  # 1,024 pairs: a little more headroom
    r = np.corrcoef(words[:-1].astype(np.float64), words[1:].astype(np.float64))[0, 1]
    assert abs(r) < 5 / np.sqrt(N), r


def test_neighbouring_keys_are_uncorrelated():
    """The same synapse at steps t and t + 1 (keys of neighbouring counters): bits agree half of
    the time."""
    seed = np.uint64(3)
    a = np.array([int(spec.rounding_key(seed, 0, t)) for t in range(4096)], np.uint64)
    words = np.stack([_words(int(k), 0, 16) for k in a])  # (t, synapse)
    same = _bits(words[:-1].ravel()) == _bits(words[1:].ravel())
    n = same.shape[0]
    z = (same.sum(axis=0) - n / 2) / np.sqrt(n / 4)
    assert np.abs(z).max() < 5, z


@pytest.mark.parametrize("s", [1, 3, 7, 16])
def test_rounding_outcomes_chi_squared(s):
    """Stochastic rounding (§4) with the step's 16-bit fields (§7.2): for values with every
    fraction f / 2**s, the share rounded up is f / 2**s. A chi-squared over the fractions (up
    and down counts) stays below the 1e-6 tail of its distribution."""
    words = _words(KEYS[5], 0, 1 << 17)
    r1, r2 = words & np.uint64(0xFFFF), words >> np.uint64(16)
    fractions = np.arange(1, 1 << s) if s <= 7 else np.arange(1, 1 << s, 257)
    for r in (r1, r2):
        stat = 0.0
        for i, f in enumerate(fractions):
            v = (-12345 << s) + int(f)  # a negative value: floor shifts round towards -inf
            chunk = r[(i * 1024) % len(r) :][:1024].astype(np.int64)
            up = ((v + (chunk & ((1 << s) - 1))) >> s) - (v >> s)
            n, p = len(chunk), f / (1 << s)
            ups = int(up.sum())
            stat += (ups - n * p) ** 2 / (n * p) + ((n - ups) - n * (1 - p)) ** 2 / (n * (1 - p))
        dof = len(fractions)
        assert stat < dof + 7 * np.sqrt(2 * dof) + 25, (stat, dof)


def test_rounding_is_unbiased_on_average():
    """The mean of sround(v, 7, r) over many words is v / 2**7."""
    words = _words(KEYS[0], 0, N).astype(np.int64)
    for v in (5, -77, 1000, -(1 << 30) + 3):
        got = ((v + (words & 127)) >> 7).mean()
        assert abs(got - v / 128) < 5 * 0.5 / np.sqrt(N)


def test_i32_rounding_form_equals_the_spec():
    """§4: ``(v >> s) + (((v & m) + (r & m)) >> s)`` is ``(v + (r & m)) >> s`` and stays in i32
    for every i32 ``v``, the extremes included."""
    rng = np.random.default_rng(0)
    v = np.concatenate(
        [rng.integers(-(2**31) + 1, 2**31, 20000), [2**31 - 1, -(2**31) + 1, 0, -1, 1]]
    ).astype(np.int64)
    r = rng.integers(0, 2**32, v.size).astype(np.int64)
    for s in range(21):
        m = (1 << s) - 1
        exact = (v + (r & m)) >> s
        split = (v.astype(np.int32) >> s).astype(np.int64) + (((v & m) + (r & m)) >> s)
        np.testing.assert_array_equal(split, exact)
        assert np.abs((v & m) + (r & m)).max() < 2**31


def test_weight_code_from_the_float_exponent():
    """§2's note: k from the exact float exponent of |L| is the spec's k for every |L| < 2**21,
    and the codes agree for every kmax."""
    m = np.arange(1 << 21, dtype=np.int64)
    top = (m.astype(np.float32).view(np.uint32) >> 22).astype(np.int64)
    k = np.maximum(0, 147 - ((top + 1) >> 1))
    for kmax in (0, 3, 8, 14):
        expected = spec.codes_of_latents(m.astype(np.int32), kmax).astype(np.int64)
        np.testing.assert_array_equal(np.where(k > kmax, 0, k + 1), expected)


def test_learning_bound_is_g_max():
    """§7.2: batch_size * classes * 65025 <= 2**30 - 1."""
    assert spec.learning_bound_ok(16512, 1)
    assert not spec.learning_bound_ok(16513, 1)
    assert spec.learning_bound_ok(1651, 10)
    assert not spec.learning_bound_ok(1652, 10)


def test_beta_shifts_at_most_16():
    model = graia.Sequential([graia.layers.Input(4), graia.layers.Dense(3)])
    model.compile("dfa", beta1_shift=16, beta2_shift=16)
    with pytest.raises(graia.errors.GraiaError, match="beta2_shift"):
        model.compile("dfa", beta2_shift=17)


def test_revision_1_model_loads_and_predicts_the_same():
    """tests/data/pre_revision2.graia was trained and saved by a5fbd01 (revision 1,
    tests/data/gen_pre_revision2.py); the forward pass (§2, §3) is unchanged, so its
    predictions are the same bits on this backend."""
    model = graia.load_model(DATA / "pre_revision2.graia")
    x = np.random.default_rng(7).integers(0, 256, (16, 8, 8), dtype=np.uint8)
    np.testing.assert_array_equal(model.predict(x), np.load(DATA / "pre_revision2_predict.npy"))


@pytest.mark.filterwarnings("ignore:training has collapsed")
def test_revision_1_model_trains_on():
    """Such a model trains further under revision 2: its weights move, by the same bits as a
    fresh load trained alike."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (32, 8, 8), dtype=np.uint8)
    y = rng.integers(0, 4, 32)
    a, b, loaded = (graia.load_model(DATA / "pre_revision2.graia") for _ in range(3))
    for model in (a, b):
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert any(not np.array_equal(wa, w0) for wa, w0 in zip(a.get_weights(), loaded.get_weights()))
    steps = [m.get_state()["counters"][COUNTER_STEP] for m in (a, loaded)]
    assert steps[0] == steps[1] + 4  # one update per batch of 8
