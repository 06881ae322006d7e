-- | The per-synapse update of one Dense layer (rule `dfa`, docs/arithmetic.md
-- §7.2) as the multicore backend runs it, alone, for the vectorisation
-- report in docs/performance.md (`futhark multicore --library` of this file
-- gives a small C file to read and compile with gcc's `-fopt-info-vec`;
-- `benchmarks/update_loop.c` times the step's loop): the fused update
-- (`accumulate` of `G = pre^T d` with each synapse's step), the
-- accumulation alone, and the step alone.

import "../futhark/rules/dfa"
import "../futhark/layer"
import "../futhark/dense"
import "../futhark/host"

local def cpu : target = {cpu = true}

-- | `dfa_layer_update` of a Dense layer: new latents, momenta and weights.
entry update [b] [k] [m] (params: []i64) (seed: u64) (t: i64) (kmax: i32) (geo: geometry_row) (lat: [k][m]i32) (mom: [k][m]i32) (pre: [b][k]u8) (d: [b][m]i32) : ([k][m]i32, [k][m]i32, [k][m]i32) =
  let l = dfa_layer_update true cpu (rule_params_of params) seed t 0 (layer_of kmax 0 geo lat mom) pre d
  in (l.latent, l.momentum, l.weights)

-- | The accumulator `G = pre^T d` alone (`accumulate`, CPU form).
entry accumulate_only [b] [k] [m] (pre: [b][k]u8) (d: [b][m]i32) : [k][m]i32 =
  accumulate cpu (\_ _ g -> g) pre d

-- | Each synapse's step (`dfa_block_step`) from a given accumulator `g`.
entry step_only [k] [m] (params: []i64) (seed: u64) (t: i64) (kmax: i32) (geo: geometry_row) (lat: [k][m]i32) (mom: [k][m]i32) (g: [k][m]i32) : ([k][m]i32, [k][m]i32, [k][m]i32) =
  let layer = layer_of kmax 0 geo lat mom
  let step = dfa_block_step (rule_params_of params) seed t 0 layer 0 0 m
  let l = with_steps layer (map2 (\i row -> map2 (step i) (iota m) row) (iota k) g)
  in (l.latent, l.momentum, l.weights)
