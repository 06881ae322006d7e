"""Convolution speed benchmark: the convolutional recipes' training and prediction time on each
backend, against each other and against a float32 backprop CNN of the same shape in PyTorch, in
the same run on the same machine.

For each recipe asked for (``graia.recipes.CONV_RECIPES``) and each extra architecture
(``--archs``, in ``benchmarks/recipe_search.py``'s notation, trained with Fashion-MNIST's rule
and options), on every backend: one warm-up epoch, then one timed epoch and one timed predict of
``--samples`` images (``--cpu-samples`` on CPU backends, scaled to ``--samples``: their cost is
linear in samples). Beside them: the same layers in PyTorch (Conv2d/ReLU, pooling, Linear/ReLU;
Adam, cross-entropy; GPU if there is one, else the CPU's threads, timed on ``--cpu-samples`` too)
trained and run on the same images, and the ratios.

Images are the dataset's own where it is installed, else random images of its shape (CIFAR-10 and
MNIST where Graia is developed): a GPU's time does not depend on the pixels; the CPU backends skip
zero inputs, so theirs does a little. ``--json FILE`` writes every number. Usage::

    python benchmarks/conv_speed.py
    python benchmarks/conv_speed.py --recipes fashion-mnist --backends opencl \\
        --archs c64k3s8-c64k3p2s10-h4000s12
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from recipe_search import build_layers
from speed import machine, torch_device, torch_sync

import graia
from graia import layers as L
from graia.datasets import cifar10
from graia.errors import DatasetError
from graia.files import atomic_write
from graia.recipes import CONV_RECIPES

IMAGE_SHAPES = {
    "fashion-mnist": (28, 28),
    "mnist": (28, 28),
    "digits": (8, 8),
    "cifar10": cifar10.IMAGE_SHAPE,
}


@dataclass
class Case:
    """One network to time: its name, its dataset and a function building it compiled."""

    name: str
    dataset: str
    batch: int
    build: Callable[[tuple[int, ...], int], graia.Sequential]  # (input shape, classes)


def cases(args: argparse.Namespace) -> list[Case]:
    """The recipes and architectures asked for."""
    found = [
        Case(
            f"{name} recipe: {recipe.describe()}",
            name,
            recipe.batch_size,
            lambda shape, classes, recipe=recipe: recipe.build(shape, classes, seed=0),
        )
        for name, recipe in CONV_RECIPES.items()
        if name in args.recipes
    ]
    fashion = CONV_RECIPES["fashion-mnist"]
    for arch in args.archs:

        def build(shape, classes, arch=arch):
            model = graia.Sequential(build_layers(arch, shape, classes), seed=0)
            model.compile(fashion.rule, **fashion.rule_options)
            return model

        found.append(Case(arch, "fashion-mnist", fashion.batch_size, build))
    return found


def images(dataset: str, samples: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``samples`` training images and labels of ``dataset``, and where they came from."""
    try:  # never a download: a benchmark should not wait on the network
        options = {} if dataset == "digits" else {"download": False}
        (x, y), _ = graia.datasets.load_data(dataset, **options)
    except DatasetError:
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (samples, *IMAGE_SHAPES[dataset]), dtype=np.uint8)
        return x, rng.integers(0, 10, samples).astype(np.uint8), "random"
    reps = -(-samples // len(x))  # digits has fewer than --samples images
    return np.concatenate([x] * reps)[:samples], np.concatenate([y] * reps)[:samples], dataset


def time_graia(case: Case, backend: str, x: np.ndarray, y: np.ndarray) -> dict:
    """One timed training epoch and one timed predict on ``backend`` (after a warm-up epoch)."""
    with graia.backend.use(backend):
        model = case.build(x.shape[1:], 10)
        model.fit(x, y, epochs=1, batch_size=case.batch, verbose=0)
        started = time.perf_counter()
        model.fit(x, y, epochs=2, initial_epoch=1, batch_size=case.batch, verbose=0)
        trained = time.perf_counter()
        model.predict(x)
        return {"train_s": trained - started, "predict_s": time.perf_counter() - trained}


def torch_network(model: graia.Sequential, shape: tuple[int, ...]):
    """The float32 PyTorch network with ``model``'s layers (augmentation left out)."""
    torch, _ = torch_device()
    nn = torch.nn
    image_channels = channels = shape[2] if len(shape) == 3 else 1
    stack, features = [], None
    trained = [la for la in model.layers if not la.augmentation and not isinstance(la, L.Input)]
    for layer in trained:
        last = layer is trained[-1]
        if isinstance(layer, L.Conv2D):
            stack += [
                nn.Conv2d(
                    channels, layer.filters, layer.kernel_size, layer.strides, padding=layer.padding
                ),
                nn.ReLU(),
            ]
            channels = layer.filters
        elif isinstance(layer, L.MaxPooling2D):
            stack.append(nn.MaxPool2d(layer.pool_size))
        elif isinstance(layer, L.AveragePooling2D):
            stack.append(nn.AvgPool2d(layer.pool_size))
        elif isinstance(layer, L.Flatten):
            stack.append(nn.Flatten())
        elif isinstance(layer, L.Dense):
            if features is None:  # the first Dense layer: its inputs are known once built
                probe = nn.Sequential(*stack)(torch.zeros(1, image_channels, *shape[:2]))
                features = probe.reshape(1, -1).shape[1]
            stack.append(nn.Linear(features, layer.units))
            stack += [] if last else [nn.ReLU()]
            features = layer.units
        else:
            raise SystemExit(f"conv_speed: no PyTorch counterpart for {type(layer).__name__}")
    return nn.Sequential(*stack)


def time_torch(case: Case, x: np.ndarray, y: np.ndarray) -> dict:
    """One timed epoch and one timed forward pass of the PyTorch counterpart."""
    torch, dev = torch_device()
    shape = x.shape[1:]
    net = torch_network(case.build(shape, 10), shape).to(dev)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    nchw = (x.reshape(len(x), *shape[:2], -1) / 255.0).transpose(0, 3, 1, 2)
    xs = torch.as_tensor(nchw, dtype=torch.float32, device=dev)
    ys = torch.as_tensor(y, dtype=torch.int64, device=dev)

    def epoch(n):
        for i in range(0, n, case.batch):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                net(xs[i : i + case.batch]), ys[i : i + case.batch]
            )
            loss.backward()
            opt.step()
        torch_sync(torch, dev)

    epoch(4 * case.batch)
    started = time.perf_counter()
    epoch(len(x))
    trained = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(x), 1024):
            net(xs[i : i + 1024])
    torch_sync(torch, dev)
    return {"train_s": trained - started, "predict_s": time.perf_counter() - trained, "device": dev}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--recipes", nargs="*", default=["fashion-mnist", "cifar10"], choices=sorted(CONV_RECIPES)
    )
    parser.add_argument("--archs", nargs="*", default=[], help="recipe_search.py architectures")
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--cpu-samples", type=int, default=1000)
    parser.add_argument("--backends", nargs="+", default=list(graia.backend.NAMES))
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch baseline")
    parser.add_argument("--json", help="write all results to this file")
    args = parser.parse_args()

    info = {"machine": machine(), "samples": args.samples, "results": []}
    print(json.dumps(info["machine"]), flush=True)
    for case in cases(args):
        x, y, source = images(case.dataset, args.samples)
        row = {"network": case.name, "images": source, "batch": case.batch, "times": {}}
        for backend in args.backends:
            n = args.samples if backend == "opencl" else args.cpu_samples
            measured = time_graia(case, backend, x[:n], y[:n])
            row["times"][backend] = {k: v * args.samples / n for k, v in measured.items()}
        if not args.no_torch:
            # On the CPU (the same threads as the CPU backends) PyTorch too is timed on
            # --cpu-samples and scaled.
            n = args.samples if torch_device()[1] == "cuda" else args.cpu_samples
            measured = time_torch(case, x[:n], y[:n])
            row["times"]["torch backprop"] = {
                k: v * args.samples / n if k.endswith("_s") else v for k, v in measured.items()
            }
        first = row["times"][args.backends[0]]
        for name, times in row["times"].items():
            ratios = {
                f"{k} vs {args.backends[0]}": round(times[k] / first[k], 2)
                for k in ("train_s", "predict_s")
            }
            print(
                json.dumps(
                    {
                        "network": case.name,
                        "images": source,
                        "on": name,
                        "train_s": round(times["train_s"], 3),
                        "predict_s": round(times["predict_s"], 3),
                        **ratios,
                    }
                ),
                flush=True,
            )
        info["results"].append(row)
    if args.json:
        with atomic_write(args.json) as f:
            f.write(json.dumps(info, indent=1).encode())


if __name__ == "__main__":
    main()
