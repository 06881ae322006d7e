-- | Rule `seed_hebbian` (docs/arithmetic.md §7.3): the original Graia's
-- rule. One sample at a time; targets 255/0; no random numbers.
--
-- Its state is `prev_loss` (the host state's third counter).

import "../arith"
import "../layer"

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

-- | The update of one layer for one sample (§7.3): every synapse whose
-- pre-synaptic value is positive is excited when its unit fired as the
-- sample `was_better`, else inhibited; returns the layer with its new
-- latents and weights.
def seed_layer_update [n] [m] (was_better: bool) (layer: layer [n] [m]) (pre: [n]u8) (post: [m]u8) : layer [n] [m] =
  let km = layer.kmax
  let n_codes = i8.i32 km + 1
  let (lat', w') =
    map3 (\p lrow wrow ->
            map3 (\f lq wq ->
                    if p == 0
                    then (lq, wq)
                    else let c' = seed_step n_codes ((f > 0) == was_better) (code_of_latent km lq)
                         in (canonical c', fixed_weight km c'))
                 post
                 lrow
                 wrow
            |> unzip)
         pre
         layer.latent
         layer.weights
    |> unzip
  in layer with latent = lat' with weights = w'
