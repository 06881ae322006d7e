-- | Tests of `dfa.fut` (`futhark test`): entry points on small
-- inputs with the expected values of docs/arithmetic.md.

import "dfa"
import "../host"

-- ==
-- entry: test_dfa_synapse
-- input { [0, 100, -100, 0, 1000000] [0, 0, 0, 2097151, 0] [0, 0, 0, 0, 50]
--         [0u32, 0u32, 0u32, 0u32, 4294967295u32] }
-- output { [0, -32, 32, 2097151, -32] [0, 0, -1, 0, 7863] }
entry test_dfa_synapse [n] (g: [n]i32) (lat: [n]i32) (mom: [n]i32) (r: [n]u32) : ([n]i32, [n]i32) =
  let p =
    { step = 32
    , beta1_shift = 3
    , beta2_shift = 7
    , decay_shift = 0
    , target_on = 255
    , target_off = 0
    , dropout = 0
    , head_step = 0
    , head_kmax = 0
    , head_shift = 0
    }
  in unzip (map4 (\rq -> dfa_synapse p false rq 0) r g lat mom)

-- ==
-- entry: test_feedback_delta test_feedback_delta_cpu
-- input { [[1i8, -1i8], [0i8, 1i8], [1i8, 1i8]] [[3, -5]] }
-- output { [[8, -5, -2]] }
-- input { [[-128i8, 127i8], [1i8, 0i8], [0i8, 0i8], [-1i8, -1i8]] [[3, -5], [0, 7]] }
-- output { [[-1019, 3, 0, 2], [889, 0, 0, -7]] }
entry test_feedback_delta [o] [c] [b] (fb: [o][c]i8) (e: [b][c]i32) : [b][o]i32 =
  feedback_delta {cpu = false} fb e

entry test_feedback_delta_cpu [o] [c] [b] (fb: [o][c]i8) (e: [b][c]i32) : [b][o]i32 =
  feedback_delta {cpu = true} fb e
