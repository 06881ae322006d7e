"""The one small interface every backend implements (see DEVELOPERS.md).

The API validates user input; backends compute and never validate. State crosses the boundary as
a *host state*: a dict of flat numpy arrays whose layout is fixed here.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

#: Keys, dtypes and meaning of a host state.
HOST_STATE_DTYPES: dict[str, type] = {
    "sizes": np.int64,  # (layers + 1,): input features, each layer's output features (classes last)
    "geometry": np.int64,  # (layers, len(GEOMETRY_FIELDS)): each layer's block (graia/state.py)
    "kmax": np.int32,  # (layers,)
    "shift": np.int32,  # (layers,)
    "latent": np.int32,  # (synapses,), layer after layer, row-major (fan_in, out_c)
    "momentum": np.int32,  # (synapses,)
    "feedback": np.int8,  # (sum(hidden n_out) * classes,), row-major (n_out, classes)
    "counters": np.int64,  # (3,): seed (two's complement), global step t, prev_loss
}

#: The columns of ``geometry``: a layer is a convolution followed by an optional pooling
#: (docs/arithmetic.md §3); a Dense layer is a 1x1 convolution of a 1x1 image.
GEOMETRY_FIELDS = (
    "in_h", "in_w", "in_c", "k_h", "k_w", "stride_h", "stride_w", "pad_top", "pad_left",
    "out_h", "out_w", "out_c", "pool", "pool_h", "pool_w",
)  # fmt: skip
#: Values of the ``pool`` column.
POOL_NONE, POOL_MAX, POOL_AVERAGE = 0, 1, 2

HostState = dict[str, np.ndarray]

#: Indices into ``counters``.
COUNTER_SEED, COUNTER_STEP, COUNTER_PREV_LOSS = 0, 1, 2


def weight_shapes(geometry: np.ndarray) -> list[tuple[int, int]]:
    """Each layer's weight matrix shape ``(fan_in, out_c)`` = ``(k_h * k_w * in_c, out_c)``."""
    col = {name: i for i, name in enumerate(GEOMETRY_FIELDS)}
    return [
        (int(g[col["k_h"]] * g[col["k_w"]] * g[col["in_c"]]), int(g[col["out_c"]]))
        for g in geometry
    ]


def layer_offsets(geometry: np.ndarray) -> np.ndarray:
    """Start of each layer's synapses in ``latent``/``momentum`` (plus the total at the end)."""
    counts = [rows * cols for rows, cols in weight_shapes(geometry)]
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def feedback_offsets(sizes: np.ndarray) -> np.ndarray:
    """Start of each hidden layer's feedback matrix in ``feedback`` (plus the total at the end)."""
    classes = int(sizes[-1])
    counts = [int(sizes[i]) * classes for i in range(1, len(sizes) - 1)]
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def layer_blocks(state: HostState, *keys: str) -> list[tuple[np.ndarray, ...]]:
    """Each layer's ``(fan_in, out_c)`` views of the per-synapse arrays ``keys`` of a host state."""
    shapes = weight_shapes(state["geometry"])
    offsets = layer_offsets(state["geometry"])
    return [
        tuple(state[k][offsets[i] : offsets[i + 1]].reshape(shape) for k in keys)
        for i, shape in enumerate(shapes)
    ]


def feedback_blocks(state: HostState) -> list[np.ndarray]:
    """Each hidden layer's ``(n_out, classes)`` view of a host state's feedback matrices."""
    sizes = state["sizes"]
    offsets = feedback_offsets(sizes)
    classes = int(sizes[-1])
    return [
        state["feedback"][offsets[i] : offsets[i + 1]].reshape(int(sizes[i + 1]), classes)
        for i in range(len(sizes) - 2)
    ]


class Backend(Protocol):
    """What the API needs from a backend. Handles and datasets are backend-owned objects."""

    name: str

    def load(self, state: HostState) -> Any:
        """Put a host state on the backend; returns a handle."""

    def dump(self, handle: Any) -> HostState:
        """The host state of a handle (a copy)."""

    def upload(self, x: np.ndarray, y: np.ndarray) -> Any:
        """Keep a dataset (x: u8 (n, features), y: i32 (n,)) resident for whole epochs."""

    def train_epoch(
        self,
        handle: Any,
        dataset: Any,
        order: np.ndarray,
        batch_size: int,
        rule_id: int,
        params: np.ndarray,
    ) -> tuple[Any, int, int]:
        """One epoch in the sample ``order`` (i32); returns (handle, correct, sq_error)."""

    def batch_sums(
        self,
        handle: Any,
        dataset: Any,
        idx: np.ndarray,
        row0: int,
        rule_id: int,
        params: np.ndarray,
    ) -> tuple[list[np.ndarray], int, int]:
        """The first half of a ``dfa``/``local_heads`` batch (docs/arithmetic.md §7.6) for the
        samples ``idx`` (i32 indices into the dataset), which are rows ``row0, row0 + 1, ...`` of
        their global batch (dropout is keyed by that position): each layer's exact sums ``G``
        (i64 ``(fan_in, out_c)``, unsaturated), ``correct`` and ``sq_error`` of those rows. The
        state is not changed; ``idx`` may be empty (all sums 0)."""

    def apply_sums(
        self, handle: Any, sums: list[np.ndarray], rule_id: int, params: np.ndarray
    ) -> Any:
        """The second half of a batch (§7.6): every synapse's step from the whole batch's sums
        (:meth:`batch_sums`'s, added up over the batch's row ranges), then ``t += 1``; returns
        the new handle (the old one may have been changed in place). ``batch_sums`` over a
        batch's row ranges, summed, then ``apply_sums`` give ``train_epoch``'s bits."""

    def predict(self, handle: Any, x: np.ndarray) -> np.ndarray:
        """Output activations, u8 (n, classes)."""

    def activations(self, handle: Any, x: np.ndarray) -> list[np.ndarray]:
        """Every layer's u8 activations for the rows of ``x``: ``x`` first, then each layer's
        ``(n, units)`` (the last is ``predict``'s)."""
