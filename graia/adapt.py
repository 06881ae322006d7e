"""Activation shifts chosen from the data (docs/arithmetic.md §3.3): ``shift=None``.

Computed once on the host, with exact integer arithmetic on the oracle's forward pass, so every
backend receives the same shifts and then computes the same bits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graia.backends.interface import HostState, layer_blocks

#: At most this many samples, evenly spaced through the training inputs, choose the shifts.
ADAPT_SAMPLES = 512
#: The rank of the chosen accumulator, in thousandths of the sorted values (§3.3).
QUANTILE_PERMILLE = 990
#: Where that accumulator lands after the shift: a hidden layer's and the output layer's.
HIDDEN_TARGET = 511
OUTPUT_TARGET = 255
#: Shifts are chosen in 0..SHIFT_LIMIT (the largest a layer accepts).
SHIFT_LIMIT = 30


def sample_rows(n: int) -> np.ndarray:
    """The rows that choose the shifts: ``0, step, 2 step, ...`` (at most :data:`ADAPT_SAMPLES`),
    ``step = max(1, n // ADAPT_SAMPLES)``."""
    step = max(1, n // ADAPT_SAMPLES)
    return np.arange(0, n, step, dtype=np.int64)[:ADAPT_SAMPLES]


def shift_for(z: np.ndarray, target: int, permille: int = QUANTILE_PERMILLE) -> int:
    """The smallest shift ``s`` in ``0..SHIFT_LIMIT`` with ``v >> s <= target``, where ``v`` is
    the value of rank ``(N - 1) * permille // 1000`` (0-based) of the ``N`` accumulators ``z``
    sorted in increasing order (§3.3)."""
    values = np.sort(np.asarray(z, np.int64).ravel())
    v = int(values[(len(values) - 1) * permille // 1000])
    for s in range(SHIFT_LIMIT + 1):
        if v >> s <= target:
            return s
    return SHIFT_LIMIT


def choose_shifts(state: HostState, x: np.ndarray, pending: Sequence[bool]) -> np.ndarray:
    """The ``shift`` array of ``state`` with every layer whose ``pending`` is true chosen from the
    u8 inputs ``x`` (all rows given are used; see :func:`sample_rows`), layer by layer: each
    layer's accumulators come from the layers before it with their final shifts."""
    from graia.backends import numba as oracle

    shifts = state["shift"].copy()
    if not any(pending):
        return shifts
    weights = [oracle._fixed_weights(lat, int(k)) for (lat,), k in zip(
        layer_blocks(state, "latent"), state["kmax"])]  # fmt: skip
    blocks = oracle._blocks(state)
    a = np.ascontiguousarray(x, np.uint8)
    last = len(blocks) - 1
    for layer, (w, block) in enumerate(zip(weights, blocks)):
        p = oracle._block_patches(block, a)
        z = np.empty((p.shape[0], w.shape[1]), np.int32)
        a_c = np.empty((p.shape[0], w.shape[1]), np.uint8)
        if pending[layer]:
            oracle._forward(p, w, 0, z, a_c)
            target = OUTPUT_TARGET if layer == last else HIDDEN_TARGET
            shifts[layer] = shift_for(z, target)
        oracle._forward(p, w, int(shifts[layer]), z, a_c)
        a, _ = oracle._block_output(block, a_c, len(a))
    return shifts
