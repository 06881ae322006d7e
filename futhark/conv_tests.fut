-- | Tests of `conv.fut` (`futhark test`): entry points on small
-- inputs with the expected values of docs/arithmetic.md.

import "conv"
import "host"

-- ==
-- entry: test_patches
-- input { [3i64, 3i64, 1i64, 2i64, 2i64, 1i64, 1i64, 0i64, 0i64, 2i64, 2i64, 1i64, 0i64, 1i64, 1i64, 0i64]
--         [[1u8, 2u8, 3u8, 4u8, 5u8, 6u8, 7u8, 8u8, 9u8]] }
-- output { [[1u8, 2u8, 4u8, 5u8], [2u8, 3u8, 5u8, 6u8], [4u8, 5u8, 7u8, 8u8], [5u8, 6u8, 8u8, 9u8]] }
-- input { [2i64, 2i64, 1i64, 3i64, 3i64, 2i64, 2i64, 1i64, 1i64, 1i64, 1i64, 1i64, 0i64, 1i64, 1i64, 0i64]
--         [[1u8, 2u8, 3u8, 4u8]] }
-- output { [[0u8, 0u8, 0u8, 0u8, 1u8, 2u8, 0u8, 3u8, 4u8]] }
-- input { [2i64, 2i64, 1i64, 3i64, 3i64, 2i64, 2i64, 1i64, 1i64, 1i64, 1i64, 1i64, 0i64, 1i64, 1i64, 1i64]
--         [[1u8, 2u8, 3u8, 4u8]] }
-- output { [[0u8, 0u8, 0u8, 0u8, 1u8, 2u8, 0u8, 3u8, 4u8, 255u8]] }
entry test_patches [b] [n] (row: geometry_row) (x: [b][n]u8) : [][]u8 =
  let g = geometry_of row
  in patches g (g.k_h * g.k_w * g.in_c + g.bias) x

-- ==
-- entry: test_dense_rows
-- input { 2i64 [[1u8, 2u8], [3u8, 4u8]] }
-- output { [[1u8, 2u8], [3u8, 4u8]] }
-- input { 3i64 [[1u8, 2u8], [3u8, 4u8]] }
-- output { [[1u8, 2u8, 255u8], [3u8, 4u8, 255u8]] }
entry test_dense_rows [b] [n] (k: i64) (x: [b][n]u8) : [b][k]u8 =
  dense_rows k x

-- ==
-- entry: test_pool
-- input { 1i64 [[1u8], [7u8], [7u8], [2u8], [0u8], [0u8], [3u8], [3u8], [9u8]] }
-- output { [[7u8]] [[1]] }
-- input { 2i64 [[1u8], [7u8], [7u8], [2u8], [0u8], [0u8], [3u8], [3u8], [9u8]] }
-- output { [[2u8]] [[0]] }
entry test_pool [r] (kind: i64) (a: [r][1]u8) : ([][]u8, [][]i32) =
  let g =
    { in_h = 3
    , in_w = 3
    , in_c = 1
    , k_h = 1
    , k_w = 1
    , stride_h = 1
    , stride_w = 1
    , pad_top = 0
    , pad_left = 0
    , out_h = 3
    , out_w = 3
    , out_c = 1
    , pool = kind
    , pool_h = 2
    , pool_w = 2
    , bias = 0
    }
  in pool g 1 a
