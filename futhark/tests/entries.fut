-- | Tests of the entry points of `graia.fut` (whose networks are opaque):
-- each helper takes a network as the host state's flat arrays
-- (DEVELOPERS.md), calls entry points and returns plain arrays. The
-- expected values in `data/` come from the Numba oracle
-- (`graia/backends/numba.py`).

import "../graia"

local
-- | Layer `l`'s `(n_in, n_out)` blocks of the flat latents and momenta.
def layer_blocks [s] (sizes: []i64) (latent: [s]i32) (momentum: [s]i32) (l: i64) : ?[n][m].([n][m]i32, [n][m]i32) =
  let off = i64.sum (map (\i -> sizes[i] * sizes[i + 1]) (iota l))
  let (n, m) = (sizes[l], sizes[l + 1])
  let block (flat: [s]i32) = unflatten (flat[off:off + n * m] :> [n * m]i32)
  in (block latent, block momentum)

local
-- | Hidden layer `l`'s `(n_out, classes)` block of the flat feedback array.
def feedback_block [f] (sizes: []i64) (flat: [f]i8) (l: i64) : [][]i8 =
  let c = last sizes
  let off = i64.sum (map (\i -> sizes[i + 1] * c) (iota l))
  let n = sizes[l + 1]
  in unflatten (flat[off:off + n * c] :> [n * c]i8)

-- | Test helper: load a network of 2 or 3 layers from flat arrays, run one
-- `train_epoch`, and return the flat latents, momenta and counters with
-- the epoch's metrics; once with the GPU forms of the matrix products, once
-- with the CPU forms.
-- ==
-- entry: test_train_epoch
-- input @ data/train_dfa.in output @ data/train_dfa.out
-- input @ data/train_dfa_decay.in output @ data/train_dfa_decay.out
-- input @ data/train_seed_hebbian.in output @ data/train_seed_hebbian.out
-- input @ data/train_dfa_dropout.in output @ data/train_dfa_dropout.out
-- input @ data/train_local_heads.in output @ data/train_local_heads.out
entry test_train_epoch [n] [d] [m] [s]
                       (sizes: []i64)
                       (kmax: []i32)
                       (shift: []i32)
                       (latent: [s]i32)
                       (momentum: [s]i32)
                       (feedback: []i8)
                       (counters: []i64)
                       (x: [n][d]u8)
                       (y: [n]i32)
                       (order: [m]i32)
                       (batch_size: i64)
                       (rule_id: i32)
                       (params: []i64) =
  let layer = layer_blocks sizes latent momentum
  let fb = feedback_block sizes feedback
  let (seed, t, prev) = (counters[0], counters[1], counters[2])
  let n0 = sizes[0]
  let n1 = sizes[1]
  let n2 = sizes[2]
  let x = x :> [n][n0]u8
  let (l0, m0) = layer 0 :> ([n0][n1]i32, [n0][n1]i32)
  let run cpu =
    if length sizes == 3
    then let (l1, m1) = layer 1 :> ([n1][n2]i32, [n1][n2]i32)
         let net = load_2 cpu seed t prev kmax[0] shift[0] l0 m0 kmax[1] shift[1] l1 m1 (fb 0 :> [n1][n2]i8)
         let (net, correct, sq) = train_epoch_2 net x y order batch_size rule_id params
         let (t, prev, l0, m0, l1, m1) = dump_2 net
         in (flatten l0 ++ flatten l1 :> [s]i32, flatten m0 ++ flatten m1 :> [s]i32, [seed, t, prev], correct, sq)
    else let n3 = sizes[3]
         let (l1, m1) = layer 1 :> ([n1][n2]i32, [n1][n2]i32)
         let (l2, m2) = layer 2 :> ([n2][n3]i32, [n2][n3]i32)
         let net =
           load_3 cpu seed t prev kmax[0] shift[0] l0 m0 kmax[1] shift[1] l1 m1 kmax[2] shift[2] l2 m2 (fb 0 :> [n1][n3]i8) (fb 1 :> [n2][n3]i8)
         let (net, correct, sq) = train_epoch_3 net x y order batch_size rule_id params
         let (t, prev, l0, m0, l1, m1, l2, m2) = dump_3 net
         in ( flatten l0 ++ flatten l1 ++ flatten l2 :> [s]i32
            , flatten m0 ++ flatten m1 ++ flatten m2 :> [s]i32
            , [seed, t, prev]
            , correct
            , sq
            )
  let (l0, m0, c0, k0, e0) = run false
  let (l1, m1, c1, k1, e1) = run true
  in (l0, m0, c0, k0, e0, l1, m1, c1, k1, e1)

-- | Test helper: `predict` on a one-layer network.
-- ==
-- entry: test_predict
-- input { [[1048576, -1048576], [524288, 1048576], [0, 262144]] 2 1
--         [[1u8, 2u8, 3u8], [255u8, 0u8, 255u8]] }
-- output { [[4u8, 3u8], [255u8, 0u8]] [[4u8, 3u8], [255u8, 0u8]] }
entry test_predict [n] [d] [m] (latent: [d][m]i32) (kmax: i32) (shift: i32) (x: [n][d]u8) =
  let momentum = map (map (const 0)) latent
  let net cpu = load_1 cpu 0 0 255 kmax shift latent momentum
  in (predict_1 (net false) x, predict_1 (net true) x)
