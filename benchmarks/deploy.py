"""Deployment figures for docs/deploy.md: per-sample inference time of the exported C (gcc -O2),
onnxruntime, ``model.predict`` and a float32 numpy model of the same shape, and the code/data
sizes of the exported C (x86-64 gcc, and Cortex-M4 when ``arm-none-eabi-gcc`` is installed).

Everything runs on one thread (numba, numpy's BLAS, onnxruntime) so the rows compare like with
like. Per sample: one sample at a time, as a device would run it; batched: the test split in one
call, divided by its size.

    GRAIA_BACKEND=numba python benchmarks/deploy.py [--fashion-epochs 1] [--output DIR]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("GRAIA_NUM_THREADS", "1")

import argparse
import platform
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

import graia
from graia.recipes import DENSE_RECIPES as RECIPES  # export covers Dense models

HARNESS = Path(__file__).resolve().parent.parent / "tests" / "export_harness.c"


def seconds_per_call(fn, min_seconds: float = 0.5) -> float:
    """Mean wall time of ``fn()`` over enough calls to last ``min_seconds``."""
    fn()
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_seconds:
        fn()
        calls += 1
    return elapsed / calls


def train(dataset: str, epochs: int, train_samples: int | None, test_samples: int | None):
    (x, y), (x_test, y_test) = graia.datasets.load_data(dataset)
    x, y = x[:train_samples], y[:train_samples]
    x_test, y_test = x_test[:test_samples], y_test[:test_samples]
    recipe = RECIPES[dataset]
    model = recipe.build(x.shape[1:], 10, seed=0, name=dataset)
    model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=recipe.batch_size,
        callbacks=recipe.callbacks(epochs),
        verbose=0,
    )
    return model, x_test, y_test


def c_figures(model, x_test, directory: Path) -> dict:
    """Export, build with gcc -O2, check every byte against predict, time, and measure sizes."""
    model.export(directory, format="c", samples=x_test[:4])
    source = directory / "graia_model.c"
    obj = directory / "graia_model.o"
    subprocess.run(["gcc", "-std=c99", "-O2", "-c", str(source), "-o", str(obj)], check=True)
    exe = directory / "harness"
    subprocess.run(
        ["gcc", "-O2", f"-I{directory}", str(HARNESS), str(obj), "-o", str(exe)], check=True
    )
    rows = x_test.reshape(len(x_test), -1)
    rows.tofile(directory / "inputs.bin")
    repeats = max(1, int(2e7 // (model.count_params() * len(rows))) + 1)
    out = subprocess.run(
        [str(exe), str(directory / "inputs.bin"), str(directory / "out.bin"), str(repeats)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    raw = np.fromfile(directory / "out.bin", np.uint8)[: rows.shape[0] * model.classes]
    exact = bool(np.array_equal(raw.reshape(-1, model.classes), model.predict(x_test)))
    figures = {
        "c_ns": float(re.search(r"ns_per_sample ([\d.]+)", out).group(1)),
        "self_test": int(re.search(r"self_test (\d+)", out).group(1)),
        "exact": exact,
        "x86_64": sizes("size", obj),
    }
    if shutil.which("arm-none-eabi-gcc"):
        arm_obj = directory / "graia_model_m4.o"
        subprocess.run(
            [
                "arm-none-eabi-gcc",
                "-std=c99",
                "-O2",
                "-mcpu=cortex-m4",
                "-mthumb",
                "-c",
                str(source),
                "-o",
                str(arm_obj),
            ],
            check=True,
        )
        figures["cortex_m4"] = sizes("arm-none-eabi-size", arm_obj)
    return figures


def sizes(tool: str, obj: Path) -> dict[str, int]:
    """text (code and const data: flash), data and bss (RAM) of an object file."""
    line = subprocess.run([tool, str(obj)], check=True, capture_output=True, text=True).stdout
    text, data, bss = (int(v) for v in line.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def onnx_seconds(model, x_test, directory: Path) -> tuple[float, float]:
    import onnxruntime as ort

    model.export(directory, format="onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(directory / "graia_model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    rows = x_test.reshape(len(x_test), -1)
    assert np.array_equal(session.run(["activations"], {"input": rows})[0], model.predict(x_test))
    one = rows[:1]
    return (
        seconds_per_call(lambda: session.run(["activations"], {"input": one})),
        seconds_per_call(lambda: session.run(["activations"], {"input": rows})) / len(rows),
    )


def float_model(model):
    """A float32 model of the same shape: the codes' weights as floats, ReLU; returns forward."""
    weights = [
        (np.sign(c) * np.where(c != 0, 2.0 ** (1 - np.abs(c).astype(np.float32)), 0)).astype(
            np.float32
        )
        for c in model.get_codes()
    ]

    def forward(x: np.ndarray) -> np.ndarray:
        a = x.astype(np.float32) / 255.0
        for w in weights:
            a = np.maximum(a @ w, 0.0)
        return a

    return forward


def measure(name: str, model, x_test, y_test, directory: Path) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    figures = {"name": name, "shape": "-".join(map(str, model.sizes))}
    figures["accuracy"] = float(np.mean(model.predict_classes(x_test) == y_test))
    figures.update(c_figures(model, x_test, directory))
    figures["onnx_one"], figures["onnx_batch"] = onnx_seconds(model, x_test, directory)
    one = x_test[:1]
    figures["predict_one"] = seconds_per_call(lambda: model.predict(one))
    figures["predict_batch"] = seconds_per_call(lambda: model.predict(x_test)) / len(x_test)
    forward = float_model(model)
    rows = x_test.reshape(len(x_test), -1)
    figures["float_one"] = seconds_per_call(lambda: forward(rows[:1]))
    figures["float_batch"] = seconds_per_call(lambda: forward(rows)) / len(rows)
    deployment = graia.export.plan(model)
    figures["weight_bytes"] = deployment.weight_bytes
    figures["float32_bytes"] = deployment.float32_bytes
    figures["ram_bytes"] = deployment.memory.ram_bytes
    return figures


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits-epochs", type=int, default=RECIPES["digits"].epochs)
    parser.add_argument("--fashion-epochs", type=int, default=1)
    parser.add_argument("--fashion-train-samples", type=int, default=None)
    parser.add_argument("--fashion-test-samples", type=int, default=2000)
    parser.add_argument("--output", default="graia-runs/deploy")
    args = parser.parse_args()
    import graia.export  # graia.export.plan, used by measure()

    out = Path(args.output)
    results = []
    for dataset, epochs, train_samples, test_samples in (
        ("digits", args.digits_epochs, None, None),
        (
            "fashion-mnist",
            args.fashion_epochs,
            args.fashion_train_samples,
            args.fashion_test_samples,
        ),
    ):
        start = time.perf_counter()
        model, x_test, y_test = train(dataset, epochs, train_samples, test_samples)
        print(f"{dataset}: trained {epochs} epochs in {time.perf_counter() - start:.0f} s")
        results.append(measure(dataset, model, x_test, y_test, out / dataset))
        results[-1].update(epochs=epochs, test_samples=len(x_test))
        print(results[-1])
    print(
        f"\nmachine: {platform.processor() or platform.machine()}, backend {graia.backend.name()}"
    )
    print("\n| model | exported C (gcc -O2) | onnxruntime | model.predict | float32 numpy |")
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['name']} {r['shape']} ({r['epochs']} epochs, accuracy {r['accuracy']:.4f} "
            f"on {r['test_samples']} test samples) "
            f"| {us(r['c_ns'] * 1e-9)} | {us(r['onnx_one'])} / {us(r['onnx_batch'])} "
            f"| {us(r['predict_one'])} / {us(r['predict_batch'])} "
            f"| {us(r['float_one'])} / {us(r['float_batch'])} |"
        )
    print(
        "\n| model | packed codes | float32 weights | RAM | x86-64 text/data/bss "
        "| Cortex-M4 text/data/bss | C == predict | self-test |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        x86 = r["x86_64"]
        m4 = r.get("cortex_m4")
        m4_text = f"{m4['text']:,} / {m4['data']:,} / {m4['bss']:,}" if m4 else "n/a"
        print(
            f"| {r['name']} | {r['weight_bytes']:,} | {r['float32_bytes']:,} | {r['ram_bytes']:,} "
            f"| {x86['text']:,} / {x86['data']:,} / {x86['bss']:,} "
            f"| {m4_text} "
            f"| {r['exact']} | {r['self_test']} failures |"
        )


if __name__ == "__main__":
    main()
