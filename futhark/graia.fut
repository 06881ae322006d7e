-- | Graia's entry points: a network's state stays on the device as one
-- opaque value; whole epochs run inside `train_epoch`.
--
-- The state holds the flat arrays of the host state (DEVELOPERS.md):
-- `sizes` (i64, `layers + 1`), `kmax` and `shift` (i32, `layers`),
-- `latent` and `momentum` (i32, synapses), `feedback` (i8,
-- `sum(hidden) * classes`) and `counters` (i64, 3: seed, step `t`,
-- `prev_loss`). Backends do not validate: the API has done it. The state
-- also holds the fixed-point weights of the latents (`weights`, see
-- `network_weights`), kept up to date by the rules, and whether to use the
-- CPU forms of the matrix products (`cpu`, see `forward_z`): they give the
-- same bits, only faster on CPUs.

import "arith"
import "dense"
import "rules/dfa"
import "rules/seed_hebbian"

-- | A network's state: the host state's flat arrays.
type~ state =
  { cpu: bool
  , sizes: []i64
  , kmax: []i32
  , shift: []i32
  , latent: []i32
  , momentum: []i32
  , weights: []i32
  , feedback: []i8
  , counters: []i64
  }

-- | Rule id of `dfa` (`graia/rules/__init__.py`).
def rule_dfa : i32 = 0

-- | Rule id of `seed_hebbian` (`graia/rules/__init__.py`).
def rule_seed_hebbian : i32 = 1

-- | Rule id of `local_heads` (`graia/rules/__init__.py`).
def rule_local_heads : i32 = 2

-- | Build a state from the host state's flat arrays.
def make_state (cpu: bool)
               (sizes: []i64)
               (kmax: []i32)
               (shift: []i32)
               (latent: []i32)
               (momentum: []i32)
               (feedback: []i8)
               (counters: []i64) : state =
  let weights = network_weights sizes kmax latent
  in {cpu, sizes, kmax, shift, latent, momentum, weights, feedback, counters}

-- | Build a state from the host state's flat arrays; `cpu` picks the CPU
-- forms of the matrix products (for the multicore backend).
entry load_state (cpu: bool)
                 (sizes: []i64)
                 (kmax: []i32)
                 (shift: []i32)
                 (latent: []i32)
                 (momentum: []i32)
                 (feedback: []i8)
                 (counters: []i64) : state =
  make_state cpu sizes kmax shift latent momentum feedback counters

-- | The host state's flat arrays of a state, in the order of `load_state`.
def host_arrays (s: state) : ([]i64, []i32, []i32, []i32, []i32, []i8, []i64) =
  (s.sizes, s.kmax, s.shift, s.latent, s.momentum, s.feedback, s.counters)

-- | The host state's flat arrays of a state, in the order of `load_state`.
entry dump_state (s: state) : ([]i64, []i32, []i32, []i32, []i32, []i8, []i64) =
  host_arrays s

-- One epoch of rule `dfa` (with `local_heads`, of rule `local_heads`) over
-- the samples `order` in batches.
local
def epoch_dfa [n] [d] [m] (local_heads: bool) (s: state) (x: [n][d]u8) (y: [n]i32) (order: [m]i32) (batch_size: i64) (params: []i64) : (state, i64, i64) =
  let p = dfa_params_of params
  let seed = u64.i64 s.counters[0]
  let num_batches = (m + batch_size - 1) / batch_size
  let (latent, momentum, weights, t, correct, sq) =
    loop (latent, momentum, weights, t, correct, sq) =
           (s.latent, s.momentum, s.weights, s.counters[1], 0, 0)
    for bi < num_batches do
      let start = bi * batch_size
      let len = i64.min batch_size (m - start)
      let idx = map i64.i32 order[start:start + len]
      let xb = map (\i -> x[i]) idx
      let yb = map (\i -> y[i]) idx
      let (latent, momentum, weights, c, e) =
        dfa_batch s.cpu local_heads s.sizes s.kmax s.shift latent momentum weights s.feedback seed t p xb yb
      in (latent, momentum, weights, t + 1, correct + c, sq + e)
  let counters = copy s.counters with [1] = t
  in ( s with latent = latent with momentum = momentum with weights = weights with counters = counters
     , correct
     , sq
     )

-- One epoch of rule `seed_hebbian`: one sample at a time, in `order`.
local
def epoch_seed_hebbian [n] [d] [m] (s: state) (x: [n][d]u8) (y: [n]i32) (order: [m]i32) : (state, i64, i64) =
  let (latent, weights, prev_loss, correct, sq) =
    loop (latent, weights, prev_loss, correct, sq) = (s.latent, s.weights, s.counters[2], 0, 0)
    for i in order do
      let (latent, weights, loss, c, e) =
        seed_sample s.cpu s.sizes s.kmax s.shift latent weights prev_loss x[i] y[i]
      in (latent, weights, loss, correct + c, sq + e)
  let counters = copy s.counters with [1] = s.counters[1] + m
  let counters[2] = prev_loss
  in (s with latent = latent with weights = weights with counters = counters, correct, sq)

-- | One training epoch: the samples `order` (indices into `x`, `y`) in
-- batches of `batch_size` (the last one may be shorter), with rule
-- `rule_id` and its i64 parameters. Returns the new state, the number of
-- correct predictions and the sum of squared output errors (§7.1).
def train [n] [d] [m]
          (s: state)
          (x: [n][d]u8)
          (y: [n]i32)
          (order: [m]i32)
          (batch_size: i64)
          (rule_id: i32)
          (params: []i64) : (state, i64, i64) =
  if rule_id == rule_dfa
  then epoch_dfa false s x y order batch_size params
  else if rule_id == rule_local_heads
  then epoch_dfa true s x y order batch_size params
  else if rule_id == rule_seed_hebbian
  then epoch_seed_hebbian s x y order
  else assert false (s, 0, 0)

-- | One training epoch (see `train`): returns the new state, the number of
-- correct predictions and the sum of squared output errors.
entry train_epoch [n] [d] [m]
                  (s: state)
                  (x: [n][d]u8)
                  (y: [n]i32)
                  (order: [m]i32)
                  (batch_size: i64)
                  (rule_id: i32)
                  (params: []i64) : (state, i64, i64) =
  train s x y order batch_size rule_id params

-- | The output activations (u8, `n` by `classes`) of a network for `x`.
entry predict [n] [d] (s: state) (x: [n][d]u8) : [n][]u8 =
  forward_output s.cpu s.sizes s.shift s.weights x

-- | The activations of every layer (inputs first) for `x`, each padded
-- with zeros to the widest layer: `[layers + 1][n][max width]`.
entry activations [n] [d] (s: state) (x: [n][d]u8) : [][n][]u8 =
  (forward_all s.cpu no_dropout s.sizes s.shift s.weights x).0
