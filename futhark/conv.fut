-- | Convolution and pooling (docs/arithmetic.md §3.1, §3.2, §7.5): a
-- layer's patches (its `geometry` is `host.fut`'s), the pooling after it
-- and the routing of deltas back through that pooling. A layer multiplies its patches by
-- its weights with the products of `dense.fut`; a Dense layer is the 1x1
-- case, whose patches are its input rows.

import "arith"
import "host"

-- | Whether a layer is Dense: a 1x1 convolution of a 1x1 image, no pooling.
def is_dense (g: geometry) : bool =
  g.in_h == 1 && g.in_w == 1 && g.k_h == 1 && g.k_w == 1 && g.pool == pool_none

-- | Output positions of the convolution.
def positions (g: geometry) : i64 = g.out_h * g.out_w

-- | The patches of a batch (§3.1): row `s * positions + oy * out_w + ox`,
-- column `(ky * k_w + kx) * in_c + ch`; zeros outside the image; with a
-- bias (§3), a last column of `bias_input`.
def patches [b] [n] (g: geometry) (k: i64) (x: [b][n]u8) : [][k]u8 =
  let p = positions g
  in #[unsafe]
     tabulate_2d (b * p) k (\r i ->
                              if i == g.k_h * g.k_w * g.in_c
                              then bias_input
                              else let (s, pos) = (r / p, r % p)
                                   let (oy, ox) = (pos / g.out_w, pos % g.out_w)
                                   let ky = i / (g.k_w * g.in_c)
                                   let kx = (i / g.in_c) % g.k_w
                                   let ch = i % g.in_c
                                   let iy = oy * g.stride_h + ky - g.pad_top
                                   let ix = ox * g.stride_w + kx - g.pad_left
                                   in if iy < 0 || iy >= g.in_h || ix < 0 || ix >= g.in_w
                                      then 0
                                      else x[s, (iy * g.in_w + ix) * g.in_c + ch])

-- | A Dense layer's rows of `k` inputs (§3): the batch's rows, each
-- followed by `bias_input` when the layer has a bias (`k = n + 1`). A
-- size, not the geometry, tells them apart: the host knows it, so no
-- kernel launch waits on the choice.
def dense_rows [b] [n] (k: i64) (x: [b][n]u8) : [b][k]u8 =
  if k == n
  then x :> [b][k]u8
  else #[unsafe] tabulate_2d b k (\s i -> if i < n then x[s, i] else bias_input)

-- | The block's output features per sample after pooling.
def pooled_features (g: geometry) (m: i64) : i64 =
  (g.out_h / g.pool_h) * (g.out_w / g.pool_w) * m

-- | Pooling (§3.2) of the convolution's activations `a` (rows as in
-- `patches`) into `b` samples of `pooled_features` values, with each
-- window's winner (its position) for max pooling. No pooling is the 1x1
-- window.
def pool [r] [m] (g: geometry) (b: i64) (a: [r][m]u8) : ([b][]u8, [b][]i32) =
  let p = positions g
  let pw = g.out_w / g.pool_w
  let o = pooled_features g m
  let cell s u =
    let (c, f) = (u / m, u % m)
    let (py, px) = (c / pw, c % pw)
    let (best, winner, total) =
      loop (best, winner, total) = (-1i32, 0i64, 0i32)
      for w < g.pool_h * g.pool_w do
        let pos = (py * g.pool_h + w / g.pool_w) * g.out_w + px * g.pool_w + w % g.pool_w
        let v = i32.u8 (#[unsafe] a[s * p + pos, f])
        in if v > best then (v, pos, total + v) else (best, winner, total + v)
    in if g.pool == pool_max
       then (u8.i32 best, i32.i64 winner)
       else (u8.i32 (total / i32.i64 (g.pool_h * g.pool_w)), 0)
  in tabulate_2d b o cell |> map unzip |> unzip

-- | The deltas of the convolution's positions (§7.5) from the deltas
-- `delta` of the block's output units: each position takes its window's
-- unit's delta if it routes there (every position without pooling or with
-- average pooling; the winner with max pooling, `winner` flat `(b, o)`)
-- and its slope (§7.2) is 1.
def route [b] [o] [w] [r] [m] (g: geometry) (shift: i32) (delta: [b][o]i32) (winner: [w]i32) (z: [r][m]i32) : [r][m]i32 =
  let p = positions g
  let (ph, pw) = (g.out_h / g.pool_h, g.out_w / g.pool_w)
  in #[unsafe]
     tabulate_2d r m (\q f ->
                        let (s, pos) = (q / p, q % p)
                        let (py, px) = ((pos / g.out_w) / g.pool_h, (pos % g.out_w) / g.pool_w)
                        let u = (py * pw + px) * m + f
                        in if py >= ph || px >= pw
                              || (g.pool == pool_max && winner[s * o + u] != i32.i64 pos)
                           || !(slope shift z[q, f])
                           then 0
                           else delta[s, u])
