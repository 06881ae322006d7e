"""Search Graia's defaults over the suite of benchmarks/defaults.py, on its validation splits.

Every configuration (a JSON list: each a dict of ``run_graia``'s overrides, ``rule``,
``options``, ``epochs``, ``batch_size``, ``hidden``, plus ``adapt``: constants of
graia/adapt.py to set, and ``name``) is trained on every dataset of ``--data`` (the ``.npz``
files ``defaults.py --export`` writes), one process per run, and each result is appended to
``--out`` as one JSON line as soon as it is known (a run cut short keeps what finished).
``--summary`` prints each configuration's mean, worst gap to a reference and collapses from such a
file. Usage::

    python benchmarks/defaults_search.py --data DIR --grid grid.json --out runs.jsonl --jobs 16
    python benchmarks/defaults_search.py --summary runs.jsonl [--reference ref.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import defaults


def _one(config: dict, split: defaults.Split) -> dict:
    import graia.adapt

    # A worker runs many configurations: set the constants for this one, then restore them.
    saved = {key: getattr(graia.adapt, key) for key in config.get("adapt", {})}
    for key, value in config.get("adapt", {}).items():
        setattr(graia.adapt, key, value)
    try:
        result = defaults.run_graia(split, defaults.EPOCHS, config=config)
    finally:
        for key, value in saved.items():
            setattr(graia.adapt, key, value)
    return {"name": config["name"], "dataset": split.name, **result}


def search(data: Path, grid: list[dict], out: Path, jobs: int) -> None:
    splits = defaults.load_exported(data)
    # The largest datasets first, so the pool ends evenly.
    splits.sort(key=lambda s: -s.x_train.size * 8 - len(s.y_train))
    with ProcessPoolExecutor(jobs) as pool, out.open("a") as f:
        futures = [
            pool.submit(_one, c, s)
            for s in splits
            for c in grid
            if s.name in c.get("only", [s.name])
        ]
        for future in as_completed(futures):
            f.write(json.dumps(future.result(), default=float) + "\n")
            f.flush()


def summary(path: Path, reference: Path | None) -> None:
    """Per configuration: datasets done, mean validation accuracy, worst gap to the reference's
    ``logreg`` and the mean gap to its ``mlp`` (a ``defaults.py --json`` file), collapses."""
    rows: dict[str, dict[str, dict]] = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        rows.setdefault(r["name"], {})[r["dataset"]] = r
    ref = json.loads(reference.read_text()) if reference else {}
    full = max(len(v) for v in rows.values())
    out = []
    for name, by in rows.items():
        if len(by) < full:
            continue
        mean = np.mean([r["val"] for r in by.values()])
        worst = (
            min((r["val"] - ref[d]["logreg"]["val"], d) for d, r in by.items() if d in ref)
            if ref
            else (0.0, "")
        )
        mlp = np.mean([ref[d]["mlp"]["val"] for d in by if d in ref]) if ref else 0.0
        collapses = sum(r["collapse_warning"] for r in by.values())
        out.append((mean, name, worst, mlp, collapses))
    for mean, name, worst, mlp, collapses in sorted(out, reverse=True):
        print(
            f"{100 * mean:6.2f} (mlp {100 * (mean - mlp):+6.2f}) worst vs logreg "
            f"{100 * worst[0]:+6.1f} {worst[1]:<16} collapses {collapses}  {name}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--grid", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--summary", type=Path)
    parser.add_argument("--reference", type=Path)
    args = parser.parse_args()
    if args.summary:
        summary(args.summary, args.reference)
    else:
        search(args.data, json.loads(args.grid.read_text()), args.out, args.jobs)


if __name__ == "__main__":
    main()
