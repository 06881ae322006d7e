"""Data-parallel training over MPI (docs/distributed.md; the arithmetic is docs/arithmetic.md §7.6).

Every rank of ``MPI.COMM_WORLD`` holds the whole model and the whole training set and walks the
same sample order. Each global batch is cut into contiguous row ranges, one per rank; a rank
computes its rows' exact per-synapse sums ``G`` (its backend's ``batch_sums``), one
``Allreduce(SUM)`` of int64 adds them up with the batch's metrics, and every rank applies the same
update (the backend's ``apply_sums``). Integer sums do not depend on how they are split, so every
rank ends every batch with the state one process would have, bit for bit, on every backend.
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

from graia.backends.interface import HostState
from graia.errors import GraiaError, GraiaValueError

#: Values of ``fit(distribute=...)`` and ``graia train --distribute``.
MODES = ("data",)
#: The rules the data-parallel path runs (docs/distributed.md: what is not done).
RULES = ("dfa", "local_heads")

_world: Any = None
_shared_rank: int | None = None
#: Where MPI launchers put a process's rank among the ranks of its host (Open MPI, MPICH and
#: Intel MPI, Slurm).
LOCAL_RANK_VARIABLES = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID")


def validate(distribute: str | None, rule_name: str | None, backend_name: str) -> None:
    """Check a ``distribute`` request before anything is computed.

    Raises:
        GraiaValueError: an unknown mode, a rule the mode does not run, or mpi4py (or its MPI
            library) missing. Every backend runs ``"data"`` (``backend_name`` is named in the
            errors only).
    """
    if distribute is None:
        return
    if distribute not in MODES:
        raise GraiaValueError(f"distribute must be None or 'data', got {distribute!r}")
    if rule_name is not None and rule_name not in RULES:
        raise GraiaValueError(
            f"distribute='data' runs the rules {', '.join(RULES)}, not {rule_name!r}"
        )
    try:
        world()
    except ImportError as exc:
        raise GraiaValueError(
            f"distribute='data' on the {backend_name} backend needs mpi4py and an MPI library "
            f"(pip install 'graia[mpi]'; Debian: openmpi-bin libopenmpi-dev): {exc}"
        ) from exc


def world() -> Any:
    """``MPI.COMM_WORLD``, its errors fatal: a failing call or a dead rank ends the whole job
    rather than leaving the other ranks waiting. The first call is collective (every rank makes
    it, as ``fit`` does): without a launcher's local rank it splits the ranks by host."""
    global _world, _shared_rank
    if _world is None:
        from mpi4py import MPI

        MPI.COMM_WORLD.Set_errhandler(MPI.ERRORS_ARE_FATAL)
        if _launcher_local_rank() is None and MPI.COMM_WORLD.Get_size() > 1:
            _shared_rank = MPI.COMM_WORLD.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()
        _world = MPI.COMM_WORLD
    return _world


def _launcher_local_rank() -> int | None:
    for name in LOCAL_RANK_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return None


def local_rank() -> int | None:
    """This process's rank among the MPI ranks on its host (for one device per rank), or None
    outside MPI: from the launcher's environment (:data:`LOCAL_RANK_VARIABLES`), else from
    mpi4py once :func:`world` has run. Never starts MPI."""
    launcher = _launcher_local_rank()
    return launcher if launcher is not None else _shared_rank


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
    """A backend whose ``train_epoch`` shares each global batch among the ranks of
    ``MPI.COMM_WORLD`` (through the backend's ``batch_sums`` and ``apply_sums``); everything else
    is the wrapped backend's. ``communication_seconds`` and
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
            handle = self.backend.apply_sums(handle, totals, rule_id, params)
            correct += int(buffer[-2])
            sq_error += int(buffer[-1])
        return handle, correct, sq_error
