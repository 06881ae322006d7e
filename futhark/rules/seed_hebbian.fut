-- | Rule `seed_hebbian` (docs/arithmetic.md §7.3): the original Graia's
-- rule. One sample at a time; targets 255/0; no random numbers.
--
-- Its state is `prev_loss` (the host state's third counter).

import "../arith"
import "../dense"
import "dfa"

-- | The excite/inhibit table of §7.3 on one code, with `n = kmax + 1` the
-- largest code magnitude. Code 0 stays 0. Checked in this order (which
-- matters only for `n = 1`): excite `+1 -> +1`, `-n -> +(n-1)`, else
-- `c - 1`; inhibit `-1 -> -1`, `+n -> -(n-1)`, else `c + 1`.
#[inline]
def seed_step (n: i8) (excite: bool) (c: i8) : i8 =
  if c == 0
  then 0
  else if excite
  then (if c == 1 then 1 else if c == -n then n - 1 else c - 1)
  else (if c == -1 then -1 else if c == n then -(n - 1) else c + 1)

-- | The per-sample loss of §7.3: `(sum_j |e_j|) / C`, integer division.
def seed_loss [c] (e: [c]i32) : i64 =
  i64.sum (map (\v -> i64.i32 (i32.abs v)) e) / i64.i64 c

-- | One sample of rule `seed_hebbian`: forward pass (with the fixed-point
-- `weights` of the latents, see `network_weights`), metrics, loss, and the
-- update of every synapse whose pre-synaptic value is positive. Returns the
-- new latents and weights, the sample's loss (the next `prev_loss`),
-- whether the prediction was correct (0 or 1) and the sample's squared
-- error. `cpu` picks the CPU form of the matrix products (see `forward_z`).
def seed_sample [k] [l1] [s] [d]
                (cpu: bool)
                (sizes: [k]i64)
                (kmax: [l1]i32)
                (shift: [l1]i32)
                (latent: [s]i32)
                (weights: [s]i32)
                (prev_loss: i64)
                (x: [d]u8)
                (label: i32) : ([s]i32, [s]i32, i64, i64, i64) =
  let (acts, _) = forward_all cpu no_dropout sizes shift weights [x]
  let c = sizes[k - 1]
  let out = map (\r -> r[:c]) acts[l1]
  let e = output_error 255 0 out [label]
  let (correct, sq) = metrics out [label] e
  let loss = seed_loss e[0]
  let was_better = loss < prev_loss
  let offsets = weight_offsets sizes
  let (latent, weights) =
    loop (latent, weights) = (copy latent, copy weights)
    for l < l1 do
      let n_in = sizes[l]
      let n_out = sizes[l + 1]
      let km = kmax[l]
      let n = i8.i32 km + 1
      let off = offsets[l]
      let cnt = n_in * n_out
      let pre = acts[l, 0, :n_in]
      let fired = map (> 0) acts[l + 1, 0, :n_out]
      let lat = unflatten (latent[off:off + cnt] :> [n_in * n_out]i32)
      let wts = unflatten (weights[off:off + cnt] :> [n_in * n_out]i32)
      let (lat', w') =
        map3 (\p lrow wrow ->
                map3 (\f lq wq ->
                        if p == 0
                        then (lq, wq)
                        else let c' = seed_step n (f == was_better) (code_of_latent km lq)
                             in (canonical c', fixed_weight km c'))
                     fired
                     lrow
                     wrow
                |> unzip)
             pre
             lat
             wts
        |> unzip
      let latent[off:off + cnt] = flatten lat'
      let weights[off:off + cnt] = flatten w'
      in (latent, weights)
  in (latent, weights, loss, correct, sq)

-- ==
-- entry: test_seed_step
-- input { 9i8 [1i8, 2i8, 9i8, -1i8, -2i8, -9i8, 0i8] }
-- output { [1i8, 1i8, 8i8, -2i8, -3i8, 8i8, 0i8] [2i8, 3i8, -8i8, -1i8, -1i8, -8i8, 0i8] }
-- input { 1i8 [1i8, -1i8, 0i8] }
-- output { [1i8, 0i8, 0i8] [0i8, -1i8, 0i8] }
entry test_seed_step (n: i8) (codes: []i8) : ([]i8, []i8) =
  (map (seed_step n true) codes, map (seed_step n false) codes)

-- ==
-- entry: test_seed_sample
-- input { [10u8, 0u8] 0 255i64 [1048576, 1048576, 1048576, -1048576] }
-- output { [1048576, 1048576, 1048576, -1048576] 127i64 1i64 55625i64 }
-- input { [10u8, 0u8] 0 0i64 [1048576, 1048576, 1048576, -1048576] }
-- output { [524288, 524288, 1048576, -1048576] 127i64 1i64 55625i64 }
-- input { [10u8, 0u8] 1 0i64 [1048576, -1048576, 1048576, -1048576] }
-- output { [524288, -524288, 1048576, -1048576] 137i64 0i64 65425i64 }
entry test_seed_sample [d] (x: [d]u8) (label: i32) (prev_loss: i64) (latent: []i32) =
  let (latent, _, loss, correct, sq) =
    seed_sample false [d, 2] [1] [0] latent (network_weights [d, 2] [1] latent) prev_loss x label
  in (latent, loss, correct, sq)
