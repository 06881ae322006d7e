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

-- | `feedback_delta` as map-map-reduce, for GPUs.
def feedback_delta_map [b] [o] [c] (feedback: [o][c]i8) (err: [b][c]i32) : [b][o]i32 =
  map (\er -> map (\br -> i32.sum (map2 (\ej bj -> ej * i32.i8 bj) er br)) feedback) err

-- | One sample's feedback product `B er` for CPUs, from `B` transposed:
-- a column of `B` at a time scaled and added over all units, the units the
-- inner loop and contiguous, so that it vectorises (in the map form the
-- inner sums over the few classes stay scalar).
def feedback_row [c] [o] (fbt: [c][o]i8) (er: [c]i32) : *[o]i32 =
  #[unsafe]
  loop acc = replicate o 0i32
  for j < c do
    let e = er[j]
    let col = fbt[j]
    in loop acc for u < o do acc with [u] = acc[u] + e * i32.i8 col[u]

-- | `B` transposed for `feedback_row` (`o * c` bytes, once a batch). A
-- `tabulate`: `transpose` stayed a view of `B` in the generated C, which
-- the loop then read with a stride.
def transposed_feedback [o] [c] (feedback: [o][c]i8) : [c][o]i8 =
  tabulate_2d c o (\j u -> feedback[u, j])

-- | The deltas of a hidden layer's output units (§7.2, §7.5):
-- `delta[s, u] = sum_j B[u, j] * err[s, j]`, with the feedback matrix `B`
-- (`n_out, classes`), in the form of target `tg`. The slopes gate them
-- where they reach the layer's positions (`route`).
def feedback_delta [b] [o] [c] (tg: target) (feedback: [o][c]i8) (err: [b][c]i32) : [b][o]i32 =
  if tg.cpu
  then let fbt = transposed_feedback feedback in map (feedback_row fbt) err
  else feedback_delta_map feedback err

-- | The update of one synapse (§7.2) from its accumulator `g`, latent
-- `lat`, momentum `mom` and rounding word `r`, with the weight decay's
-- word `rd` when `decayed`; returns `(L', M')`. All in i32: `|G|, |M| <=
-- g_max` keep `G - M` and every term in range. The decay's term is masked,
-- not branched on, so that a loop of these has no branch and vectorises.
#[inline]
def dfa_synapse (p: rule_params) (decayed: bool) (r: u32) (rd: u32) (g: i32) (lat: i32) (mom: i32) : (i32, i32) =
  let m = i32.max (-g_max) (i32.min g_max mom)
  let diff = g - m
  let c = m + sround diff p.beta1_shift r
  let decay = sround lat p.decay_shift rd & -i32.bool decayed
  let new = lat - i32.i64 p.step * sign32 c - decay
  let new = i32.max (-latent_max) (i32.min latent_max new)
  in (new, m + sround diff p.beta2_shift (r >> 16))

-- | The deltas of a Dense hidden layer's units (§7.2): the feedback
-- product `err B^T` gated by the slopes of their sums `z`, in one pass
-- (on CPUs, the gate is a loop over each sample's row of products: a
-- nested map there would be compiled in several versions).
def dense_delta [b] [m] [c] (tg: target) (shift: i32) (fb: [m][c]i8) (z: [b][m]i32) (err: [b][c]i32) : [b][m]i32 =
  if tg.cpu
  then let fbt = transposed_feedback fb
       in #[unsafe]
          map2 (\zr er ->
                  let acc = feedback_row fbt er
                  in loop acc for u < m do acc with [u] = if slope shift zr[u] then acc[u] else 0)
               z
               err
  else map2 (\zr er ->
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
                (tg: target)
                (geo: geometry)
                (shift: i32)
                (fb: [o][c]i8)
                (winner: [w]i32)
                (z: [r][m]i32)
                (err: [b][c]i32) : [r][m]i32 =
  if dense_only || is_dense geo
  then dense_delta tg shift (fb :> [m][c]i8) z (err :> [r][c]i32)
  else route geo shift (feedback_delta tg fb err) winner z

-- | The rounding key of layer `l` at step `t` (§7.2).
def rounding_key (seed: u64) (t: i64) (l: i64) : u32 =
  hash (hash (hash (seed_key seed) stream_rounding) l) t

-- | The key of layer `l`'s weight-decay words at step `t` (§7.2).
def decay_key (seed: u64) (t: i64) (l: i64) : u32 =
  hash (hash (hash (seed_key seed) stream_decay) l) t

-- | The step of synapse `(i, h)` of a block of layer `l` (index `l` in
-- the network) at global step `t` from its accumulator `g` (§7.2, §7.7):
-- its new latent and momentum (`with_steps` adds its weight). Synapse
-- `(i, h)` of `layer` is synapse `(row0 + i, col0 + h)` of the layer's
-- matrix of `width` columns, whose rounding words it takes: they are keyed
-- by the synapse, never by who computes it (§7.6). The decay's word is
-- computed whether or not the decay is on (`dfa_synapse` masks its term):
-- a loop over synapses without a branch vectorises on CPUs, where a
-- branch kept gcc from vectorising it and a loop for each choice doubled
-- the generated C (docs/performance.md); on GPUs the hash is a few integer
-- operations beside the sums.
#[inline]
def dfa_block_step [k] [m] (p: rule_params) (seed: u64) (t: i64) (l: i64) (layer: layer [k] [m]) (row0: i64) (col0: i64) (width: i64) : i64 -> i64 -> i32 -> (i32, i32) =
  let key = rounding_key seed t l
  let dkey = decay_key seed t l
  in \i h g ->
       let q = (row0 + i) * width + col0 + h
       in dfa_synapse p (p.decay_shift > 0) (hash key q) (hash dkey q) g layer.latent[i, h] layer.momentum[i, h]

-- | Layer `layer` with the latents and momenta of `dfa_block_step`'s
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
  let step = dfa_block_step p seed t l layer 0 0 m
  let updated =
    if dense_path dense_only layer
    then accumulate tg step pre d
    else let g = accumulate_wide tg pre d
         in map2 (\i row -> map2 (step i) (iota m) row) (iota k) g
  in with_steps layer updated

-- | The update of layer `l` at global step `t` from the exact sums `g` of a
-- whole batch (§7.6: the sums of its row ranges added up), saturated to
-- `[-g_max, g_max]` first (§7.5); the same bits as `dfa_layer_update` on the
-- whole batch.
def dfa_layer_apply [k] [m] (p: rule_params) (seed: u64) (t: i64) (l: i64) (layer: layer [k] [m]) (g: [k][m]i64) : layer [k] [m] =
  let step = dfa_block_step p seed t l layer 0 0 m
  in with_steps layer (map2 (\i row -> map2 (\h v -> step i h (saturate_g v)) (iota m) row) (iota k) g)

-- | The exact sums `G = pre^T d` of a layer's rows `pre` and their
-- deltas `d` (§7.5, §7.6), unsaturated.
def dfa_layer_sums [r] [q] [k] [m] (tg: target) (pre: [r][k]u8) (d: [q][m]i32) : [k][m]i64 =
  accumulate_exact tg pre (d :> [r][m]i32)
