-- | Tests of the entry points of `graia.fut` (whose state is opaque): each
-- helper loads a state, calls entry points and returns plain arrays. The
-- expected values in `data/` come from the Numba oracle
-- (`graia/backends/numba.py`).

import "../graia"

-- | Test helper: `load_state`, one `train_epoch`, then the latents,
-- momenta and counters of the result with the epoch's metrics; once with
-- the GPU forms of the matrix products, once with the CPU forms.
-- ==
-- entry: test_train_epoch
-- input @ data/train_dfa.in output @ data/train_dfa.out
-- input @ data/train_dfa_decay.in output @ data/train_dfa_decay.out
-- input @ data/train_seed_hebbian.in output @ data/train_seed_hebbian.out
-- input @ data/train_dfa_dropout.in output @ data/train_dfa_dropout.out
-- input @ data/train_local_heads.in output @ data/train_local_heads.out
entry test_train_epoch [n] [d] [m]
                       (sizes: []i64)
                       (kmax: []i32)
                       (shift: []i32)
                       (latent: []i32)
                       (momentum: []i32)
                       (feedback: []i8)
                       (counters: []i64)
                       (x: [n][d]u8)
                       (y: [n]i32)
                       (order: [m]i32)
                       (batch_size: i64)
                       (rule_id: i32)
                       (params: []i64) =
  let run cpu =
    let s = load_state cpu sizes kmax shift latent momentum feedback counters
    let (s, correct, sq) = train_epoch s x y order batch_size rule_id params
    let (_, _, _, latent, momentum, _, counters) = dump_state s
    in (latent, momentum, counters, correct, sq)
  let (l0, m0, c0, k0, e0) = run false
  let (l1, m1, c1, k1, e1) = run true
  in (l0, m0, c0, k0, e0, l1, m1, c1, k1, e1)

-- | Test helper: `predict` on a one-layer network.
-- ==
-- entry: test_predict
-- input { [3i64, 2i64] [2] [1] [1048576, -1048576, 524288, 1048576, 0, 262144]
--         [[1u8, 2u8, 3u8], [255u8, 0u8, 255u8]] }
-- output { [[4u8, 3u8], [255u8, 0u8]] [[4u8, 3u8], [255u8, 0u8]] }
entry test_predict [n] [d] (sizes: []i64) (kmax: []i32) (shift: []i32) (latent: []i32) (x: [n][d]u8) =
  let s = load_state false sizes kmax shift latent (map (const 0) latent) [] [0, 0, 255]
  let s_cpu = load_state true sizes kmax shift latent (map (const 0) latent) [] [0, 0, 255]
  in (predict s x, predict s_cpu x)
