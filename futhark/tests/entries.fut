-- | Tests of the entry points of `graia.fut` (whose networks are opaque):
-- each helper takes a network as the host state's flat arrays
-- (DEVELOPERS.md), calls entry points and returns plain arrays. The
-- expected values in `data/` come from the Numba oracle
-- (`graia/backends/numba.py`).

import "../graia"
import "../host"

local
-- | Layer `l`'s weight shape `(fan_in, out_c)` from its geometry row (the
-- bias input's row included).
def weight_shape (geometry: []geometry_row) (l: i64) : (i64, i64) =
  let g = geometry_of geometry[l]
  in (g.k_h * g.k_w * g.in_c + g.bias, g.out_c)

local
-- | Layer `l`'s `(fan_in, out_c)` blocks of the flat latents and momenta.
def layer_blocks [s] (geometry: []geometry_row) (latent: [s]i32) (momentum: [s]i32) (l: i64) : ?[k][m].([k][m]i32, [k][m]i32) =
  let off = i64.sum (map (\i -> let (k, m) = weight_shape geometry i in k * m) (iota l))
  let (k, m) = weight_shape geometry l
  let block (flat: [s]i32) = unflatten (flat[off:off + k * m] :> [k * m]i32)
  in (block latent, block momentum)

local
-- | Hidden layer `l`'s `(n_out, classes)` block of a flat array laid out
-- like the feedback matrices (the feedback, the heads' latents or momenta).
def feedback_block 't [f] (sizes: []i64) (flat: [f]t) (l: i64) : [][]t =
  let c = last sizes
  let off = i64.sum (map (\i -> sizes[i + 1] * c) (iota l))
  let n = sizes[l + 1]
  in unflatten (flat[off:off + n * c] :> [n * c]t)

-- | Test helper: load a network of 2 or 3 layers from the host state's
-- flat arrays, run one `train_epoch`, and return the flat latents, momenta
-- and counters with the epoch's metrics, then the local heads' latents and
-- momenta; once with the GPU forms of the matrix products, once with the
-- CPU forms. The data (`data/`) is written
-- by `scripts/gen_futhark_test_data.py` from the Numba oracle.
-- ==
-- entry: test_train_epoch
-- input @ data/train_dfa.in output @ data/train_dfa.out
-- input @ data/train_dfa_decay.in output @ data/train_dfa_decay.out
-- input @ data/train_seed_hebbian.in output @ data/train_seed_hebbian.out
-- input @ data/train_dfa_dropout.in output @ data/train_dfa_dropout.out
-- input @ data/train_local_heads.in output @ data/train_local_heads.out
-- input @ data/train_conv_max.in output @ data/train_conv_max.out
-- input @ data/train_conv_average.in output @ data/train_conv_average.out
-- input @ data/train_conv_same.in output @ data/train_conv_same.out
entry test_train_epoch [n] [d] [q] [s] [h]
                       (sizes: []i64)
                       (geometry: [q]geometry_row)
                       (kmax: []i32)
                       (shift: []i32)
                       (latent: [s]i32)
                       (momentum: [s]i32)
                       (feedback: []i8)
                       (head_latent: [h]i32)
                       (head_momentum: [h]i32)
                       (counters: []i64)
                       (x: [n][d]u8)
                       (y: [n]i32)
                       (order: []i32)
                       (batch_size: i64)
                       (rule_id: i32)
                       (params: []i64) =
  let layer = layer_blocks geometry latent momentum
  let fb = feedback_block sizes feedback
  let hl = feedback_block sizes head_latent
  let hm = feedback_block sizes head_momentum
  let (seed, t, prev) = (counters[0], counters[1], counters[2])
  let (k0, m0) = weight_shape geometry 0
  let (k1, m1) = weight_shape geometry 1
  let n1 = sizes[1]
  let (l0, u0) = layer 0 :> ([k0][m0]i32, [k0][m0]i32)
  let (l1, u1) = layer 1 :> ([k1][m1]i32, [k1][m1]i32)
  let run cpu =
    if q == 2
    then let net =
           load_2 cpu seed t prev (geometry :> [2]geometry_row) kmax[0] shift[0] l0 u0 kmax[1] shift[1] l1 u1 (fb 0 :> [n1][m1]i8) (hl 0 :> [n1][m1]i32) (hm 0 :> [n1][m1]i32)
         let (net, correct, sq) = train_epoch_2 net x y order batch_size rule_id params
         let (t, prev, l0, u0, l1, u1, hl0, hm0) = dump_2 net
         in ( flatten l0 ++ flatten l1 :> [s]i32
            , flatten u0 ++ flatten u1 :> [s]i32
            , [seed, t, prev]
            , correct
            , sq
            , flatten hl0 :> [h]i32
            , flatten hm0 :> [h]i32
            )
    else let (k2, m2) = weight_shape geometry 2
         let n2 = sizes[2]
         let (l2, u2) = layer 2 :> ([k2][m2]i32, [k2][m2]i32)
         let net =
           load_3 cpu seed t prev (geometry :> [3]geometry_row) kmax[0] shift[0] l0 u0 kmax[1] shift[1] l1 u1 kmax[2] shift[2] l2 u2 (fb 0 :> [n1][m2]i8) (fb 1 :> [n2][m2]i8) (hl 0 :> [n1][m2]i32) (hm 0 :> [n1][m2]i32) (hl 1 :> [n2][m2]i32) (hm 1 :> [n2][m2]i32)
         let (net, correct, sq) = train_epoch_3 net x y order batch_size rule_id params
         let (t, prev, l0, u0, l1, u1, l2, u2, hl0, hm0, hl1, hm1) = dump_3 net
         in ( flatten l0 ++ flatten l1 ++ flatten l2 :> [s]i32
            , flatten u0 ++ flatten u1 ++ flatten u2 :> [s]i32
            , [seed, t, prev]
            , correct
            , sq
            , flatten hl0 ++ flatten hl1 :> [h]i32
            , flatten hm0 ++ flatten hm1 :> [h]i32
            )
  let (l0, u0, c0, k0, e0, h0, g0) = run false
  let (l1, u1, c1, k1, e1, h1, g1) = run true
  in (l0, u0, c0, k0, e0, h0, g0, l1, u1, c1, k1, e1, h1, g1)

-- | Test helper: `predict` on a one-layer network.
-- ==
-- entry: test_predict
-- input { [[1048576, -1048576], [524288, 1048576], [0, 262144]] 2 1
--         [[1u8, 2u8, 3u8], [255u8, 0u8, 255u8]] }
-- output { [[4u8, 3u8], [255u8, 0u8]] [[4u8, 3u8], [255u8, 0u8]] }
entry test_predict [n] [d] [m] (latent: [d][m]i32) (kmax: i32) (shift: i32) (x: [n][d]u8) =
  let momentum = map (map (const 0)) latent
  let geometry = [[1, 1, d, 1, 1, 1, 1, 0, 0, 1, 1, m, 0, 1, 1, 0]]
  let net cpu = load_1 cpu 0 0 255 geometry kmax shift latent momentum
  in (predict_1 (net false) x, predict_1 (net true) x)
