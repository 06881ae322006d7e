-- | One weighted layer (docs/arithmetic.md §3, §3.1, §3.2): its state
-- and its forward pass. Every layer is a convolution, optionally followed
-- by pooling; a Dense layer is the 1x1 case and takes the direct path of
-- `dense.fut`'s products. Arrays have exactly the layer's own shapes: the
-- weights are `(fan_in, out_c)`, so that every size is known to the host
-- and no kernel launch waits on a value from the device.

import "arith"
import "dense"
import "conv"
import "host"

-- | A layer's state: the latent weights, the rule's momenta and the
-- fixed-point weights `W` of the latents (§2), kept up to date by the
-- rules; `kmax` and `shift` as in §2-§3, `geo` its geometry.
type layer [k] [m] =
  { kmax: i32
  , shift: i32
  , geo: geometry
  , latent: [k][m]i32
  , momentum: [k][m]i32
  , weights: [k][m]i32
  }

-- | The fixed-point weights `W` of a layer's latent weights (§2).
def weights [k] [m] (kmax: i32) (latent: [k][m]i32) : [k][m]i32 =
  map (map (weight_of_latent kmax)) latent

-- | A layer built from its host arrays.
def layer_of [k] [m] (kmax: i32) (shift: i32) (geo: geometry_row) (latent: [k][m]i32) (momentum: [k][m]i32) : layer [k] [m] =
  {kmax, shift, geo = geometry_of geo, latent, momentum, weights = weights kmax latent}

-- | What a training forward pass keeps for learning: the rows the weights
-- multiplied (`patches`, `dense_rows` for a Dense layer), their sums
-- `z` and, for max pooling, each window's winner (§3.2; flat `(b, o)`,
-- empty otherwise).
type trace [r] [k] [m] [w] = {patches: [r][k]u8, z: [r][m]i32, winner: [w]i32}

-- | Whether layer `l` takes the Dense path. `dense_only` says the caller
-- knows every layer of the network is Dense: given as a literal, it lets
-- the compiler drop the convolution path, whose branch would otherwise
-- cost a GPU kernel launches and copies on every batch.
def dense_path [k] [m] (dense_only: bool) (l: layer [k] [m]) : bool =
  dense_only || is_dense l.geo

-- | The forward pass of layer `l` on a batch `x` (§3, §3.1, §3.2): the
-- block's output, `o` features per sample, passed through `post` (dropout,
-- fused with the activation for a Dense layer), with its trace.
def layer_forward [b] [n] [k] [m] (dense_only: bool) (tg: target) (o: i64) (post: [b][o]u8 -> [b][o]u8) (l: layer [k] [m]) (x: [b][n]u8) : ?[r][w].([b][o]u8, trace [r] [k] [m] [w]) =
  if dense_path dense_only l
  then let p = dense_rows k x
       let z = forward_z tg p l.weights
       in (post (map (map (activate l.shift)) z :> [b][o]u8), {patches = p, z, winner = []})
  else let p = patches l.geo k x
       let z = forward_z tg p l.weights
       let (out, winner) = pool l.geo b (map (map (activate l.shift)) z)
       let winner = if l.geo.pool == pool_max then flatten winner else []
       in (post (out :> [b][o]u8), {patches = p, z, winner})

-- | The output of layer `l` for a batch `x`, `o` features per sample.
def layer_output [b] [n] [k] [m] (tg: target) (o: i64) (l: layer [k] [m]) (x: [b][n]u8) : [b][o]u8 =
  if is_dense l.geo
  then map (map (activate l.shift)) (forward_z tg (dense_rows k x) l.weights) :> [b][o]u8
  else let p = patches l.geo k x
       in (pool l.geo b (map (map (activate l.shift)) (forward_z tg p l.weights))).0 :> [b][o]u8
