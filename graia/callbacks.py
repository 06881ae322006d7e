"""Training callbacks with the shape of Keras' ``keras.callbacks``.

A callback receives the model (``set_model``) and the training parameters (``set_params``)
before training, then its hooks are called by ``model.fit``:

* ``on_train_begin(logs)`` / ``on_train_end(logs)``
* ``on_epoch_begin(epoch, logs)`` / ``on_epoch_end(epoch, logs)``; ``epoch`` counts from 0 and
  ``logs`` maps metric names (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``, ...) to
  numbers
* ``on_batch_begin(batch, logs)`` / ``on_batch_end(batch, logs)`` around each backend call
  within an epoch, which trains several whole batches at once (as Keras' ``steps_per_execution``):
  ``batch`` is the index of the call's first batch, then of its last one; the end's ``logs``
  hold ``size`` (samples in the call) and the epoch's ``loss`` and ``accuracy`` so far (also
  reachable as ``on_train_batch_begin`` / ``on_train_batch_end``)
* ``on_test_begin(logs)`` / ``on_test_end(logs)`` around the validation after each epoch.

A callback stops training by setting ``model.stop_training = True``.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from graia._validation import integer
from graia.errors import GraiaValueError

__all__ = [
    "CSVLogger",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "ModelCheckpoint",
    "ProgbarLogger",
    "StepScheduler",
    "TerminateOnNaN",
    "linear_step",
]

Logs = Mapping[str, Any] | None


def _plain(value: Any) -> Any:
    """numpy scalars -> Python numbers, so logs are JSON- and CSV-friendly."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    return value


class Callback:
    """Base class of training callbacks; every hook does nothing by default.

    Attributes:
        model: The model being trained (set by :meth:`set_model`).
        params: Training parameters such as ``epochs``, ``batch_size``, ``steps``, ``verbose``
            (set by :meth:`set_params`).
    """

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        """Attach the model being trained."""
        self.model = model

    def set_params(self, params: Mapping[str, Any]) -> None:
        """Receive the training parameters."""
        self.params = dict(params)

    def on_train_begin(self, logs: Logs = None) -> None:
        """Called once when training starts."""

    def on_train_end(self, logs: Logs = None) -> None:
        """Called once when training ends (also after an early stop)."""

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        """Called at the start of epoch ``epoch`` (counting from 0)."""

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        """Called at the end of epoch ``epoch`` with that epoch's metrics in ``logs``."""

    def on_batch_begin(self, batch: int, logs: Logs = None) -> None:
        """Called before each backend call of training batches, ``batch`` its first batch."""

    def on_batch_end(self, batch: int, logs: Logs = None) -> None:
        """Called after each backend call of training batches, ``batch`` its last batch."""

    def on_train_batch_begin(self, batch: int, logs: Logs = None) -> None:
        """Keras' name for :meth:`on_batch_begin`; calls it."""
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        """Keras' name for :meth:`on_batch_end`; calls it."""
        self.on_batch_end(batch, logs)

    def on_test_begin(self, logs: Logs = None) -> None:
        """Called before the validation at the end of an epoch."""

    def on_test_end(self, logs: Logs = None) -> None:
        """Called after the validation at the end of an epoch, with its metrics in ``logs``."""


class CallbackList(Callback):
    """A list of callbacks called together, in order.

    Args:
        callbacks: The callbacks (``None``: none).
        add_history: Append a :class:`History` unless one is already in the list.
        model: Model to attach to every callback.
        **params: Training parameters passed to every callback's ``set_params``.
    """

    def __init__(
        self,
        callbacks: Iterable[Callback] | None = None,
        add_history: bool = False,
        model: Any = None,
        **params: Any,
    ) -> None:
        super().__init__()
        self.callbacks: list[Callback] = []
        for cb in callbacks or ():
            self.append(cb)
        if add_history and not any(isinstance(cb, History) for cb in self.callbacks):
            self.callbacks.append(History())
        if model is not None:
            self.set_model(model)
        if params:
            self.set_params(params)

    def append(self, callback: Callback) -> None:
        """Add a callback at the end of the list."""
        if not isinstance(callback, Callback):
            raise GraiaValueError(
                f"callbacks: expected graia.callbacks.Callback instances, "
                f"got {type(callback).__name__}"
            )
        self.callbacks.append(callback)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)

    @property
    def history(self) -> History | None:
        """The first :class:`History` in the list, or ``None``."""
        for cb in self.callbacks:
            if isinstance(cb, History):
                return cb
        return None

    def set_model(self, model: Any) -> None:
        """Attach ``model`` to every callback."""
        super().set_model(model)
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params: Mapping[str, Any]) -> None:
        """Pass ``params`` to every callback."""
        super().set_params(params)
        for cb in self.callbacks:
            cb.set_params(params)

    def on_train_begin(self, logs: Logs = None) -> None:
        """Call every callback's ``on_train_begin``."""
        for cb in self.callbacks:
            cb.on_train_begin(logs)

    def on_train_end(self, logs: Logs = None) -> None:
        """Call every callback's ``on_train_end``."""
        for cb in self.callbacks:
            cb.on_train_end(logs)

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        """Call every callback's ``on_epoch_begin``."""
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        """Call every callback's ``on_epoch_end``."""
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_batch_begin(self, batch: int, logs: Logs = None) -> None:
        """Call every callback's ``on_train_batch_begin``."""
        for cb in self.callbacks:
            cb.on_train_batch_begin(batch, logs)

    def on_batch_end(self, batch: int, logs: Logs = None) -> None:
        """Call every callback's ``on_train_batch_end``."""
        for cb in self.callbacks:
            cb.on_train_batch_end(batch, logs)

    def on_test_begin(self, logs: Logs = None) -> None:
        """Call every callback's ``on_test_begin``."""
        for cb in self.callbacks:
            cb.on_test_begin(logs)

    def on_test_end(self, logs: Logs = None) -> None:
        """Call every callback's ``on_test_end``."""
        for cb in self.callbacks:
            cb.on_test_end(logs)


class History(Callback):
    """Records each epoch's logs; ``model.fit`` returns it.

    Attributes:
        history: Metric name -> list of per-epoch values, e.g. ``history["val_accuracy"]``.
        epoch: The epoch numbers recorded (counting from 0, so a resumed run continues from
            its ``initial_epoch``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[Any]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs: Logs = None) -> None:
        """Make the history reachable as ``model.history``."""
        if self.model is not None:
            with contextlib.suppress(AttributeError):
                self.model.history = self

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        """Append this epoch's number and metrics."""
        self.epoch.append(int(epoch))
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(_plain(value))

    def __repr__(self) -> str:
        keys = ", ".join(self.history)
        return f"History(epochs={len(self.epoch)}, metrics=[{keys}])"


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class ProgbarLogger(Callback):
    """Training progress on stderr; ``model.fit`` adds one when ``verbose`` is not 0.

    With ``verbose=1`` on a terminal, a tqdm bar moves within epochs (it counts samples over the
    whole run) and shows each epoch's metrics; with ``verbose=2``, or ``verbose=1`` when stderr
    is not a terminal (where a bar's redraws would pile up on one line), one plain line per epoch.
    """

    def __init__(self) -> None:
        super().__init__()
        self.bar: Any = None

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        """Open the bar at the first epoch run (a resumed run starts it part-full)."""
        if self.bar is None and self.params.get("verbose") == 1 and _is_terminal(sys.stderr):
            from tqdm.auto import tqdm

            samples, epochs = self.params["samples"], self.params["epochs"]
            self.bar = tqdm(  # samples is None for an iterable of batches: no total then
                total=None if samples is None else epochs * samples,
                initial=0 if samples is None else epoch * samples,
                unit="sample",
                unit_scale=True,
                dynamic_ncols=True,
                file=sys.stderr,
                desc=f"epoch {epoch + 1}/{epochs}",
            )

    def on_batch_end(self, batch: int, logs: Logs = None) -> None:
        """Advance the bar by the samples just trained."""
        if self.bar is not None:
            self.bar.update((logs or {}).get("size", 0))

    def on_test_begin(self, logs: Logs = None) -> None:
        """Say that the epoch is being validated."""
        if self.bar is not None:
            self.bar.set_postfix_str("validating")

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        """Show the epoch's metrics."""
        logs = logs or {}
        epochs = self.params["epochs"]
        shown = {k: f"{v:.4f}" for k, v in logs.items() if k != "seconds"}
        if self.bar is not None:
            self.bar.set_description(f"epoch {min(epoch + 2, epochs)}/{epochs}")
            self.bar.set_postfix(shown)
        elif self.params.get("verbose"):
            print(
                f"Epoch {epoch + 1}/{epochs} - {logs.get('seconds', 0.0):.1f}s - "
                + " - ".join(f"{k}: {v}" for k, v in shown.items()),
                file=sys.stderr,
                flush=True,
            )

    def on_train_end(self, logs: Logs = None) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _resolve_mode(mode: str, monitor: str, arg: str = "mode") -> str:
    if mode not in ("auto", "min", "max"):
        raise GraiaValueError(f"{arg}: expected 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    name = monitor.lower()
    if "acc" in name or name.endswith("auc") or name.startswith("fmeasure"):
        return "max"
    return "min"


def _better(mode: str, current: float, reference: float, min_delta: float = 0.0) -> bool:
    """Whether ``current`` improves on ``reference`` by more than ``min_delta`` (NaN never does)."""
    if mode == "min":
        return current < reference - min_delta
    return current > reference + min_delta


def _number(value: Any) -> float | None:
    try:
        return float(_plain(value))
    except (TypeError, ValueError):
        return None


class EarlyStopping(Callback):
    """Stop training when a monitored metric has stopped improving.

    Args:
        monitor: Metric to watch, a key of the epoch logs (default ``"val_loss"``).
        min_delta: Smallest change that counts as an improvement (its sign is ignored).
        patience: Epochs without improvement after which training stops.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (``"max"`` for metrics whose name contains
            ``"acc"``, ``"min"`` otherwise).
        restore_best_weights: When training is stopped by this callback, put back the model
            state (``model.get_weights()`` / ``model.set_weights()``) of the best epoch.
        baseline: Training stops if the metric does not improve on this value within
            ``patience`` epochs; ``None``: no baseline.
        start_from_epoch: Epochs to wait before monitoring starts (warm-up).
        verbose: 1 prints a line when training is stopped.

    Attributes:
        best: Best value seen. ``best_epoch``: its epoch. ``stopped_epoch``: epoch at which
        training was stopped (0 if it was not). ``wait``: epochs since the last improvement.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0,
        patience: int = 0,
        mode: str = "auto",
        restore_best_weights: bool = False,
        baseline: float | None = None,
        start_from_epoch: int = 0,
        verbose: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(monitor, str) or not monitor:
            raise GraiaValueError(f"monitor: expected a metric name, got {monitor!r}")
        patience = integer(patience, "patience", minimum=0)
        start_from_epoch = integer(start_from_epoch, "start_from_epoch", minimum=0)
        delta = _number(min_delta)
        if delta is None or not math.isfinite(delta):
            raise GraiaValueError(f"min_delta: expected a finite number, got {min_delta!r}")
        self.monitor = monitor
        self.min_delta = abs(delta)
        self.patience = patience
        self.mode = _resolve_mode(mode, monitor)
        self.restore_best_weights = bool(restore_best_weights)
        self.baseline = None if baseline is None else float(baseline)
        self.start_from_epoch = start_from_epoch
        self.verbose = verbose
        self._reset()

    def _reset(self) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best_epoch = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_weights: Any = None

    def on_train_begin(self, logs: Logs = None) -> None:
        """Reset the state, so the same instance can be used for several ``fit`` calls."""
        self._reset()

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        """Compare the monitored metric with the best so far; stop after ``patience`` epochs."""
        current = _number((logs or {}).get(self.monitor))
        if current is None:
            available = ", ".join(sorted(logs or {})) or "none"
            warnings.warn(
                f"EarlyStopping: metric {self.monitor!r} is not in the epoch logs "
                f"(available: {available}); skipping",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = copy.deepcopy(self.model.get_weights())
        if epoch < self.start_from_epoch:
            return
        self.wait += 1
        if _better(self.mode, current, self.best, self.min_delta):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = copy.deepcopy(self.model.get_weights())
            # Only an improvement that also beats the baseline restarts the count.
            if self.baseline is None or _better(self.mode, current, self.baseline, self.min_delta):
                self.wait = 0
                return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.verbose > 0:
                print(f"Epoch {epoch + 1}: early stopping")
            if self.restore_best_weights and self.best_weights is not None:
                if self.verbose > 0:
                    print(
                        f"Restoring model weights from the end of the best epoch: "
                        f"{self.best_epoch + 1}."
                    )
                self.model.set_weights(copy.deepcopy(self.best_weights))


class ModelCheckpoint(Callback):
    """Save the model after each epoch (or only when the monitored metric improves).

    Args:
        filepath: Where to save; formatted with ``epoch`` (1-based, as Keras) and the epoch's
            logs, e.g. ``"ckpt-{epoch:02d}-{val_accuracy:.3f}.graia"``. Parent directories are
            created.
        monitor: Metric deciding "best" for ``save_best_only``.
        save_best_only: Save only when ``monitor`` improves on the best value so far (the file
            is overwritten each time unless ``filepath`` has placeholders).
        mode: ``"min"``, ``"max"`` or ``"auto"`` (as :class:`EarlyStopping`).
        verbose: 1 prints a line per save.
        save_weights_only: Call ``model.save_weights(path)`` instead of ``model.save(path)``.

    Attributes:
        best: Best value of ``monitor`` seen. ``last_saved``: path of the last file written.
    """

    def __init__(
        self,
        filepath: str | os.PathLike[str],
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
        verbose: int = 0,
        save_weights_only: bool = False,
    ) -> None:
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.save_best_only = bool(save_best_only)
        self.mode = _resolve_mode(mode, monitor)
        self.verbose = verbose
        self.save_weights_only = bool(save_weights_only)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.last_saved: str | None = None

    def _path(self, epoch: int, logs: Mapping[str, Any]) -> str:
        fields = {k: _plain(v) for k, v in logs.items()}
        fields["epoch"] = epoch + 1
        try:
            return self.filepath.format(**fields)
        except KeyError as exc:
            raise GraiaValueError(
                f"filepath: placeholder {{{exc.args[0]}}} in {self.filepath!r} is not in the "
                f"epoch logs (available: epoch, {', '.join(sorted(logs))})"
            ) from exc
        except (ValueError, IndexError) as exc:
            raise GraiaValueError(f"filepath: cannot format {self.filepath!r}: {exc}") from exc

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        """Save the model if due."""
        logs = logs or {}
        if self.save_best_only:
            current = _number(logs.get(self.monitor))
            if current is None:
                warnings.warn(
                    f"ModelCheckpoint: metric {self.monitor!r} is not in the epoch logs; skipping",
                    RuntimeWarning,
                    stacklevel=2,
                )
                return
            if not _better(self.mode, current, self.best):
                if self.verbose > 0:
                    print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best}")
                return
            previous = self.best
            self.best = current
        path = self._path(epoch, logs)
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        if self.verbose > 0:
            if self.save_best_only:
                print(
                    f"Epoch {epoch + 1}: {self.monitor} improved from {previous} to "
                    f"{current}, saving model to {path}"
                )
            else:
                print(f"Epoch {epoch + 1}: saving model to {path}")
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        self.last_saved = path


class CSVLogger(Callback):
    """Write each epoch's logs as a CSV row: ``epoch`` then the metrics in sorted order.

    Args:
        filename: The CSV file.
        separator: Field separator.
        append: Append to an existing file (its header is kept) instead of overwriting it.

    Metrics missing from an epoch's logs are written as ``NA``; metrics that appear only after
    the first epoch are not written (the columns are fixed by the first row).
    """

    def __init__(
        self,
        filename: str | os.PathLike[str],
        separator: str = ",",
        append: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(separator, str) or len(separator) != 1:
            raise GraiaValueError(f"separator: expected one character, got {separator!r}")
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = bool(append)
        self.keys: list[str] | None = None
        self._file: Any = None
        self._writer: Any = None
        self._write_header = True

    def on_train_begin(self, logs: Logs = None) -> None:
        """Open the file."""
        self._write_header = True
        if self.append and os.path.exists(self.filename):
            with open(self.filename, newline="") as f:
                first = f.readline()
            if first:
                self._write_header = False
                self.keys = next(csv.reader([first], delimiter=self.sep))[1:]
        else:
            self.keys = None
        self._file = open(self.filename, "a" if self.append else "w", newline="")  # noqa: SIM115
        self._writer = csv.writer(self._file, delimiter=self.sep, lineterminator="\n")

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        """Write one row."""
        logs = logs or {}
        if self._file is None:
            self.on_train_begin()
        if self.keys is None:
            self.keys = sorted(logs)
        if self._write_header:
            self._writer.writerow(["epoch", *self.keys])
            self._write_header = False
        row = [epoch]
        for key in self.keys:
            value = _plain(logs[key]) if key in logs else "NA"
            row.append(value if not isinstance(value, (list, tuple, np.ndarray)) else str(value))
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs: Logs = None) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
        self._file = None
        self._writer = None


class LambdaCallback(Callback):
    """A callback made of plain functions, e.g. ``LambdaCallback(on_epoch_end=lambda e, l: ...)``.

    Each argument, when given, replaces the hook of the same name (same signature).
    """

    def __init__(
        self,
        on_epoch_begin: Callable[[int, Logs], Any] | None = None,
        on_epoch_end: Callable[[int, Logs], Any] | None = None,
        on_train_begin: Callable[[Logs], Any] | None = None,
        on_train_end: Callable[[Logs], Any] | None = None,
        on_batch_begin: Callable[[int, Logs], Any] | None = None,
        on_batch_end: Callable[[int, Logs], Any] | None = None,
    ) -> None:
        super().__init__()
        hooks = {
            "on_epoch_begin": on_epoch_begin,
            "on_epoch_end": on_epoch_end,
            "on_train_begin": on_train_begin,
            "on_train_end": on_train_end,
            "on_batch_begin": on_batch_begin,
            "on_batch_end": on_batch_end,
        }
        for name, fn in hooks.items():
            if fn is not None:
                if not callable(fn):
                    raise GraiaValueError(f"{name}: expected a callable, got {fn!r}")
                setattr(self, name, fn)


class TerminateOnNaN(Callback):
    """Stop training as soon as the loss is NaN or infinite."""

    def _check(self, logs: Logs) -> None:
        loss = _number((logs or {}).get("loss"))
        if loss is not None and not math.isfinite(loss):
            print("Invalid loss, terminating training")
            self.model.stop_training = True

    def on_batch_end(self, batch: int, logs: Logs = None) -> None:
        """Check the batch loss."""
        self._check(logs)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        """Check the epoch loss."""
        self._check(logs)


class StepScheduler(Callback):
    """Set the rule's integer ``step`` at the start of each epoch, like Keras'
    ``LearningRateScheduler``: ``schedule(epoch, current_step) -> new_step``.

    The step is a rule option, so it is validated like one and saved with the model. ``option``
    names another integer option to schedule instead, such as ``local_heads``' ``head_step``.
    """

    def __init__(
        self, schedule: Callable[[int, int], int], verbose: int = 0, option: str = "step"
    ) -> None:
        super().__init__()
        if not callable(schedule):
            raise GraiaValueError(f"StepScheduler: schedule must be callable, got {schedule!r}")
        self.schedule = schedule
        self.verbose = verbose
        self.option = option

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        """Apply the schedule."""
        rule, key = self.model.rule, self.option
        if not isinstance(rule.values.get(key), int):
            raise GraiaValueError(f"StepScheduler: rule {rule.name!r} has no {key!r} option")
        new = self.schedule(epoch, rule.values[key])
        lo, hi = rule.options[key][1:]
        if isinstance(new, bool) or not isinstance(new, (int, np.integer)) or not lo <= new <= hi:
            raise GraiaValueError(
                f"StepScheduler: schedule returned {new!r}; expected an int in [{lo}, {hi}]"
            )
        rule.values[key] = int(new)
        if self.verbose:
            print(f"Epoch {epoch + 1}: StepScheduler set {key} to {new}.")

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        """Report the value used in the logs."""
        if isinstance(logs, dict):
            logs[self.option] = self.model.rule.values[self.option]


def linear_step(initial: int, epochs: int, minimum: int = 1) -> Callable[[int, int], int]:
    """A schedule for :class:`StepScheduler`: ``initial`` decaying linearly to ``minimum`` over
    ``epochs`` epochs, in integers (so every platform gets the same steps)."""

    def schedule(epoch: int, _current: int) -> int:
        return max(minimum, initial * (epochs - min(epoch, epochs)) // epochs)

    return schedule
