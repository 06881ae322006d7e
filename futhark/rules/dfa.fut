-- | Rule `dfa` (docs/arithmetic.md §7.1, §7.2): direct feedback alignment
-- with a sign-momentum (Lion-like) integer step. Rule `local_heads`
-- (`local_heads.fut`) runs the same kernel with another error for the
-- hidden layers. The options are `host.fut`'s `rule_params` (generated
-- from `graia/rules`).

import "../arith"
import "../host"
import "../dense"
import "../conv"
import "../layer"

-- | The output error of a batch (§7.1): `e[s, j] = a[s, j] - t_j`.
def output_error [b] [c] (target_on: i32) (target_off: i32) (a: [b][c]u8) (labels: [b]i32) : [b][c]i32 =
  map2 (\row y ->
          map2 (\j v -> i32.u8 v - (if j == i64.i32 y then target_on else target_off))
               (iota c)
               row)
       a
       labels

-- | Per-batch metrics (§7.1): the number of correct predictions and the
-- sum of squared errors.
def metrics [b] [c] (a: [b][c]u8) (labels: [b]i32) (e: [b][c]i32) : (i64, i64) =
  let correct = i64.sum (map2 (\row y -> i64.bool (argmax row == i64.i32 y)) a labels)
  let sq = i64.sum (map (\row -> i64.sum (map (\v -> i64.i32 v * i64.i32 v) row)) e)
  in (correct, sq)

-- | The deltas of a hidden layer's output units (§7.2, §7.5):
-- `delta[s, u] = sum_j B[u, j] * err[s, j]`, with the feedback matrix `B`
-- (`n_out, classes`). The slopes gate them where they reach the layer's
-- positions (`route`).
def feedback_delta [b] [o] [c] (feedback: [o][c]i8) (err: [b][c]i32) : [b][o]i32 =
  map (\er -> map (\br -> i32.sum (map2 (\ej bj -> ej * i32.i8 bj) er br)) feedback) err

-- | The update of one synapse (§7.2) from its accumulator `g`, latent
-- `lat`, momentum `mom` and random word `r`; returns `(L', M')`.
#[inline]
def dfa_synapse (p: rule_params) (r: u64) (g: i32) (lat: i32) (mom: i32) : (i32, i32) =
  let mask21 = (1u64 << 21) - 1
  let m = i64.i32 mom
  let l = i64.i32 lat
  let diff = i64.i32 g - m
  let c = m + sround diff p.beta1_shift (r & mask21)
  let new = l - p.step * sign64 c
  let new = if p.decay_shift > 0 then new - sround l p.decay_shift (r >> 42) else new
  let lmax = i64.i32 latent_max
  let new = i64.max (-lmax) (i64.min lmax new)
  let m' = m + sround diff p.beta2_shift ((r >> 21) & mask21)
  in (i32.i64 new, i32.i64 m')

-- | The deltas of a Dense hidden layer's units (§7.2): the feedback
-- product `err B^T` gated by the slopes of their sums `z`, in one pass.
def dense_delta [b] [m] [c] (shift: i32) (fb: [m][c]i8) (z: [b][m]i32) (err: [b][c]i32) : [b][m]i32 =
  map2 (\zr er ->
          map2 (\zv br -> if slope shift zv then i32.sum (map2 (\ej bj -> ej * i32.i8 bj) er br) else 0)
               zr
               fb)
       z
       err

-- | The deltas of hidden layer `l`'s positions (§7.2, §7.5) from the
-- error `err` its deltas come from (the output error, or with
-- `local_heads` its head's: `local_heads.fut`'s `layer_error`). `fb` is the
-- layer's ternary feedback matrix, `winner` and `z` from its forward pass.
-- For a Dense layer the feedback product and the slopes are one pass
-- (`dense_only` as in `dense_path`).
def layer_delta [b] [o] [c] [w] [r] [m]
                (dense_only: bool)
                (geo: geometry)
                (shift: i32)
                (fb: [o][c]i8)
                (winner: [w]i32)
                (z: [r][m]i32)
                (err: [b][c]i32) : [r][m]i32 =
  if dense_only || is_dense geo
  then dense_delta shift (fb :> [m][c]i8) z (err :> [r][c]i32)
  else route geo shift (feedback_delta fb err) winner z

-- | The rounding key of layer `l` at step `t` (§7.2).
def rounding_key (seed: u64) (t: i64) (l: i64) : u64 =
  hash (hash (hash seed stream_rounding) l) t

-- | The step (`dfa_layer_step`) of a block of a layer (§7.7): synapse `(i, h)` of
-- `layer` is synapse `(row0 + i, col0 + h)` of the layer's matrix of
-- `width` columns, whose rounding word it takes.
def dfa_block_step [k] [m] (p: rule_params) (seed: u64) (t: i64) (l: i64) (layer: layer [k] [m]) (row0: i64) (col0: i64) (width: i64) : i64 -> i64 -> i32 -> (i32, i32, i32) =
  let key = rounding_key seed t l
  in \i h g ->
       let r = hash key ((row0 + i) * width + col0 + h)
       let (lq, mq) = dfa_synapse p r g layer.latent[i, h] layer.momentum[i, h]
       in (lq, mq, weight_of_latent layer.kmax lq)

-- | The step of synapse `(i, h)` of layer `l` (index `l` in the network)
-- at global step `t` from its accumulator `g` (§7.2): its new latent,
-- momentum and fixed-point weight. The rounding words are keyed by
-- `(seed, l, t, i * m + h)`, never by who computes them (§7.6).
def dfa_layer_step [k] [m] (p: rule_params) (seed: u64) (t: i64) (l: i64) (layer: layer [k] [m]) : i64 -> i64 -> i32 -> (i32, i32, i32) =
  dfa_block_step p seed t l layer 0 0 m

-- | Layer `layer` with the latents, momenta and weights of `dfa_layer_step`'s
-- results.
def with_steps [k] [m] (layer: layer [k] [m]) (updated: [k][m](i32, i32, i32)) : layer [k] [m] =
  let (lat', mom', w') = map unzip3 updated |> unzip3
  in layer with latent = lat' with momentum = mom' with weights = w'

-- | The update of layer `l` (§7.2, §7.5) at global step `t` from the rows
-- `pre` its weights multiplied and their deltas `d` (one row each): the accumulator
-- `G = pre^T d` and each synapse's sign-momentum step (fused with the
-- product for a Dense layer; `dense_only` as in `dense_path`); returns the
-- layer with its new latents, momenta and weights. Inlined: across a
-- function call its arrays would be copied on every batch.
#[inline]
def dfa_layer_update [r] [q] [k] [m]
                     (dense_only: bool)
                     (tg: target)
                     (p: rule_params)
                     (seed: u64)
                     (t: i64)
                     (l: i64)
                     (layer: layer [k] [m])
                     (pre: [r][k]u8)
                     (d: [q][m]i32) : layer [k] [m] =
  let d = d :> [r][m]i32
  let step = dfa_layer_step p seed t l layer
  let updated =
    if dense_path dense_only layer
    then accumulate tg step pre d
    else map2 (\i row -> map2 (step i) (iota m) row) (iota k) (accumulate_wide tg pre d)
  in with_steps layer updated

-- | The update of layer `l` at global step `t` from the exact sums `g` of a
-- whole batch (§7.6: the sums of its row ranges added up), saturated to
-- the i32 range first (§7.5); the same bits as `dfa_layer_update` on the
-- whole batch.
def dfa_layer_apply [k] [m] (p: rule_params) (seed: u64) (t: i64) (l: i64) (layer: layer [k] [m]) (g: [k][m]i64) : layer [k] [m] =
  let step = dfa_layer_step p seed t l layer
  in with_steps layer (map2 (\i row -> map2 (\h v -> step i h (saturate_i32 v)) (iota m) row) (iota k) g)

-- | The exact sums `G = pre^T d` of a layer's rows `pre` and their
-- deltas `d` (§7.5, §7.6), unsaturated.
def dfa_layer_sums [r] [q] [k] [m] (tg: target) (pre: [r][k]u8) (d: [q][m]i32) : [k][m]i64 =
  accumulate_exact tg pre (d :> [r][m]i32)
