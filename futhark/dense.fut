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
type dense [n] [m] =
  { kmax: i32
  , shift: i32
  , latent: [n][m]i32
  , momentum: [n][m]i32
  , weights: [n][m]i32
  }

-- | Which form of the matrix products to use: `cpu` picks the loop forms,
-- otherwise the tiled forms (same bits).
type target = {cpu: bool}

-- | The fixed-point weights `W` of a layer's latent weights (§2).
def weights [n] [m] (kmax: i32) (latent: [n][m]i32) : [n][m]i32 =
  map (map (weight_of_latent kmax)) latent

-- | A dense layer built from its latent weights and momenta.
def dense_of [n] [m] (kmax: i32) (shift: i32) (latent: [n][m]i32) (momentum: [n][m]i32) : dense [n] [m] =
  {kmax, shift, latent, momentum, weights = weights kmax latent}

-- | The forward accumulator `z = x W` of a batch (§3), as map-map-reduce
-- so that the compiler tiles it (for GPUs).
def forward_z_tiled [b] [n] [m] (x: [b][n]u8) (w: [n][m]i32) : [b][m]i32 =
  let wt = transpose w
  in map (\xr -> map (\wc -> i32.sum (map2 (\xi wi -> i32.u8 xi * wi) xr wc)) wt) x

-- | Output columns per task of the CPU forward product: a task's
-- accumulators stay in the cache while the rows of `W` stream past.
def cpu_cols : i64 = 64

-- | Batch rows per task of the CPU forward product.
def cpu_rows : i64 = 16

-- | `forward_z_tiled` for CPUs: in parallel over tiles of (batch rows, output
-- columns); within a tile, every input row `i` of `W` is read once and
-- added, scaled by `x[s, i]`, to each sample `s` whose input `i` is
-- non-zero. Indices are in range by construction (`#[unsafe]`: no bounds
-- checks, so the inner loop vectorises).
def forward_z_blocked [b] [n] [m] (x: [b][n]u8) (w: [n][m]i32) : [b][m]i32 =
  let col_tiles = (m + cpu_cols - 1) / cpu_cols
  let row_tiles = (b + cpu_rows - 1) / cpu_rows
  let xt = transpose x
  let tiles =
    #[unsafe]
    map (\tile ->
           let j0 = (tile % col_tiles) * cpu_cols
           let s0 = (tile / col_tiles) * cpu_rows
           let width = i64.min cpu_cols (m - j0)
           let rows = i64.min cpu_rows (b - s0)
           in loop acc = replicate cpu_rows (replicate cpu_cols 0i32)
              for i < n do
                -- A slice, not `w[i, j0 + j]`: the compiler's index arithmetic on a
                -- slice is affine to the C compiler, which then vectorises the loop.
                let wrow = w[i, j0:j0 + width]
                in loop acc for s < rows do
                     let xi = i32.u8 xt[i, s0 + s]
                     in if xi == 0
                        then acc
                        else loop acc for j < width do acc with [s, j] = acc[s, j] + xi * wrow[j])
        (iota (col_tiles * row_tiles))
  in #[unsafe]
     tabulate_2d b m (\s j -> tiles[(s / cpu_rows) * col_tiles + j / cpu_cols, s % cpu_rows, j % cpu_cols])

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
  in #[unsafe]
     map2 (\i ac ->
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

-- | The forward pass of a layer (§3): the activations of a batch and the
-- clamp's slopes (§7.2).
def dense_forward [b] [n] [m] (tg: target) (l: dense [n] [m]) (x: [b][n]u8) : ([b][m]u8, [b][m]bool) =
  let z = forward_z tg x l.weights
  in (map (map (activate l.shift)) z, map (map (slope l.shift)) z)

-- | The output activations of a layer (§3), without the slopes.
def dense_output [b] [n] [m] (tg: target) (l: dense [n] [m]) (x: [b][n]u8) : [b][m]u8 =
  map (map (activate l.shift)) (forward_z tg x l.weights)

-- | Dropout of hidden units during training (§7.2): `rate` in 0..255 (0 is
-- none), the network's `seed` and the global step `t` of the batch.
type dropout = {rate: i32, seed: u64, t: i64}

-- | Apply dropout to hidden layer `l`'s activations of a batch: unit `h` of
-- row `s` becomes 0 when `(hash(seed, STREAM_DROPOUT, l, t, s * n + h) & 255) < rate`.
def drop_units [b] [n] (dr: dropout) (l: i64) (a: [b][n]u8) : [b][n]u8 =
  -- The rate is tested inside the kernel, not on the host: a host-side
  -- branch would read it from the device every batch.
  let key = hash (hash (hash dr.seed stream_dropout) l) dr.t
  let rate = u64.i32 dr.rate
  in map2 (\s row ->
             map2 (\h v -> if rate > 0 && (hash key (s * n + h) & 255) < rate then 0 else v)
                  (iota n)
                  row)
          (iota b)
          a
