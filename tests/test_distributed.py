"""Distributed training (docs/distributed.md, docs/arithmetic.md §7.6, §7.7): the two phases of a
data-parallel batch and the unit shards against the fused epoch on every backend, ``mpirun -n 2``
and ``-n 3`` in both modes on the numba and multicore backends against one process on the oracle
bit for bit (digests and saved files), and a dead rank ending the job. MPI runs skip locally
without mpirun/mpi4py and fail in CI. The other runs' backend is GRAIA_BACKEND's (default numba)."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import distributed_worker as worker
import numpy as np
import pytest
from conftest import IN_CI

import graia
from graia import layers as L
from graia.backends import numba as nb
from graia.errors import GraiaValueError

pytestmark = pytest.mark.filterwarnings("ignore:training has collapsed")

WORKER = Path(__file__).parent / "distributed_worker.py"


def _mpirun() -> str:
    """mpirun's path; skipped locally, a failure in CI, when MPI or mpi4py is missing."""
    path = shutil.which("mpirun")
    missing = [
        what
        for what, ok in (("mpirun", path), ("mpi4py", importlib.util.find_spec("mpi4py")))
        if not ok
    ]
    if missing:
        message = f"{' and '.join(missing)} not found (scripts/setup installs them)"
        if IN_CI:
            pytest.fail(message + " (CI requires MPI)")
        pytest.skip(message)
    return path


#: The backend of the runs that do not name one.
BACKEND = os.environ.get("GRAIA_BACKEND", "numba")


def _env(backend: str = BACKEND) -> dict[str, str]:
    """Ranks import this process's graia, on ``backend``, one thread each (the ranks share the
    cores); Open MPI may run as root (containers, CI)."""
    env = dict(os.environ, NUMBA_NUM_THREADS="1", GRAIA_NUM_THREADS="1", GRAIA_BACKEND=backend)
    root = str(Path(graia.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return env


def _launch(
    ranks: int, out: Path, *extra: str, timeout: float, backend: str = BACKEND
) -> subprocess.CompletedProcess:
    command = [_mpirun(), "-n", str(ranks), "--oversubscribe", sys.executable, str(WORKER)]
    return subprocess.run(
        [*command, str(out), *extra],
        env=_env(backend),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _options(rule: str) -> dict:
    """Dropout, and with ``local_heads`` a head shift per hidden layer and learned heads (§7.4)."""
    heads = {"head_shift": (2, 6), "head_step": 16384}
    return {"dropout": 70} | (heads if rule == "local_heads" else {})


@pytest.mark.parametrize("kind", ["dense", "conv"])
@pytest.mark.parametrize("rule", ["dfa", "local_heads"])
@pytest.mark.parametrize("batch_size,ranks", [(32, 3), (2, 3), (7, 2)])
def test_phases_equal_the_fused_epoch(backend_name, kind, rule, batch_size, ranks):
    """A backend's batch_sums over a split of every batch into row ranges (some empty when the
    batch has fewer rows than there are ranks), summed, then apply_sums: the bits of its fused
    epoch, and of the oracle's."""
    x, y = worker.data()
    x, y = x[:40], y[:40].astype(np.int32)
    model = worker.build(kind, rule, _options(rule))
    params = model.rule.params()
    backend = graia.backend.get(backend_name)
    dataset = backend.upload(x, y)
    order = np.random.default_rng(3).permutation(len(x)).astype(np.int32)
    fused = backend.load(model.get_state())
    fused, correct, sq = backend.train_epoch(
        fused, dataset, order, batch_size, model.rule.rule_id, params
    )
    split = backend.load(model.get_state())
    totals = np.zeros(2, np.int64)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        rows = len(idx)
        sums = None
        for r in range(ranks):
            lo, hi = rows * r // ranks, rows * (r + 1) // ranks
            g, c, e = backend.batch_sums(split, dataset, idx[lo:hi], lo, model.rule.rule_id, params)
            assert all(gi.dtype == np.int64 for gi in g)
            sums = g if sums is None else [a + b for a, b in zip(sums, g)]
            totals += (c, e)
        split = backend.apply_sums(split, sums, model.rule.rule_id, params)
    assert (correct, sq) == tuple(totals)
    fused, split = backend.dump(fused), backend.dump(split)
    oracle = nb.NumbaBackend()
    reference = oracle.load(model.get_state())
    oracle.train_epoch(reference, (x, y), order, batch_size, model.rule.rule_id, params)
    for key in fused:
        np.testing.assert_array_equal(fused[key], split[key], err_msg=key)
        np.testing.assert_array_equal(reference[key], split[key], err_msg=key)


def units_epoch(backend, state, x, y, order, batch_size, rule_id, params, ranks):
    """One epoch of unit-parallel training (docs/arithmetic.md §7.7) with ``ranks`` shards in
    this process: the MPI all-gathers and all-reduce of graia/distributed.py done by hand.
    Returns (host state, correct, sq_error). Shared with the Futhark backends' tests."""
    from graia.backends.interface import shard_state, unshard_state

    handles = [backend.units_load(shard_state(state, r, ranks)) for r in range(ranks)]
    hidden = len(state["sizes"]) - 2
    correct = sq = 0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        inputs = x[idx]
        for layer in range(hidden):
            acts = [backend.units_forward(h, layer, inputs, params) for h in handles]
            inputs = np.ascontiguousarray(np.concatenate(acts, axis=1))
        sums = sum(backend.units_partials(h, rule_id, params) for h in handles)
        labels = np.ascontiguousarray(y[idx], np.int32)
        results = {backend.units_step(h, sums, labels, rule_id, params) for h in handles}
        assert len(results) == 1  # every rank computes the same metrics
        c, e = results.pop()
        correct, sq = correct + c, sq + e
    return unshard_state(state, [backend.units_dump(h) for h in handles]), correct, sq


@pytest.mark.parametrize(
    "use_bias", [True, False, (False, True, False)], ids=["bias", "no-bias", "hidden-2-bias"]
)
@pytest.mark.parametrize("rule", ["dfa", "local_heads"])
@pytest.mark.parametrize("batch_size,ranks", [(32, 3), (7, 2), (16, 50)])
def test_unit_shards_equal_the_fused_epoch(backend_name, rule, batch_size, ranks, use_bias):
    """Every batch run as shards of units (some empty when there are more ranks than units) on
    a backend, the shards' activations concatenated and partial sums added: the bits of the
    oracle's fused epoch; with and without biases, and with a bias in the second hidden layer
    only (whose input is gathered; the output layer's rows are then split without one)."""
    x, y = worker.data()
    x, y = x[:40], y[:40].astype(np.int32)
    model = worker.build("dense", rule, _options(rule), use_bias)
    params = model.rule.params()
    oracle = nb.NumbaBackend()
    order = np.random.default_rng(3).permutation(len(x)).astype(np.int32)
    fused = oracle.load(model.get_state())
    _, correct, sq = oracle.train_epoch(
        fused, (x, y), order, batch_size, model.rule.rule_id, params
    )
    backend = graia.backend.get(backend_name)
    state, c, e = units_epoch(
        backend, model.get_state(), x, y, order, batch_size, model.rule.rule_id, params, ranks
    )
    assert (correct, sq) == (c, e)
    for key in fused:
        np.testing.assert_array_equal(fused[key], state[key], err_msg=key)


@functools.cache
def _one_process(mode: str) -> tuple[dict[str, str], dict[str, dict[str, bytes]]]:
    """The worker's cases of ``mode`` trained by one process on the oracle: their digests and
    their saved files' members."""
    with tempfile.TemporaryDirectory() as tmp, graia.backend.use("numba"):
        digests = worker.run(mode, None, save=tmp)
        return digests, {name: _members(Path(tmp) / f"{name}.graia") for name in digests}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numba", "multicore"])
@pytest.mark.parametrize("mode", ["data", "units"])
@pytest.mark.parametrize("ranks", [2, 3])
def test_mpirun_equals_one_process(tmp_path, require_backend, ranks, mode, backend):
    """Digests of the learned state and predictions, and the saved files, of ``mpirun -n
    ranks`` in ``mode`` on ``backend`` (rank 0 saving) equal one process's on the oracle."""
    mpirun = _mpirun()  # skip before the reference run when MPI is missing
    assert mpirun
    require_backend(backend)
    expected, files = _one_process(mode)
    (tmp_path / "mpi").mkdir()
    out = tmp_path / "digests.json"
    proc = _launch(
        ranks, out, "--mode", mode, "--save", str(tmp_path / "mpi"), timeout=300, backend=backend
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = json.loads(out.read_text())
    assert (got["ranks"], got["backend"]) == (ranks, backend)
    assert got["digests"] == expected
    for name in expected:
        assert _members(tmp_path / "mpi" / f"{name}.graia") == files[name], name


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["data", "units"])
def test_dead_rank_ends_the_job(tmp_path, mode):
    _mpirun()
    started = time.monotonic()
    proc = _launch(2, tmp_path / "never.json", "--mode", mode, "--kill", timeout=60)
    assert proc.returncode != 0
    assert time.monotonic() - started < 60
    assert not (tmp_path / "never.json").exists()


def test_distribute_is_checked_before_training():
    model = graia.Sequential([L.Input(4), L.Dense(3)], seed=1)
    x, y = np.zeros((4, 4), np.uint8), np.zeros(4, np.int64)
    model.compile("dfa")
    with pytest.raises(GraiaValueError, match="None, 'data' or 'units'"):
        model.fit(x, y, distribute="rows", verbose=0)
    if importlib.util.find_spec("mpi4py") is not None:
        with pytest.raises(GraiaValueError, match="has none"):
            model.fit(x, y, distribute="units", verbose=0)
        conv = worker.build("conv", "dfa", {})
        xi = np.zeros((4, 64), np.uint8)
        with pytest.raises(GraiaValueError, match="Dense layers only; layer 'conv2d.*Conv2D"):
            conv.fit(xi, y, distribute="units", verbose=0)
    model.compile("seed_hebbian")
    for mode in ("data", "units"):
        with pytest.raises(GraiaValueError, match="seed_hebbian"):
            model.fit(x, y, distribute=mode, verbose=0)


def _members(path: Path) -> dict[str, bytes]:
    """A model file's members but its metadata (which holds the time of saving)."""
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist() if n != "metadata.json"}


@pytest.mark.slow
def test_cli_train_distributed_saves_the_single_process_model(tmp_path):
    """``mpirun -n 2 graia train --distribute data`` and ``units``: one report, from rank 0, and
    the model file of ``graia train`` on one process (but its time of saving)."""
    mpirun = _mpirun()
    common = ["-m", "graia", "train", "--dataset", "digits", "--epochs", "1"]
    env = _env()
    single = subprocess.run(
        [sys.executable, *common, "--output", str(tmp_path / "one")],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr
    expected = _members(tmp_path / "one" / "model.graia")
    command = [mpirun, "-n", "2", "--oversubscribe", sys.executable, *common]
    for mode in ("data", "units"):
        proc = subprocess.run(
            [*command, "--distribute", mode, "--output", str(tmp_path / mode)],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.count("test accuracy") == 1
        assert _members(tmp_path / mode / "model.graia") == expected, mode


def _train_command(tmp_path: Path) -> list[str]:
    return [sys.executable, "-m", "graia", "train", "--dataset", "digits", "--output",
            str(tmp_path / "out")]  # fmt: skip


#: Launches whose ranks disagree on what shapes the communication (issue 33): each a pair of
#: arguments, rank 0's and rank 1's.
DISAGREEMENTS = {
    "units batch size": (["units", "--batch-size", "32"], ["units", "--batch-size", "64"]),
    "modes": (["data"], ["units"]),
    "data batch size": (["data", "--batch-size", "32"], ["data", "--batch-size", "48"]),
    "data epochs": (["data", "--epochs", "1"], ["data", "--epochs", "2"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(DISAGREEMENTS))
def test_ranks_that_disagree_end_with_one_error_line(tmp_path, case):
    """Formerly heap corruption (units, batch sizes) or a hang (modes; data, batch sizes or
    epochs): now every rank ends after the agreement check, rank 0 saying why on one line, and
    nothing is left in --output."""
    mpirun = _mpirun()
    first, second = DISAGREEMENTS[case]
    command = _train_command(tmp_path)
    epochs = ["--epochs", "1"]
    proc = subprocess.run(
        [mpirun, "--oversubscribe", "-n", "1", *command, *epochs, "--distribute", *first,
         ":", "-n", "1", *command, *epochs, "--distribute", *second],
        env=_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert output.count("graia: error:") == 1 and "rank 1 runs with" in output, output
    assert "Traceback" not in output and "malloc" not in output
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize("without", [0, 1])
def test_a_rank_started_without_distribute_ends_every_rank(tmp_path, without):
    """Formerly a hang: the rank started without --distribute trained alone while the others
    waited for it in their first collective. Now every rank ends at once, rank 0 saying why on
    one line, and nothing is left in --output."""
    mpirun = _mpirun()
    command = [*_train_command(tmp_path), "--epochs", "1"]
    ranks = [command if r == without else [*command, "--distribute", "data"] for r in (0, 1)]
    proc = subprocess.run(
        [mpirun, "--oversubscribe", "-n", "1", *ranks[0], ":", "-n", "1", *ranks[1]],
        env=_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert output.count("graia: error:") == 1, output
    assert "without --distribute" in output and "with --distribute data" in output, output
    assert "Traceback" not in output and "Epoch 1/1" not in output, output
    assert not (tmp_path / "out").exists()


def _rank_pid(launcher: int, rank: int) -> int:
    """The pid of ``rank``, a child of Open MPI's ``mpirun`` (pid ``launcher``)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent == launcher and f"OMPI_COMM_WORLD_RANK={rank}".encode() in environ:
            return int(entry.name)
    raise AssertionError(f"rank {rank} of mpirun {launcher} not found")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGKILL rank 1", "SIGINT mpirun", "SIGINT rank 0"])
def test_aborted_distributed_runs_leave_no_output_directory(tmp_path, how):
    """A distributed run ended while it trains (a rank killed, Ctrl-C) leaves no --output
    directory and no traceback."""
    mpirun = _mpirun()
    proc = subprocess.Popen(
        [mpirun, "--oversubscribe", "-n", "2", *_train_command(tmp_path), "--epochs", "100000",
         "--distribute", "data"],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # rank 0's first epoch line: training is under way
        assert first.startswith("Epoch 1/100000"), first
        target, sig = {
            "SIGKILL rank 1": (_rank_pid(proc.pid, 1), signal.SIGKILL),
            "SIGINT mpirun": (proc.pid, signal.SIGINT),
            "SIGINT rank 0": (_rank_pid(proc.pid, 0), signal.SIGINT),
        }[how]
        os.kill(target, sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert "Traceback" not in out + err, err
    assert not (tmp_path / "out").exists()
