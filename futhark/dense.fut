-- | The matrix products of a layer (docs/arithmetic.md §3, §7.2), each in a form for GPUs (written
-- as map-map-reduce, which the compiler tiles) and a form for CPUs (loops
-- that skip zero inputs and walk memory contiguously). The sums are exact,
-- so both forms give the same bits.
--
-- `layer.fut` holds a layer's state; a convolution multiplies its patches
-- (`conv.fut`) with these same products.

import "arith"

-- | Which form of the matrix products to use: `cpu` picks the loop forms,
-- otherwise the tiled forms (same bits).
type target = {cpu: bool}

-- | The forward accumulator `z = x W` of a batch (§3), as map-map-reduce
-- so that the compiler tiles it (for GPUs).
def forward_z_tiled [b] [n] [m] (x: [b][n]u8) (w: [n][m]i32) : [b][m]i32 =
  let wt = transpose w
  in map (\xr -> map (\wc -> i32.sum (map2 (\xi wi -> i32.u8 xi * wi) xr wc)) wt) x

-- | Output columns per task of the CPU forward product: a task's
-- accumulators stay in the cache while the rows of `W` stream past.
def cpu_cols : i64 = 64

-- | Batch rows per task of the CPU forward product.
def cpu_rows : i64 = 32

-- | `forward_z_tiled` for CPUs: in parallel over tiles of (batch rows, output
-- columns); within a tile, the rows of `W` are read four at a time and
-- added, scaled by `x[s, i..i+3]`, to each sample `s` whose four inputs are
-- not all zero: the tile's accumulators are loaded and stored once for four
-- products, which was their bottleneck (docs/performance.md). Indices are
-- in range by construction (`#[unsafe]`: no bounds checks, so the inner
-- loops vectorise).
def forward_z_blocked [b] [n] [m] (x: [b][n]u8) (w: [n][m]i32) : [b][m]i32 =
  let col_tiles = (m + cpu_cols - 1) / cpu_cols
  let row_tiles = (b + cpu_rows - 1) / cpu_rows
  let xt = transpose x
  let quads = n / 4
  let tiles =
    #[unsafe]
    map (\tile ->
           let j0 = (tile % col_tiles) * cpu_cols
           let s0 = (tile / col_tiles) * cpu_rows
           let width = i64.min cpu_cols (m - j0)
           let rows = i64.min cpu_rows (b - s0)
           -- Slices, not `w[i, j0 + j]`: the compiler's index arithmetic on a
           -- slice is affine to the C compiler, which then vectorises the loop.
           let acc =
             loop acc = replicate cpu_rows (replicate cpu_cols 0i32)
             for q < quads do
               let i = 4 * q
               let (w0, w1, w2, w3) = (w[i, j0:j0 + width], w[i + 1, j0:j0 + width], w[i + 2, j0:j0 + width], w[i + 3, j0:j0 + width])
               in loop acc for s < rows do
                    let (x0, x1, x2, x3) = (i32.u8 xt[i, s0 + s], i32.u8 xt[i + 1, s0 + s], i32.u8 xt[i + 2, s0 + s], i32.u8 xt[i + 3, s0 + s])
                    in if (x0 | x1 | x2 | x3) == 0
                       then acc
                       else loop acc for j < width do
                              acc with [s, j] = acc[s, j] + x0 * w0[j] + x1 * w1[j] + x2 * w2[j] + x3 * w3[j]
           in loop acc for i in 4 * quads..<n do
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

-- | An i64 sum saturated to `[-g_max, g_max]` (§7.5).
def saturate_g (v: i64) : i32 =
  i32.i64 (i64.max (-i64.i32 g_max) (i64.min (i64.i32 g_max) v))

local
-- | Rows of `a` and `d` per partial sum of `accumulate_exact` on GPUs.
def exact_chunk : i64 = 512

local
-- | Fewest sums `k * m` for which `accumulate_exact` splits its rows on GPUs.
def exact_split_sums : i64 = 4096

local
-- | `G = a^T d` with exact i64 sums as map-map-reduce, for GPUs.
def accumulate_exact_tiled [r] [k] [m] (a: [r][k]u8) (d: [r][m]i32) : [k][m]i64 =
  map (\ac -> map (\dc -> i64.sum (map2 (\ai di -> i64.u8 ai * i64.i32 di) ac dc)) (transpose d))
      (transpose a)

local
-- | `accumulate_exact_tiled` of chunks of `exact_chunk` rows, their partial
-- sums (and the remaining rows') added up: a convolution's long sums
-- (samples times positions) into few results would leave most of a GPU
-- idle (twelve times slower for 50,176 rows into 576 x 64 sums on an H100).
-- The sums are exact, so the bits are those of one sum.
def accumulate_exact_split [r] [k] [m] (a: [r][k]u8) (d: [r][m]i32) : [k][m]i64 =
  let parts = r / exact_chunk
  let full = parts * exact_chunk
  let partial =
    map2 accumulate_exact_tiled
         (unflatten (a[:full] :> [parts * exact_chunk][k]u8))
         (unflatten (d[:full] :> [parts * exact_chunk][m]i32))
  let rest = accumulate_exact_tiled a[full:] d[full:]
  in tabulate_2d k m (\i h -> rest[i, h] + i64.sum (map (\p -> p[i, h]) partial))

-- | The learning accumulator `G = a^T d` with exact i64 sums (§7.5: a
-- convolution's accumulator sums over samples and positions; §7.6: the
-- sums of a batch's row ranges, added up before the step), in the form of
-- target `tg`.
def accumulate_exact [r] [k] [m] (tg: target) (a: [r][k]u8) (d: [r][m]i32) : [k][m]i64 =
  if tg.cpu
  then #[unsafe]
       map (\ac ->
              loop acc = replicate m 0i64
              for s < r do
                let ai = i64.u8 ac[s]
                in if ai == 0
                   then acc
                   else loop acc for h < m do acc with [h] = acc[h] + ai * i64.i32 d[s, h])
           (transpose a)
  else if r >= 2 * exact_chunk && k * m >= exact_split_sums
  then accumulate_exact_split a d
  else accumulate_exact_tiled a d

-- | `accumulate_exact` saturated to `[-g_max, g_max]` (§7.5).
def accumulate_wide [r] [k] [m] (tg: target) (a: [r][k]u8) (d: [r][m]i32) : [k][m]i32 =
  map (map saturate_g) (accumulate_exact tg a d)

-- | Dropout of hidden units during training (§7.2): `rate` in 0..255 (0 is
-- none), the network's `seed`, the global step `t` of the batch, and the
-- position `row0` of the rows at hand in their global batch (§7.6: 0 but
-- for a rank's share of a batch).
type dropout = {rate: i32, seed: u64, t: i64, row0: i64}

-- | Dropout (`drop_units`) of the units `unit0, unit0 + 1, ...` of a layer of
-- `units` (§7.7: a rank's own units).
#[inline]
def drop_block [b] [n] (dr: dropout) (l: i64) (units: i64) (unit0: i64) (a: [b][n]u8) : [b][n]u8 =
  -- The rate is tested inside the kernel, not on the host: a host-side
  -- branch would read it from the device every batch. A kept unit is
  -- masked, not branched on (rate 0 keeps every unit): the loop then
  -- vectorises on CPUs, 2-2.4x as fast as the branch.
  let key = hash (hash (hash (seed_key dr.seed) stream_dropout) l) dr.t
  let rate = u32.i32 dr.rate
  in map2 (\s row ->
             map2 (\h v ->
                     let word = (dr.row0 + s) * units + unit0 + h
                     in v & u8.bool ((hash key word & 255) >= rate) * 255)
                  (iota n)
                  row)
          (iota b)
          a

-- | Apply dropout to hidden layer `l`'s activations of a batch: unit `h` of
-- batch row `s` becomes 0 when `(hash(seed, STREAM_DROPOUT, l, t, s * n + h) & 255) < rate`.
-- Inlined, like `drop_block`: across a function call its arrays would be
-- copied on every batch.
#[inline]
def drop_units [b] [n] (dr: dropout) (l: i64) (a: [b][n]u8) : [b][n]u8 =
  drop_block dr l n 0 a
