"""The ``graia`` command: train, evaluate, predict, info."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

DATASETS = ("digits", "fashion-mnist", "mnist")


def _load_dataset(name: str, data_dir: str | None):
    from graia import datasets

    return datasets.load_data(name, path=data_dir)


def _info(args: argparse.Namespace) -> dict:
    import numba
    import numpy

    import graia
    from graia import backend

    try:
        active = backend.name()
    except graia.GraiaError as exc:
        active = None
        problem = str(exc)
    report = {
        "graia": graia.__version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "numba": numba.__version__,
        "active_backend": active,
        "backends": {n: {"available": ok, "reason": why} for n, (ok, why) in backend.available().items()},
    }
    try:
        from graia.backends import futhark

        report["futhark"] = futhark.build_info()
        report["opencl_devices"] = futhark.device_info()
    except Exception as exc:  # noqa: BLE001 - info reports whatever it can
        report["futhark"] = f"unavailable: {exc}"
    if args.json:
        print(json.dumps(report))
    else:
        print(f"graia {report['graia']} (python {report['python']}, numpy {report['numpy']}, numba {report['numba']})")
        print(f"futhark: {report.get('futhark')}")
        for n, info in report["backends"].items():
            mark = "*" if n == active else " "
            state = "available" if info["available"] else f"unavailable: {info['reason']}"
            print(f" {mark} {n:<10} {state}")
        for dev in report.get("opencl_devices") or []:
            print(f"   opencl device: {dev}")
        if active is None:
            print(f"error: {problem}", file=sys.stderr)
    if active is None:
        raise SystemExit(2)
    return report


def _train(args: argparse.Namespace) -> None:
    import graia
    from graia import plot
    from graia.recipes import RECIPES

    recipe = RECIPES[args.dataset]
    (x_train, y_train), (x_test, y_test) = _load_dataset(args.dataset, args.data_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    output = Path(args.output or f"graia-runs/{args.dataset}-{stamp}")
    output.mkdir(parents=True, exist_ok=True)
    options = dict(recipe.rule_options) if args.rule in (None, recipe.rule) else {}
    rule = args.rule or recipe.rule
    model = graia.Sequential(
        [graia.layers.Input(x_train.shape[1:])]
        + [graia.layers.Dense(u) for u in recipe.hidden]
        + [graia.layers.Dense(int(max(y_train.max(), y_test.max())) + 1)],
        seed=args.seed,
        name=f"{args.dataset}-{rule}",
    )
    model.compile(rule, **options)
    epochs = args.epochs or recipe.epochs
    batch_size = args.batch_size or recipe.batch_size
    start = time.perf_counter()
    history = model.fit(
        x_train, y_train, epochs=epochs, batch_size=batch_size,
        validation_data=(x_test, y_test),
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
        "dataset": args.dataset, "backend": graia.backend.name(), "rule": rule,
        "rule_options": model.rule.values, "hidden": list(recipe.hidden), "epochs": epochs,
        "batch_size": batch_size, "seed": model.seed, "seconds": round(seconds, 3),
        "train_accuracy": train_acc, "test_accuracy": test_acc, "test_loss": test_loss,
        "model_path": str(model_path), "learning_curve": str(curve_path),
    }
    print(f"test accuracy: {test_acc:.4f} (train {train_acc:.4f}) after {epochs} epochs, "
          f"{seconds:.1f} s on {result['backend']}; model: {model_path}; curve: {curve_path}")
    if args.json:
        print(json.dumps(result))


def _evaluate(args: argparse.Namespace) -> None:
    import graia

    model = graia.load_model(args.model)
    _, (x_test, y_test) = _load_dataset(args.dataset, args.data_dir)
    loss, acc = model.evaluate(x_test, y_test)
    result = {"model": args.model, "dataset": args.dataset, "backend": graia.backend.name(),
              "test_accuracy": acc, "test_loss": loss}
    print(json.dumps(result) if args.json else f"test accuracy: {acc:.4f}, loss: {loss:.4f}")


def _predict(args: argparse.Namespace) -> None:
    import numpy as np

    import graia
    from graia.errors import GraiaValueError

    model = graia.load_model(args.model)
    try:
        x = np.load(args.file, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise GraiaValueError(f"{args.file}: cannot read a .npy array ({exc})") from exc
    classes = model.predict_classes(x)
    print(json.dumps(classes.tolist()) if args.json else "\n".join(map(str, classes)))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graia", description=__doc__)
    parser.add_argument("--backend", choices=("opencl", "multicore", "numba"),
                        help="backend to use (default: $GRAIA_BACKEND or the best available)")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="backends, devices and versions")
    info.add_argument("--json", action="store_true")
    train = sub.add_parser("train", help="train the recommended recipe for a dataset")
    train.add_argument("--dataset", choices=DATASETS, required=True)
    train.add_argument("--data-dir", help="directory holding the dataset's IDX files")
    train.add_argument("--epochs", type=_positive, help="epochs (default: the recipe's)")
    train.add_argument("--batch-size", type=_positive, help="batch size (default: the recipe's)")
    train.add_argument("--rule", help="learning rule (default: the recipe's)")
    train.add_argument("--seed", type=_seed, default=0)
    train.add_argument("--output", help="output directory (default ./graia-runs/<dataset>-<time>)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--json", action="store_true", help="end with one JSON line of results")
    evaluate = sub.add_parser("evaluate", help="test accuracy of a saved model")
    evaluate.add_argument("model")
    evaluate.add_argument("--dataset", choices=DATASETS, required=True)
    evaluate.add_argument("--data-dir")
    evaluate.add_argument("--json", action="store_true")
    predict = sub.add_parser("predict", help="class ids for the samples in a .npy file")
    predict.add_argument("model")
    predict.add_argument("file")
    predict.add_argument("--json", action="store_true")
    for p in (train, evaluate, predict):
        p.add_argument("--backend", choices=("opencl", "multicore", "numba"), default=argparse.SUPPRESS)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if not 0 <= value < 2**64:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**64), got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``graia`` console script."""
    args = _parser().parse_args(argv)
    if args.backend:
        os.environ["GRAIA_BACKEND"] = args.backend
    try:
        from graia import backend
        from graia.errors import GraiaError

        handler = {"info": _info, "train": _train, "evaluate": _evaluate, "predict": _predict}
        if args.backend:
            with backend.use(args.backend):
                handler[args.command](args)
        else:
            handler[args.command](args)
    except GraiaError as exc:
        print(f"graia: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
