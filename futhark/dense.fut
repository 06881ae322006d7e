-- | Dense layers and whole networks of them (docs/arithmetic.md §3).
--
-- A network is described by flat arrays, as in the host state:
-- `sizes` (`n_in, hidden..., classes`), per-layer `kmax` and `shift`, and
-- the latent weights of every layer one after the other, each row-major
-- `(n_in, n_out)`. The forward pass reads the fixed-point weights `W` of
-- the latents (`network_weights`), laid out the same way; the learning
-- rules keep them up to date as they change the latents. Layers have different widths, so per-layer activations
-- are kept in buffers padded to the widest layer (`max_width`).

import "arith"

-- | The fixed-point weights `W` of a layer's latent weights (§2).
def weights [m] (kmax: i32) (latent: [m]i32) : [m]i32 =
  map (weight_of_latent kmax) latent

-- | The forward accumulator `z = x W` of a batch (§3), an exact i32 matrix
-- product of the u8 inputs and the fixed-point weights, written as
-- map-map-reduce so that the compiler tiles it (for GPUs).
def forward_z_tiled [b] [n_in] [n_out] (x: [b][n_in]u8) (w: [n_in][n_out]i32) : [b][n_out]i32 =
  let wt = transpose w
  in map (\xr -> map (\wc -> i32.sum (map2 (\xi wi -> i32.u8 xi * wi) xr wc)) wt) x

-- | `forward_z_tiled` written for CPUs: each row of `x` adds the rows of `w`
-- whose input is non-zero, sequentially and in place (contiguous, and
-- inputs are often zero). The sum is exact, so the bits are the same.
def forward_z_rows [b] [n_in] [n_out] (x: [b][n_in]u8) (w: [n_in][n_out]i32) : [b][n_out]i32 =
  map (\xr ->
         loop acc = replicate n_out 0
         for i < n_in do
           let xi = i32.u8 xr[i]
           in if xi == 0
              then acc
              else loop acc for j < n_out do acc with [j] = acc[j] + xi * w[i, j])
      x

-- | The forward accumulator `z = x W` (§3): `forward_z_rows` if `cpu`, else
-- `forward_z_tiled`.
def forward_z [b] [n_in] [n_out] (cpu: bool) (x: [b][n_in]u8) (w: [n_in][n_out]i32) : [b][n_out]i32 =
  if cpu then forward_z_rows x w else forward_z_tiled x w

-- | The learning accumulator `G = a^T d` (§7.2), an exact i32 matrix product
-- of the pre-synaptic activations and the deltas of a batch, written as
-- map-map-reduce so that the compiler tiles it (for GPUs).
def accumulate_tiled [b] [n_in] [n_out] (a: [b][n_in]u8) (d: [b][n_out]i32) : [n_in][n_out]i32 =
  let dt = transpose d
  in map (\ac -> map (\dc -> i32.sum (map2 (\ai di -> i32.u8 ai * di) ac dc)) dt)
         (transpose a)

-- | `accumulate_tiled` written for CPUs: each row `i` of `G` adds the delta
-- rows of the samples whose activation `i` is non-zero, in place.
def accumulate_rows [b] [n_in] [n_out] (a: [b][n_in]u8) (d: [b][n_out]i32) : [n_in][n_out]i32 =
  map (\i ->
         loop acc = replicate n_out 0
         for s < b do
           let ai = i32.u8 a[s, i]
           in if ai == 0
              then acc
              else loop acc for h < n_out do acc with [h] = acc[h] + ai * d[s, h])
      (iota n_in)

-- | The learning accumulator `G = a^T d` (§7.2): `accumulate_rows` if `cpu`,
-- else `accumulate_tiled`.
def accumulate [b] [n_in] [n_out] (cpu: bool) (a: [b][n_in]u8) (d: [b][n_out]i32) : [n_in][n_out]i32 =
  if cpu then accumulate_rows a d else accumulate_tiled a d

-- | Start of each layer's synapses in the flat latent array, and the
-- total at the end: `offsets[l] = sum_{l' < l} sizes[l'] * sizes[l'+1]`.
def weight_offsets [k] (sizes: [k]i64) : [k]i64 =
  let counts = map (\l -> if l == 0 then 0 else sizes[l - 1] * sizes[l]) (iota k)
  in scan (+) 0 counts

-- | Start of each hidden layer's feedback matrix (`n_out * classes` values)
-- in the flat feedback array; entry `l` is for layer `l`.
def feedback_offsets [k] (sizes: [k]i64) : [k]i64 =
  let classes = sizes[k - 1]
  let counts = map (\l -> if l == 0 then 0 else sizes[l] * classes) (iota k)
  in scan (+) 0 counts

-- | The width of the widest layer (inputs included).
def max_width [k] (sizes: [k]i64) : i64 = i64.maximum sizes

-- | A row padded with zeros (or cut) to `w` values.
def pad_row 't [n] (w: i64) (zero: t) (row: [n]t) : [w]t =
  tabulate w (\j -> if j < n then row[j] else zero)

-- | The fixed-point weights of every layer of a network (flat, as the
-- latents), each layer with its own `kmax`.
def network_weights [k] [l1] [s] (sizes: [k]i64) (kmax: [l1]i32) (latent: [s]i32) : [s]i32 =
  let offsets = weight_offsets sizes
  in loop w = replicate s 0
     for l < l1 do
       let off = offsets[l]
       let cnt = sizes[l] * sizes[l + 1]
       let w[off:off + cnt] = weights kmax[l] latent[off:off + cnt]
       in w

-- | One layer's fixed-point weights as an `(n_in, n_out)` matrix, taken from
-- the network's flat weights at `offset`.
def layer_weights [s] (weights: [s]i32) (offset: i64) (n_in: i64) (n_out: i64) : [n_in][n_out]i32 =
  unflatten (weights[offset:offset + n_in * n_out] :> [n_in * n_out]i32)

-- | The forward pass of layer `l` on padded activations: returns the
-- layer's accumulators `z` padded to `w` (zeros past `n_out`). `cpu` picks
-- the CPU form of the matrix product (see `forward_z`).
def layer_forward [k] [s] [b] [w]
                  (cpu: bool)
                  (sizes: [k]i64)
                  (weights: [s]i32)
                  (offsets: [k]i64)
                  (l: i64)
                  (a: [b][w]u8) : *[b][w]i32 =
  let n_in = sizes[l]
  let n_out = sizes[l + 1]
  let wts = layer_weights weights offsets[l] n_in n_out
  let x = map (\r -> r[:n_in]) a
  in map (pad_row w 0) (forward_z cpu x wts)

-- | Dropout of hidden units during training (§7.2): `rate` in 0..255 (0 is
-- none), the network's `seed` and the global step `t` of the batch.
type dropout = {rate: i32, seed: u64, t: i64}

-- | No dropout (prediction, and rules without it).
def no_dropout : dropout = {rate = 0, seed = 0, t = 0}

-- | Apply dropout to hidden layer `l`'s activations of a batch (padded rows;
-- the layer has `n_out` units): unit `h` of row `s` becomes 0 when
-- `(hash(seed, STREAM_DROPOUT, l, t, s * n_out + h) & 255) < rate`.
def drop_units [b] [w] (dr: dropout) (l: i64) (n_out: i64) (a: [b][w]u8) : [b][w]u8 =
  let key = hash (hash (hash dr.seed stream_dropout) l) dr.t
  let rate = u64.i32 dr.rate
  in map2 (\s row ->
             map2 (\h v ->
                     if h < n_out && (hash key (s * n_out + h) & 255) < rate then 0 else v)
                  (iota w)
                  row)
          (iota b)
          a

-- | The forward pass of a whole network (fixed-point `weights`, see
-- `network_weights`) on a batch `x` (§3), with dropout `dr` on the hidden
-- layers (§7.2). Returns every layer's activations (inputs first,
-- `layers + 1` of them, after dropout) and every layer's clamp slope (§7.2,
-- from `z`), each padded to the widest layer.
def forward_all [k] [l1] [s] [b] [d]
                (cpu: bool)
                (dr: dropout)
                (sizes: [k]i64)
                (shift: [l1]i32)
                (weights: [s]i32)
                (x: [b][d]u8) : ([k][b][]u8, [l1][b][]bool) =
  let w = max_width sizes
  let offsets = weight_offsets sizes
  let a0 = map (pad_row w 0) x
  let acts = replicate k (replicate b (replicate w 0u8))
  let acts[0] = copy a0
  let slopes = replicate l1 (replicate b (replicate w false))
  let (acts, slopes, _) =
    loop (acts, slopes, cur) = (acts, slopes, a0)
    for l < l1 do
      let z = layer_forward cpu sizes weights offsets l cur
      let a = map (map (activate shift[l])) z
      let a =
        if dr.rate > 0 && l < l1 - 1
        then drop_units dr l sizes[l + 1] a
        else a
      let acts[l + 1] = copy a
      let slopes[l] = map (map (slope shift[l])) z
      in (acts, slopes, a)
  in (acts, slopes)

-- | The output activations of a network (fixed-point `weights`) for a batch
-- `x` (§3), without keeping the hidden layers' values.
def forward_output [k] [l1] [s] [b] [d]
                   (cpu: bool)
                   (sizes: [k]i64)
                   (shift: [l1]i32)
                   (weights: [s]i32)
                   (x: [b][d]u8) : [b][]u8 =
  let w = max_width sizes
  let offsets = weight_offsets sizes
  let a0 = map (pad_row w 0) x
  let a =
    loop a = a0
    for l < l1 do
      map (map (activate shift[l])) (layer_forward cpu sizes weights offsets l a)
  in map (\r -> r[:sizes[k - 1]]) a

-- ==
-- entry: test_forward
-- input { [[1u8, 2u8, 3u8], [255u8, 0u8, 255u8]]
--         [1048576, -1048576, 524288, 1048576, 0, 262144] 2 0 }
-- output { [[8u8, 7u8], [255u8, 0u8]]
--          [[8u8, 7u8], [255u8, 0u8]] }
-- input { [[1u8, 2u8, 3u8], [255u8, 0u8, 255u8]]
--         [1048576, -1048576, 524288, 1048576, 0, 262144] 2 2 }
-- output { [[2u8, 1u8], [255u8, 0u8]]
--          [[2u8, 1u8], [255u8, 0u8]] }
-- input { [[4u8, 8u8, 3u8], [255u8, 0u8, 255u8]]
--         [1048576, -1048576, 524288, 1048576, 0, 262144] 2 1 }
-- output { [[16u8, 9u8], [255u8, 0u8]]
--          [[16u8, 9u8], [255u8, 0u8]] }
entry test_forward [b] [n] [m] (x: [b][n]u8) (latent: [m]i32) (kmax: i32) (shift: i32) =
  let n_out = m / n
  let w = weights kmax latent
  in ( forward_output false [n, n_out] [shift] w x
     , forward_output true [n, n_out] [shift] w x
     )

-- ==
-- entry: test_forward_all
-- input { [[10u8, 20u8]] [1048576, 0, 0, 1048576, 1048576, 1048576, 1048576, -1048576] }
-- output { [[[10u8, 20u8], [10u8, 20u8], [30u8, 0u8]]]
--          [[[true, true], [true, false]]]
--          [[[10u8, 20u8], [10u8, 20u8], [30u8, 0u8]]]
--          [[[true, true], [true, false]]] }
entry test_forward_all [b] [d] (x: [b][d]u8) (latent: []i32) =
  let w = network_weights [d, 2, 2] [0, 0] latent
  let (acts, slopes) = forward_all false no_dropout [d, 2, 2] [0, 0] w x
  let (acts_cpu, slopes_cpu) = forward_all true no_dropout [d, 2, 2] [0, 0] w x
  in (transpose acts, transpose slopes, transpose acts_cpu, transpose slopes_cpu)

-- ==
-- entry: test_accumulate
-- input { [[1u8, 2u8], [3u8, 4u8]] [[1, -1, 0], [2, 0, 5]] }
-- output { [[7, -1, 15], [10, -2, 20]] [[7, -1, 15], [10, -2, 20]] }
-- input { [[0u8, 2u8], [3u8, 0u8]] [[1, -1, 0], [2, 0, 5]] }
-- output { [[6, 0, 15], [2, -2, 0]] [[6, 0, 15], [2, -2, 0]] }
entry test_accumulate [b] [n] [m] (a: [b][n]u8) (d: [b][m]i32) =
  (accumulate false a d, accumulate true a d)

-- ==
-- entry: test_offsets
-- input { [784i64, 100i64, 10i64] } output { [0i64, 78400i64, 79400i64] [0i64, 1000i64, 1100i64] }
entry test_offsets (sizes: []i64) = (weight_offsets sizes, feedback_offsets sizes)
