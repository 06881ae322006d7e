-- | Rule `local_heads` (docs/arithmetic.md §7.4): `dfa`'s kernel
-- (`dfa.fut`), except that every hidden layer's deltas come from the error
-- of its own local classifier, its head (`layer_error`), which may learn
-- too (`head_update`) with `dfa`'s step. Its options `head_step`,
-- `head_kmax` and `head_shift` (one value for every hidden layer or one per
-- hidden layer: `rule_layer_params`) follow `dfa`'s in `rule_params`.

import "../arith"
import "../host"
import "../dense"
import "../layer"
import "dfa"

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

-- | The error hidden layer `l`'s deltas come from (§7.2, §7.4): the output
-- error `e` of the batch, or with `local_heads` the error of the layer's
-- own head `h` read on its output `a` (after dropout).
def layer_error [b] [o] [c] (local_heads: bool) (p: rule_params) (h: head [o] [c]) (a: [b][o]u8) (e: [b][c]i32) (labels: [b]i32) : [b][c]i32 =
  if local_heads then local_head_error p (head_weights p h) a labels else e

-- | The step of the rows `row0, ...` of a local head (§7.4, §7.7) at
-- global step `t`: each weight's sign-momentum step (§7.2 with `head_step`
-- and no decay) from its sum `g`, with the rounding words of layer `key_l`
-- (the number of layers plus the hidden layer's index).
def head_weight_step [n] [c] (p: rule_params) (seed: u64) (t: i64) (key_l: i64) (h: head [n] [c]) (row0: i64) : i64 -> i64 -> i32 -> (i32, i32) =
  let hp = p with step = p.head_step with decay_shift = 0
  let key = rounding_key seed t key_l
  in \i j g -> dfa_synapse hp false (hash key ((row0 + i) * c + j)) 0 g h.latent[i, j] h.momentum[i, j]

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
-- (§7.6), saturated to `[-g_max, g_max]` first; the same bits as `head_update`.
def head_apply [n] [c] (local_heads: bool) (p: rule_params) (seed: u64) (t: i64) (layers: i64) (l: i64) (h: head [n] [c]) (g: [n][c]i64) : head [n] [c] =
  if local_heads && p.head_step > 0
  then let step = head_weight_step p seed t (layers + l) h 0
       in with_head_steps (map2 (\i row -> map2 (\j v -> step i j (saturate_g v)) (iota c) row) (iota n) g)
  else h
