"""Accuracy benchmark: every Graia rule, the original Graia rule and a backprop MLP, same splits.

Trains each method on the official training split with the library's recipe (chosen on a
validation split carved from training data, never on the test split), records the test accuracy
after every epoch, and writes ``docs/results.md``, ``docs/results.json``, one learning-curve PNG
per dataset and the README's results table. Text written by hand after a dataset's figure in
``results.md`` (runs this script does not make) is kept. Usage::

    python benchmarks/accuracy.py [--datasets digits fashion-mnist] [--backend NAME] [--out docs]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

import graia
from graia.callbacks import Callback
from graia.files import atomic_write
from graia.recipes import CONV_RECIPES, DENSE_RECIPES

#: The original rule on the same architecture, with its own code initialisation and kmax 7; it
#: learns one sample at a time, so fewer epochs.
#: Adam converges well before the local rules' epochs; more only overfits and costs CPU time.
BACKPROP_EPOCHS = 20
SEED_RULE_EPOCHS = {"digits": 5, "fashion-mnist": 1, "mnist": 1}


class _TestAccuracy(Callback):
    """Records test accuracy after every epoch (for the curves only; nothing is selected on it)."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y, self.curve = x, y, []

    def on_epoch_end(self, epoch, logs=None):
        self.curve.append(self.model.evaluate(self.x, self.y)[1])


def run_graia(dataset, rule, data, recipe, seed=0):
    (x, y), (xt, yt) = data
    classes = int(y.max()) + 1
    if rule != "seed_hebbian":
        # The recipe's architecture, options and schedule, with this rule (the options it does
        # not have dropped, its extra ones at their defaults).
        model = recipe.build(x.shape[1:], classes, seed)
        known = graia.rules.REGISTRY[rule].options
        options = {k: v for k, v in recipe.rule_options.items() if k in known}
        model.compile(rule, step_decay=False, **options)
        epochs, batch_size, callbacks = (
            recipe.epochs,
            recipe.batch_size,
            recipe.callbacks(recipe.epochs, rule),
        )
    else:
        init = "codes"
        model = graia.Sequential(
            [graia.layers.Input(x.shape[1:])]
            + [graia.layers.Dense(u, kmax=7, initializer=init) for u in recipe.hidden]
            + [graia.layers.Dense(classes, kmax=7, initializer=init)],
            seed=seed,
        )
        model.compile(rule)
        epochs, batch_size, callbacks = SEED_RULE_EPOCHS[dataset], 1, []
    probe = _TestAccuracy(xt, yt)
    start = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=batch_size, callbacks=callbacks + [probe], verbose=0)
    seconds = time.perf_counter() - start
    flips = {}
    if recipe.flip and rule != "seed_hebbian":  # scored on mirror images too (arithmetic.md §4.2)
        flips["test_accuracy_average_flips"] = model.evaluate(xt, yt, average_flips=True)[1]
    return {
        "method": f"graia {rule}" + (" (conv)" if recipe.conv else ""),
        "rule_options": model.rule.values,
        "architecture": recipe.describe(),
        "hidden": list(recipe.hidden),
        "epochs": epochs,
        "batch_size": batch_size,
        "test_accuracy": probe.curve[-1],
        "train_accuracy": model.evaluate(x, y)[1],
        "seconds": round(seconds, 2),
        "curve": probe.curve,
        "backend": graia.backend.name(),
        **flips,
    }


def run_backprop(dataset, data, seed=0):
    """scikit-learn's MLPClassifier (float32/64, Adam, backprop), same hidden sizes and epochs."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    (x, y), (xt, yt) = data
    recipe = DENSE_RECIPES[dataset]
    xf, xtf = x.reshape(len(x), -1) / 255.0, xt.reshape(len(xt), -1) / 255.0
    epochs = min(recipe.epochs, BACKPROP_EPOCHS)
    mlp = MLPClassifier(
        hidden_layer_sizes=recipe.hidden, batch_size=recipe.batch_size, random_state=seed
    )
    curve, start = [], time.perf_counter()
    for _ in range(epochs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mlp.partial_fit(xf, y, classes=np.arange(int(y.max()) + 1))
        curve.append(float(mlp.score(xtf, yt)))
    return {
        "method": "backprop MLP (scikit-learn, float)",
        "hidden": list(recipe.hidden),
        "epochs": epochs,
        "batch_size": recipe.batch_size,
        "test_accuracy": curve[-1],
        "train_accuracy": float(mlp.score(xf, y)),
        "seconds": round(time.perf_counter() - start, 2),
        "curve": curve,
        "backend": "numpy/BLAS",
    }


def plot_curves(dataset, results, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for r in results:
        ax.plot(range(1, len(r["curve"]) + 1), r["curve"], marker="o", ms=3, label=r["method"])
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{dataset}: Graia vs the original rule vs backprop")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.savefig(path, dpi=100)


def machine(backend: str = "") -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    host = f"{cpu}, {os.cpu_count()} cores"
    if backend == "opencl":
        from graia.backends import futhark

        device = futhark.device_info("opencl").get("device", "unknown OpenCL device")
        return f"{device} (OpenCL); host {host}"
    return host


def dataset_notes(markdown: str) -> dict[str, str]:
    """The hand-written notes of each dataset's section of a ``results.md``: the text after its
    learning-curve figure, up to the next ``## `` heading (other measurements, such as the
    convolutional recipes' ``recipe_search.py --split test`` runs, which this script does not
    make), and the sections of other scripts after the datasets' (kept after the last)."""
    notes: dict[str, str] = {}
    last = None
    for section in markdown.split("\n## ")[1:]:
        dataset, _, body = section.partition("\n")
        _, figure, after = body.partition(f"![{dataset}](learning_curves_{dataset}.png)\n")
        if figure:
            last = dataset
            if after.strip():
                notes[dataset] = after.strip()
        elif last is not None:
            # A section of another script's (benchmarks/defaults.py) stays after the datasets.
            notes[last] = (notes.get(last, "") + "\n\n## " + section.strip()).lstrip("\n")
    return notes


def render_results(report: dict, notes: dict[str, str]) -> str:
    """``results.md`` from a report (``results.json``'s content): per dataset, the table of
    methods, the learning curves and the dataset's hand-written ``notes``, kept as they are."""
    lines = [
        "# Accuracy results",
        "",
        (
            "Produced by `benchmarks/accuracy.py`; test accuracy on the "
            "official test split after the last epoch (nothing selected on the test split)."
        ),
        "",
    ]
    for dataset, entry in report.items():
        lines += [
            f"## {dataset}",
            "",
            f"Measured {entry['date']}.",
            "",
            "| method | architecture | epochs | test accuracy | train accuracy | seconds | backend | machine |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in entry["results"]:
            lines.append(
                f"| {r['method']} | {r.get('architecture', r['hidden'])} | {r['epochs']} | {100 * r['test_accuracy']:.2f}% "
                f"| {100 * r['train_accuracy']:.2f}% | {r['seconds']} | {r['backend']} "
                f"| {r['machine']} |"
            )
        lines += ["", f"![{dataset}](learning_curves_{dataset}.png)", ""]
        if dataset in notes:
            lines += [notes[dataset], ""]
    return "\n".join(lines)


#: The README's table: one row per dataset, one column per method (header, ``method`` field).
README_COLUMNS = (
    ("`dfa`", "graia dfa"),
    ("`local_heads` (default rule)", "graia local_heads"),
    ("original Graia rule", "graia seed_hebbian"),
    ("backprop MLP (float)", "backprop MLP (scikit-learn, float)"),
)
README_BEGIN = "<!-- results: written by benchmarks/accuracy.py from docs/results.json -->"
README_END = "<!-- end of results -->"


def render_readme_table(report: dict) -> str:
    """The README's results table from a report: the Dense recipes' test accuracy per dataset and
    method (the epochs where a method trains fewer), with the date and the machine of the rules'
    runs."""
    lines = [
        "| test accuracy | " + " | ".join(h for h, _ in README_COLUMNS) + " | measured |",
        "|---" * (len(README_COLUMNS) + 2) + "|",
    ]
    for dataset, entry in report.items():
        rows = {r["method"]: r for r in entry["results"]}
        first = rows[README_COLUMNS[0][1]]
        hidden = "-".join(str(u) for u in first["hidden"])
        cells = [f"{dataset}, hidden {hidden}, {first['epochs']} epochs"]
        for _, method in README_COLUMNS:
            r = rows.get(method)
            if r is None:
                cells.append("")
                continue
            cell = f"{100 * r['test_accuracy']:.2f}%"
            if r["epochs"] != first["epochs"]:
                cell += f" ({r['epochs']} epoch{'s' if r['epochs'] > 1 else ''})"
            cells.append(cell)
        cells.append(f"{entry['date']}, {first['backend']}, {first['machine'].split(';')[0]}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def with_readme_table(readme: str, report: dict) -> str:
    """``readme`` with the text between its results markers replaced by the rendered table."""
    head, begin, rest = readme.partition(README_BEGIN + "\n")
    _, end, tail = rest.partition(README_END)
    if not (begin and end):
        raise ValueError(f"README has no {README_BEGIN!r} ... {README_END!r} block")
    return head + begin + render_readme_table(report) + "\n" + end + tail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*", default=["digits", "fashion-mnist"])
    parser.add_argument("--backend", help="graia backend (default: GRAIA_BACKEND or the best)")
    parser.add_argument("--rules", nargs="*", default=sorted(graia.rules.REGISTRY))
    parser.add_argument("--out", default="docs")
    parser.add_argument("--no-backprop", action="store_true", help="skip the MLP baseline")
    parser.add_argument("--conv-only", action="store_true", help="only the convolutional recipes")
    parser.add_argument("--dense-only", action="store_true", help="only the Dense recipes")
    parser.add_argument(
        "--merge",
        nargs="*",
        default=[],
        help="results.json files (e.g. from a GPU machine) to merge",
    )
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    report = json.loads(results_path.read_text()) if results_path.exists() else {}
    for other in args.merge:
        for dataset, entry in json.loads(Path(other).read_text()).items():
            merged = {r["method"]: r for r in report.get(dataset, {}).get("results", [])}
            merged.update({r["method"]: r for r in entry["results"]})
            report[dataset] = {"date": entry["date"], "results": list(merged.values())}
            plot_curves(dataset, report[dataset]["results"], out / f"learning_curves_{dataset}.png")
    for dataset in args.datasets:
        data = graia.datasets.load_data(dataset)
        results = []
        with graia.backend.use(args.backend or graia.backend.name()):
            for rule in args.rules:
                # The default (convolutional) recipe and the Dense one side by side.
                for recipe in (CONV_RECIPES[dataset], DENSE_RECIPES[dataset]):
                    if recipe.conv and not graia.rules.REGISTRY[rule].supports_conv:
                        continue
                    if (args.conv_only and not recipe.conv) or (args.dense_only and recipe.conv):
                        continue
                    results.append(run_graia(dataset, rule, data, recipe))
                    print(
                        json.dumps({k: v for k, v in results[-1].items() if k != "curve"}),
                        flush=True,
                    )
        if not args.no_backprop:
            results.append(run_backprop(dataset, data))
            print(json.dumps({k: v for k, v in results[-1].items() if k != "curve"}), flush=True)
        for r in results:
            r["machine"] = machine(r["backend"])
        # Methods not rerun keep their earlier results (e.g. measured on another machine).
        rerun = {r["method"] for r in results}
        kept = [r for r in report.get(dataset, {}).get("results", []) if r["method"] not in rerun]
        results = kept + results
        plot_curves(dataset, results, out / f"learning_curves_{dataset}.png")
        report[dataset] = {"date": time.strftime("%Y-%m-%d"), "results": results}
    with atomic_write(results_path) as f:
        f.write(json.dumps(report, indent=1).encode())
    results_md = out / "results.md"
    previous = results_md.read_text() if results_md.exists() else ""
    with atomic_write(results_md) as f:
        f.write(render_results(report, dataset_notes(previous)).encode())
    readme = Path(__file__).resolve().parent.parent / "README.md"
    if out.resolve() == readme.parent / "docs":
        with atomic_write(readme) as f:
            f.write(with_readme_table(readme.read_text(), report).encode())


if __name__ == "__main__":
    main()
