-- | The host's side of the interface, declared once in Python. GENERATED
-- by scripts/gen_graia_fut.py from graia/backends/interface.py (the
-- geometry row, the pool codes), graia/backends/abi.py (the depth limit)
-- and graia/rules (rule ids and parameters); do not edit by hand.

-- | The deepest network `graia.fut` has entry points for.
def max_layers : i64 = 4

-- | One row of the host state's `geometry` (`GEOMETRY_FIELDS`).
type geometry_row = [16]i64

-- | A layer's geometry (docs/arithmetic.md §3): its input, kernel,
-- strides, padding before, the convolution's output and the pooling
-- after it (`pool`: `pool_none`, `pool_max` or `pool_average`).
type geometry =
  { in_h: i64
  , in_w: i64
  , in_c: i64
  , k_h: i64
  , k_w: i64
  , stride_h: i64
  , stride_w: i64
  , pad_top: i64
  , pad_left: i64
  , out_h: i64
  , out_w: i64
  , out_c: i64
  , pool: i64
  , pool_h: i64
  , pool_w: i64
  , bias: i64
  }

-- | A geometry from its host row.
def geometry_of (row: geometry_row) : geometry =
  { in_h = row[0]
  , in_w = row[1]
  , in_c = row[2]
  , k_h = row[3]
  , k_w = row[4]
  , stride_h = row[5]
  , stride_w = row[6]
  , pad_top = row[7]
  , pad_left = row[8]
  , out_h = row[9]
  , out_w = row[10]
  , out_c = row[11]
  , pool = row[12]
  , pool_h = row[13]
  , pool_w = row[14]
  , bias = row[15]
  }

-- | The `pool` code of no pooling.
def pool_none : i64 = 0

-- | The `pool` code of max pooling.
def pool_max : i64 = 1

-- | The `pool` code of average.
def pool_average : i64 = 2

-- | Rule id of `dfa`.
def rule_dfa : i32 = 0

-- | Rule id of `seed_hebbian`.
def rule_seed_hebbian : i32 = 1

-- | Rule id of `local_heads`.
def rule_local_heads : i32 = 2

-- | Whether rule `rule_id` runs the `dfa` kernel (`rules/dfa.fut`).
def kernel_dfa (rule_id: i32) : bool =
  rule_id == rule_dfa || rule_id == rule_local_heads

-- | Whether rule `rule_id` runs the `seed_hebbian` kernel (`rules/seed_hebbian.fut`).
def kernel_seed_hebbian (rule_id: i32) : bool =
  rule_id == rule_seed_hebbian

-- | Whether rule `rule_id`'s hidden layers learn from their local heads (§7.4).
def uses_local_heads (rule_id: i32) : bool =
  rule_id == rule_local_heads

-- | The rules' options, decoded from their i64 parameter vector
-- (`graia/rules`: every rule's options are the first ones of these, in
-- this order; a value the vector lacks is 0). `head_shift` is the first
-- hidden layer's (`rule_layer_params`).
type rule_params =
  { step: i64
  , beta1_shift: i32
  , beta2_shift: i32
  , decay_shift: i32
  , target_on: i32
  , target_off: i32
  , dropout: i32
  , head_step: i64
  , head_kmax: i32
  , head_shift: i32
  }

-- | The options of a parameter vector.
def rule_params_of [p] (params: [p]i64) : rule_params =
  { step = if p > 0 then params[0] else 0
  , beta1_shift = if p > 1 then i32.i64 params[1] else 0
  , beta2_shift = if p > 2 then i32.i64 params[2] else 0
  , decay_shift = if p > 3 then i32.i64 params[3] else 0
  , target_on = if p > 4 then i32.i64 params[4] else 0
  , target_off = if p > 5 then i32.i64 params[5] else 0
  , dropout = if p > 6 then i32.i64 params[6] else 0
  , head_step = if p > 7 then params[7] else 0
  , head_kmax = if p > 8 then i32.i64 params[8] else 0
  , head_shift = if p > 9 then i32.i64 params[9] else 0
  }

-- | The options of hidden layer `l`: `head_shift` is `params[9 + l]`, or the
-- vector's last value for the layers past its end.
def rule_layer_params [p] (params: [p]i64) (l: i64) : rule_params =
  let d = rule_params_of params
  in d with head_shift = if p > 9 then i32.i64 params[i64.min (9 + l) (p - 1)] else 0
