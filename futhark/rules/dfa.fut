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
-- `lat`, momentum `mom` and rounding word `r`, with the weight decay's
-- word `rd` when `decayed`; returns `(L', M')`. All in i32: `|G|, |M| <=
-- g_max` keep `G - M` and every term in range.
#[inline]
def dfa_synapse (p: rule_params) (decayed: bool) (r: u32) (rd: u32) (g: i32) (lat: i32) (mom: i32) : (i32, i32) =
  let m = i32.max (-g_max) (i32.min g_max mom)
  let diff = g - m
  let c = m + sround diff p.beta1_shift r
  let new = lat - i32.i64 p.step * sign32 c
  let new = if decayed then new - sround lat p.decay_shift rd else new
  let new = i32.max (-latent_max) (i32.min latent_max new)
  in (new, m + sround diff p.beta2_shift (r >> 16))

-- | `f decayed` with the weight decay's choice (§7.2) made outside the
-- loops over synapses: on CPUs two loops, one without the decay and one
-- with it, each free of branches so that it vectorises; on GPUs one
-- kernel that tests `decay_shift` itself (a branch on the host would read
-- it from the device every batch).
#[inline]
def with_decay 'a (tg: target) (p: rule_params) (f: bool -> a) : a =
  if tg.cpu
  then if p.decay_shift > 0 then f true else f false
  else f (p.decay_shift > 0)

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
def rounding_key (seed: u64) (t: i64) (l: i64) : u32 =
  hash (hash (hash (seed_key seed) stream_rounding) l) t

-- | The key of layer `l`'s weight-decay words at step `t` (§7.2).
def decay_key (seed: u64) (t: i64) (l: i64) : u32 =
  hash (hash (hash (seed_key seed) stream_decay) l) t

-- | `dfa_block_step` with the decay choice `decayed` given (`with_decay`).
#[inline]
def dfa_block_step_with [k] [m] (decayed: bool) (p: rule_params) (seed: u64) (t: i64) (l: i64) (layer: layer [k] [m]) (row0: i64) (col0: i64) (width: i64) : i64 -> i64 -> i32 -> (i32, i32) =
  let key = rounding_key seed t l
  let dkey = decay_key seed t l
  in \i h g ->
       let q = (row0 + i) * width + col0 + h
       let rd = if decayed then hash dkey q else 0
       in dfa_synapse p decayed (hash key q) rd g layer.latent[i, h] layer.momentum[i, h]

-- | The step (`dfa_layer_step`) of a block of a layer (§7.7): synapse `(i, h)` of
-- `layer` is synapse `(row0 + i, col0 + h)` of the layer's matrix of
-- `width` columns, whose rounding word it takes.
def dfa_block_step [k] [m] (p: rule_params) (seed: u64) (t: i64) (l: i64) (layer: layer [k] [m]) (row0: i64) (col0: i64) (width: i64) : i64 -> i64 -> i32 -> (i32, i32) =
  dfa_block_step_with (p.decay_shift > 0) p seed t l layer row0 col0 width

-- | The step of synapse `(i, h)` of layer `l` (index `l` in the network)
-- at global step `t` from its accumulator `g` (§7.2): its new latent,
-- and momentum (`with_steps` adds its weight). The rounding words are keyed by
-- `(seed, l, t, i * m + h)`, never by who computes them (§7.6).
def dfa_layer_step [k] [m] (p: rule_params) (seed: u64) (t: i64) (l: i64) (layer: layer [k] [m]) : i64 -> i64 -> i32 -> (i32, i32) =
  dfa_block_step p seed t l layer 0 0 m

-- | Layer `layer` with the latents and momenta of `dfa_layer_step`'s
-- results and their weights. The weights are a pass of their own
-- (`opaque` keeps the compiler from fusing it into the step): a loop
-- writing three arrays and reading three needs more run-time alias checks
-- than gcc makes (10) and stays scalar; two loops of two and one
-- vectorise.
def with_steps [k] [m] (layer: layer [k] [m]) (updated: [k][m](i32, i32)) : layer [k] [m] =
  let (lat', mom') = map unzip updated |> unzip
  in layer with latent = lat' with momentum = mom' with weights = weights layer.kmax (opaque lat')

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
  let steps decayed = dfa_block_step_with decayed p seed t l layer 0 0 m
  let updated =
    if dense_path dense_only layer
    then with_decay tg p (\decayed -> accumulate tg (steps decayed) pre d)
    else let g = accumulate_wide tg pre d
         in with_decay tg p (\decayed -> map2 (\i row -> map2 (steps decayed i) (iota m) row) (iota k) g)
  in with_steps layer updated

-- | The update of layer `l` at global step `t` from the exact sums `g` of a
-- whole batch (§7.6: the sums of its row ranges added up), saturated to
-- `[-g_max, g_max]` first (§7.5); the same bits as `dfa_layer_update` on the
-- whole batch.
def dfa_layer_apply [k] [m] (p: rule_params) (seed: u64) (t: i64) (l: i64) (layer: layer [k] [m]) (g: [k][m]i64) : layer [k] [m] =
  let step = dfa_layer_step p seed t l layer
  in with_steps layer (map2 (\i row -> map2 (\h v -> step i h (saturate_g v)) (iota m) row) (iota k) g)

-- | The exact sums `G = pre^T d` of a layer's rows `pre` and their
-- deltas `d` (§7.5, §7.6), unsaturated.
def dfa_layer_sums [r] [q] [k] [m] (tg: target) (pre: [r][k]u8) (d: [q][m]i32) : [k][m]i64 =
  accumulate_exact tg pre (d :> [r][m]i32)
