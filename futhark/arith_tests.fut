-- | Tests of `arith.fut` (`futhark test`): entry points on small
-- inputs with the expected values of docs/arithmetic.md.

import "arith"

-- ==
-- entry: test_mix32
-- input { [0u32, 1u32, 2u32, 4294967295u32, 123456789u32] }
-- output { [0u32, 1753845952u32, 3507691905u32, 1734902346u32, 2834422664u32] }
entry test_mix32 (x: []u32) : []u32 = map mix32 x

-- ==
-- entry: test_hash
-- input { [0u32, 42u32, 42u32] [0i64, 1i64, -1i64] }
-- output { [2926543089u32, 2169436463u32, 1373177991u32] }
entry test_hash [n] (keys: [n]u32) (words: [n]i64) : [n]u32 = map2 hash keys words

-- ==
-- entry: test_hash_chain
-- input { 7u64 } output { 869972953u32 881876708u32 }
-- input { 1099511627781u64 } output { 1124979530u32 1994302127u32 }
entry test_hash_chain (seed: u64) : (u32, u32) =
  let k = seed_key seed
  in (k, hash (hash (hash k 4) 1) 3)

-- ==
-- entry: test_sround
-- input { [7, -7, 7, 5, 100, 2147483647, -2147483647] [1, 1, 1, 0, 3, 16, 16] [0u32, 0u32, 1u32, 99u32, 7u32, 65535u32, 65535u32] }
-- output { [3, -4, 4, 5, 13, 32768, -32767] }
entry test_sround [n] (v: [n]i32) (s: [n]i32) (r: [n]u32) : [n]i32 =
  map3 sround v s r

-- The weight code's shift from the float exponent equals the integer spec
-- of §2 (the smallest `k` with `m >= 3 * 2**(18 - k)`) for every `m` below
-- `2**21`.
-- ==
-- entry: test_shift_of_magnitude
-- input { } output { true }
entry test_shift_of_magnitude : bool =
  let spec m = loop k = 0 while k <= 14 && m < 3 << (18 - k) do k + 1
  in all (\m ->
            let k = shift_of_magnitude m
            in if k > 14 then spec m == 15 else spec m == k)
         (map i32.i64 (iota (1 << 21)))

-- ==
-- entry: test_code_of_latent
-- input { 8 [0, 1048576, -1048576, 786432, 786431, 524288, 2097151, 6144, 6143, 4096, 3072, -3071, -3] }
-- output { [0i8, 1i8, -1i8, 1i8, 2i8, 2i8, 1i8, 8i8, 9i8, 9i8, 9i8, 0i8, 0i8] }
-- input { 0 [1048576, 786432, 786431, -2097151] }
-- output { [1i8, 1i8, 0i8, -1i8] }
entry test_code_of_latent (kmax: i32) (latent: []i32) : []i8 =
  map (code_of_latent kmax) latent

-- ==
-- entry: test_canonical_roundtrip
-- input { 14 } output { true }
-- input { 0 } output { true }
entry test_canonical_roundtrip (kmax: i32) : bool =
  let codes =
    map (\i -> i8.i64 i - i8.i32 (kmax + 1)) (iota (i64.i32 (2 * kmax + 3)))
  in all (\c -> code_of_latent kmax (canonical c) == c) codes

-- ==
-- entry: test_fixed_weight
-- input { 8 [0i8, 1i8, -1i8, 9i8, -3i8] } output { [0, 256, -256, 1, -64] }
entry test_fixed_weight (kmax: i32) (codes: []i8) : []i32 =
  map (fixed_weight kmax) codes

-- ==
-- entry: test_activate
-- input { 2 [-5, 0, 3, 4, 1023, 1024, 5000] } output { [0u8, 0u8, 0u8, 1u8, 255u8, 255u8, 255u8] }
entry test_activate (shift: i32) (z: []i32) : []u8 = map (activate shift) z

-- ==
-- entry: test_argmax
-- input { [3u8, 7u8, 7u8, 1u8] } output { 1i64 }
-- input { [0u8, 0u8, 0u8] } output { 0i64 }
entry test_argmax (a: []u8) : i64 = argmax a
