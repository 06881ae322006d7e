-- | Tests of `arith.fut` (`futhark test`): entry points on small
-- inputs with the expected values of docs/arithmetic.md.

import "arith"

-- ==
-- entry: test_mix64
-- input { [0u64, 1u64, 2u64, 18446744073709551615u64, 12345678901234567u64] }
-- output { [0u64, 6238072747940578789u64, 15839785061582574730u64, 13029008266876403067u64, 8721909405978493183u64] }
entry test_mix64 (x: []u64) : []u64 = map mix64 x

-- ==
-- entry: test_hash
-- input { [0u64, 42u64, 42u64] [0i64, 1i64, -1i64] }
-- output { [5197578548964807871u64, 12234890524640051791u64, 993793526316216462u64] }
entry test_hash [n] (keys: [n]u64) (words: [n]i64) : [n]u64 = map2 hash keys words

-- ==
-- entry: test_hash_chain
-- input { 7u64 } output { 1773375945091775575u64 }
entry test_hash_chain (seed: u64) : u64 = hash (hash (hash seed 4) 1) 3

-- ==
-- entry: test_sround
-- input { [7i64, -7i64, 7i64, 5i64, 100i64] [1, 1, 1, 0, 3] [0u64, 0u64, 1u64, 99u64, 7u64] }
-- output { [3i64, -4i64, 4i64, 5i64, 13i64] }
entry test_sround [n] (v: [n]i64) (s: [n]i32) (r: [n]u64) : [n]i64 =
  map3 sround v s r

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
