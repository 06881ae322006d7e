"""Convolution speed benchmark: the convolutional recipes' training and prediction time on each
backend, against each other and against a backprop CNN of the same shape in PyTorch (on a GPU in
float32, TF32 and bf16 autocast, channels_last, eager and in a CUDA graph: TORCH_SETTINGS), in the
same run on the same machine (or, with ``--baselines FILE``, an earlier run's PyTorch timings).

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
    python benchmarks/conv_speed.py --recipes fashion-mnist --backends --json torch.json
    python benchmarks/conv_speed.py --recipes fashion-mnist --backends cuda --no-torch \\
        --baselines torch.json
"""

from __future__ import annotations

import argparse
import json
import os
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


def on_gpu(backend: str) -> bool:
    """Whether ``backend`` runs on a GPU here (then it is timed on all ``--samples``)."""
    from graia.backends import futhark as futhark_backend

    return (
        backend in futhark_backend.KINDS
        and futhark_backend.device_info(backend).get("type") == "gpu"
    )


def time_graia(case: Case, backend: str, x: np.ndarray, y: np.ndarray) -> dict:
    """One timed training epoch and one timed predict on ``backend`` (after a warm-up epoch),
    and the accuracy of that predict on the training images (to show it learns)."""
    with graia.backend.use(backend):
        model = case.build(x.shape[1:], 10)
        model.fit(x, y, epochs=1, batch_size=case.batch, verbose=0)
        started = time.perf_counter()
        model.fit(x, y, epochs=2, initial_epoch=1, batch_size=case.batch, verbose=0)
        trained = time.perf_counter()
        out = model.predict(x)
        return {
            "train_s": trained - started,
            "predict_s": time.perf_counter() - trained,
            "train_accuracy": float((out.argmax(1) == y).mean()),
        }


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


#: The PyTorch settings timed on a GPU: (precision, channels_last, CUDA graph). Precision is
#: float32, TF32 (matrix products and convolutions) or bf16 autocast; on the CPU only
#: ("fp32", False, False). Plain float32 eager as the common baseline, and the settings that
#: can be fastest on a GPU (on an H100, 2026-12-07: bf16 channels_last graphed, 0.151 s an epoch
#: of 10,000 images of the Fashion-MNIST recipe, against 0.292 s float32 eager).
TORCH_SETTINGS = [
    ("fp32", False, False),
    ("fp32", True, True),
    ("tf32", True, True),
    ("bf16", True, False),
    ("bf16", True, True),
]


def torch_label(mode: str, channels_last: bool, graph: bool) -> str:
    return "torch backprop " + " ".join(
        [mode] + ["channels_last"] * channels_last + ["graph"] * graph
    )


def time_torch(
    case: Case,
    x: np.ndarray,
    y: np.ndarray,
    mode: str = "fp32",
    channels_last: bool = False,
    graph: bool = False,
) -> dict:
    """One timed epoch and one timed forward pass of the PyTorch counterpart in ``mode``
    (fp32, tf32 or bf16 autocast), with ``channels_last`` memory layout, with ``graph`` each
    batch's step captured in a CUDA graph (Adam ``capturable``, static input buffers), and the
    accuracy of that forward pass on the training images (to show it learns)."""
    from speed import backprop_steps

    torch, dev = torch_device()
    torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
    torch.backends.cudnn.allow_tf32 = mode == "tf32"
    # cuDNN's own choice of algorithm: benchmarking every setting's 4 batch shapes (training,
    # its short last batch, prediction and its last) cost more than 100 s on an H100.
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    shape = x.shape[1:]
    net = torch_network(case.build(shape, 10), shape).to(dev, memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), 1e-3, capturable=graph)
    nchw = (x.reshape(len(x), *shape[:2], -1) / 255.0).transpose(0, 3, 1, 2)
    xs = torch.as_tensor(nchw, dtype=torch.float32, device=dev).contiguous(memory_format=fmt)
    ys = torch.as_tensor(y, dtype=torch.int64, device=dev)
    forward, run_step = backprop_steps(
        torch, dev, net, opt, mode, graph, xs[: case.batch], ys[: case.batch]
    )

    def epoch(n):
        for i in range(0, n, case.batch):
            run_step(xs[i : i + case.batch], ys[i : i + case.batch])
        torch_sync(torch, dev)

    try:
        epoch(4 * case.batch)
        started = time.perf_counter()
        epoch(len(x))
        trained = time.perf_counter()
        with torch.no_grad():
            preds = [forward(xs[i : i + 1024]).argmax(1) for i in range(0, len(x), 1024)]
        torch_sync(torch, dev)
        predicted = time.perf_counter()
        pred = torch.cat(preds).cpu().numpy()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return {
        "train_s": trained - started,
        "predict_s": predicted - trained,
        "train_accuracy": float((pred == y).mean()),
        "device": dev,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--recipes", nargs="*", default=["fashion-mnist", "cifar10"], choices=sorted(CONV_RECIPES)
    )
    parser.add_argument("--archs", nargs="*", default=[], help="recipe_search.py architectures")
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--cpu-samples", type=int, default=1000)
    parser.add_argument(
        "--backends",
        nargs="*",
        default=list(graia.backend.NAMES),
        help="Graia backends to time (none: only the PyTorch baselines)",
    )
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch baselines")
    parser.add_argument(
        "--baselines",
        help="a --json file of an earlier run on this machine whose PyTorch timings to compare "
        "with (with --no-torch: instead of timing them again)",
    )
    parser.add_argument("--json", help="write all results to this file")
    args = parser.parse_args()

    info = {"machine": machine(), "samples": args.samples, "results": []}
    earlier = {}
    if args.baselines and os.path.exists(args.baselines):
        with open(args.baselines) as f:
            loaded = json.load(f)
        info["baselines_from"] = {"file": args.baselines, "machine": loaded["machine"]}
        earlier = {r["network"]: r for r in loaded["results"]}
    elif args.baselines:
        print(f"conv_speed: no baselines file {args.baselines}: Graia alone", flush=True)
    print(json.dumps(info["machine"]), flush=True)
    for case in cases(args):
        x, y, source = images(case.dataset, args.samples)
        row = {"network": case.name, "images": source, "batch": case.batch, "times": {}}
        for backend in args.backends:
            n = args.samples if on_gpu(backend) else min(args.samples, args.cpu_samples)
            measured = time_graia(case, backend, x[:n], y[:n])
            row["times"][backend] = {
                k: v * args.samples / n if k.endswith("_s") else v for k, v in measured.items()
            }
        if not args.no_torch:
            on_cuda = torch_device()[1] == "cuda"
            settings = TORCH_SETTINGS if on_cuda else [("fp32", False, False)]
            # On the CPU (the same threads as the CPU backends) PyTorch too is timed on
            # --cpu-samples and scaled.
            n = args.samples if on_cuda else min(args.samples, args.cpu_samples)
            for setting in settings:
                measured = time_torch(case, x[:n], y[:n], *setting)
                row["times"][torch_label(*setting)] = {
                    k: v * args.samples / n if k.endswith("_s") else v for k, v in measured.items()
                }
        for name, times in earlier.get(case.name, {}).get("times", {}).items():
            if name.startswith("torch"):
                row["times"].setdefault(name, times)
        torch_names = [k for k in row["times"] if k.startswith("torch")]
        fastest = min(torch_names, key=lambda k: row["times"][k]["train_s"], default=None)
        row["fastest_torch"] = fastest
        first = row["times"][args.backends[0] if args.backends else fastest]
        for name, times in row["times"].items():
            ratios = {
                f"{k} vs {args.backends[0] if args.backends else fastest}": round(
                    times[k] / first[k], 2
                )
                for k in ("train_s", "predict_s")
            }
            if fastest and not name.startswith("torch"):
                ratios["speed-up vs fastest torch training"] = round(
                    row["times"][fastest]["train_s"] / times["train_s"], 2
                )
            print(
                json.dumps(
                    {
                        "network": case.name,
                        "images": source,
                        "on": name,
                        "train_s": round(times["train_s"], 3),
                        "predict_s": round(times["predict_s"], 3),
                        "train_accuracy": round(times.get("train_accuracy", float("nan")), 4),
                        **ratios,
                    }
                ),
                flush=True,
            )
        info["results"].append(row)
        if args.json:  # after every network: a run cut short keeps what it measured
            with atomic_write(args.json) as f:
                f.write(json.dumps(info, indent=1).encode())


if __name__ == "__main__":
    main()
