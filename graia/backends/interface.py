"""The one small interface every backend implements (see DEVELOPERS.md).

The API validates user input; backends compute and never validate. State crosses the boundary as
a *host state*: a dict of flat numpy arrays whose layout is fixed here.
"""

from __future__ import annotations

import os
from dataclasses import astuple, dataclass, fields
from typing import Any, Protocol

import numpy as np

from graia.spec import BIAS_INPUT

#: Keys, dtypes and meaning of a host state.
HOST_STATE_DTYPES: dict[str, type] = {
    "sizes": np.int64,  # (layers + 1,): input features, each layer's output features (classes last)
    "geometry": np.int64,  # (layers, len(GEOMETRY_FIELDS)): each layer's Block
    "kmax": np.int32,  # (layers,)
    "shift": np.int32,  # (layers,)
    "latent": np.int32,  # (synapses,), layer after layer, row-major (fan_in, out_c)
    "momentum": np.int32,  # (synapses,)
    "feedback": np.int8,  # (sum(hidden n_out) * classes,), row-major (n_out, classes)
    "head_latent": np.int32,  # like feedback: the local heads' latent weights (§7.4)
    "head_momentum": np.int32,  # like feedback: their momenta
    "counters": np.int64,  # (3,): seed (two's complement), global step t, prev_loss
}

#: Values of a block's ``pool``.
POOL_NONE, POOL_MAX, POOL_AVERAGE = 0, 1, 2


@dataclass(frozen=True)
class Block:
    """One weighted layer's geometry: the row of ``geometry`` in a host state. A layer is a
    convolution followed by an optional pooling (docs/arithmetic.md §3); a Dense layer is a 1x1
    convolution of a 1x1 image.

    Input ``in_h x in_w x in_c`` (channels last), kernel ``k_h x k_w``, strides, the zero padding
    before the first row/column, the convolution's output ``out_h x out_w x out_c``, and the pooling
    after it (``pool`` is ``POOL_NONE``/``POOL_MAX``/``POOL_AVERAGE``, windows ``pool_h x pool_w``).
    ``bias`` is 1 when every patch gets one more input, the constant ``spec.BIAS_INPUT``, whose
    weights are the last row of the layer's weight matrix (docs/arithmetic.md §3), else 0.
    """

    in_h: int
    in_w: int
    in_c: int
    k_h: int
    k_w: int
    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int
    out_h: int
    out_w: int
    out_c: int
    pool: int
    pool_h: int
    pool_w: int
    bias: int = 0

    @property
    def fan_in(self) -> int:
        """Inputs of one output unit: the rows of the layer's weight matrix (the bias input's
        row last)."""
        return self.k_h * self.k_w * self.in_c + self.bias

    @property
    def n_in(self) -> int:
        return self.in_h * self.in_w * self.in_c

    @property
    def n_out(self) -> int:
        """Output features after pooling (what the next layer reads)."""
        return (self.out_h // self.pool_h) * (self.out_w // self.pool_w) * self.out_c

    @property
    def is_dense(self) -> bool:
        return self.in_h == self.in_w == self.k_h == self.k_w == 1 and self.pool == POOL_NONE

    def row(self) -> tuple[int, ...]:
        return astuple(self)

    @classmethod
    def of_row(cls, row: Any) -> Block:
        """The block of one row of ``geometry``."""
        return cls(*(int(v) for v in row))


#: The columns of ``geometry``: :class:`Block`'s fields.
GEOMETRY_FIELDS = tuple(field.name for field in fields(Block))

HostState = dict[str, np.ndarray]

#: Indices into ``counters``.
COUNTER_SEED, COUNTER_STEP, COUNTER_PREV_LOSS = 0, 1, 2


#: Where MPI launchers put a process's rank among the ranks of its host (Open MPI, MPICH and
#: Intel MPI, Slurm).
LOCAL_RANK_VARIABLES = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID")
_shared_rank: int | None = None


def launcher_local_rank() -> int | None:
    """This process's rank among the MPI ranks of its host, from the launcher's environment
    (:data:`LOCAL_RANK_VARIABLES`), or None."""
    for name in LOCAL_RANK_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return None


def set_shared_rank(rank: int | None) -> None:
    """Record the rank among the ranks of its host that MPI gave this process (graia.distributed
    does, when no launcher variable says it)."""
    global _shared_rank
    _shared_rank = rank


def local_rank() -> int | None:
    """This process's rank among the MPI ranks on its host (for one device per rank), or None
    outside MPI: from the launcher's environment, else as MPI gave it (:func:`set_shared_rank`).
    Never starts MPI."""
    launcher = launcher_local_rank()
    return launcher if launcher is not None else _shared_rank


def with_bias(x: np.ndarray, bias: int | bool) -> np.ndarray:
    """The rows ``x`` (u8 ``(rows, n)``), each followed by the constant input ``BIAS_INPUT`` of a
    bias (§3) when ``bias`` is set: from a layer's input (a Dense layer's) or patches (§3.1), the
    rows its weights multiply."""
    if not bias:
        return x
    return np.concatenate([x, np.full((len(x), 1), BIAS_INPUT, np.uint8)], axis=1)


def weight_shapes(geometry: np.ndarray) -> list[tuple[int, int]]:
    """Each layer's weight matrix shape ``(fan_in, out_c)`` =
    ``(k_h * k_w * in_c + bias, out_c)``."""
    return [(block.fan_in, block.out_c) for block in map(Block.of_row, geometry)]


def layer_offsets(geometry: np.ndarray) -> np.ndarray:
    """Start of each layer's synapses in ``latent``/``momentum`` (plus the total at the end)."""
    counts = [rows * cols for rows, cols in weight_shapes(geometry)]
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def feedback_offsets(sizes: np.ndarray) -> np.ndarray:
    """Start of each hidden layer's feedback matrix in ``feedback`` (plus the total at the end)."""
    classes = int(sizes[-1])
    counts = [int(sizes[i]) * classes for i in range(1, len(sizes) - 1)]
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def head_shapes(sizes: np.ndarray) -> list[tuple[int, int]]:
    """Each hidden layer's feedback matrix and local head shape ``(n_out, classes)``."""
    return [(int(n), int(sizes[-1])) for n in sizes[1:-1]]


def layer_blocks(state: HostState, *keys: str) -> list[tuple[np.ndarray, ...]]:
    """Each layer's ``(fan_in, out_c)`` views of the per-synapse arrays ``keys`` of a host state."""
    shapes = weight_shapes(state["geometry"])
    offsets = layer_offsets(state["geometry"])
    return [
        tuple(state[k][offsets[i] : offsets[i + 1]].reshape(shape) for k in keys)
        for i, shape in enumerate(shapes)
    ]


def feedback_blocks(state: HostState, key: str = "feedback") -> list[np.ndarray]:
    """Each hidden layer's ``(n_out, classes)`` view of a host state's feedback matrices (or of
    another array laid out like them: ``head_latent``, ``head_momentum``)."""
    sizes = state["sizes"]
    offsets = feedback_offsets(sizes)
    classes = int(sizes[-1])
    return [
        state[key][offsets[i] : offsets[i + 1]].reshape(int(sizes[i + 1]), classes)
        for i in range(len(sizes) - 2)
    ]


def head_blocks(state: HostState) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each hidden layer's local head ``(latent, momentum)``, ``(n_out, classes)`` views."""
    return [*zip(feedback_blocks(state, "head_latent"), feedback_blocks(state, "head_momentum"))]


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
        (i64 ``(fan_in, out_c)``, unsaturated), then, when the local heads learn (§7.4:
        ``local_heads`` with ``head_step > 0``), each hidden layer's head sums (i64
        ``(n_out, classes)``), ``correct`` and ``sq_error`` of those rows. The state is not
        changed; ``idx`` may be empty (all sums 0)."""

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


# ------------------------------------------------------------------------------ unit parallel
# docs/arithmetic.md §7.7, docs/distributed.md. Under ``fit(distribute="units")`` rank ``r`` of
# ``P`` owns, in every hidden layer of ``n`` units, the units ``unit_range(n, r, P)``: their
# incoming synapses (columns of the layer's ``(fan_in, n)`` matrix, the bias row included), their
# feedback rows and, in the output layer, the matching rows (the output layer's fan-in is the last
# hidden layer's units, then its bias input if it has one: that row is the last rank's, see
# :func:`output_rows`). A *shard* is the part of a host state one rank owns, laid out like a host
# state:
#
#   sizes, geometry, kmax, shift, counters   the whole model's (unchanged)
#   unit_ranges   i64 (hidden layers, 2): [lo, hi) of each hidden layer's units owned here
#   latent, momentum   i32: hidden layer l's (fan_in, hi - lo) column block, then the output
#                 layer's (hi - lo, classes) row block (output_rows), each row-major, layer
#                 after layer
#   feedback      i8: rows [lo, hi) of each hidden layer's (n, classes) matrix, layer after layer
#   head_latent, head_momentum   i32: the same rows of each hidden layer's local head (§7.4)
#
# Every key of §4 stays global: dropout unit h of a layer of n units, batch row s, hashes the word
# s * n + lo + h; the rounding word of owned synapse (i, h) of hidden layer l is i * n + lo + h,
# of owned output synapse (h, j) and of owned head weight (h, j) is (lo + h) * classes + j (the
# output layer's bias row is row n of the last hidden layer's n units). So a shard steps exactly
# the bits one process would give those synapses. Dense layers only.


def unit_range(units: int, rank: int, ranks: int) -> tuple[int, int]:
    """The units ``[lo, hi)`` of a layer of ``units`` that rank ``rank`` of ``ranks`` owns
    (contiguous, in rank order; empty when there are more ranks than units)."""
    return units * rank // ranks, units * (rank + 1) // ranks


def unit_ranges(sizes: np.ndarray, rank: int, ranks: int) -> np.ndarray:
    """The ``unit_ranges`` of rank ``rank``'s shard: i64 ``(hidden layers, 2)``."""
    hidden = len(sizes) - 2
    ranges = [unit_range(int(sizes[l + 1]), rank, ranks) for l in range(hidden)]
    return np.array(ranges, np.int64).reshape(hidden, 2)


def output_rows(geometry: np.ndarray, ranges: np.ndarray) -> tuple[int, int]:
    """The rows ``[lo, hi)`` of the output layer's ``(fan_in, classes)`` weight matrix owned by the
    shard of unit ranges ``ranges`` (a model of geometry ``geometry``): those of its units of the
    last hidden layer and, on the rank whose units end that layer (the last), the output layer's
    bias row after them when it has one, so that exactly one rank adds and learns it."""
    block = Block.of_row(geometry[-1])
    lo, hi = (int(v) for v in ranges[-1])
    return lo, block.fan_in if hi == block.fan_in - block.bias else hi


def owns_output_bias(shard: HostState) -> bool:
    """Whether a shard owns the output layer's bias row (:func:`output_rows`): its rows of the
    output layer multiply its last hidden layer's activations followed by the bias input."""
    ranges = shard["unit_ranges"]
    return output_rows(shard["geometry"], ranges)[1] > int(ranges[-1, 1])


def shard_state(state: HostState, rank: int, ranks: int) -> HostState:
    """The shard of a host state (Dense layers, at least one hidden) that rank ``rank`` of
    ``ranks`` owns (copies)."""
    hidden = len(state["sizes"]) - 2
    ranges = unit_ranges(state["sizes"], rank, ranks)
    rows = ("feedback", "head_latent", "head_momentum")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("latent", "momentum", *rows)}
    for l, (lat, mom) in enumerate(layer_blocks(state, "latent", "momentum")):
        if l < hidden:
            lo, hi = ranges[l]
            cut = (slice(None), slice(lo, hi))
        else:  # the output layer: the rows of the last hidden layer's units (and the bias row)
            cut = (slice(*output_rows(state["geometry"], ranges)), slice(None))
        parts["latent"].append(lat[cut].ravel())
        parts["momentum"].append(mom[cut].ravel())
    for key in rows:
        for l, block in enumerate(feedback_blocks(state, key)):
            parts[key].append(block[ranges[l, 0] : ranges[l, 1]].ravel())
    shard = {k: state[k].copy() for k in ("sizes", "geometry", "kmax", "shift", "counters")}
    for key, blocks in parts.items():
        dtype = HOST_STATE_DTYPES[key]
        shard[key] = np.concatenate(blocks).astype(dtype) if blocks else np.zeros(0, dtype)
    shard["unit_ranges"] = ranges
    return shard


def shard_blocks(shard: HostState, key: str) -> list[np.ndarray]:
    """Each layer's 2-D view of a shard's ``latent``/``momentum`` (``key``): hidden layers
    ``(fan_in, hi - lo)``, the output layer ``(hi - lo, classes)`` (:func:`output_rows`)."""
    ranges = shard["unit_ranges"]
    shapes = []
    for l, (fan_in, units) in enumerate(weight_shapes(shard["geometry"])):
        if l < len(ranges):
            shapes.append((fan_in, int(ranges[l, 1] - ranges[l, 0])))
        else:
            lo, hi = output_rows(shard["geometry"], ranges)
            shapes.append((hi - lo, units))
    views, offset = [], 0
    for shape in shapes:
        size = shape[0] * shape[1]
        views.append(shard[key][offset : offset + size].reshape(shape))
        offset += size
    return views


def shard_feedback_blocks(shard: HostState, key: str = "feedback") -> list[np.ndarray]:
    """Each hidden layer's ``(hi - lo, classes)`` view of a shard's feedback rows (or of its
    ``head_latent`` or ``head_momentum`` rows)."""
    classes = int(shard["sizes"][-1])
    views, offset = [], 0
    for lo, hi in shard["unit_ranges"]:
        size = int(hi - lo) * classes
        views.append(shard[key][offset : offset + size].reshape(int(hi - lo), classes))
        offset += size
    return views


def shard_head_blocks(shard: HostState) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each hidden layer's ``(latent, momentum)`` views of a shard's local head rows."""
    return [
        *zip(
            shard_feedback_blocks(shard, "head_latent"),
            shard_feedback_blocks(shard, "head_momentum"),
        )
    ]


def unshard_state(state: HostState, shards: list[HostState]) -> HostState:
    """The host state whose learned parts are those of ``shards`` (every rank's, in rank order)
    and the rest ``state``'s: the inverse of :func:`shard_state`."""
    out = {k: v.copy() for k, v in state.items()}
    out["counters"] = shards[0]["counters"].copy()
    targets = layer_blocks(out, "latent", "momentum")
    hidden = len(state["sizes"]) - 2
    for shard in shards:
        ranges = shard["unit_ranges"]
        for key in ("head_latent", "head_momentum"):
            for l, (rows, whole) in enumerate(
                zip(shard_feedback_blocks(shard, key), feedback_blocks(out, key))
            ):
                whole[ranges[l, 0] : ranges[l, 1]] = rows
        for key, k in (("latent", 0), ("momentum", 1)):
            for l, block in enumerate(shard_blocks(shard, key)):
                if l < hidden:
                    targets[l][k][:, ranges[l, 0] : ranges[l, 1]] = block
                else:
                    targets[l][k][slice(*output_rows(shard["geometry"], ranges))] = block
    return out


class UnitParallelBackend(Protocol):
    """What ``fit(distribute="units")`` needs from a backend (docs/arithmetic.md §7.7), on top of
    :class:`Backend`. The caller (graia/distributed.py) does all MPI; a backend only computes on
    its rank's shard. One ``dfa``/``local_heads`` batch of ``rows`` rows is, on every rank:

    1. for each hidden layer ``l`` in order: ``acts = units_forward(h, l, inputs, params)``, where
       ``inputs`` is the layer's whole input (the batch's rows of ``x`` for ``l = 0``, else the
       previous hidden layer's activations of *all* units, gathered from every rank's ``acts``),
       without the bias input (the backend appends it: :func:`with_bias`);
    2. ``partials = units_partials(h, rule_id, params)``; the caller sums them over the ranks;
    3. ``correct, sq_error = units_step(h, sums, labels, rule_id, params)``.

    Between calls the handle keeps what the batch needs (each layer's input, ``z`` and owned
    activations). All arrays cross as C-contiguous numpy arrays.
    """

    def units_load(self, shard: HostState) -> Any:
        """Put a shard (:func:`shard_state`) on the backend; returns a handle."""

    def units_dump(self, handle: Any) -> HostState:
        """The shard of a handle (a copy), its counters advanced by the batches stepped."""

    def units_forward(self, handle: Any, layer: int, inputs: np.ndarray, params: np.ndarray):
        """Hidden layer ``layer`` for the owned units: ``z`` (§3) from ``inputs`` (u8
        ``(rows, n_in)``) followed by the bias input when the layer has one (:func:`with_bias`:
        ``fan_in`` columns), the u8 activations, dropout (§7.2, keyed by the global unit and the
        global batch row, step ``t`` of the counters). Keeps those ``fan_in`` columns and ``z``
        (and, for the last hidden layer, the rows the output layer's owned rows multiply:
        :func:`owns_output_bias`); returns the owned activations after dropout, u8
        ``(rows, hi - lo)``."""

    def units_partials(self, handle: Any, rule_id: int, params: np.ndarray) -> np.ndarray:
        """This rank's share of the batch's sums over units, i32 ``(blocks, rows, classes)``:
        for ``local_heads`` first each hidden layer's head sums ``sum_h a[s, h] V[h, j]`` over the
        owned units (§7.4, ``V`` the head's weights), then (both rules) the output layer's ``z``
        summed over the owned rows of its weights (:func:`output_rows`: on the last rank, the
        bias row's term too). The sums over all ranks are the single-process values (exact)."""

    def units_step(
        self, handle: Any, sums: np.ndarray, labels: np.ndarray, rule_id: int, params: np.ndarray
    ) -> tuple[int, int]:
        """The rest of the batch from ``sums`` (``units_partials`` summed over the ranks) and the
        batch's labels (i32 ``(rows,)``): the output activations and error (§7.1), the local
        heads' errors, the owned units' deltas, every owned synapse's step (and, when the heads
        learn, every owned head row's) with the global rounding words, then ``t += 1``. Returns the batch's ``(correct, sq_error)`` (the same on
        every rank)."""
