"""The one small interface every backend implements (see DEVELOPERS.md).

The API validates user input; backends compute and never validate. State crosses the boundary as
a *host state*: a dict of flat numpy arrays whose layout is fixed here.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

#: Keys, dtypes and meaning of a host state.
HOST_STATE_DTYPES: dict[str, type] = {
    "sizes": np.int64,  # (layers + 1,): n_in, hidden..., classes
    "kmax": np.int32,  # (layers,)
    "shift": np.int32,  # (layers,)
    "latent": np.int32,  # (synapses,), layer after layer, row-major (n_in, n_out)
    "momentum": np.int32,  # (synapses,)
    "feedback": np.int8,  # (sum(hidden) * classes,), row-major (n_out, classes)
    "counters": np.int64,  # (3,): seed (two's complement), global step t, prev_loss
}

HostState = dict[str, np.ndarray]

#: Indices into ``counters``.
COUNTER_SEED, COUNTER_STEP, COUNTER_PREV_LOSS = 0, 1, 2


def layer_offsets(sizes: np.ndarray) -> np.ndarray:
    """Start of each layer's synapses in ``latent``/``momentum`` (plus the total at the end)."""
    counts = [int(sizes[i]) * int(sizes[i + 1]) for i in range(len(sizes) - 1)]
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def feedback_offsets(sizes: np.ndarray) -> np.ndarray:
    """Start of each hidden layer's feedback matrix in ``feedback`` (plus the total at the end)."""
    classes = int(sizes[-1])
    counts = [int(sizes[i]) * classes for i in range(1, len(sizes) - 1)]
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def layer_blocks(state: HostState, *keys: str) -> list[tuple[np.ndarray, ...]]:
    """Each layer's ``(n_in, n_out)`` views of the per-synapse arrays ``keys`` of a host state."""
    sizes = state["sizes"]
    offsets = layer_offsets(sizes)
    return [
        tuple(
            state[k][offsets[i] : offsets[i + 1]].reshape(int(sizes[i]), int(sizes[i + 1]))
            for k in keys
        )
        for i in range(len(sizes) - 1)
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

    def predict(self, handle: Any, x: np.ndarray) -> np.ndarray:
        """Output activations, u8 (n, classes)."""

    def activations(self, handle: Any, x: np.ndarray) -> list[np.ndarray]:
        """Every layer's u8 activations for the rows of ``x``: ``x`` first, then each layer's
        ``(n, units)`` (the last is ``predict``'s)."""
