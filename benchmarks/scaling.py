"""Scaling benchmark of distributed training (docs/distributed.md): samples/s on 1, 2, ... MPI
ranks in data-parallel and unit-parallel mode (``--backend``: numba, multicore or opencl, one GPU
per rank), against one process without MPI.

Workloads: the digits Dense recipe (64-512-512-10, dfa with dropout, batch 32; one epoch of the
digits training split) and wide layers, 784-4000-10 and 784-64000-10 (dfa with dropout, batch 64)
on ``--wide-samples`` random samples. Each (mode, rank count) is one ``mpirun`` of this script
(``--worker``); every run first trains a small warm-up subset (the JIT's cache load), then times
``--repeat`` epochs and keeps the fastest. Each rank (and the baseline) runs ``--threads`` Numba
or Futhark multicore threads (default 1: on a shared machine, more threads than free cores make the
parallel loops wait on each other). Reported: samples/s, the speed-up over one process without MPI, the scaling
efficiency (samples/s over ranks times the 1-rank samples/s of the same mode), the bytes of one
batch's collectives and the seconds spent in them per epoch (including waiting for the slowest
rank). Usage::

    python benchmarks/scaling.py                     # both modes, ranks 1 2, every workload
    python benchmarks/scaling.py --mode units --workloads wide-64000 --ranks 1 2 4 8 --json s.json
    python benchmarks/scaling.py --backend opencl --ranks 1 2       # a host with 2 GPUs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

import numpy as np

import graia
from graia import layers as L


def workload(name: str, wide_samples: int):
    """(model, x, y, batch_size) of a workload, the same on every rank."""
    if name == "digits-dense":
        from graia.datasets import digits
        from graia.recipes import recipe_for

        (x, y), _ = digits.load_data()
        recipe = recipe_for("digits", "dfa", "dense")
        model = recipe.build(x.shape[1:], 10, 0, "dfa")
        return model, x.reshape(len(x), -1), y, recipe.batch_size
    width = int(name.split("-")[1])
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (wide_samples, 784)).astype(np.uint8)
    y = rng.integers(0, 10, wide_samples)
    # The output layer's fan-in bounds its kmax (docs/arithmetic.md §3: n_in * 255 * 2^kmax).
    kmax = min(8, ((2**31 - 1) // (255 * width)).bit_length() - 1)
    hidden = L.Dense(width, shift=9)
    model = graia.Sequential([L.Input(784), hidden, L.Dense(10, kmax=kmax)], seed=0)
    model.compile("dfa", step=128, dropout=77)
    return model, x, y, 64


WORKLOADS = ("digits-dense", "wide-4000", "wide-64000")
MODES = ("data", "units")


def worker(
    distribute: str | None, workloads: list[str], wide_samples: int, repeat: int
) -> list[dict]:
    """Time one epoch of every workload in this process (a rank, or the baseline)."""
    import warnings

    from graia import distributed

    results = []
    for name in workloads:
        model, x, y, batch = workload(name, wide_samples)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warm = 4 * batch
            model.fit(x[:warm], y[:warm], epochs=1, batch_size=batch, verbose=0,
                      distribute=distribute)  # fmt: skip
            best = None
            for _ in range(repeat):  # the fastest epoch: this machine may be shared
                start = time.perf_counter()
                history = model.fit(
                    x, y, epochs=1, batch_size=batch, verbose=0, distribute=distribute
                )
                seconds = time.perf_counter() - start
                if best is None or seconds < best[0]:
                    best = seconds, history.history.get("communication_seconds", [0.0])[0]
            seconds, communication = best
        state = model.get_state()
        local_heads = model.rule.name == "local_heads"
        sent = (
            distributed.bytes_per_batch(distribute, state, batch, local_heads) if distribute else 0
        )
        results.append(
            {
                "workload": name,
                "samples": len(x),
                "batch_size": batch,
                "seconds": seconds,
                "samples_per_s": len(x) / seconds,
                "communication_seconds": communication,
                "bytes_per_batch": sent,
            }
        )
    return results


def launch(
    mode: str | None, ranks: int, workloads: list[str], args: argparse.Namespace
) -> list[dict]:
    """One run: ``ranks`` MPI ranks in ``mode``, or (``None``) one process without MPI."""
    cores = os.cpu_count() or 1
    env = dict(os.environ, GRAIA_BACKEND=args.backend, NUMBA_NUM_THREADS=str(args.threads))
    env["GRAIA_NUM_THREADS"] = str(args.threads)
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    command = [sys.executable, __file__, "--worker", "--wide-samples", str(args.wide_samples)]
    command += ["--repeat", str(args.repeat), "--workloads", *workloads]
    if mode is not None:
        mpirun = shutil.which("mpirun")
        if mpirun is None:
            sys.exit("scaling: mpirun not found (scripts/setup installs Open MPI)")
        oversubscribe = ["--oversubscribe"] if ranks * args.threads > cores else []
        # Open MPI binds each rank to one core by default: its Numba threads would share it.
        unbound = ["--bind-to", "none"]
        extra = args.mpirun_options.split()
        command = [mpirun, "-n", str(ranks), *oversubscribe, *unbound, *extra, *command]
        command += ["--distribute", mode]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"scaling: {' '.join(command)} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--mode", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--wide-samples", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3, help="timed epochs (the best counts)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per rank")
    parser.add_argument("--backend", choices=graia.backend.NAMES, default="numba")
    parser.add_argument(
        "--mpirun-options", default="", help="more mpirun options, e.g. '--mca pml ob1'"
    )
    parser.add_argument("--json", help="write every number to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--distribute", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        results = worker(args.distribute, args.workloads, args.wide_samples, args.repeat)
        if args.distribute:
            from graia import distributed

            if distributed.rank() != 0:
                return
        print(json.dumps(results))
        return
    runs = {("no MPI", 1): launch(None, 1, args.workloads, args)}
    for mode in args.mode:
        # Unit parallel splits Dense hidden layers only: every workload here is Dense.
        for ranks in args.ranks:
            runs[(mode, ranks)] = launch(mode, ranks, args.workloads, args)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"{args.backend} backend, {args.threads} CPU thread(s) per rank"
    )
    print(
        "| workload | mode | ranks | samples/s | speed-up | efficiency | comm s | bytes per batch |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for i, name in enumerate(args.workloads):
        base = runs[("no MPI", 1)][i]["samples_per_s"]
        for (mode, ranks), results in runs.items():
            r = results[i]
            one = runs.get((mode, 1))
            efficiency = (
                f"{r['samples_per_s'] / (ranks * one[i]['samples_per_s']):.2f}" if one else "—"
            )
            print(
                f"| {name} | {mode} | {ranks} | {r['samples_per_s']:.0f} | "
                f"{r['samples_per_s'] / base:.2f} | {efficiency} | "
                f"{r['communication_seconds']:.2f} | {r['bytes_per_batch']:,} |"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({f"{mode} {ranks}": r for (mode, ranks), r in runs.items()}, f, indent=1)


if __name__ == "__main__":
    main()
