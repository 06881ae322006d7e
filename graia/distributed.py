"""Data-parallel training over MPI (docs/distributed.md; the arithmetic is docs/arithmetic.md §7.6).

Every rank of ``MPI.COMM_WORLD`` holds the whole model and the whole training set and walks the
same sample order. Each global batch is cut into contiguous row ranges, one per rank; a rank
computes its rows' exact per-synapse sums ``G`` (:func:`graia.backends.numba.batch_sums`), one
``Allreduce(SUM)`` of int64 adds them up with the batch's metrics, and every rank applies the same
update (:func:`graia.backends.numba.apply_sums`). Integer sums do not depend on how they are
split, so every rank ends every batch with the state one process would have, bit for bit.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import time
import traceback
from collections.abc import Iterator
from typing import Any

import numpy as np

from graia.backends.interface import HostState
from graia.errors import GraiaError, GraiaValueError

#: Values of ``fit(distribute=...)`` and ``graia train --distribute``.
MODES = ("data",)
#: The backend and the rules the data-parallel path runs (docs/distributed.md: what is not done).
BACKEND = "numba"
RULES = ("dfa", "local_heads")

_world: Any = None


def validate(distribute: str | None, rule_name: str | None, backend_name: str) -> None:
    """Check a ``distribute`` request before anything is computed.

    Raises:
        GraiaValueError: an unknown mode, a rule or backend the mode does not run, or mpi4py
            (or its MPI library) missing.
    """
    if distribute is None:
        return
    if distribute not in MODES:
        raise GraiaValueError(f"distribute must be None or 'data', got {distribute!r}")
    if rule_name is not None and rule_name not in RULES:
        raise GraiaValueError(
            f"distribute='data' runs the rules {', '.join(RULES)}, not {rule_name!r}"
        )
    if backend_name != BACKEND:
        raise GraiaValueError(
            f"distribute='data' runs on the {BACKEND} backend only, not {backend_name!r} "
            f"(choose it with GRAIA_BACKEND={BACKEND} or --backend {BACKEND})"
        )
    try:
        world()
    except ImportError as exc:
        raise GraiaValueError(
            f"distribute='data' needs mpi4py and an MPI library (pip install 'graia[mpi]'; "
            f"Debian: openmpi-bin libopenmpi-dev): {exc}"
        ) from exc


def world() -> Any:
    """``MPI.COMM_WORLD``, its errors fatal: a failing call or a dead rank ends the whole job
    rather than leaving the other ranks waiting."""
    global _world
    if _world is None:
        from mpi4py import MPI

        MPI.COMM_WORLD.Set_errhandler(MPI.ERRORS_ARE_FATAL)
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
    """An exception on one rank aborts the whole job (after printing it), so that no rank waits
    forever in a collective call the failed rank will never make."""
    try:
        yield
    except BaseException:
        if _world is not None and _world.Get_size() > 1:
            print(f"graia: rank {_world.Get_rank()} failed; aborting every rank", file=sys.stderr)
            traceback.print_exc()
            abort(1)
        raise


def check_agreement(state: HostState, x: np.ndarray, y: np.ndarray, params: np.ndarray) -> None:
    """Every rank must start from the same state, data and rule options (each rank loads them
    itself); the ranks compare digests.

    Raises:
        GraiaError: on every rank, when they differ.
    """
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(np.ascontiguousarray(state[key]).tobytes())
    for array in (x, y, params):
        digest.update(np.ascontiguousarray(array).tobytes())
    digests = world().allgather(digest.hexdigest())
    if len(set(digests)) > 1:
        differ = [r for r, d in enumerate(digests) if d != digests[0]]
        raise GraiaError(
            f"distribute='data': ranks {differ} start from a different model, data or rule "
            "options than rank 0 (every rank must build the same model with the same seed and "
            "load the same data)"
        )


class DataParallel:
    """A Numba backend whose ``train_epoch`` shares each global batch among the ranks of
    ``MPI.COMM_WORLD``; everything else is the wrapped backend's. ``communication_seconds`` and
    ``bytes_per_batch`` describe the last epoch's all-reduces."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.name = backend.name
        self.communication_seconds = 0.0
        self.bytes_per_batch = 0

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.backend, attribute)

    def train_epoch(
        self,
        handle: HostState,
        dataset: tuple[np.ndarray, np.ndarray],
        order: np.ndarray,
        batch_size: int,
        rule_id: int,
        params: np.ndarray,
    ) -> tuple[HostState, int, int]:
        """One epoch (or part of one) in the sample ``order``, as one process would run it."""
        from mpi4py import MPI

        from graia.backends.numba import RULE_LOCAL_HEADS, apply_sums, batch_sums

        comm = world()
        me, ranks = comm.Get_rank(), comm.Get_size()
        x, y = dataset
        order = np.ascontiguousarray(order, np.int32)
        local_heads = rule_id == RULE_LOCAL_HEADS
        correct = sq_error = 0
        buffer = None
        for start in range(0, order.shape[0], batch_size):
            idx = order[start : start + batch_size]
            rows = idx.shape[0]
            lo, hi = rows * me // ranks, rows * (me + 1) // ranks
            sums, c, e = batch_sums(handle, x, y, idx[lo:hi], lo, params, local_heads)
            if buffer is None:
                # One buffer per batch: every layer's G, then correct and sq_error.
                buffer = np.empty(sum(g.size for g in sums) + 2, np.int64)
                self.bytes_per_batch = buffer.nbytes
            offset = 0
            for g in sums:
                buffer[offset : offset + g.size] = g.ravel()
                offset += g.size
            buffer[-2:] = c, e
            started = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
            self.communication_seconds += time.perf_counter() - started
            offset = 0
            totals = []
            for g in sums:
                totals.append(buffer[offset : offset + g.size].reshape(g.shape))
                offset += g.size
            apply_sums(handle, totals, params)
            correct += int(buffer[-2])
            sq_error += int(buffer[-1])
        return handle, correct, sq_error
