"""Distributed training over MPI (docs/distributed.md; the arithmetic is docs/arithmetic.md §7.6,
§7.7). Every rank of ``MPI.COMM_WORLD`` holds the whole model and the whole training set and walks
the same sample order; integer sums do not depend on how they are split, so every rank ends every
batch with the state one process would have, bit for bit.

- ``distribute="data"`` (:class:`DataParallel`): each global batch is cut into contiguous row
  ranges, one per rank; a rank computes its rows' exact per-synapse sums ``G`` (its backend's
  ``batch_sums``), one ``Allreduce(SUM)`` of int64 adds them up with the batch's metrics, and every
  rank applies the same update (the backend's ``apply_sums``).
- ``distribute="units"`` (:class:`UnitParallel`): each rank owns a contiguous slice of every hidden
  layer's units (interface.UnitParallelBackend). Per batch: an ``Allgatherv`` of the owned u8
  activations of each hidden layer but the last, one ``Allreduce(SUM)`` of the output layer's
  (and local heads') partial sums, and every rank steps its own synapses. No gradient traffic.

Both run on every backend (interface.Backend's ``batch_sums``/``apply_sums`` and
interface.UnitParallelBackend).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
import traceback
from collections.abc import Iterator
from typing import Any

import numpy as np

from graia.backends.interface import (
    HostState,
    launcher_local_rank,
    layer_offsets,
    set_shared_rank,
    shard_state,
    unit_ranges,
    unshard_state,
)
from graia.errors import GraiaError, GraiaValueError
from graia.rules import REGISTRY

#: Values of ``fit(distribute=...)`` and ``graia train --distribute``.
MODES = ("data", "units")
#: The rules both modes run (docs/distributed.md: what is not done).
RULES = tuple(name for name, rule in REGISTRY.items() if rule.distributable)
#: Where MPI launchers put the number of processes they started (Open MPI; MPICH, Intel MPI and
#: Slurm's PMI).
WORLD_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")

_world: Any = None


def validate(distribute: str | None, rule_name: str | None, backend_name: str) -> None:
    """Check a ``distribute`` request before anything is computed.

    Raises:
        GraiaValueError: an unknown mode, a rule the modes do not run, or mpi4py (or its MPI
            library) missing. Every backend runs both modes (``backend_name`` is named in the
            errors only).
    """
    if distribute is None:
        return
    if distribute not in MODES:
        choices = " or ".join(repr(m) for m in MODES)
        raise GraiaValueError(f"distribute must be None, {choices}, got {distribute!r}")
    mode = f"distribute={distribute!r}"
    if rule_name is not None and rule_name not in RULES:
        raise GraiaValueError(f"{mode} runs the rules {', '.join(RULES)}, not {rule_name!r}")
    try:
        world()
    except ImportError as exc:
        raise GraiaValueError(
            f"{mode} on the {backend_name} backend needs mpi4py and an MPI library "
            f"(graia's mpi extra: pip install mpi4py; Debian: openmpi-bin libopenmpi-dev): {exc}"
        ) from exc


def validate_model(distribute: str | None, model: Any) -> None:
    """Check that ``model`` (a built :class:`graia.Sequential`) can be trained in the mode:
    ``units`` splits Dense hidden layers only.

    Raises:
        GraiaValueError: naming the layer that cannot be split, or a model without hidden layer.
    """
    if distribute != "units":
        return
    for layer, block in zip(model.weighted_layers, model.blocks):
        if not block.is_dense:
            raise GraiaValueError(
                f"distribute='units' splits Dense layers only; layer {layer.name!r} is a "
                f"{type(layer).__name__} (use distribute='data')"
            )
    if len(model.weighted_layers) < 2:
        raise GraiaValueError("distribute='units' splits hidden layers; this model has none")


def world() -> Any:
    """``MPI.COMM_WORLD``, its errors fatal: a failing call or a dead rank ends the whole job
    rather than leaving the other ranks waiting. The first call is collective (every rank makes
    it, as ``fit`` does): without a launcher's local rank it splits the ranks by host."""
    global _world
    if _world is None:
        from mpi4py import MPI

        MPI.COMM_WORLD.Set_errhandler(MPI.ERRORS_ARE_FATAL)
        if launcher_local_rank() is None and MPI.COMM_WORLD.Get_size() > 1:
            set_shared_rank(MPI.COMM_WORLD.Split_type(MPI.COMM_TYPE_SHARED).Get_rank())
        _world = MPI.COMM_WORLD
    return _world


def rank() -> int:
    """This process's rank in ``MPI.COMM_WORLD`` (0 in a job of one)."""
    return world().Get_rank()


def abort(code: int) -> None:
    """End every rank of the job with exit status ``code`` (when MPI is in use and has more than
    one rank; otherwise nothing happens)."""
    if _world is not None and _world.Get_size() > 1:
        sys.stderr.flush()
        _world.Abort(code)


@contextlib.contextmanager
def abort_on_error() -> Iterator[None]:
    """An exception on one rank aborts the whole job (after printing it: one line for Ctrl-C and
    for a ``GraiaError``, the traceback of anything else), so that no rank waits forever in a
    collective call the failed rank will never make."""
    try:
        yield
    except BaseException as exc:
        if _world is not None and _world.Get_size() > 1:
            me = _world.Get_rank()
            if isinstance(exc, KeyboardInterrupt):  # Ctrl-C is no failure: one line, exit 130
                print(f"graia: interrupted on rank {me}; ending every rank", file=sys.stderr)
                abort(130)
            elif isinstance(exc, GraiaError):
                text = " ".join(str(exc).split())
                print(f"graia: error: rank {me}: {text}; ending every rank", file=sys.stderr)
                abort(2)
            print(f"graia: rank {me} failed; aborting every rank", file=sys.stderr)
            traceback.print_exc()
            abort(1)
        raise


class Disagreement(GraiaError):
    """The ranks of a distributed run were started differently; raised on every rank alike (so
    no rank is left waiting, and one of them, rank 0, reports it)."""


def launched_ranks() -> int:
    """How many processes the MPI launcher started, this one among them, as its environment says
    (:data:`WORLD_SIZE_VARIABLES`); 1 outside a launcher. Never starts MPI."""
    for name in WORLD_SIZE_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return 1


def check_modes(distribute: str | None) -> None:
    """``graia train``'s first collective: in a launch of several ranks, every rank tells the
    ``--distribute`` it was started with (``None``: without it), so that a rank started without
    it beside ranks started with it, which would train alone while they wait for it, or with
    another mode, ends the job on every rank. Ranks all started without it train alone, each as
    one process would.

    Raises:
        Disagreement: on every rank, when the ranks' modes differ.
    """
    if distribute is None and launched_ranks() < 2:
        return
    try:
        comm = world()
    except ImportError:  # no mpi4py here: a rank started with --distribute says so itself
        return
    if comm.Get_size() < 2:
        return
    modes = comm.allgather(distribute)
    for r, mode in enumerate(modes):
        if mode != modes[0]:
            raise Disagreement(
                f"distributed training: rank {r} runs {_flag(mode)}, rank 0 {_flag(modes[0])} "
                "(start every rank with the same arguments)"
            )


def _flag(distribute: str | None) -> str:
    return "without --distribute" if distribute is None else f"with --distribute {distribute}"


def check_agreement(
    state: HostState,
    x: np.ndarray,
    y: np.ndarray,
    params: np.ndarray,
    schedule: dict[str, int | str | bool],
) -> None:
    """Every rank must start from the same state, data and rule options (each rank loads them
    itself) and run the same schedule of collectives: ``schedule`` holds every argument the
    communication depends on (the mode, batch size, epochs, first epoch, shuffling...). One
    ``allgather`` of small Python objects compares them, so ranks that disagree end at once
    instead of waiting in (or corrupting) collectives of different sizes.

    Raises:
        Disagreement: on every rank, when they differ.
    """
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(np.ascontiguousarray(state[key]).tobytes())
    for array in (x, y, params):
        digest.update(np.ascontiguousarray(array).tobytes())
    views = world().allgather((sorted(schedule.items()), digest.hexdigest()))
    mine, first = dict(views[0][0]), views[0][1]
    for r, (other, _) in enumerate(views):
        for key, value in other:
            if mine.get(key) != value:
                raise Disagreement(
                    f"distributed training: rank {r} runs with {key}={value!r}, rank 0 with "
                    f"{key}={mine.get(key)!r} (start every rank with the same arguments)"
                )
    differ = [r for r, (_, d) in enumerate(views) if d != first]
    if differ:
        raise Disagreement(
            f"distributed training: ranks {differ} start from a different model, data or rule "
            "options than rank 0 (every rank must build the same model with the same seed and "
            "load the same data)"
        )


def bytes_per_batch(mode: str, state: HostState, batch_size: int, local_heads: bool) -> int:
    """The bytes of the collectives of one whole batch of ``batch_size`` rows of a model (host
    state ``state``): ``data``, the int64 all-reduce of every synapse's sum and the two metrics;
    ``units``, the all-gathered u8 activations of every hidden layer but the last and the i32
    all-reduce of the output layer's (and, with ``local_heads``, every local head's) sums."""
    if mode == "data":
        return 8 * (int(layer_offsets(state["geometry"])[-1]) + 2)
    sizes = [int(n) for n in state["sizes"]]
    hidden = len(sizes) - 2
    blocks = 1 + (hidden if local_heads else 0)
    return batch_size * sum(sizes[1:-2]) + 4 * blocks * batch_size * sizes[-1]


class Parallel:
    """A backend whose ``train_epoch`` shares each global batch among the ranks of
    ``MPI.COMM_WORLD``; everything else is the wrapped backend's. ``communication_seconds`` is
    the time spent in MPI calls since it was last reset (including waiting for the slowest rank);
    ``bytes_per_batch`` is :func:`bytes_per_batch` of the last ``train_epoch``."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.name = backend.name
        self.communication_seconds = 0.0
        self.bytes_per_batch = 0

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.backend, attribute)

    def _timed(self, call: Any, *args: Any, **kwargs: Any) -> None:
        """An MPI call, its time added to ``communication_seconds``."""
        started = time.perf_counter()
        call(*args, **kwargs)
        self.communication_seconds += time.perf_counter() - started


class DataParallel(Parallel):
    """``distribute="data"``: each rank takes a row range of every batch (§7.6), through the
    backend's ``batch_sums`` and ``apply_sums``."""

    def train_epoch(
        self,
        handle: Any,
        dataset: Any,
        order: np.ndarray,
        batch_size: int,
        rule_id: int,
        params: np.ndarray,
    ) -> tuple[Any, int, int]:
        """One epoch (or part of one) in the sample ``order``, as one process would run it."""
        from mpi4py import MPI

        comm = world()
        me, ranks = comm.Get_rank(), comm.Get_size()
        order = np.ascontiguousarray(order, np.int32)
        correct = sq_error = 0
        buffer = None
        for start in range(0, order.shape[0], batch_size):
            idx = order[start : start + batch_size]
            rows = idx.shape[0]
            lo, hi = rows * me // ranks, rows * (me + 1) // ranks
            sums, c, e = self.backend.batch_sums(handle, dataset, idx[lo:hi], lo, rule_id, params)
            if buffer is None:
                # One buffer per batch: every layer's G, then correct and sq_error
                # (bytes_per_batch("data", ...)).
                buffer = np.empty(sum(g.size for g in sums) + 2, np.int64)
                self.bytes_per_batch = buffer.nbytes
            offset = 0
            for g in sums:
                buffer[offset : offset + g.size] = g.ravel()
                offset += g.size
            buffer[-2:] = c, e
            self._timed(comm.Allreduce, MPI.IN_PLACE, buffer, op=MPI.SUM)
            offset = 0
            totals = []
            for g in sums:
                totals.append(buffer[offset : offset + g.size].reshape(g.shape))
                offset += g.size
            handle = self.backend.apply_sums(handle, totals, rule_id, params)
            correct += int(buffer[-2])
            sq_error += int(buffer[-1])
        return handle, correct, sq_error


class UnitParallel(Parallel):
    """``distribute="units"``: each rank owns a slice of every hidden layer's units (§7.7) and
    runs the wrapped backend's unit-parallel methods (interface.UnitParallelBackend) on it."""

    def upload(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The dataset stays on the host: each batch's rows go to ``units_forward``."""
        return np.ascontiguousarray(x, np.uint8), np.ascontiguousarray(y, np.int32)

    def train_epoch(
        self,
        handle: Any,
        dataset: tuple[np.ndarray, np.ndarray],
        order: np.ndarray,
        batch_size: int,
        rule_id: int,
        params: np.ndarray,
    ) -> tuple[Any, int, int]:
        """One epoch (or part of one) in the sample ``order``, as one process would run it; the
        returned handle holds the whole model (every rank's units gathered), on every rank."""
        from mpi4py import MPI

        comm = world()
        me, ranks = comm.Get_rank(), comm.Get_size()
        backend = self.backend
        state = backend.dump(handle)
        local_heads = rule_id == REGISTRY["local_heads"].rule_id
        self.bytes_per_batch = bytes_per_batch("units", state, batch_size, local_heads)
        sizes = state["sizes"]
        hidden = len(sizes) - 2
        # Each rank's owned units of every hidden layer: the all-gathers' counts.
        owned = [np.diff(unit_ranges(sizes, r, ranks), axis=1)[:, 0] for r in range(ranks)]
        shard = backend.units_load(shard_state(state, me, ranks))
        x, y = dataset
        correct = sq_error = 0
        for start in range(0, order.shape[0], batch_size):
            idx = order[start : start + batch_size]
            rows = idx.shape[0]
            inputs = x[idx]
            for layer in range(hidden):
                acts = backend.units_forward(shard, layer, inputs, params)
                if layer < hidden - 1:  # the output layer reads only the owned units
                    counts = [int(o[layer]) * rows for o in owned]
                    gathered = np.empty(sum(counts), np.uint8)
                    self._timed(comm.Allgatherv, acts, [gathered, counts, MPI.UNSIGNED_CHAR])
                    blocks = np.split(gathered, np.cumsum(counts)[:-1])
                    inputs = np.concatenate([b.reshape(rows, -1) for b in blocks], axis=1)
            sums = backend.units_partials(shard, rule_id, params)
            self._timed(comm.Allreduce, MPI.IN_PLACE, sums, op=MPI.SUM)
            c, e = backend.units_step(shard, sums, y[idx], rule_id, params)
            correct += c
            sq_error += e
        return backend.load(self._gather(state, backend.units_dump(shard))), correct, sq_error

    def _gather(self, state: HostState, mine: HostState) -> HostState:
        """The host state of every rank's shard (``mine`` is this rank's), on every rank."""
        from mpi4py import MPI

        comm = world()
        ranks = comm.Get_size()
        shards = [
            {**mine, "unit_ranges": unit_ranges(state["sizes"], r, ranks)} for r in range(ranks)
        ]
        # The learned arrays, each rank's in rank order (the heads' rows too: §7.4, §7.7).
        for key in ("latent", "momentum", "head_latent", "head_momentum"):
            counts = comm.allgather(mine[key].size)
            gathered = np.empty(sum(counts), np.int32)
            self._timed(comm.Allgatherv, mine[key], [gathered, counts, MPI.INT32_T])
            for shard, part in zip(shards, np.split(gathered, np.cumsum(counts)[:-1])):
                shard[key] = part
        return unshard_state(state, shards)


#: The wrapper of each mode.
WRAPPERS = {"data": DataParallel, "units": UnitParallel}
