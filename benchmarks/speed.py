"""Speed benchmark: every backend on the same DFA workload, with ratios measured in the same run.

Prints, for one epoch of a 784-H-10 network over N Fashion-MNIST samples (batch 64):
seconds, samples/s and synapse-terms/s per backend; each backend's speed relative to the Numba
reference; a backprop baseline a user would pick instead (PyTorch on the same device if present,
else scikit-learn's MLP) on the same shapes; and the share of a measured ceiling (a float matrix
product of the same shapes, the work an epoch must at least do). Usage::

    python benchmarks/speed.py [--hidden 1000] [--samples 60000] [--backends opencl multicore numba]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np

import graia


def terms_per_sample(sizes: list[int]) -> int:
    """Synapse-terms per sample: one forward term and one learning term per synapse."""
    return 2 * sum(a * b for a, b in itertools.pairwise(sizes))


def time_backend(name: str, x, y, hidden: int, epochs: int) -> float:
    with graia.backend.use(name):
        model = graia.Sequential(
            [graia.layers.Input(784), graia.layers.Dense(hidden), graia.layers.Dense(10)], seed=0
        )
        model.compile("dfa", step=128)
        model.fit(x[:2048], y[:2048], epochs=1, batch_size=64, verbose=0)  # compile/JIT, upload
        start = time.perf_counter()
        model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
        return (time.perf_counter() - start) / epochs


def time_backprop(x, y, hidden: int) -> tuple[str, float]:
    """One epoch of a float backprop MLP of the same shape: PyTorch (GPU if any) or scikit-learn."""
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        dev = "cuda" if torch.cuda.is_available() else "cpu"
        net = torch.nn.Sequential(
            torch.nn.Linear(784, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10)
        ).to(dev)
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        xt = torch.tensor(x / 255.0, dtype=torch.float32, device=dev)
        yt = torch.tensor(y, dtype=torch.int64, device=dev)

        def epoch():
            for i in range(0, len(xt), 64):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(xt[i : i + 64]), yt[i : i + 64]).backward()
                opt.step()
            if dev == "cuda":
                torch.cuda.synchronize()

        epoch()
        start = time.perf_counter()
        epoch()
        return f"PyTorch backprop MLP ({dev}, float32, Adam)", time.perf_counter() - start
    from sklearn.neural_network import MLPClassifier

    mlp = MLPClassifier(hidden_layer_sizes=(hidden,), batch_size=64)
    mlp.partial_fit(x[:2048] / 255.0, y[:2048], classes=np.arange(10))
    start = time.perf_counter()
    mlp.partial_fit(x / 255.0, y)
    return "scikit-learn backprop MLP (CPU, float64, Adam)", time.perf_counter() - start


def ceiling_seconds(n: int, hidden: int) -> tuple[str, float]:
    """A float32 matrix-product floor for one epoch's forward + learning products (same shapes)."""
    try:
        import torch

        if torch.cuda.is_available():
            a = torch.rand(64, 784, device="cuda")
            w = torch.rand(784, hidden, device="cuda")
            d = torch.rand(64, hidden, device="cuda")
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(n // 64):
                (a @ w).sum()
                a.T @ d
            torch.cuda.synchronize()
            return "torch float32 matmuls (cuda)", time.perf_counter() - start
    except ImportError:
        pass
    a = np.random.rand(64, 784).astype(np.float32)
    w = np.random.rand(784, hidden).astype(np.float32)
    d = np.random.rand(64, hidden).astype(np.float32)
    start = time.perf_counter()
    for _ in range(n // 64):
        a @ w
        a.T @ d
    return "numpy float32 matmuls (BLAS, CPU)", time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=60000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--backends", nargs="+", default=list(graia.backend.NAMES))
    args = parser.parse_args()
    (x, y), _ = graia.datasets.fashion_mnist.load_data()
    x, y = x[: args.samples].reshape(-1, 784), y[: args.samples]
    terms = terms_per_sample([784, args.hidden, 10]) * len(x)
    rows = {}
    for name in args.backends:
        ok, why = graia.backend.available()[name]
        if not ok:
            print(f"{name}: unavailable ({why})")
            continue
        rows[name] = time_backend(name, x, y, args.hidden, args.epochs)
    base_name, base = time_backprop(x, y, args.hidden)
    ceil_name, ceil = ceiling_seconds(len(x), args.hidden)
    print(f"workload: 784-{args.hidden}-10 DFA, {len(x)} samples, batch 64, one epoch")
    print(
        f"{'backend':<12}{'s/epoch':>10}{'samples/s':>12}{'G terms/s':>11}{'vs numba':>10}"
        f"{'vs backprop':>13}{'vs ceiling':>12}"
    )
    for name, sec in rows.items():
        vs_numba = rows["numba"] / sec if "numba" in rows else float("nan")
        print(
            f"{name:<12}{sec:>10.3f}{len(x) / sec:>12.0f}{terms / sec / 1e9:>11.2f}"
            f"{vs_numba:>9.2f}x{base / sec:>12.2f}x{ceil / sec:>11.1%}"
        )
    print(f"baseline: {base_name}: {base:.3f} s/epoch; ceiling: {ceil_name}: {ceil:.3f} s/epoch")
    print(
        json.dumps(
            {
                "hidden": args.hidden,
                "samples": len(x),
                "seconds": rows,
                "baseline": {base_name: base},
                "ceiling": {ceil_name: ceil},
            }
        )
    )


if __name__ == "__main__":
    main()
