-- | Graia's arithmetic (docs/arithmetic.md): constants, the counter-based
-- hash, stochastic rounding, weight codes and the clamped activation.
--
-- Everything here is integer arithmetic; the constants are the same as in
-- `graia/spec.py`, and nothing else defines them.

-- | `L = 2**latent_one_bits` is a unit weight (§2).
def latent_one_bits : i32 = 20

-- | Latent weights are clamped to `[-latent_max, latent_max]` (§1).
def latent_max : i32 = (1 << (latent_one_bits + 1)) - 1

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

-- | SplitMix64's finaliser, u64 wrap-around (§4).
#[inline]
def mix64 (x: u64) : u64 =
  let x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9u64
  let x = (x ^ (x >> 27)) * 0x94D049BB133111EBu64
  in x ^ (x >> 31)

-- | `hash(key, word)` of §4; the word is taken as u64 by two's complement.
-- Chain it for more words: `hash (hash seed w1) w2`.
#[inline]
def hash (key: u64) (word: i64) : u64 =
  mix64 (key ^ mix64 (u64.i64 word + 0x9E3779B97F4A7C15u64))

-- | Unbiased stochastic rounding of `v >> s` with random bits `r` (§4):
-- `(v + (r & (2**s - 1))) >> s`, an arithmetic (floor) shift.
#[inline]
def sround (v: i64) (s: i32) (r: u64) : i64 =
  let mask = (1u64 << u64.i32 s) - 1
  in (v + i64.u64 (r & mask)) >> i64.i32 s

-- | The sign of an integer: -1, 0 or 1.
#[inline]
def sign64 (v: i64) : i64 = i64.bool (v > 0) - i64.bool (v < 0)

-- | Number of bits of a non-negative integer (0 for 0).
#[inline]
def bit_length (m: i64) : i32 = 64 - i64.clz m

-- | Weight code of a latent weight (§2): `0` or `sign * (k + 1)` where
-- `2**-k` is the power of two nearest to `|L| / 2**20`, and `0` when
-- `L = 0` or `k > kmax`.
#[inline]
def code_of_latent (kmax: i32) (latent: i32) : i8 =
  let m = i64.abs (i64.i32 latent)
  let b = bit_length m
  let e = b + (if b >= 2 then i32.i64 ((m >> i64.i32 (b - 2)) & 1) else 0)
  let k = i32.max 0 (latent_one_bits + 1 - e)
  in if m == 0 || k > kmax
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
  fixed_weight kmax (code_of_latent kmax latent)

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
