-- | Rules `dfa` (docs/arithmetic.md §7.1, §7.2): direct feedback alignment
-- with a sign-momentum (Lion-like) integer step, and `local_heads` (§7.4):
-- the same, except that every hidden layer's delta uses the error of its
-- own local classifier (`local_head_error`), which may learn too
-- (`head_update`).
--
-- Parameters (i64, in the order of `graia/rules/__init__.py`): `step`,
-- `beta1_shift`, `beta2_shift`, `decay_shift`, `target_on`, `target_off`,
-- `dropout`; `local_heads` adds `head_step`, `head_kmax` and `head_shift`,
-- one value for every hidden layer or one per hidden layer
-- (`rule_layer_params`).

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

-- | A hidden layer's local head (§7.4): its latent weights and momenta,
-- `(n_out, classes)`. It starts as the feedback matrix (`B << 20`).
type head [n] [c] = {latent: [n][c]i32, momentum: [n][c]i32}

-- | The fixed-point weights of a local head (§2 with `head_kmax`).
def head_weights [n] [c] (p: rule_params) (h: head [n] [c]) : [n][c]i32 =
  weights p.head_kmax h.latent

-- | A hidden layer's local classifier read on its activations `a` (after
-- dropout): `u = a W` (exact i32, §7.4) with the head's fixed-point
-- weights `W`. Under unit parallelism (§7.7) each rank sums over its own
-- units and the ranks' sums are added.
def head_sums [b] [n_out] [c] (w: [n_out][c]i32) (a: [b][n_out]u8) : [b][c]i32 =
  let wt = transpose w
  in map (\row -> map (\col -> i32.sum (map2 (\av wv -> i32.u8 av * wv) row col)) wt) a

-- | The local error of a hidden layer (§7.4) from its head sums `u`
-- (`head_sums`): `e = clamp(u >> (head_shift + head_kmax), 0, 255) - t`.
def head_error [b] [c] (p: rule_params) (u: [b][c]i32) (labels: [b]i32) : [b][c]i32 =
  let shift = p.head_shift + p.head_kmax
  let head = map (map (\v -> u8.i32 (i32.max 0 (i32.min 255 (v >> shift))))) u
  in output_error p.target_on p.target_off head labels

-- | The local error of a hidden layer (§7.4): its activations `a` (after
-- dropout) read by its head's fixed-point weights `w` (`n_out, classes`).
def local_head_error [b] [n_out] [c] (p: rule_params) (w: [n_out][c]i32) (a: [b][n_out]u8) (labels: [b]i32) : [b][c]i32 =
  head_error p (head_sums w a) labels

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

-- | The deltas of hidden layer `l`'s positions (§7.2, §7.4, §7.5) from
-- the output error `e` of a batch, or with `local_heads` from the error of
-- the layer's own head `h` (`local_head_error`), with that error. `fb` is
-- the layer's ternary feedback matrix, `a` its output (after dropout),
-- `winner` and `z` from its forward pass. For a Dense layer the feedback
-- product and the slopes are one pass (`dense_only` as in `dense_path`).
def layer_delta [b] [o] [c] [w] [r] [m]
                (dense_only: bool)
                (local_heads: bool)
                (p: rule_params)
                (geo: geometry)
                (shift: i32)
                (fb: [o][c]i8)
                (h: head [o] [c])
                (a: [b][o]u8)
                (winner: [w]i32)
                (z: [r][m]i32)
                (e: [b][c]i32)
                (labels: [b]i32) : ([r][m]i32, [b][c]i32) =
  let err = if local_heads then local_head_error p (head_weights p h) a labels else e
  let d =
    if dense_only || is_dense geo
    then dense_delta shift (fb :> [m][c]i8) z (err :> [r][c]i32)
    else route geo shift (feedback_delta fb err) winner z
  in (d, err)

local
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

-- | The step of the rows `row0, ...` of a local head (§7.4, §7.7) at
-- global step `t`: each weight's sign-momentum step (§7.2 with `head_step`
-- and no decay) from its sum `g`, with the rounding words of layer `key_l`
-- (the number of layers plus the hidden layer's index).
def head_weight_step [n] [c] (p: rule_params) (seed: u64) (t: i64) (key_l: i64) (h: head [n] [c]) (row0: i64) : i64 -> i64 -> i32 -> (i32, i32) =
  let hp = p with step = p.head_step with decay_shift = 0
  let key = rounding_key seed t key_l
  in \i j g -> dfa_synapse hp (hash key ((row0 + i) * c + j)) g h.latent[i, j] h.momentum[i, j]

-- | A head with the latents and momenta of `head_weight_step`'s results.
def with_head_steps [n] [c] (updated: [n][c](i32, i32)) : head [n] [c] =
  let (latent, momentum) = map unzip updated |> unzip
  in {latent, momentum}

-- | The update of hidden layer `l`'s local head (§7.4), or of its rows
-- `row0, ...` (§7.7), from its activations `a` (after dropout) and its
-- error `err`, when it learns (`local_heads` and `head_step > 0`):
-- `G = a^T err` (exact in i32 under §7.2's bound) fused with each weight's
-- step. `layers` is the network's number of layers.
#[inline]
def head_update [b] [n] [c] (tg: target) (local_heads: bool) (p: rule_params) (seed: u64) (t: i64) (layers: i64) (l: i64) (h: head [n] [c]) (row0: i64) (a: [b][n]u8) (err: [b][c]i32) : head [n] [c] =
  if local_heads && p.head_step > 0
  then with_head_steps (accumulate tg (head_weight_step p seed t (layers + l) h row0) a err)
  else h

-- | The update of a local head from the exact sums `g` of a whole batch
-- (§7.6), saturated to i32 first; the same bits as `head_update`.
def head_apply [n] [c] (local_heads: bool) (p: rule_params) (seed: u64) (t: i64) (layers: i64) (l: i64) (h: head [n] [c]) (g: [n][c]i64) : head [n] [c] =
  if local_heads && p.head_step > 0
  then let step = head_weight_step p seed t (layers + l) h 0
       in with_head_steps (map2 (\i row -> map2 (\j v -> step i j (saturate_i32 v)) (iota c) row) (iota n) g)
  else h
