-- | Tests of `local_heads.fut` (`futhark test`): entry points on small
-- inputs with the expected values of docs/arithmetic.md.

import "local_heads"
import "../host"

-- A head's error is the same for weights `W` with `head_kmax = 0` and for
-- `W * 2^k` with `head_kmax = k` (the head's sums are shifted by `k` more).
-- ==
-- entry: test_local_head_error
-- input { 2 0 [[1, -1], [0, 1], [1, 1]]
--         [[40u8, 8u8, 4u8], [255u8, 255u8, 255u8], [0u8, 200u8, 0u8]]
--         [0, 1, 1] }
-- output { [[-244, 0], [127, -192], [0, -205]] }
-- input { 2 3 [[8, -8], [0, 8], [8, 8]]
--         [[40u8, 8u8, 4u8], [255u8, 255u8, 255u8], [0u8, 200u8, 0u8]]
--         [0, 1, 1] }
-- output { [[-244, 0], [127, -192], [0, -205]] }
-- input { 0 0 [[1, -1], [0, 1], [1, 1]]
--         [[40u8, 8u8, 4u8], [255u8, 255u8, 255u8], [0u8, 200u8, 0u8]]
--         [0, 1, 1] }
-- output { [[-211, 0], [255, 0], [0, -55]] }
entry test_local_head_error [n] [c] [b] (head_shift: i32) (head_kmax: i32) (w: [n][c]i32) (a: [b][n]u8) (labels: [b]i32) : [b][c]i32 =
  let p = rule_params_of [256, 3, 7, 0, 255, 0, 0, 0, i64.i32 head_kmax, i64.i32 head_shift]
  in local_head_error p w a labels

-- ==
-- entry: test_layer_head_shifts
-- input { [256i64, 3i64, 7i64, 0i64, 255i64, 0i64, 77i64, 0i64, 4i64, 8i64] }
-- output { [8, 8, 8] }
-- input { [256i64, 3i64, 7i64, 0i64, 255i64, 0i64, 77i64, 0i64, 4i64, 8i64, 5i64, 3i64] }
-- output { [8, 5, 3] }
-- input { [256i64, 3i64, 7i64, 0i64, 255i64, 0i64, 77i64, 0i64, 4i64, 8i64, 5i64] }
-- output { [8, 5, 5] }
entry test_layer_head_shifts [p] (params: [p]i64) : [3]i32 =
  map (\l -> (rule_layer_params params l).head_shift) (iota 3)

-- With both beta shifts 0 a head weight's momentum becomes its sum
-- `G = a^T err` and its latent moves by `head_step` against the sign of
-- `G` (§7.2, §7.4); with `head_step = 0` the head does not change.
-- ==
-- entry: test_head_update
-- input { 32i64 [[1048576, -1048576], [0, 1048576]] [[2u8, 0u8], [1u8, 3u8]] [[3, -1], [-4, 0]] }
-- output { [[1048544, -1048544], [32, 1048576]] [[2, -2], [-12, 0]] }
-- input { 0i64 [[1048576, -1048576], [0, 1048576]] [[2u8, 0u8], [1u8, 3u8]] [[3, -1], [-4, 0]] }
-- output { [[1048576, -1048576], [0, 1048576]] [[0, 0], [0, 0]] }
entry test_head_update [n] [c] [b] (head_step: i64) (latent: [n][c]i32) (a: [b][n]u8) (err: [b][c]i32) : ([n][c]i32, [n][c]i32) =
  let p = rule_params_of [256, 0, 0, 0, 255, 0, 0, head_step, 4, 0]
  let h = {latent, momentum = map (map (const 0)) latent}
  let h' = head_update {cpu = true} true p 7 0 2 0 h 0 a err
  in (h'.latent, h'.momentum)
