"""The Numba reference backend: docs/arithmetic.md written plainly. It is the oracle.

Needs neither CUDA nor OpenCL. Loops are parallel over samples (forward) or synapses (learning);
every sum is an exact integer sum, so the split of work cannot change a bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from graia.backends.interface import (
    COUNTER_PREV_LOSS,
    COUNTER_SEED,
    COUNTER_STEP,
    HOST_STATE_DTYPES,
    POOL_MAX,
    POOL_NONE,
    Block,
    HostState,
    feedback_blocks,
    head_blocks,
    layer_blocks,
    owns_output_bias,
    shard_blocks,
    shard_feedback_blocks,
    shard_head_blocks,
    with_bias,
)
from graia.rules import DFA, by_id, heads_learn
from graia.spec import (
    G_MAX,
    LATENT_MAX,
    canonical_latent,
    code_of_latent,
    decay_key,
    dropout_key,
    fixed_weight,
    hash2,
    rounding_key,
    sround,
)


@njit(cache=True, parallel=True)
def _fixed_weights(latent: np.ndarray, kmax: int) -> np.ndarray:
    """§2: the fixed-point weights ``W`` of a layer's latent weights."""
    out = np.empty(latent.shape, np.int32)
    for q in prange(latent.size):
        out.flat[q] = fixed_weight(code_of_latent(latent.flat[q], kmax), kmax)
    return out


@njit(cache=True, parallel=True)
def _forward(x: np.ndarray, w: np.ndarray, shift: int, z: np.ndarray, a: np.ndarray) -> None:
    """§3: ``z = x W`` (exact i32), ``a = clamp(z >> shift, 0, 255)``, for every row of ``x``."""
    rows, n_in = x.shape
    n_out = w.shape[1]
    for s in prange(rows):
        acc = np.zeros(n_out, np.int32)
        for i in range(n_in):
            xi = np.int32(x[s, i])
            if xi != 0:
                for j in range(n_out):
                    acc[j] += xi * w[i, j]
        for j in range(n_out):
            z[s, j] = acc[j]
            a[s, j] = min(max(acc[j] >> shift, 0), 255)


@njit(cache=True, parallel=True)
def _patches(x, in_h, in_w, in_c, k_h, k_w, s_h, s_w, pad_top, pad_left, out_h, out_w):
    """§3.1: the patch of every output position, rows ``s * out_h * out_w + oy * out_w + ox``."""
    rows = x.shape[0] * out_h * out_w
    out = np.zeros((rows, k_h * k_w * in_c), np.uint8)
    for r in prange(rows):
        s, pos = divmod(np.int64(r), out_h * out_w)
        oy, ox = divmod(pos, out_w)
        for ky in range(k_h):
            iy = oy * s_h + ky - pad_top
            if 0 <= iy < in_h:
                for kx in range(k_w):
                    ix = ox * s_w + kx - pad_left
                    if 0 <= ix < in_w:
                        src = (iy * in_w + ix) * in_c
                        dst = (ky * k_w + kx) * in_c
                        for ch in range(in_c):
                            out[r, dst + ch] = x[s, src + ch]
    return out


@njit(cache=True, parallel=True)
def _pool(a_c, batch, out_h, out_w, kind, q_h, q_w):
    """§3.2: pooled activations ``(batch, n_out)`` and, for max pooling, each window's winner
    (its position ``oy * out_w + ox``)."""
    channels = a_c.shape[1]
    ph, pw = out_h // q_h, out_w // q_w
    n_out = ph * pw * channels
    a = np.empty((batch, n_out), np.uint8)
    winner = np.zeros((batch, n_out), np.int32)
    for s in prange(batch):
        for u in range(n_out):
            cell, f = divmod(np.int64(u), channels)
            py, px = divmod(cell, pw)
            best = -1
            best_pos = 0
            total = 0
            for dy in range(q_h):
                for dx in range(q_w):
                    pos = (py * q_h + dy) * out_w + px * q_w + dx
                    v = np.int32(a_c[s * out_h * out_w + pos, f])
                    total += v
                    if v > best:
                        best = v
                        best_pos = pos
            if kind == POOL_MAX:
                a[s, u] = best
                winner[s, u] = best_pos
            else:
                a[s, u] = total // (q_h * q_w)
    return a, winner


@njit(cache=True, parallel=True)
def _route(delta, z, shift, out_h, out_w, kind, q_h, q_w, winner):
    """§7.5: the deltas of the convolution's positions from those of the block's output units,
    gated by the slopes (§7.2)."""
    rows, channels = z.shape
    positions = out_h * out_w
    ph, pw = out_h // q_h, out_w // q_w
    d = np.zeros((rows, channels), np.int32)
    for r in prange(rows):
        s, pos = divmod(np.int64(r), positions)
        oy, ox = divmod(pos, out_w)
        py, px = oy // q_h, ox // q_w
        if py >= ph or px >= pw:
            continue
        for f in range(channels):
            u = (py * pw + px) * channels + f
            if kind == POOL_MAX and winner[s, u] != pos:
                continue
            if z[r, f] > 0 and (z[r, f] >> shift) < 255:
                d[r, f] = delta[s, u]
    return d


@njit(cache=True, parallel=True)
def _feedback_delta(feedback, err):
    """§7.2, §7.5: ``delta = err B^T`` at a hidden block's output units."""
    rows = err.shape[0]
    n_out, classes = feedback.shape
    delta = np.empty((rows, n_out), np.int32)
    for s in prange(rows):
        for u in range(n_out):
            acc = 0
            for j in range(classes):
                acc += feedback[u, j] * err[s, j]
            delta[s, u] = acc
    return delta


def _blocks(state: HostState) -> list[Block]:
    """Each layer's geometry (graia/state.py)."""
    return [Block.of_row(row) for row in state["geometry"]]


def _block_patches(block: Block, x: np.ndarray) -> np.ndarray:
    """The rows a layer's weights multiply (§3, §3.1): ``x`` itself for a Dense layer, each row
    followed by the constant ``BIAS_INPUT`` when the layer has a bias."""
    p = x
    if not block.is_dense:
        p = _patches(
            x, block.in_h, block.in_w, block.in_c, block.k_h, block.k_w, block.stride_h,
            block.stride_w, block.pad_top, block.pad_left, block.out_h, block.out_w,
        )  # fmt: skip
    return with_bias(p, block.bias)


def _block_output(block: Block, a_c: np.ndarray, batch: int):
    """The block's output ``(batch, n_out)`` from the convolution's activations, and the max
    pooling winners (``None`` without pooling)."""
    if block.pool == POOL_NONE:
        return a_c.reshape(batch, -1), None
    return _pool(a_c, batch, block.out_h, block.out_w, block.pool, block.pool_h, block.pool_w)


def _block_route(block: Block, delta, z, shift, winner) -> np.ndarray:
    """§7.5: output-unit deltas to gated position deltas."""
    if winner is None:
        winner = np.zeros((1, 1), np.int32)
    return _route(
        delta, z, shift, block.out_h, block.out_w, block.pool, block.pool_h, block.pool_w, winner
    )


def _seed(state: HostState) -> np.uint64:
    """The seed counter as the u64 key of §4."""
    return state["counters"][COUNTER_SEED : COUNTER_SEED + 1].view(np.uint64)[0]


def _all_fixed_weights(state: HostState, layers) -> list[np.ndarray]:
    """Every layer's fixed-point weights ``W`` from its latent weights."""
    return [_fixed_weights(lat, int(state["kmax"][i])) for i, (lat, _) in enumerate(layers)]


def _layer_views(state: HostState):
    """Per-layer (latent, momentum) 2-D views and hidden feedback views of a host state."""
    return layer_blocks(state, "latent", "momentum"), feedback_blocks(state)


@njit(cache=True, parallel=True)
def _dropout(a: np.ndarray, key: np.uint64, rate: int, row0: int, units: int, unit0: int) -> None:
    """§7.2: zero the units whose hash byte falls below ``rate``; ``a[s, h]`` is unit
    ``unit0 + h`` of the layer's ``units`` in row ``row0 + s`` of the batch (§7.6, §7.7)."""
    rows, owned = a.shape
    for s in prange(rows):
        for h in range(owned):
            word = (row0 + s) * units + unit0 + h
            if np.int64(hash2(key, word) & np.uint64(255)) < rate:
                a[s, h] = 0


class _Pass:
    """What a forward pass keeps for learning, per layer: patches, ``z``, output, winners."""

    def __init__(self) -> None:
        self.patches: list[np.ndarray] = []
        self.zs: list[np.ndarray] = []
        self.acts: list[np.ndarray] = []
        self.winners: list[np.ndarray | None] = []


def _forward_all(
    state: HostState, x: np.ndarray, weights: list[np.ndarray], dropout: int = 0, row0: int = 0
):
    """The forward pass of every layer for the rows of ``x`` (§3); ``dropout > 0`` drops hidden
    units (§7.2), ``x`` being rows ``row0, row0 + 1, ...`` of the batch. ``acts`` holds ``x`` and
    every layer's output."""
    fp = _Pass()
    fp.acts.append(x)
    seed = _seed(state)
    batch = x.shape[0]
    for layer, (w, block) in enumerate(zip(weights, _blocks(state))):
        p = _block_patches(block, fp.acts[-1])
        z = np.empty((p.shape[0], w.shape[1]), np.int32)
        a_c = np.empty((p.shape[0], w.shape[1]), np.uint8)
        _forward(p, w, int(state["shift"][layer]), z, a_c)
        a, winner = _block_output(block, a_c, batch)
        if dropout and layer < len(weights) - 1:
            key = np.uint64(dropout_key(seed, layer, int(state["counters"][COUNTER_STEP])))
            _dropout(a, key, dropout, row0, a.shape[1], 0)
        fp.patches.append(p)
        fp.zs.append(z)
        fp.acts.append(a)
        fp.winners.append(winner)
    return fp


@njit(cache=True)
def _output_error(a_out, labels, valid, target_on, target_off, e) -> tuple[int, int]:
    """§7.1: ``e = a - t`` (0 for padding rows); returns (correct, sq_error)."""
    correct = 0
    sq_error = 0
    for s in range(a_out.shape[0]):
        if not valid[s]:
            e[s, :] = 0
            continue
        best = 0
        for j in range(a_out.shape[1]):
            if a_out[s, j] > a_out[s, best]:
                best = j
            t = target_on if j == labels[s] else target_off
            e[s, j] = np.int32(a_out[s, j]) - t
            sq_error += np.int64(e[s, j]) * e[s, j]
        if best == labels[s]:
            correct += 1
    return correct, sq_error


@njit(cache=True, parallel=True)
def _head_sums(a, head) -> np.ndarray:
    """§7.4: a hidden layer's local classifier ``u = a W`` (exact i32) with its fixed-point
    weights ``W``."""
    rows, n_out = a.shape
    classes = head.shape[1]
    u = np.zeros((rows, classes), np.int32)
    for s in prange(rows):
        for j in range(classes):
            acc = 0
            for h in range(n_out):
                acc += np.int32(a[s, h]) * head[h, j]
            u[s, j] = acc
    return u


@njit(cache=True)
def _head_error(u, head_shift, labels, target_on, target_off, e) -> None:
    """§7.4: the local head's error ``e = clamp(u >> head_shift, 0, 255) - t`` (``head_shift``
    includes the head's ``head_kmax``)."""
    for s in range(u.shape[0]):
        for j in range(u.shape[1]):
            v = min(max(u[s, j] >> head_shift, 0), 255)
            e[s, j] = v - (target_on if j == labels[s] else target_off)


@njit(cache=True, inline="always")
def _dfa_synapse(g, lat, mom, r, rd, step, beta1, beta2, decay):
    """§7.2: the sign-momentum step of one synapse from its accumulator ``g``, with its rounding
    word ``r`` and weight-decay word ``rd``; ``(L', M')``."""
    low16 = np.uint64(0xFFFF)
    m = min(max(np.int64(mom), -G_MAX), G_MAX)
    diff = np.int64(g) - m
    c = m + sround(diff, beta1, r & low16)
    new = np.int64(lat) - step * ((c > 0) - (c < 0))
    if decay > 0:
        new -= sround(np.int64(lat), decay, rd)
    return min(max(new, -LATENT_MAX), LATENT_MAX), m + sround(
        diff, beta2, (r >> np.uint64(16)) & low16
    )


@njit(cache=True, inline="always")
def _words(key, dkey, q, decay):
    """§7.2: synapse ``q``'s rounding word and, with weight decay, its decay word."""
    return hash2(key, q), hash2(dkey, q) if decay > 0 else np.uint64(0)


@njit(cache=True, parallel=True)
def _dfa_update(pre, d, latent, momentum, key, dkey, step, beta1, beta2, decay, row0, col0, width):
    """§7.2: ``G = pre^T d`` (exact in i32 under §7.2's bound) and every synapse's step; synapse
    ``(i, h)`` of ``latent`` is ``(row0 + i, col0 + h)`` of the layer's matrix of ``width``
    columns (its words, §7.7; ``0, 0, n_out`` for a whole layer). ``key`` and ``dkey`` are the
    layer's rounding and decay keys (:func:`_step_keys`)."""
    n_in, n_out = latent.shape
    rows = pre.shape[0]
    for i in prange(n_in):
        g = np.zeros(n_out, np.int32)
        for s in range(rows):
            p = np.int32(pre[s, i])
            if p != 0:
                for h in range(n_out):
                    g[h] += p * d[s, h]
        for h in range(n_out):
            r, rd = _words(key, dkey, (row0 + i) * width + col0 + h, decay)
            latent[i, h], momentum[i, h] = _dfa_synapse(
                g[h], latent[i, h], momentum[i, h], r, rd, step, beta1, beta2, decay
            )


@njit(cache=True, parallel=True)
def _update_sums(pre, d) -> np.ndarray:
    """§7.5: ``G = pre^T d`` summed over rows (samples and positions), exact in i64."""
    n_in = pre.shape[1]
    rows, n_out = d.shape
    g = np.zeros((n_in, n_out), np.int64)
    for i in prange(n_in):
        for s in range(rows):
            p = np.int64(pre[s, i])
            if p != 0:
                for h in range(n_out):
                    g[i, h] += p * d[s, h]
    return g


@njit(cache=True, parallel=True)
def _apply_update(g, latent, momentum, key, dkey, step, beta1, beta2, decay) -> None:
    """§7.2, §7.5: every synapse's step from its exact sum ``g``, saturated to ``±G_MAX``
    first."""
    n_in, n_out = latent.shape
    for i in prange(n_in):
        for h in range(n_out):
            r, rd = _words(key, dkey, i * n_out + h, decay)
            gh = min(max(g[i, h], -G_MAX), G_MAX)
            latent[i, h], momentum[i, h] = _dfa_synapse(
                gh, latent[i, h], momentum[i, h], r, rd, step, beta1, beta2, decay
            )


def _step_keys(seed: np.uint64, layer: int, t: int) -> tuple[np.uint64, np.uint64]:
    """§7.2: layer ``layer``'s rounding and weight-decay keys at step ``t`` (numba hands u64
    back as a Python int)."""
    return np.uint64(rounding_key(seed, layer, t)), np.uint64(decay_key(seed, layer, t))


class _DfaOptions:
    """The parameter vector of rule ``rule_id``, ``dfa`` or ``local_heads`` (§7.2, §7.4), by
    name."""

    def __init__(self, params: np.ndarray, rule_id: int) -> None:
        rule = by_id(rule_id)
        # The vector holds the rule's options in order, the per-layer one last (graia/rules).
        names = [name for name in rule.options if name != rule.per_layer]
        values = {name: int(v) for name, v in zip(names, params)}
        self.step, self.beta1, self.beta2, self.decay = (
            values[k] for k in ("step", "beta1_shift", "beta2_shift", "decay_shift")
        )
        self.target_on, self.target_off = values["target_on"], values["target_off"]
        self.dropout = values["dropout"]
        self.local_heads = rule.local_heads
        #: Whether the local heads learn (§7.4).
        self.learns_heads = heads_learn(rule_id, params)
        self.head_step = values.get("head_step", 0)
        self.head_kmax = values.get("head_kmax", 0)
        self.head_shifts = [int(v) for v in params[len(names) :]] if rule.per_layer else [0]

    def head_shift(self, layer: int) -> int:
        """§7.4: hidden layer ``layer``'s shift of its head sums, ``head_kmax`` included (the
        last ``head_shift`` serves the layers past the vector's end)."""
        return self.head_shifts[min(layer, len(self.head_shifts) - 1)] + self.head_kmax

    def head_weights(self, heads: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """Each local head's fixed-point weights (§2 with ``head_kmax``)."""
        return [_fixed_weights(lat, self.head_kmax) for lat, _ in heads]


def _head_keys(state: HostState, layer: int, t: int) -> tuple[np.uint64, np.uint64]:
    """§7.4: the rounding key of hidden layer ``layer``'s head at step ``t``, that of layer
    ``layers + layer``, a number no layer has; and a decay key, unused (no decay)."""
    return np.uint64(rounding_key(_seed(state), len(state["kmax"]) + layer, t)), np.uint64(0)


def _batch_deltas(state, x, y, idx, row0, opts: _DfaOptions):
    """The forward pass of the batch rows ``idx`` (rows ``row0, ...`` of their batch) and every
    layer's delta ``d`` (§7.2, §7.4, §7.5); returns (pass, deltas, each hidden layer's error,
    correct, sq_error)."""
    layers, feedback = _layer_views(state)
    heads = opts.head_weights(head_blocks(state)) if opts.local_heads else []
    blocks = _blocks(state)
    classes = int(state["sizes"][-1])
    rows = idx.shape[0]
    labels = y[idx]
    fp = _forward_all(state, x[idx], _all_fixed_weights(state, layers), opts.dropout, row0)
    e = np.empty((rows, classes), np.int32)
    correct, sq = _output_error(
        fp.acts[-1], labels, np.ones(rows, np.bool_), opts.target_on, opts.target_off, e
    )
    deltas, errors = [], []
    for layer, block in enumerate(blocks[:-1]):
        err = e
        if opts.local_heads:
            err = np.empty((rows, classes), np.int32)
            u = _head_sums(fp.acts[layer + 1], heads[layer])
            _head_error(u, opts.head_shift(layer), labels, opts.target_on, opts.target_off, err)
        delta = _feedback_delta(feedback[layer], err)
        shift = int(state["shift"][layer])
        deltas.append(_block_route(block, delta, fp.zs[layer], shift, fp.winners[layer]))
        errors.append(err)
    deltas.append(e)
    return fp, deltas, errors, int(correct), int(sq)


def batch_sums(
    state: HostState,
    x: np.ndarray,
    y: np.ndarray,
    idx: np.ndarray,
    row0: int,
    params: np.ndarray,
    rule_id: int,
) -> tuple[list[np.ndarray], int, int]:
    """The first half of a ``dfa``/``local_heads`` batch (§7.6) for the rows ``idx`` (i32 sample
    indices), which are rows ``row0, row0 + 1, ...`` of their global batch (dropout is keyed by
    that position). Returns each layer's exact sums ``G`` (i64 ``(fan_in, out_c)``, before any
    saturation), then, when the local heads learn (§7.4), each hidden layer's head sums
    (i64 ``(n_out, classes)``), ``correct`` and ``sq_error``. The state is not changed."""
    opts = _DfaOptions(params, rule_id)
    shapes = [lat.shape for lat, _ in _layer_views(state)[0]]
    if opts.learns_heads:
        shapes += [lat.shape for lat, _ in head_blocks(state)]
    if idx.shape[0] == 0:
        return [np.zeros(shape, np.int64) for shape in shapes], 0, 0
    fp, deltas, errors, correct, sq = _batch_deltas(state, x, y, idx, row0, opts)
    sums = [_update_sums(p, d) for p, d in zip(fp.patches, deltas)]
    if opts.learns_heads:
        sums += [_update_sums(a, err) for a, err in zip(fp.acts[1:-1], errors)]
    return sums, correct, sq


def apply_sums(state: HostState, sums: list[np.ndarray], params: np.ndarray, rule_id: int) -> None:
    """The second half of a batch (§7.6): every synapse's step from the whole batch's sums ``G``
    (as :func:`batch_sums` returns them, summed over the batch's row ranges), then ``t += 1``."""
    opts = _DfaOptions(params, rule_id)
    layers, _ = _layer_views(state)
    seed = _seed(state)
    counters = state["counters"]
    t = int(counters[COUNTER_STEP])
    step = (opts.step, opts.beta1, opts.beta2, opts.decay)
    for layer, ((lat, mom), g) in enumerate(zip(layers, sums)):
        _apply_update(g, lat, mom, *_step_keys(seed, layer, t), *step)
    if opts.learns_heads:
        head_step = (opts.head_step, opts.beta1, opts.beta2, 0)
        for layer, ((lat, mom), g) in enumerate(zip(head_blocks(state), sums[len(layers) :])):
            _apply_update(g, lat, mom, *_head_keys(state, layer, t), *head_step)
    counters[COUNTER_STEP] = t + 1


def _train_epoch_dfa(state, x, y, order, batch_size, params, rule_id):
    """Rules ``dfa`` (§7.2) and ``local_heads`` (§7.4), by ``rule_id``: each batch's
    deltas, then the fused sum-and-step kernels (the same bits as batch_sums + apply_sums)."""
    opts = _DfaOptions(params, rule_id)
    layers, _ = _layer_views(state)
    blocks = _blocks(state)
    counters = state["counters"]
    seed = _seed(state)
    correct_total = 0
    sq_total = 0
    for start in range(0, order.shape[0], batch_size):
        idx = order[start : start + batch_size]
        fp, deltas, errors, correct, sq = _batch_deltas(state, x, y, idx, 0, opts)
        correct_total += correct
        sq_total += sq
        t = int(counters[COUNTER_STEP])
        step = (opts.step, opts.beta1, opts.beta2, opts.decay)
        for layer, ((lat, mom), block) in enumerate(zip(layers, blocks)):
            keys = _step_keys(seed, layer, t)
            if block.is_dense:  # exact in i32 (§7.2's bound): the sums fused with the step
                whole = (0, 0, lat.shape[1])
                _dfa_update(fp.patches[layer], deltas[layer], lat, mom, *keys, *step, *whole)
            else:
                g = _update_sums(fp.patches[layer], deltas[layer])
                _apply_update(g, lat, mom, *keys, *step)
        if opts.learns_heads:  # G = a^T e, exact in i32 under §7.2's bound
            head_step = (opts.head_step, opts.beta1, opts.beta2, 0)
            for layer, (lat, mom) in enumerate(head_blocks(state)):
                keys = _head_keys(state, layer, t)
                whole = (0, 0, lat.shape[1])
                _dfa_update(fp.acts[layer + 1], errors[layer], lat, mom, *keys, *head_step, *whole)
        counters[COUNTER_STEP] = t + 1
    return correct_total, sq_total


@njit(cache=True)
def _seed_step(code: int, excite: bool, n: int) -> int:
    """§7.3's excite/inhibit table on one code."""
    if code == 0:
        return 0
    if excite:
        if code == 1:
            return 1
        if code == -n:
            return n - 1
        return code - 1
    if code == -1:
        return -1
    if code == n:
        return -(n - 1)
    return code + 1


@njit(cache=True)
def _seed_update(pre, post, latent, kmax, excite_when_fired) -> None:
    n_in, n_out = latent.shape
    for i in range(n_in):
        if pre[i] == 0:
            continue
        for j in range(n_out):
            excite = (post[j] > 0) == excite_when_fired
            code = code_of_latent(np.int64(latent[i, j]), kmax)
            latent[i, j] = canonical_latent(_seed_step(code, excite, kmax + 1))


def _train_epoch_seed_hebbian(state, x, y, order):
    layers, _ = _layer_views(state)
    counters = state["counters"]
    classes = int(state["sizes"][-1])
    correct_total = 0
    sq_total = 0
    ones = np.ones(1, np.bool_)
    for sample in order:
        idx = np.array([sample])
        weights = _all_fixed_weights(state, layers)
        fp = _forward_all(state, x[idx], weights)
        acts = fp.acts
        e = np.empty((1, classes), np.int32)
        correct, sq = _output_error(acts[-1], y[idx], ones, 255, 0, e)
        correct_total += correct
        sq_total += sq
        loss = int(np.abs(e).sum()) // classes
        was_better = loss < counters[COUNTER_PREV_LOSS]
        counters[COUNTER_PREV_LOSS] = loss
        for layer, (lat, _) in enumerate(layers):
            _seed_update(
                fp.patches[layer][0], acts[layer + 1][0], lat, int(state["kmax"][layer]), was_better
            )
        counters[COUNTER_STEP] += 1
    return correct_total, sq_total


class _UnitShard:
    """A numba unit-parallel handle (interface.UnitParallelBackend): a shard and what the batch
    in progress keeps between calls, per hidden layer (input with its bias input, owned ``z`` and
    activations), and the output layer's input."""

    def __init__(self, shard: HostState) -> None:
        self.shard = shard
        self.latent = shard_blocks(shard, "latent")
        self.momentum = shard_blocks(shard, "momentum")
        self.feedback = shard_feedback_blocks(shard)
        self.heads = shard_head_blocks(shard)
        hidden = len(self.feedback)
        self.inputs: list[np.ndarray] = [np.empty((0, 0), np.uint8)] * hidden
        self.zs: list[np.ndarray] = [np.empty((0, 0), np.int32)] * hidden
        self.acts: list[np.ndarray] = [np.empty((0, 0), np.uint8)] * hidden
        #: What the owned rows of the output layer multiply (interface.owns_output_bias).
        self.output_input = np.empty((0, 0), np.uint8)


class NumbaBackend:
    """The reference backend. Handles are host states (dicts of numpy arrays)."""

    name = "numba"

    def load(self, state: HostState) -> HostState:
        return {k: np.array(state[k], dtype=dt, copy=True) for k, dt in HOST_STATE_DTYPES.items()}

    def dump(self, handle: HostState) -> HostState:
        return {k: v.copy() for k, v in handle.items()}

    def upload(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.ascontiguousarray(x, np.uint8), np.ascontiguousarray(y, np.int32)

    def train_epoch(self, handle, dataset, order, batch_size, rule_id, params):
        x, y = dataset
        order = np.ascontiguousarray(order, np.int32)
        kernel = by_id(rule_id).kernel
        if kernel == "dfa":
            correct, sq = _train_epoch_dfa(handle, x, y, order, int(batch_size), params, rule_id)
        elif kernel == "seed_hebbian":
            correct, sq = _train_epoch_seed_hebbian(handle, x, y, order)
        else:
            raise ValueError(f"numba backend: no epoch for kernel {kernel!r}")
        return handle, int(correct), int(sq)

    def batch_sums(self, handle, dataset, idx, row0, rule_id, params):
        x, y = dataset
        idx = np.ascontiguousarray(idx, np.int32)
        return batch_sums(handle, x, y, idx, int(row0), params, rule_id)

    def apply_sums(self, handle, sums, rule_id, params):
        apply_sums(handle, sums, params, rule_id)
        return handle

    def predict(self, handle: HostState, x: np.ndarray) -> np.ndarray:
        return self.activations(handle, x)[-1]

    def activations(self, handle: HostState, x: np.ndarray) -> list[np.ndarray]:
        """Every layer's u8 activations (input first) for the rows of ``x``."""
        layers, _ = _layer_views(handle)
        weights = _all_fixed_weights(handle, layers)
        return _forward_all(handle, np.ascontiguousarray(x, np.uint8), weights).acts

    # ------------------------------------------------------- unit parallel (docs/arithmetic.md §7.7)
    def units_load(self, shard: HostState) -> _UnitShard:
        return _UnitShard({k: np.array(v, copy=True) for k, v in shard.items()})

    def units_dump(self, handle: _UnitShard) -> HostState:
        return {k: v.copy() for k, v in handle.shard.items()}

    def units_forward(
        self, handle: _UnitShard, layer: int, inputs: np.ndarray, params: np.ndarray
    ) -> np.ndarray:
        shard = handle.shard
        lo, hi = (int(v) for v in shard["unit_ranges"][layer])
        w = _fixed_weights(handle.latent[layer], int(shard["kmax"][layer]))
        inputs = _block_patches(_blocks(shard)[layer], inputs)
        rows = inputs.shape[0]
        z = np.empty((rows, hi - lo), np.int32)
        a = np.empty((rows, hi - lo), np.uint8)
        _forward(inputs, w, int(shard["shift"][layer]), z, a)
        dropout = _DfaOptions(params, DFA.rule_id).dropout
        if dropout:
            t = int(shard["counters"][COUNTER_STEP])
            key = np.uint64(dropout_key(_seed(shard), layer, t))
            _dropout(a, key, dropout, 0, int(shard["sizes"][layer + 1]), lo)
        handle.inputs[layer], handle.zs[layer], handle.acts[layer] = inputs, z, a
        if layer == len(handle.acts) - 1:
            handle.output_input = with_bias(a, owns_output_bias(shard))
        return a

    def units_partials(self, handle: _UnitShard, rule_id: int, params: np.ndarray) -> np.ndarray:
        shard = handle.shard
        blocks = []
        if by_id(rule_id).local_heads:
            heads = _DfaOptions(params, rule_id).head_weights(handle.heads)
            blocks = [_head_sums(a, w) for a, w in zip(handle.acts, heads)]
        last = handle.output_input
        w = _fixed_weights(handle.latent[-1], int(shard["kmax"][-1]))
        z = np.empty((last.shape[0], w.shape[1]), np.int32)
        _forward(last, w, 0, z, np.empty(z.shape, np.uint8))  # only z: a partial sum
        return np.stack([*blocks, z])

    def units_step(
        self,
        handle: _UnitShard,
        sums: np.ndarray,
        labels: np.ndarray,
        rule_id: int,
        params: np.ndarray,
    ) -> tuple[int, int]:
        shard = handle.shard
        opts = _DfaOptions(params, rule_id)
        rows, classes = sums.shape[1:]
        a_out = np.clip(sums[-1] >> int(shard["shift"][-1]), 0, 255).astype(np.uint8)  # §3
        e = np.empty((rows, classes), np.int32)
        correct, sq = _output_error(
            a_out, labels, np.ones(rows, np.bool_), opts.target_on, opts.target_off, e
        )
        seed, t = _seed(shard), int(shard["counters"][COUNTER_STEP])
        step = (opts.step, opts.beta1, opts.beta2, opts.decay)
        ranges = shard["unit_ranges"]
        for layer, block in enumerate(_blocks(shard)[:-1]):
            err = e
            if opts.local_heads:
                err = np.empty((rows, classes), np.int32)
                _head_error(
                    sums[layer],
                    opts.head_shift(layer),
                    labels,
                    opts.target_on,
                    opts.target_off,
                    err,
                )
            delta = _feedback_delta(handle.feedback[layer], err)
            shift = int(shard["shift"][layer])
            d = _block_route(block, delta, handle.zs[layer], shift, None)
            keys = _step_keys(seed, layer, t)
            lat, mom = handle.latent[layer], handle.momentum[layer]
            width = int(shard["sizes"][layer + 1])
            lo = int(ranges[layer, 0])
            _dfa_update(handle.inputs[layer], d, lat, mom, *keys, *step, 0, lo, width)
            if opts.learns_heads:
                lat, mom = handle.heads[layer]
                head_step = (opts.head_step, opts.beta1, opts.beta2, 0)
                keys = _head_keys(shard, layer, t)
                _dfa_update(handle.acts[layer], err, lat, mom, *keys, *head_step, lo, 0, classes)
        output = len(ranges)
        keys = _step_keys(seed, output, t)
        lat, mom = handle.latent[output], handle.momentum[output]
        x = handle.output_input
        _dfa_update(x, e, lat, mom, *keys, *step, int(ranges[-1, 0]), 0, classes)
        shard["counters"][COUNTER_STEP] = t + 1
        return int(correct), int(sq)
