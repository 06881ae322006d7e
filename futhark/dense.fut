-- | Dense layers (docs/arithmetic.md §3): the state of one layer, its
-- forward pass and the matrix products, each in a form for GPUs (written
-- as map-map-reduce, which the compiler tiles) and a form for CPUs (loops
-- that skip zero inputs and walk memory contiguously). The sums are exact,
-- so both forms give the same bits.
--
-- A layer's arrays are exactly its own shape, `(n_in, n_out)`: networks
-- (`network.fut`) hold one record per layer, so that every size is known
-- to the host and no kernel launch waits on a value from the device.

import "arith"

-- | One dense layer's state: the latent weights, the rule's momenta and
-- the fixed-point weights `W` of the latents (§2), kept up to date by the
-- rules; `kmax` and `shift` as in §2-§3.
type~ dense =
  { kmax: i32
  , shift: i32
  , latent: [][]i32
  , momentum: [][]i32
  , weights: [][]i32
  }

-- | Which form of the matrix products to use: `cpu` picks the loop forms,
-- otherwise the tiled forms (same bits).
type target = {cpu: bool}

-- | The fixed-point weights `W` of a layer's latent weights (§2).
def weights [n] [m] (kmax: i32) (latent: [n][m]i32) : [n][m]i32 =
  map (map (weight_of_latent kmax)) latent

-- | A dense layer built from its latent weights and momenta.
def dense_of [n] [m] (kmax: i32) (shift: i32) (latent: [n][m]i32) (momentum: [n][m]i32) : dense =
  {kmax, shift, latent, momentum, weights = weights kmax latent}

-- | The forward accumulator `z = x W` of a batch (§3), as map-map-reduce
-- so that the compiler tiles it (for GPUs).
def forward_z_tiled [b] [n] [m] (x: [b][n]u8) (w: [n][m]i32) : [b][m]i32 =
  let wt = transpose w
  in map (\xr -> map (\wc -> i32.sum (map2 (\xi wi -> i32.u8 xi * wi) xr wc)) wt) x

local -- | Output columns per task of the CPU products: a block of accumulators
-- for every row of the batch stays in the cache while the rows of `W`
-- stream past once.
def cpu_block : i64 = 256

-- | `forward_z_tiled` for CPUs: in parallel over blocks of output columns;
-- within a block, every input row `i` of `W` is read once and added, scaled
-- by `x[s, i]`, to each sample `s` whose input `i` is non-zero.
def forward_z_blocked [b] [n] [m] (x: [b][n]u8) (w: [n][m]i32) : [b][m]i32 =
  let blocks = (m + cpu_block - 1) / cpu_block
  let xt = transpose x
  let parts =
    map (\jb ->
           let j0 = jb * cpu_block
           let width = i64.min cpu_block (m - j0)
           in loop acc = replicate b (replicate cpu_block 0i32)
              for i < n do
                let wrow = w[i, j0:j0 + width]
                in loop acc for s < b do
                     let xi = i32.u8 xt[i, s]
                     in if xi == 0
                        then acc
                        else loop acc for j < width do acc with [s, j] = acc[s, j] + xi * wrow[j])
        (iota blocks)
  in tabulate_2d b m (\s j -> parts[j / cpu_block, s, j % cpu_block])

-- | The forward accumulator `z = x W` (§3) in the form of target `tg`.
def forward_z [b] [n] [m] (tg: target) (x: [b][n]u8) (w: [n][m]i32) : [b][m]i32 =
  if tg.cpu then forward_z_blocked x w else forward_z_tiled x w

-- | The learning accumulator `G = a^T d` (§7.2) as map-map-reduce, for
-- GPUs; `f i h g` turns each sum into the result (fused with the product).
def accumulate_tiled 'r [b] [n] [m] (f: i64 -> i64 -> i32 -> r) (a: [b][n]u8) (d: [b][m]i32) : [n][m]r =
  let dt = transpose d
  in map2 (\i ac ->
             map2 (\h dc -> f i h (i32.sum (map2 (\ai di -> i32.u8 ai * di) ac dc)))
                  (iota m)
                  dt)
          (iota n)
          (transpose a)

-- | `accumulate_tiled` for CPUs: in parallel over the rows `i` of `G`, each
-- adding the delta rows of the samples whose activation `i` is non-zero.
def accumulate_rows 'r [b] [n] [m] (f: i64 -> i64 -> i32 -> r) (a: [b][n]u8) (d: [b][m]i32) : [n][m]r =
  let at = transpose a
  in map2 (\i ac ->
             let g =
               loop acc = replicate m 0i32
               for s < b do
                 let ai = i32.u8 ac[s]
                 in if ai == 0
                    then acc
                    else loop acc for h < m do acc with [h] = acc[h] + ai * d[s, h]
             in map2 (f i) (iota m) g)
          (iota n)
          at

-- | The learning accumulator `G = a^T d` (§7.2) in the form of target
-- `tg`, each element `G[i, h]` passed through `f i h` in the same pass.
def accumulate 'r [b] [n] [m] (tg: target) (f: i64 -> i64 -> i32 -> r) (a: [b][n]u8) (d: [b][m]i32) : [n][m]r =
  if tg.cpu then accumulate_rows f a d else accumulate_tiled f a d

-- | A layer's fixed-point weights with the input width `n` of the batch
-- (a size check on the host).
def layer_weights [n] 'a (l: dense) (_: [n]a) : [n][]i32 =
  let [n'][m] (w: [n'][m]i32) = l.weights
  in w :> [n][m]i32

-- | The forward pass of a layer (§3): the activations of a batch and the
-- clamp's slopes (§7.2).
def dense_forward [b] [n] (tg: target) (l: dense) (x: [b][n]u8) : ([b][]u8, [b][]bool) =
  let w = layer_weights l (transpose x)
  let z = forward_z tg x w
  in (map (map (activate l.shift)) z, map (map (slope l.shift)) z)

-- | The output activations of a layer (§3), without the slopes.
def dense_output [b] [n] (tg: target) (l: dense) (x: [b][n]u8) : [b][]u8 =
  map (map (activate l.shift)) (forward_z tg x (layer_weights l (transpose x)))

-- | Dropout of hidden units during training (§7.2): `rate` in 0..255 (0 is
-- none), the network's `seed` and the global step `t` of the batch.
type dropout = {rate: i32, seed: u64, t: i64}

-- | Apply dropout to hidden layer `l`'s activations of a batch: unit `h` of
-- row `s` becomes 0 when `(hash(seed, STREAM_DROPOUT, l, t, s * n + h) & 255) < rate`.
def drop_units [b] [n] (dr: dropout) (l: i64) (a: [b][n]u8) : [b][n]u8 =
  if dr.rate == 0
  then a
  else let key = hash (hash (hash dr.seed stream_dropout) l) dr.t
       let rate = u64.i32 dr.rate
       in map2 (\s row ->
                  map2 (\h v -> if (hash key (s * n + h) & 255) < rate then 0 else v)
                       (iota n)
                       row)
               (iota b)
               a
