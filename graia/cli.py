"""The ``graia`` command: train, evaluate, predict, info, demo.

Exit status: 0 on success, 2 for a user error (a bad option, missing data, an unreadable model or
array file, a backend that cannot run), printed as one ``graia: error: ...`` line on stderr
without a traceback; 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

DATASETS = ("digits", "fashion-mnist", "mnist")
BACKENDS = ("opencl", "multicore", "numba")
_NPY_MAGIC = b"\x93NUMPY"


def _load_dataset(name: str, data_dir: str | None):
    """The dataset's splits; an explicit ``data_dir`` is the only place looked at (no download)."""
    from graia import datasets

    return datasets.load_data(name, path=data_dir)


def _backend_details(name: str) -> dict[str, Any] | None:
    """What a Futhark backend runs on (threads, OpenCL device), or None when unknown."""
    if name == "numba":
        return None
    try:
        from graia.backends import futhark

        return futhark.device_info(name)
    except Exception as exc:  # noqa: BLE001 - info reports whatever it can
        return {"error": f"{type(exc).__name__}: {exc}"}


def _info(args: argparse.Namespace) -> dict:
    import numba
    import numpy

    import graia
    from graia import backend

    problem = None
    try:
        active = backend.name()
    except graia.GraiaError as exc:
        active = None
        problem = exc
    backends = {}
    for n, (ok, why) in backend.available().items():
        entry: dict[str, Any] = {"available": ok, "reason": why}
        details = _backend_details(n) if ok else None
        if details is not None:
            entry["details"] = details
        backends[n] = entry
    report = {
        "graia": graia.__version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "numba": numba.__version__,
        "active_backend": active,
        "backends": backends,
    }
    if args.json:
        print(json.dumps(report, default=str))
    else:
        print(
            f"graia {report['graia']} (python {report['python']}, numpy {report['numpy']}, "
            f"numba {report['numba']})"
        )
        for n, entry in backends.items():
            mark = "*" if n == active else " "
            state = "available" if entry["available"] else f"unavailable: {entry['reason']}"
            print(f" {mark} {n:<10} {state}")
            for key, value in (entry.get("details") or {}).items():
                if key not in ("backend", "available"):
                    print(f"     {key}: {value}")
    if problem is not None:
        raise problem
    return report


def _train(args: argparse.Namespace) -> None:
    import graia
    from graia import plot
    from graia.recipes import RECIPES

    recipe = RECIPES[args.dataset]
    rule = args.rule or recipe.rule
    graia.rules.get(rule)  # an unknown rule fails before any data is loaded
    backend_name = graia.backend.name()  # so does a backend that cannot run
    (x_train, y_train), (x_test, y_test) = _load_dataset(args.dataset, args.data_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    output = Path(args.output or f"graia-runs/{args.dataset}-{stamp}")
    output.mkdir(parents=True, exist_ok=True)
    classes = int(max(y_train.max(), y_test.max())) + 1
    model = recipe.build(x_train.shape[1:], classes, args.seed, rule, name=f"{args.dataset}-{rule}")
    epochs = args.epochs or recipe.epochs
    batch_size = args.batch_size or recipe.batch_size
    start = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=(x_test, y_test),
        callbacks=recipe.callbacks(epochs) if rule == recipe.rule else [],
        verbose=0 if args.quiet else 1,
    )
    seconds = time.perf_counter() - start
    train_loss, train_acc = model.evaluate(x_train, y_train)
    test_loss, test_acc = model.evaluate(x_test, y_test)
    model_path = output / "model.graia"
    model.save(model_path)
    curve_path = output / "learning_curve.png"
    plot.history(history, path=curve_path)
    result = {
        "dataset": args.dataset,
        "backend": backend_name,
        "rule": rule,
        "rule_options": model.rule.values,
        "hidden": list(recipe.hidden),
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": model.seed,
        "seconds": round(seconds, 3),
        "train_accuracy": train_acc,
        "train_loss": train_loss,
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "model_path": str(model_path),
        "learning_curve": str(curve_path),
    }
    print(
        f"test accuracy: {test_acc:.4f} (train {train_acc:.4f}) after {epochs} epochs, "
        f"{seconds:.1f} s on {backend_name}; model: {model_path}; curve: {curve_path}"
    )
    if args.json:
        print(json.dumps(result))


def _evaluate(args: argparse.Namespace) -> None:
    import graia

    model = graia.load_model(args.model)
    _, (x_test, y_test) = _load_dataset(args.dataset, args.data_dir)
    loss, acc = model.evaluate(x_test, y_test)
    result = {
        "model": args.model,
        "dataset": args.dataset,
        "backend": graia.backend.name(),
        "test_accuracy": acc,
        "test_loss": loss,
    }
    print(json.dumps(result) if args.json else f"test accuracy: {acc:.4f}, loss: {loss:.4f}")


def _read_npy(path: str):
    """A numeric array from a ``.npy`` file, never unpickling."""
    import numpy as np

    from graia.errors import GraiaValueError

    try:
        with open(path, "rb") as f:
            magic = f.read(len(_NPY_MAGIC))
            if magic != _NPY_MAGIC:
                raise GraiaValueError(f"{path}: not a .npy file (save arrays with numpy.save)")
            f.seek(0)
            x = np.load(f, allow_pickle=False)
    except FileNotFoundError as exc:
        raise GraiaValueError(f"{path}: no such file") from exc
    except (OSError, ValueError, EOFError) as exc:
        if isinstance(exc, GraiaValueError):
            raise
        raise GraiaValueError(f"{path}: cannot read a numeric .npy array ({exc})") from exc
    return x


def _predict(args: argparse.Namespace) -> None:
    import graia
    from graia.errors import GraiaValueError

    model = graia.load_model(args.model)
    x = _read_npy(args.file)
    try:
        classes = model.predict_classes(x)
    except GraiaValueError as exc:
        raise GraiaValueError(f"{args.file}: {exc}") from exc
    print(json.dumps(classes.tolist()) if args.json else "\n".join(map(str, classes)))


def _demo(args: argparse.Namespace) -> None:
    from graia.demo import serve

    host = "0.0.0.0" if args.share else args.host
    serve(host, args.port, args.model)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graia", description="Integer neural networks with power-of-two weights."
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        help="backend to use (default: $GRAIA_BACKEND or the best available)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="backends, devices and versions")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    train = sub.add_parser("train", help="train the recommended recipe for a dataset")
    train.add_argument("--dataset", choices=DATASETS, required=True)
    train.add_argument(
        "--data-dir",
        help="directory holding the dataset's IDX files "
        "(only this one is searched; nothing is downloaded)",
    )
    train.add_argument("--epochs", type=_positive, help="epochs (default: the recipe's)")
    train.add_argument("--batch-size", type=_positive, help="batch size (default: the recipe's)")
    train.add_argument("--rule", help="learning rule (default: the recipe's)")
    train.add_argument("--seed", type=_seed, default=0, help="seed of every random choice")
    train.add_argument("--output", help="output directory (default ./graia-runs/<dataset>-<time>)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--json", action="store_true", help="end with one JSON line of results")
    evaluate = sub.add_parser("evaluate", help="test accuracy of a saved model")
    evaluate.add_argument("model")
    evaluate.add_argument("--dataset", choices=DATASETS, required=True)
    evaluate.add_argument("--data-dir", help="directory holding the dataset's IDX files")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    predict = sub.add_parser("predict", help="class ids for the samples in a .npy file")
    predict.add_argument("model")
    predict.add_argument("file")
    predict.add_argument("--json", action="store_true", help="print one JSON list")
    demo = sub.add_parser("demo", help="start the web demo (draw a digit, look inside, train)")
    demo.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    demo.add_argument(
        "--port", type=_port, default=7860, help="port (default 7860; 0 picks a free one)"
    )
    demo.add_argument("--model", help="a .graia model to start with (default: pretrained digits)")
    demo.add_argument(
        "--share",
        action="store_true",
        help="listen on every network interface (--host 0.0.0.0) so other machines can open it; "
        "off by default",
    )
    for p in (info, train, evaluate, predict, demo):
        p.add_argument(
            "--backend", choices=BACKENDS, default=argparse.SUPPRESS, help="backend to use"
        )
    return parser


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _positive(text: str) -> int:
    value = _integer(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _seed(text: str) -> int:
    value = _integer(text)
    if not 0 <= value < 2**64:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**64), got {text}")
    return value


def _port(text: str) -> int:
    value = _integer(text)
    if not 0 <= value < 65536:
        raise argparse.ArgumentTypeError(f"must be in 0..65535, got {text}")
    return value


def _error(message: object) -> int:
    text = " ".join(str(message).split("\n")).strip()
    print(f"graia: error: {text}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``graia`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        from graia import backend
        from graia.errors import GraiaError

        handler = {
            "info": _info,
            "train": _train,
            "evaluate": _evaluate,
            "predict": _predict,
            "demo": _demo,
        }
        try:
            if args.backend:
                with backend.use(args.backend):
                    handler[args.command](args)
            else:
                handler[args.command](args)
        except GraiaError as exc:
            return _error(exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout was closed early (e.g. piped into head): stop quietly.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except OSError as exc:
        return _error(exc)
    return 0
