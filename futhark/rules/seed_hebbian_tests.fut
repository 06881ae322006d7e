-- | Tests of `seed_hebbian.fut` (`futhark test`): entry points on small
-- inputs with the expected values of docs/arithmetic.md.

import "seed_hebbian"

-- ==
-- entry: test_seed_step
-- input { 9i8 [1i8, 2i8, 9i8, -1i8, -2i8, -9i8, 0i8] }
-- output { [1i8, 1i8, 8i8, -2i8, -3i8, 8i8, 0i8] [2i8, 3i8, -8i8, -1i8, -1i8, -8i8, 0i8] }
-- input { 1i8 [1i8, -1i8, 0i8] }
-- output { [1i8, 0i8, 0i8] [0i8, -1i8, 0i8] }
entry test_seed_step (n: i8) (codes: []i8) : ([]i8, []i8) =
  (map (seed_step n true) codes, map (seed_step n false) codes)
