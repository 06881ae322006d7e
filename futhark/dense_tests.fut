-- | Tests of `dense.fut` (`futhark test`): entry points on inputs they
-- generate, checking that the forms of a product give the same sums.

import "arith"
import "dense"

-- ==
-- entry: test_accumulate_exact_forms
-- input { 1500i64 64i64 64i64 } output { true }
-- input { 2048i64 96i64 48i64 } output { true }
-- input { 700i64 64i64 64i64 } output { true }
-- input { 1100i64 9i64 64i64 } output { true }
entry test_accumulate_exact_forms (r: i64) (k: i64) (m: i64) : bool =
  -- Activations in 0..255 and deltas of up to 2^24 in magnitude, so that
  -- the sums leave the i32 range.
  let a = tabulate_2d r k (\s i -> u8.u32 (hash 1 (s * k + i)))
  let d = tabulate_2d r m (\s h -> i32.u32 (hash 2 (s * m + h) % (1 << 25)) - (1 << 24))
  let gpu = accumulate_exact {cpu = false} a d
  let cpu = accumulate_exact {cpu = true} a d
  in and (map2 (\g c -> and (map2 (==) g c)) gpu cpu)
     && any (any (\v -> v > i64.i32 i32.highest || v < i64.i32 i32.lowest)) gpu

-- ==
-- entry: test_forward_z_forms
-- input { 64i64 784i64 512i64 } output { true }
-- input { 33i64 787i64 70i64 } output { true }
-- input { 5i64 3i64 10i64 } output { true }
entry test_forward_z_forms (b: i64) (n: i64) (m: i64) : bool =
  -- Activations of which a third are zero (so that some groups of four
  -- are skipped whole) and weights of every power of two up to 2^8 with
  -- either sign, or zero.
  let x = tabulate_2d b n (\s i -> let v = hash 3 (s * n + i) in if v % 3 == 0 then 0 else u8.u32 (v >> 8))
  let w =
    tabulate_2d n m (\i j ->
                       let v = hash 4 (i * m + j)
                       in if v % 5 == 0 then 0 else (if v & 16 == 0 then 1 else -1) * (1 << i32.u32 ((v >> 8) % 9)))
  let cpu = forward_z {cpu = true} x w
  let gpu = forward_z {cpu = false} x w
  in and (map2 (\g c -> and (map2 (==) g c)) gpu cpu)
