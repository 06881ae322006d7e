"""The constants and host-side integer helpers of docs/arithmetic.md, in one place.

Everything here is integer arithmetic, jitted with Numba so that the Numba backend uses the very
same functions (the hash, stochastic rounding, code derivation). Host-side work that every backend
shares (initialisation, fixed feedback matrices, the sample order) is computed here once and
uploaded, so it cannot drift between backends.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: ``L = 2**LATENT_ONE_BITS`` is a unit weight (§2).
LATENT_ONE_BITS = 20
#: Latent weights are clamped to ``[-LATENT_MAX, LATENT_MAX]`` (§1).
LATENT_MAX = (1 << (LATENT_ONE_BITS + 1)) - 1
#: Largest supported ``kmax`` (shift of the smallest non-zero weight).
KMAX_LIMIT = 14
#: The constant input of a layer's bias (§3): every patch's last entry when the layer has one.
BIAS_INPUT = 255
#: Largest allowed intermediate integer (i32).
I32_MAX = (1 << 31) - 1
#: Learning accumulators and momenta lie in ``[-G_MAX, G_MAX]`` (§7.2), so that the step's
#: ``G - M`` and every term fit in i32.
G_MAX = (1 << 30) - 1
#: Largest ``beta1_shift`` and ``beta2_shift`` (§7.2): each rounding takes 16 bits of one word.
BETA_SHIFT_MAX = 16

STREAM_INIT = 1
STREAM_PERMUTATION = 2
STREAM_FEEDBACK = 3
STREAM_ROUNDING = 4
STREAM_DROPOUT = 5
STREAM_AUGMENT = 6
STREAM_WEIGHTS = 7
STREAM_DECAY = 8

#: Fractional bits of a float input in the fixed point of §8 (``q = rne(x * 2**16)``).
PRE_FRACTION_BITS = 16
#: ``|q|`` saturates at ``2**46`` (§8), so ``q * m + b`` stays within i64.
PRE_Q_MAX = 1 << 46
#: Bounds of a preprocessing layer's integers (§8): ``|m| <= 2**15``, ``0 <= s <= 54``,
#: ``|b| <= 2**61``.
PRE_MULTIPLIER_MAX = 1 << 15
PRE_SHIFT_MAX = 54
PRE_BIAS_MAX = 1 << 61
#: Fractional bits of a sample weight (§5.1).
WEIGHT_FRACTION_BITS = 16
#: Largest sample weight (§5.1), so that the fixed-point weights sum within i64.
WEIGHT_MAX = 1 << 16

_GOLDEN = np.uint64(0x9E3779B9)
_MUL1 = np.uint64(0x7FEB352D)
_MUL2 = np.uint64(0x846CA68B)
_LOW32 = np.uint64(0xFFFFFFFF)
_S15 = np.uint64(15)
_S16 = np.uint64(16)
_S32 = np.uint64(32)


@njit(cache=True, inline="always")
def mix32(x: np.uint64) -> np.uint64:
    """The 32-bit multiply-xorshift finaliser of §4 on a word below ``2**32`` (u32 wrap-around,
    computed in u64 and cut to 32 bits after each multiply)."""
    x = ((x ^ (x >> _S16)) * _MUL1) & _LOW32
    x = ((x ^ (x >> _S15)) * _MUL2) & _LOW32
    return x ^ (x >> _S16)


@njit(cache=True, inline="always")
def hash2(key: np.uint64, word: np.int64) -> np.uint64:
    """``hash(key, word)`` of §4 (a u32 value), the word taken modulo ``2**32``; chain it for
    more words."""
    return mix32(key ^ mix32((np.uint64(word) + _GOLDEN) & _LOW32))


@njit(cache=True, inline="always")
def seed_key(seed: np.uint64) -> np.uint64:
    """The first link of every chain of §4: ``hash(seed mod 2**32, seed >> 32)``."""
    return hash2(seed & _LOW32, np.int64(seed >> _S32))


@njit(cache=True, inline="always")
def sround(v: np.int64, s: np.int64, r: np.uint64) -> np.int64:
    """Unbiased stochastic rounding of ``v / 2**s`` with random bits ``r`` (§4):
    ``(v + (r mod 2**s)) >> s``."""
    mask = (np.uint64(1) << np.uint64(s)) - np.uint64(1)
    return (v + np.int64(r & mask)) >> s


@njit(cache=True, inline="always")
def bit_length(m: np.int64) -> np.int64:
    """Number of bits of a non-negative integer (0 for 0)."""
    b = 0
    while m > 0:
        m >>= 1
        b += 1
    return b


@njit(cache=True, inline="always")
def code_of_latent(latent: np.int64, kmax: np.int64) -> np.int64:
    """Weight code of a latent weight (§2): 0 or ``sign * (k + 1)``, nearest power of two."""
    m = abs(latent)
    for k in range(kmax + 1):
        if m >= 3 << (LATENT_ONE_BITS - 2 - k):
            return k + 1 if latent > 0 else -(k + 1)
    return 0


@njit(cache=True, inline="always")
def fixed_weight(code: np.int64, kmax: np.int64) -> np.int64:
    """The code as the fixed-point integer ``sign * 2**(kmax - k)`` (§2)."""
    if code == 0:
        return 0
    k = abs(code) - 1
    w = 1 << (kmax - k)
    return w if code > 0 else -w


@njit(cache=True, inline="always")
def canonical_latent(code: np.int64) -> np.int64:
    """The latent weight whose code is ``code`` (§6)."""
    if code == 0:
        return 0
    m = 1 << (LATENT_ONE_BITS - (abs(code) - 1))
    return m if code > 0 else -m


@njit(cache=True)
def codes_of_latents(latent: np.ndarray, kmax: int) -> np.ndarray:
    """Codes (i8) of an array of latent weights."""
    flat = latent.ravel()
    out = np.empty(flat.size, np.int8)
    for q in range(flat.size):
        out[q] = code_of_latent(np.int64(flat[q]), kmax)
    return out.reshape(latent.shape)


@njit(cache=True)
def rounding_key(seed: np.uint64, layer: int, step: int) -> np.uint64:
    """``hash(seed, STREAM_ROUNDING, layer, t)``: the key of one layer's rounding bits at step t."""
    return hash2(hash2(hash2(seed_key(seed), STREAM_ROUNDING), layer), step)


@njit(cache=True)
def dropout_key(seed: np.uint64, layer: int, step: int) -> np.uint64:
    """``hash(seed, STREAM_DROPOUT, layer, t)``: the key of one layer's dropout bits at step t."""
    return hash2(hash2(hash2(seed_key(seed), STREAM_DROPOUT), layer), step)


@njit(cache=True)
def decay_key(seed: np.uint64, layer: int, step: int) -> np.uint64:
    """``hash(seed, STREAM_DECAY, layer, t)``: the key of one layer's weight-decay words at step
    t (§7.2)."""
    return hash2(hash2(hash2(seed_key(seed), STREAM_DECAY), layer), step)


@njit(cache=True)
def augment_keys(seed: np.uint64, layer: int, epoch: int, n: int) -> np.ndarray:
    """``hash(seed, STREAM_AUGMENT, layer, e, i)`` for samples ``i = 0..n-1`` (§4.1): the random
    word ``r`` of each training sample's transform by augmentation layer ``layer`` in epoch
    ``e``, and its second word ``hash(seed, STREAM_AUGMENT, layer, e, i, 1)``, packed as
    ``r + 2**32 * second``."""
    key = hash2(hash2(hash2(seed_key(seed), STREAM_AUGMENT), layer), epoch)
    out = np.empty(n, np.uint64)
    for i in range(n):
        r = hash2(key, i)
        out[i] = r | (hash2(r, 1) << _S32)
    return out


@njit(cache=True)
def _feistel(i: np.int64, key: np.uint64, half_bits: np.int64) -> np.int64:
    mask = (1 << half_bits) - 1
    left = i >> half_bits
    right = i & mask
    for rnd in range(4):
        f = np.int64(hash2(hash2(key, rnd), right) & np.uint64(mask))
        left, right = right, left ^ f
    return (left << half_bits) | right


@njit(cache=True)
def permutation(n: int, seed: np.uint64, epoch: int) -> np.ndarray:
    """The sample order of epoch ``epoch`` (§5): a bijection of ``0..n-1`` as i32."""
    out = np.empty(n, np.int32)
    half_bits = max(1, (bit_length(max(n - 1, 0)) + 1) // 2)
    key = hash2(hash2(seed_key(seed), STREAM_PERMUTATION), epoch)
    for i in range(n):
        v = _feistel(i, key, half_bits)
        while v >= n:
            v = _feistel(v, key, half_bits)
        out[i] = v
    return out


@njit(cache=True)
def _init_uniform(seed: np.uint64, layer: int, n_in: int, n_out: int, bound: int) -> np.ndarray:
    key = hash2(hash2(seed_key(seed), STREAM_INIT), layer)
    out = np.empty(n_in * n_out, np.int32)
    span = np.uint64(2 * bound + 1)
    for q in range(n_in * n_out):
        out[q] = np.int64(hash2(key, q) % span) - bound
    return out


@njit(cache=True)
def _init_codes(seed: np.uint64, layer: int, n_in: int, n_out: int, kmax: int) -> np.ndarray:
    key = hash2(hash2(seed_key(seed), STREAM_INIT), layer)
    out = np.empty(n_in * n_out, np.int32)
    n = kmax + 1
    for q in range(n_in * n_out):
        u = np.int64(hash2(key, q) % np.uint64(2 * n))
        out[q] = canonical_latent(u + 1 if u < n else kmax - u)
    return out


def init_bound(n_in: int) -> int:
    """Half-width ``A`` of the uniform initialisation (§6)."""
    import math

    return math.isqrt((3 << (2 * LATENT_ONE_BITS)) // n_in)


def init_latent(
    seed: int, layer: int, n_in: int, n_out: int, kmax: int, initializer: str, bias: bool = False
) -> np.ndarray:
    """Initial latent weights of one layer, flat row-major ``(n_in, n_out)`` i32 (§6); with a
    ``bias``, its row (the last of the ``n_in``) starts at 0."""
    s = np.uint64(seed)
    if initializer == "uniform":
        latent = _init_uniform(s, layer, n_in, n_out, init_bound(n_in))
    elif initializer == "codes":
        latent = _init_codes(s, layer, n_in, n_out, kmax)
    else:
        raise ValueError(f"unknown initializer {initializer!r}")
    if bias:
        latent[(n_in - 1) * n_out :] = 0
    return latent


@njit(cache=True)
def feedback_matrix(seed: np.uint64, layer: int, n_out: int, classes: int) -> np.ndarray:
    """The fixed ternary DFA feedback ``B_l`` (§7.2), flat row-major ``(n_out, classes)`` i8."""
    key = hash2(hash2(seed_key(seed), STREAM_FEEDBACK), layer)
    out = np.empty(n_out * classes, np.int8)
    for q in range(n_out * classes):
        out[q] = np.int64(hash2(key, q) % np.uint64(3)) - 1
    return out


def within(values: np.ndarray, bound: int) -> bool:
    """Whether every integer in ``values`` lies in ``-bound..bound`` (an empty array does)."""
    return values.size == 0 or (-bound <= int(values.min()) and int(values.max()) <= bound)


def forward_bound_ok(n_in: int, kmax: int) -> bool:
    """§3's no-overflow bound for one dense layer."""
    return n_in * 255 * (1 << kmax) <= I32_MAX


def learning_bound_ok(batch_size: int, classes: int) -> bool:
    """§7.2's bound on the learning accumulator: ``|G| <= G_MAX``."""
    return batch_size * classes * 255 * 255 <= G_MAX


def input_fixed(x: np.ndarray) -> np.ndarray:
    """§8's one float-to-integer step: ``q = rne(x * 2**16)`` saturated to ``±2**46``, i64.

    Floats are widened to f64 (exact), scaled by a power of two (exact) and rounded half to even;
    integers are saturated first and shifted, which gives the same values."""
    if x.dtype.kind in "iu":
        limit = PRE_Q_MAX >> PRE_FRACTION_BITS
        return np.clip(x, -limit, limit).astype(np.int64) << PRE_FRACTION_BITS
    v = np.ldexp(x.astype(np.float64), PRE_FRACTION_BITS)
    return np.rint(np.clip(v, -float(PRE_Q_MAX), float(PRE_Q_MAX))).astype(np.int64)


def preprocess(
    q: np.ndarray, multiplier: np.ndarray, bias: np.ndarray, shift: np.ndarray
) -> np.ndarray:
    """§8's integer affine map: ``clamp((q * m + b) >> s, 0, 255)`` per channel, u8.

    ``q`` is i64 ``(n, features)``; the per-channel integers (``C`` of them, ``C`` dividing
    ``features``) apply to feature ``f``'s channel ``f mod C``."""
    n, features = q.shape
    c = len(multiplier)
    v = q.reshape(n, features // c, c) * multiplier.astype(np.int64) + bias.astype(np.int64)
    a = np.clip(np.right_shift(v, shift.astype(np.int64)), 0, 255)
    return a.reshape(n, features).astype(np.uint8)


def affine_integers(scale: np.ndarray, offset: np.ndarray) -> tuple[np.ndarray, ...]:
    """The integers ``(m, b, s)`` of §8 for the map ``u8 = round(x * scale + offset)`` (one
    entry per channel; floats, finite, ``|scale| < 2**31``, ``|offset| < 2**40``)."""
    scale = np.asarray(scale, np.float64)
    offset = np.asarray(offset, np.float64)
    m = np.zeros(scale.shape, np.int64)
    b = np.zeros(scale.shape, np.int64)
    s = np.zeros(scale.shape, np.int64)
    for c, (sc, off) in enumerate(zip(scale.tolist(), offset.tolist())):
        # The most precise shift that keeps |m| <= 2**15 and |b| <= 2**61.
        shift = PRE_SHIFT_MAX
        if sc != 0.0:
            shift = min(shift, PRE_FRACTION_BITS + 15 - math.frexp(sc)[1])
        if off + 0.5 != 0.0:
            shift = min(shift, 60 - math.frexp(off + 0.5)[1])
        shift = max(shift, 0)
        m[c] = round(math.ldexp(sc, shift - PRE_FRACTION_BITS))
        b[c] = round(math.ldexp(off + 0.5, shift))
        s[c] = shift
    return m, b, s


@njit(cache=True)
def weighted_counts(v: np.ndarray, seed: np.uint64, epoch: int) -> np.ndarray:
    """Copies of each sample in epoch ``epoch`` (§5.1): ``floor(v_i)`` plus one more when the
    16-bit draw ``hash(seed, STREAM_WEIGHTS, e, i) mod 2**16`` is below ``frac(v_i)``; ``v`` is
    the normalised weights in 16-bit fixed point (i64)."""
    key = hash2(hash2(seed_key(seed), STREAM_WEIGHTS), epoch)
    out = np.empty(v.size, np.int64)
    mask = (1 << WEIGHT_FRACTION_BITS) - 1
    for i in range(v.size):
        draw = np.int64(hash2(key, i) & np.uint64(mask))
        out[i] = (v[i] >> WEIGHT_FRACTION_BITS) + (1 if draw < (v[i] & mask) else 0)
    return out


def normalised_weights(f: np.ndarray) -> np.ndarray:
    """§5.1's ``v_i = floor(f_i * n * 2**16 / sum f)`` of the fixed-point weights ``f`` (i64,
    non-negative, not all zero), exact (Python integers)."""
    total = int(f.sum(dtype=object))
    scaled = f.astype(object) * (len(f) << WEIGHT_FRACTION_BITS) // total
    return scaled.astype(np.int64)
