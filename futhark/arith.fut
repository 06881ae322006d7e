-- | Graia's arithmetic (docs/arithmetic.md): constants, the counter-based
-- hash, stochastic rounding, weight codes and the clamped activation.
--
-- Everything here is integer arithmetic; the constants are the same as in
-- `graia/spec.py`, and nothing else defines them.

-- | `L = 2**latent_one_bits` is a unit weight (§2).
def latent_one_bits : i32 = 20

-- | Latent weights are clamped to `[-latent_max, latent_max]` (§1).
def latent_max : i32 = (1 << (latent_one_bits + 1)) - 1

-- | The constant input of a layer's bias (§3): every patch's last entry
-- when the layer has one.
def bias_input : u8 = 255

-- | Stream id of the initialisation (§4).
def stream_init : i64 = 1

-- | Stream id of the sample order (§4).
def stream_permutation : i64 = 2

-- | Stream id of the DFA feedback matrices (§4).
def stream_feedback : i64 = 3

-- | Stream id of stochastic rounding in learning (§4).
def stream_rounding : i64 = 4

-- | Stream id of dropout in learning (§4, §7.2).
def stream_dropout : i64 = 5

-- | Stream id of the weight decay's rounding words (§4, §7.2).
def stream_decay : i64 = 8

-- | The learning accumulators and momenta are within `[-g_max, g_max]`
-- (§7.2), so that `G - M` and every step's term fit in i32.
def g_max : i32 = (1 << 30) - 1

-- | The 32-bit finaliser of §4: multiply-xorshift, u32 wrap-around.
#[inline]
def mix32 (x: u32) : u32 =
  let x = (x ^ (x >> 16)) * 0x7FEB352Du32
  let x = (x ^ (x >> 15)) * 0x846CA68Bu32
  in x ^ (x >> 16)

-- | `hash(key, word)` of §4; the word is taken modulo 2**32. Chain it for
-- more words: `hash (hash key w1) w2`.
#[inline]
def hash (key: u32) (word: i64) : u32 =
  mix32 (key ^ mix32 (u32.i64 word + 0x9E3779B9u32))

-- | The key of a 64-bit seed (§4): `hash(seed mod 2**32, seed >> 32)`, the
-- first link of every chain.
def seed_key (seed: u64) : u32 =
  hash (u32.u64 seed) (i64.u64 (seed >> 32))

-- | Unbiased stochastic rounding of `v >> s` with random bits `r` (§4):
-- `(v + (r & (2**s - 1))) >> s`, computed as `(v >> s)` plus the carry of
-- the low bits, which cannot overflow i32.
#[inline]
def sround (v: i32) (s: i32) (r: u32) : i32 =
  let mask = (1 << s) - 1
  in (v >> s) + (((v & mask) + (i32.u32 r & mask)) >> s)

-- | The sign of an integer: -1, 0 or 1.
#[inline]
def sign32 (v: i32) : i32 = i32.bool (v > 0) - i32.bool (v < 0)

-- | The `k` of §2 for `m = |L|`: the smallest `k >= 0` with
-- `m >= 3 * 2**(18 - k)` (more than 14 when `m < 3 * 2**4`, 147 for 0).
-- It is `20 - e - b` for `m = 2**e + ...` and `b` the bit below the
-- leading one; `m < 2**24` converts to f32 exactly, so the exponent field
-- and the mantissa's top bit give `e + b` in one 32-bit lane (no count of
-- leading zeros, which AVX2 lacks). The same bits as the integer spec:
-- `arith_tests.fut` checks every `m` below `2**21`.
#[inline]
def shift_of_magnitude (m: i32) : i32 =
  let top = i32.u32 (f32.to_bits (f32.i32 m) >> 22)
  in i32.max 0 (147 - ((top + 1) >> 1))

-- | Weight code of a latent weight (§2): `0` or `sign * (k + 1)` where
-- `2**-k` is the power of two nearest to `|L| / 2**20`, and `0` when
-- `L = 0` or `k > kmax`.
#[inline]
def code_of_latent (kmax: i32) (latent: i32) : i8 =
  let k = shift_of_magnitude (i32.abs latent)
  in if k > kmax
     then 0
     else if latent > 0 then i8.i32 (k + 1) else i8.i32 (-(k + 1))

-- | The latent weight whose code is `c` (§6): `sign(c) * 2**(20 - (|c| - 1))`,
-- and `0` for code `0`.
#[inline]
def canonical (c: i8) : i32 =
  if c == 0
  then 0
  else let m = 1 << (latent_one_bits - (i32.i8 (i8.abs c) - 1))
       in if c > 0 then m else -m

-- | The fixed-point weight of a code (§2): `sign * 2**(kmax - k)` for code
-- `sign * (k + 1)`, i.e. the weight times `2**kmax`; `0` for code `0`.
#[inline]
def fixed_weight (kmax: i32) (c: i8) : i32 =
  if c == 0
  then 0
  else let w = 1 << (kmax - (i32.i8 (i8.abs c) - 1))
       in if c > 0 then w else -w

-- | The fixed-point weight of a latent weight: `fixed_weight` of its code.
#[inline]
def weight_of_latent (kmax: i32) (latent: i32) : i32 =
  -- Branch-free (selects only), so that the update loops vectorise.
  let k = shift_of_magnitude (i32.abs latent)
  let w = if k > kmax then 0 else 1 << i32.max 0 (kmax - k)
  in if latent < 0 then -w else w

-- | The activation of an accumulator `z` (§3): `clamp(z >> shift, 0, 255)`.
#[inline]
def activate (shift: i32) (z: i32) : u8 =
  u8.i32 (i32.max 0 (i32.min 255 (z >> shift)))

-- | The clamp's slope (§7.2): `z > 0 and (z >> shift) < 255`.
#[inline]
def slope (shift: i32) (z: i32) : bool =
  z > 0 && (z >> shift) < 255

-- | Index of the largest value; ties go to the lowest index (§3).
def argmax [n] (a: [n]u8) : i64 =
  let m = u8.maximum a
  in i64.minimum (map2 (\i x -> if x == m then i else n) (iota n) a)
