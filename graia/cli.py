"""The ``graia`` command: train, evaluate, predict, summary, export, info, demo.

Exit status: 0 on success, 2 for a user error (a bad option, missing data, an unreadable model or
array file, a backend that cannot run), printed as one ``graia: error: ...`` line on stderr
without a traceback; 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numba
import numpy as np

import graia
from graia import _interrupt, augment, backend, datasets, distributed, io, plot
from graia._version import __version__
from graia.demo import serve
from graia.errors import GraiaError, GraiaValueError
from graia.recipes import recipe_for

DATASETS = ("digits", "fashion-mnist", "mnist", "cifar10")


def _load_dataset(name: str, data_dir: str | None):
    """The dataset's splits; an explicit ``data_dir`` is the only place looked at (no download)."""
    return datasets.load_data(name, path=data_dir)


def _backend_details(name: str) -> dict[str, Any] | None:
    """What a backend runs on (threads, OpenCL device), or None when there is nothing to say."""
    try:
        return backend.details(name)
    except Exception as exc:  # noqa: BLE001 - info reports whatever it can
        return {"error": f"{type(exc).__name__}: {exc}"}


def device_description(name: str) -> str:
    """A short description of what backend ``name`` runs on in this process (its OpenCL or CUDA
    device, or its CPU threads), for a run's report."""
    details = _backend_details(name) or {}
    if "device" in details:  # an OpenCL device has a platform, a CUDA device none
        api = f"{details['platform']}; OpenCL" if "platform" in details else "CUDA"
        return f"{details['device']} ({api} device {details['index']})"
    if "threads" in details:
        return f"{details['threads']} CPU threads"
    return "CPU"


def _info(args: argparse.Namespace) -> dict:
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
        "numpy": np.__version__,
        "numba": numba.__version__,
        "active_backend": active,
        "active_backend_reason": backend.default_reason() if active else None,
        "backends": backends,
    }
    if args.json:
        print(json.dumps(report, default=str))
    else:
        print(
            f"graia {report['graia']} (python {report['python']}, numpy {report['numpy']}, "
            f"numba {report['numba']})"
        )
        if active:
            print(f"backend in use: {active} ({report['active_backend_reason']})")
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


def _rescue_dirs() -> list[Path]:
    """Where a trained model goes when its output path cannot be written (tried in order)."""
    return [Path(tempfile.gettempdir()), Path.home()]


def _absent(directory: Path) -> tuple[list[Path], Path]:
    """The directories of ``directory``'s path that do not exist (outermost first) and the
    nearest one that does."""
    missing = []
    parent = directory
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    return list(reversed(missing)), parent


class _Output:
    """The run's output directory, checked before training: it must be (or become) a writable
    directory with room for the model. A directory created for the check is removed again at
    once and made again by :meth:`create` when the results are written, so a run that ends
    before (a failure, Ctrl-C, a killed process or MPI rank) leaves no empty directory behind."""

    def __init__(self, directory: Path, needed_bytes: int) -> None:
        self.directory = directory
        self.created: list[Path] = []
        if directory.exists() and not directory.is_dir():
            raise GraiaValueError(f"--output {directory} exists and is not a directory")
        for name in ("model.graia", "learning_curve.png"):
            if (directory / name).is_dir():
                raise GraiaValueError(f"--output: {directory / name} is a directory")
        missing, parent = _absent(directory)
        if not parent.is_dir():
            raise GraiaValueError(f"--output {directory}: {parent} is not a directory")
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self.created = missing
            with tempfile.TemporaryFile(dir=directory) as probe:
                probe.write(b"\0" * 4096)
                probe.flush()
                os.fsync(probe.fileno())
            free = shutil.disk_usage(directory).free
        except OSError as exc:
            self.remove_if_empty()
            raise GraiaValueError(
                f"--output {directory} is not writable: {exc.strerror or exc}"
            ) from exc
        self.remove_if_empty()
        if free < needed_bytes:
            raise GraiaValueError(
                f"--output {directory}: {free} bytes free, the run needs about {needed_bytes}"
            )

    def create(self) -> None:
        """Make the directory (and its missing parents), to write the results into; if that
        fails, saving fails and the model goes to a fallback location (:func:`_save_model`)."""
        missing, _ = _absent(self.directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError:
            return
        self.created = missing

    def remove_if_empty(self) -> None:
        """Remove the directories created here, if still empty."""
        for path in reversed(self.created):
            try:
                path.rmdir()
            except OSError:
                break
        self.created = []


def _save_model(model: Any, path: Path) -> None:
    """Save ``model``; when ``path`` cannot be written, save it in a fallback location and say
    where in the one-line error."""
    try:
        model.save(path)
        return
    except OSError as exc:
        failure = f"cannot write {path}: {exc.strerror or exc}"
    for directory in _rescue_dirs():
        rescue = directory / f"graia-rescued-{os.getpid()}-{time.strftime('%Y%m%d-%H%M%S')}.graia"
        try:
            model.save(rescue)
        except OSError:
            continue
        raise GraiaError(f"{failure}; the trained model was saved to {rescue} instead")
    raise GraiaError(
        f"{failure}; no fallback location ({', '.join(map(str, _rescue_dirs()))}) could be "
        "written either, so the trained model is lost"
    )


def _status(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text, file=sys.stderr, flush=True)


def _train(args: argparse.Namespace) -> None:
    rule = args.rule or recipe_for(args.dataset, architecture=args.architecture).rule
    graia.rules.get(rule)  # an unknown rule fails before any data is loaded
    recipe = recipe_for(args.dataset, rule, args.architecture)
    backend_name = graia.backend.name()  # so does a backend that cannot run
    # Under mpirun every rank trains; rank 0 alone prints, evaluates and writes files.
    distributed.validate(args.distribute, rule, backend_name)
    distributed.check_modes(args.distribute)  # a rank started without --distribute ends too
    lead = args.distribute is None or distributed.rank() == 0
    args.quiet = args.quiet or not lead
    devices = [device_description(backend_name)]
    if args.distribute is not None:  # each rank's own device, listed by rank 0
        devices = distributed.world().allgather(devices[0])
    (x_train, y_train), (x_test, y_test) = _load_dataset(args.dataset, args.data_dir)
    for split, x in (("training", x_train), ("test", x_test)):
        if len(x) == 0:
            raise GraiaValueError(f"the {args.dataset} {split} split has no samples")
    classes = int(max(y_train.max(), y_test.max())) + 1
    model = recipe.build(x_train.shape[1:], classes, args.seed, rule, name=f"{args.dataset}-{rule}")
    epochs = args.epochs or recipe.epochs
    batch_size = args.batch_size or recipe.batch_size
    validation = None
    if args.validation_split:
        # A seeded random split of the training data; the test split is never used for it.
        order = np.random.default_rng(args.seed).permutation(len(x_train))
        cut = len(x_train) - round(len(x_train) * args.validation_split)
        if not 0 < cut < len(x_train):
            raise GraiaValueError(
                f"--validation-split {args.validation_split} leaves no training or no "
                f"validation samples of {len(x_train)}"
            )
        validation = (x_train[order[cut:]], y_train[order[cut:]])
        x_train, y_train = x_train[order[:cut]], y_train[order[:cut]]
    if not lead:
        _fit(args, model, recipe, rule, x_train, y_train, epochs, batch_size, validation)
        return
    stamp = time.strftime("%Y%m%d-%H%M%S")
    output = _Output(
        Path(args.output or f"graia-runs/{args.dataset}-{stamp}"),
        needed_bytes=8 * model.count_params() + (1 << 20),
    )
    model_path = output.directory / "model.graia"
    curve_path = output.directory / "learning_curve.png"
    try:
        start = time.perf_counter()
        history = _fit(args, model, recipe, rule, x_train, y_train, epochs, batch_size, validation)
        seconds = time.perf_counter() - start
        _status(args, "evaluating on the training and test splits")
        train_loss, train_acc = model.evaluate(x_train, y_train)
        test_loss, test_acc = model.evaluate(x_test, y_test)
        # A model trained on mirror images is also scored on them (docs/arithmetic.md §4.2).
        flips_acc = model.evaluate(x_test, y_test, average_flips=True)[1] if recipe.flip else None
        _status(args, f"saving {model_path} and {curve_path}")
        output.create()
        _save_model(model, model_path)
        args.saved = model_path
        plot.history(history, path=curve_path)
    except BaseException:
        output.remove_if_empty()  # only what this run created, and only if still empty
        raise
    result = {
        "dataset": args.dataset,
        "backend": backend_name,
        "devices": devices,
        "rule": rule,
        "rule_options": model.rule.values,
        "architecture": recipe.describe(),
        "hidden": list(recipe.hidden),
        "epochs": epochs,
        "batch_size": batch_size,
        "validation_split": args.validation_split,
        "seed": model.seed,
        "seconds": round(seconds, 3),
        "train_accuracy": train_acc,
        "train_loss": train_loss,
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "model_path": str(model_path),
        "learning_curve": str(curve_path),
    }
    if flips_acc is not None:
        result["test_accuracy_average_flips"] = flips_acc
    if validation is not None:
        result["val_accuracy"] = history.history["val_accuracy"][-1]
        result["val_loss"] = history.history["val_loss"][-1]
    flips = "" if flips_acc is None else f", {flips_acc:.4f} with flips averaged"
    print(
        f"test accuracy: {test_acc:.4f}{flips} (train {train_acc:.4f}) after {epochs} epochs, "
        f"{seconds:.1f} s on {backend_name} ({'; '.join(sorted(set(devices)))}); "
        f"model: {model_path}; curve: {curve_path}"
    )
    if args.json:
        print(json.dumps(result))


def _fit(args, model, recipe, rule, x_train, y_train, epochs, batch_size, validation):
    """``graia train``'s ``fit`` call (on every rank of a distributed run)."""
    return model.fit(
        x_train,
        y_train,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=validation,
        callbacks=recipe.callbacks(epochs) if rule == recipe.rule else [],
        verbose=0 if args.quiet else "auto",
        distribute=args.distribute,
    )


def _evaluate(args: argparse.Namespace) -> None:
    model = graia.load_model(args.model)
    _, (x_test, y_test) = _load_dataset(args.dataset, args.data_dir)
    loss, acc = model.evaluate(x_test, y_test, average_flips=args.average_flips)
    result = {
        "model": args.model,
        "dataset": args.dataset,
        "backend": graia.backend.name(),
        "average_flips": args.average_flips,
        "test_accuracy": acc,
        "test_loss": loss,
    }
    print(json.dumps(result) if args.json else f"test accuracy: {acc:.4f}, loss: {loss:.4f}")


def _read_samples(path: str, model: Any) -> Any:
    """The samples of a ``.npy`` file for ``model``, refused from the header alone (shape, dtype)
    before anything is read."""
    shape, features = model.input_shape, model.sizes[0]

    def check(dtype: Any, file_shape: tuple[int, ...]) -> None:
        if len(file_shape) < 1 or file_shape[1:] not in (shape, (features,)):
            raise GraiaValueError(
                f"{path}: holds shape {file_shape}; expected (n, "
                f"{', '.join(map(str, shape))})"
                + (f" or (n, {features})" if len(shape) > 1 else "")
            )
        if dtype.kind not in "iuf" or dtype == bool:
            raise GraiaValueError(f"{path}: holds {dtype}; expected uint8, int or float samples")

    return io.read_npy(path, check)


def _predict(args: argparse.Namespace) -> None:
    model = graia.load_model(args.model)
    if args.average_flips:  # a model without RandomFlip fails before the samples are read
        augment.mirror_axes(model.layers)
    x = _read_samples(args.file, model)
    try:
        classes = model.predict_classes(x, average_flips=args.average_flips)
    except GraiaValueError as exc:
        raise GraiaValueError(f"{args.file}: {exc}") from exc
    print(json.dumps(classes.tolist()) if args.json else "\n".join(map(str, classes)))


def _summary(args: argparse.Namespace) -> None:
    graia.load_model(args.model).summary()


def _export(args: argparse.Namespace) -> None:
    model = graia.load_model(args.model)
    samples = _read_samples(args.samples, model) if args.samples else None
    exported = model.export(args.output, format=args.format, samples=samples)
    print(f"wrote {', '.join(exported.files)}: {exported.description}")


def _demo(args: argparse.Namespace) -> None:
    host = "0.0.0.0" if args.share else args.host
    serve(host, args.port, args.model)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graia", description="Integer neural networks with power-of-two weights."
    )
    parser.add_argument("--version", action="version", version=f"graia {__version__}")
    parser.add_argument(
        "--backend",
        choices=backend.NAMES,
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
    train.add_argument(
        "--architecture",
        choices=("conv", "dense"),
        help="the convolutional or the Dense recipe (default: the dataset's, see docs/results.md)",
    )
    train.add_argument("--seed", type=_seed, default=0, help="seed of every random choice")
    train.add_argument(
        "--validation-split",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="hold out this fraction of the training data (seeded by --seed) and plot its "
        "metrics each epoch (default 0: train on all of it; the test split is only used once, "
        "at the end)",
    )
    train.add_argument("--output", help="output directory (default ./graia-runs/<dataset>-<time>)")
    train.add_argument(
        "--distribute",
        choices=distributed.MODES,
        help="under mpirun: share each batch's rows (data) or every hidden layer's units "
        "(units, Dense networks) among the ranks (same result as one process; every backend; "
        "docs/distributed.md)",
    )
    train.add_argument("--quiet", action="store_true", help="no progress or status lines")
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
    for p in (evaluate, predict):
        p.add_argument(
            "--average-flips",
            action="store_true",
            help="sum the outputs over each image and its mirrors (a model with RandomFlip)",
        )
    summary = sub.add_parser("summary", help="layers, parameters and deployed sizes of a model")
    summary.add_argument("model")
    export = sub.add_parser("export", help="write a model as dependency-free C or as ONNX")
    export.add_argument("model")
    export.add_argument("--format", choices=("c", "onnx"), required=True)
    export.add_argument("--output", required=True, help="directory for the generated files")
    export.add_argument(
        "--samples", help="C: a .npy of inputs (at most 64) for the embedded self-test"
    )
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
    for p in (info, train, evaluate, predict, summary, export, demo):
        p.add_argument(
            "--backend", choices=backend.NAMES, default=argparse.SUPPRESS, help="backend to use"
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


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
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


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Library warnings (e.g. a training collapse) as one ``graia: warning:`` line."""
    text = " ".join(str(message).split())
    print(f"graia: warning: {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``graia`` console script; returns the exit status."""
    if argv is None:  # the process is the command: Ctrl-C is answered from first to last
        _interrupt.exit_on_interrupt()
    args = _parser().parse_args(argv)
    args.saved = None
    try:
        _interrupt.raising = True
        handler = {
            "info": _info,
            "train": _train,
            "evaluate": _evaluate,
            "predict": _predict,
            "summary": _summary,
            "export": _export,
            "demo": _demo,
        }
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                if args.backend:
                    with backend.use(args.backend):
                        handler[args.command](args)
                else:
                    handler[args.command](args)
        except GraiaError as exc:
            # Raised on every rank, those started without --distribute too: rank 0 reports.
            if isinstance(exc, distributed.Disagreement):
                return _error(exc) if distributed.rank() == 0 else 2
            if not getattr(args, "distribute", None):
                return _error(exc)
            code = _error(exc)
            distributed.abort(code)  # a failure on one rank ends every rank
            return code
    except KeyboardInterrupt:
        saved = f"saved {args.saved}" if args.saved else "nothing saved"
        print(f"graia: interrupted; {saved}", file=sys.stderr, flush=True)
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
    finally:  # no call before the flag is cleared: a Ctrl-C is checked for at calls
        _interrupt.raising = False
        _interrupt.saved = args.saved
    return 0
