"""docs/arithmetic.md §3.4 on the CPU: the digit splits and the accumulator arguments that let int8
and fp16/bf16 matrix units compute Graia's sums bit for bit, at the extremes (all-255 inputs, the
largest weights of every kmax at the largest fan-in §3 allows, the largest batch §7.2 allows).

The units are emulated in numpy: an int8 unit as exact digit products summed in wrapping int32; an
fp32 accumulator as sequential float32 additions (any order of integer partial sums below 2^24
gives the same bits, which is the point of the bound).
"""

from __future__ import annotations

import numpy as np
import pytest

from graia import spec

I32_MAX = 2**31 - 1
FP32_EXACT = 2**24


def weight_digits(w: np.ndarray) -> list[np.ndarray]:
    """§3.4's digits of fixed-point weights ``w = ±2^p`` (or 0): ``w = sum_c 2^(7c) * digit_c``,
    each digit in -64..64."""
    p = np.zeros(w.shape, np.int64)
    nz = w != 0
    p[nz] = np.log2(np.abs(w[nz])).astype(np.int64)
    digits = []
    for c in range(3):
        here = nz & (p // 7 == c)
        digits.append(np.where(here, np.sign(w) * (1 << np.clip(p - 7 * c, 0, 6)), 0))
    assert all(np.abs(d).max(initial=0) <= 64 for d in digits)
    return digits


def delta_digits(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``d = d0 + 256 * d1``, ``d0`` in 0..255 (u8), ``d1 = floor(d / 256)``."""
    return d % 256, d // 256


def wrapping_i32_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """An int8 unit: exact products of digits, summed modulo 2^32 (as int32)."""
    assert a.min() >= -128 and a.max() <= 255 and b.min() >= -128 and b.max() <= 255
    return (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)  # astype wraps


def int8_route_forward(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """z = x @ w through s8 digits: ``(x - 128) @ digit + 128 * column sums``, combined in
    wrapping int32."""
    z = np.zeros((x.shape[0], w.shape[1]), np.int32)
    with np.errstate(over="ignore"):
        for c, digit in enumerate(weight_digits(w)):
            part = wrapping_i32_product(x.astype(np.int64) - 128, digit)
            part = part + np.int32(128) * digit.sum(0).astype(np.int32)
            z = z + (part << np.int32(7 * c))
    return z


def fp32_chunked(a: np.ndarray, b: np.ndarray, chunk: int) -> tuple[np.ndarray, float]:
    """``a @ b`` (one row of ``a``, one column of ``b``) as float32 products added one by one in
    float32 within chunks of ``chunk`` terms, chunks summed in int64; the largest partial sum."""
    terms = (a.astype(np.float32) * b.astype(np.float32)).astype(np.float32)
    total, largest = np.int64(0), 0.0
    for start in range(0, terms.size, chunk):
        partial = np.add.accumulate(terms[start : start + chunk], dtype=np.float32)
        largest = max(largest, float(np.abs(partial).max()))
        total += np.int64(partial[-1])
    return total, largest


@pytest.mark.parametrize("kmax", [4, 6, 7, 8, 13, 14])
@pytest.mark.parametrize("sign", [1, -1])
def test_int8_route_is_exact_at_the_largest_forward_sum(kmax: int, sign: int) -> None:
    n_in = I32_MAX // (255 * 2**kmax)  # §3's largest fan-in for this kmax
    x = np.full((2, n_in), 255, np.int64)
    x[1, ::3] = 0
    w = np.full((n_in, 3), sign * 2**kmax, np.int64)
    w[:, 1] = sign * 2 ** (np.arange(n_in) % (kmax + 1))  # every exponent, mixed
    w[::5, 2] = 0
    want = x @ w
    assert np.abs(want).max() <= I32_MAX
    np.testing.assert_array_equal(int8_route_forward(x, w), want)
    assert len([d for d in weight_digits(w) if d.any()]) == 1 + (kmax >= 7) + (kmax >= 14)


def test_int8_route_random_weights() -> None:
    rng = np.random.default_rng(0)
    for kmax in range(15):
        n_in = min(784, I32_MAX // (255 * 2**kmax))
        x = rng.integers(0, 256, (5, n_in))
        w = rng.choice([-1, 0, 1], (n_in, 7)) * 2 ** rng.integers(0, kmax + 1, (n_in, 7))
        np.testing.assert_array_equal(int8_route_forward(x, w), x @ w)


@pytest.mark.parametrize("classes", [2, 10, 100])
def test_int8_route_is_exact_at_the_largest_batch(classes: int) -> None:
    """§7.2's accumulator ``G = a^T d`` at the largest ``batch * C`` (16,512: ``|G| <= G_MAX``),
    ``a = 255``, ``|d| = C * 255``: the digit products, summed in wrapping int32, recombine to
    the exact value."""
    batch = spec.G_MAX // 65025 // classes
    assert spec.learning_bound_ok(batch, classes) and not spec.learning_bound_ok(batch + 1, classes)
    a = np.full((batch, 2), 255, np.int64)
    d = np.stack([np.full(batch, classes * 255), np.full(batch, -classes * 255)], 1)
    d0, d1 = delta_digits(d)
    assert d0.min() >= 0 and d0.max() <= 255 and -128 <= d1.min() and d1.max() <= 127
    with np.errstate(over="ignore"):
        g = wrapping_i32_product(a.T, d0) + (wrapping_i32_product(a.T, d1) << np.int32(8))
    want = a.T @ d
    assert np.abs(want).max() <= spec.G_MAX
    np.testing.assert_array_equal(g, want)


def test_fp32_chunks_at_the_bounds_and_one_past() -> None:
    """§3.4's chunk lengths keep every float32 partial sum exact at the extremes; one term more
    loses a bit where the terms are odd."""
    for x_max, term_max, limit in ((255, 64, 1028), (255, 256, 257), (255, 255, 258)):
        assert limit * x_max * term_max <= FP32_EXACT < (limit + 1) * x_max * term_max
        n = 3 * limit + 5
        a = np.full(n, x_max)
        for sign in (1, -1):
            b = np.full(n, sign * term_max)
            total, largest = fp32_chunked(a, b, limit)
            assert total == int(a @ b) and largest <= FP32_EXACT
    a, b = np.full(259, 255), np.full(259, 255)  # odd terms: 259 * 65025 > 2^24, not exact
    total, largest = fp32_chunked(a, b, 259)
    assert largest > FP32_EXACT and total != int(a @ b)


def test_operands_are_exact_in_fp16_and_bf16() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    values = np.concatenate([np.arange(256), [2.0**p for p in range(15)], -np.arange(65)])
    for dtype in (np.float16, ml_dtypes.bfloat16):
        np.testing.assert_array_equal(values.astype(dtype).astype(np.float64), values)
    assert float(np.float16(2049)) != 2049  # why d itself needs digits above 2048
