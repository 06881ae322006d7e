-- | Tests of `dfa.fut` (`futhark test`): entry points on small
-- inputs with the expected values of docs/arithmetic.md.

import "dfa"

-- ==
-- entry: test_dfa_synapse
-- input { [0, 100, -100, 0, 1000000] [0, 0, 0, 2097151, 0] [0, 0, 0, 0, 50]
--         [0u64, 0u64, 0u64, 0u64, 18446744073709551615u64] }
-- output { [0, -32, 32, 2097151, -32] [0, 0, -1, 0, 7863] }
entry test_dfa_synapse [n] (g: [n]i32) (lat: [n]i32) (mom: [n]i32) (r: [n]u64) : ([n]i32, [n]i32) =
  let p =
    { step = 32
    , beta1_shift = 3
    , beta2_shift = 7
    , decay_shift = 0
    , target_on = 255
    , target_off = 0
    , dropout = 0
    , head_shift = 0
    }
  in unzip (map4 (dfa_synapse p) r g lat mom)

-- ==
-- entry: test_feedback_delta
-- input { [[1i8, -1i8], [0i8, 1i8], [1i8, 1i8]] [[3, -5]] }
-- output { [[8, -5, -2]] }
entry test_feedback_delta [o] [c] [b] (fb: [o][c]i8) (e: [b][c]i32) : [b][o]i32 =
  feedback_delta fb e

-- ==
-- entry: test_local_head_error
-- input { 2 [[1i8, -1i8], [0i8, 1i8], [1i8, 1i8]]
--         [[40u8, 8u8, 4u8], [255u8, 255u8, 255u8], [0u8, 200u8, 0u8]]
--         [0, 1, 1] }
-- output { [[-244, 0], [127, -192], [0, -205]] }
-- input { 0 [[1i8, -1i8], [0i8, 1i8], [1i8, 1i8]]
--         [[40u8, 8u8, 4u8], [255u8, 255u8, 255u8], [0u8, 200u8, 0u8]]
--         [0, 1, 1] }
-- output { [[-211, 0], [255, 0], [0, -55]] }
entry test_local_head_error [n] [c] [b] (head_shift: i32) (fb: [n][c]i8) (a: [b][n]u8) (labels: [b]i32) : [b][c]i32 =
  local_head_error head_shift 255 0 fb a labels

-- ==
-- entry: test_layer_head_shifts
-- input { [256i64, 3i64, 7i64, 0i64, 255i64, 0i64, 77i64, 8i64] }
-- output { [8, 8, 8] }
-- input { [256i64, 3i64, 7i64, 0i64, 255i64, 0i64, 77i64, 8i64, 5i64, 3i64] }
-- output { [8, 5, 3] }
-- input { [256i64, 3i64, 7i64, 0i64, 255i64, 0i64, 77i64, 8i64, 5i64] }
-- output { [8, 5, 5] }
entry test_layer_head_shifts [p] (params: [p]i64) : [3]i32 =
  map (\l -> (dfa_layer_params params l).head_shift) (iota 3)
