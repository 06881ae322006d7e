"""The training loop behind ``Sequential.fit``: argument checks, epochs split into backend calls,
validation, and the callbacks (the progress bar and the collapse warning among them)."""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from graia import _validation, augment, backends, distributed, spec
from graia import callbacks as callbacks_mod
from graia.errors import GraiaError, GraiaValueError, GraiaWarning, user_stacklevel

if TYPE_CHECKING:
    from graia.model import Sequential

#: Epochs are split into at most this many backend calls (for progress within an epoch) ...
EPOCH_CHUNKS = 10
#: ... of at least this many samples each (every call has a fixed cost on a GPU).
MIN_CHUNK_SAMPLES = 4096


def epoch_chunk(samples: int, batch_size: int) -> int:
    """Samples per backend call within an epoch: a multiple of ``batch_size``, so that splitting
    changes no bit of the result, about ``samples / EPOCH_CHUNKS`` and at least
    ``MIN_CHUNK_SAMPLES``."""
    per_chunk = max(-(-samples // EPOCH_CHUNKS), MIN_CHUNK_SAMPLES)
    return max(batch_size, -(-per_chunk // batch_size) * batch_size)


def fit(
    model: Sequential,
    x: Any,
    y: Any,
    epochs: int,
    batch_size: int,
    validation_data: tuple[Any, Any] | None,
    validation_split: float,
    shuffle: bool,
    callbacks: Sequence[Any] | None,
    verbose: int | str,
    initial_epoch: int,
    distribute: str | None = None,
) -> callbacks_mod.History:
    """Train ``model`` (see :meth:`Sequential.fit`): every argument is checked before anything is
    computed, then each epoch runs as a few backend calls of whole batches."""
    if model.rule is None:
        raise GraiaError("call compile() before fit()")
    distributed.validate(distribute, model.rule.name, backends.name())
    distributed.validate_model(distribute, model)
    epochs = _validation.positive(epochs, "epochs")
    batch_size = _validation.positive(batch_size, "batch_size")
    initial_epoch = _validation.integer(initial_epoch, "initial_epoch", minimum=0)
    if not spec.learning_bound_ok(batch_size, model.classes):
        raise GraiaValueError(
            f"batch_size={batch_size} with {model.classes} classes could overflow the 32-bit "
            f"learning sum (batch_size * classes must be at most {spec.I32_MAX // 65025})"
        )
    validation_split = _validation.fraction(validation_split, "validation_split")
    if validation_data is not None and validation_split:
        raise GraiaValueError("pass either validation_data or validation_split, not both")
    xq, yq = model._validate_xy(x, y)
    if validation_split:
        cut = int(len(xq) * (1.0 - validation_split))
        if cut <= 0 or cut >= len(xq):
            raise GraiaValueError(
                f"validation_split={validation_split} leaves no training or no validation samples"
            )
        val = (xq[cut:], yq[cut:])
        xq, yq = xq[:cut], yq[:cut]
    elif validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise GraiaValueError("validation_data must be a tuple (x_val, y_val)")
        val = model._validate_xy(*validation_data, what="_val")
    else:
        val = None
    # Shifts left to the data are chosen before the first update (§3.3).
    model._adapt_arrays(xq)
    if verbose == "auto":
        verbose = 1 if callbacks_mod._is_terminal(sys.stderr) else 2
    # In a distributed run only rank 0 prints (the user's callbacks run on every rank).
    lead = distribute is None or distributed.rank() == 0
    if not lead:
        verbose = 0
    user_callbacks = list(callbacks or [])
    has_progbar = any(isinstance(cb, callbacks_mod.ProgbarLogger) for cb in user_callbacks)
    progress = [callbacks_mod.ProgbarLogger()] if verbose and not has_progbar else []
    watch = [_CollapseWatch(xq, yq, epochs - initial_epoch)] if lead else []
    history = callbacks_mod.History()
    # The progress line first, then the collapse warning, then the user's callbacks, so what
    # they print follows the epoch's line.
    cbs = callbacks_mod.CallbackList([*progress, *watch, *user_callbacks, history], model=model)
    cbs.set_params(
        {"epochs": epochs, "batch_size": batch_size, "verbose": verbose, "samples": len(xq)}
    )
    backend = model._backend()
    guard = contextlib.nullcontext()
    if distribute is not None:
        distributed.check_agreement(model._host_state(), xq, yq, model.rule.params())
        backend = distributed.WRAPPERS[distribute](backend)
        guard = distributed.abort_on_error()
    # With augmentation layers each epoch uploads its own transformed images (§4.1).
    augmenting = augment.has_augmentation(model.layers)
    dataset = None if augmenting else backend.upload(xq, yq)
    decay = _step_decay(model, user_callbacks, epochs, initial_epoch)
    step = model.rule.values.get("step")
    try:
        with guard:
            return _epochs(model, backend, dataset, cbs, history, xq, yq, val, epochs,
                           initial_epoch, 1 if model.rule.online else batch_size, shuffle,
                           decay)  # fmt: skip
    finally:
        if decay is not None:  # the option keeps its value for the next fit
            model.rule.values["step"] = step


def _step_decay(model, user_callbacks, epochs: int, initial_epoch: int):
    """The rule's ``step_decay`` schedule for this fit (``step`` down to ``step / epochs``, linear
    over epochs ``0 .. epochs - 1``), or ``None`` (off, or replaced by the user's ``StepScheduler`` of ``step``)."""
    if not model.rule.step_decay or any(
        isinstance(cb, callbacks_mod.StepScheduler) and cb.option == "step" for cb in user_callbacks
    ):
        return None
    # Over the absolute epochs 0..epochs-1, so fit(epochs=E, initial_epoch=k) continues it.
    schedule = callbacks_mod.linear_step(model.rule.values["step"], epochs)
    return lambda epoch: schedule(epoch, 0)


def _epochs(
    model, backend, dataset, cbs, history, xq, yq, val, epochs, initial_epoch, steps_batch, shuffle,
    decay=None,
):  # fmt: skip
    """The epochs of :func:`fit`, its arguments checked; ``dataset`` is ``None`` when the model
    augments its inputs (then uploaded per epoch); ``decay(epoch)`` the epoch's rule step."""
    model.stop_training = False
    cbs.on_train_begin({})
    n = len(xq)
    chunk = epoch_chunk(n, steps_batch)
    augmenting = dataset is None
    for epoch in range(initial_epoch, epochs):
        if decay is not None:
            model.rule.values["step"] = decay(epoch)
        cbs.on_epoch_begin(epoch, {})
        if shuffle:
            order = spec.permutation(n, np.uint64(model.seed), epoch)
        else:
            order = np.arange(n, dtype=np.int32)
        start = time.perf_counter()
        if augmenting:
            dataset = None  # the previous epoch's images are freed before the next upload
            dataset = backend.upload(augment.augment(model.layers, xq, model.seed, epoch), yq)
        correct = sq_error = 0
        if isinstance(backend, distributed.Parallel):
            backend.communication_seconds = 0.0
        # The epoch in a few calls of whole batches, for progress; the global step lives in the
        # state, so the bits are those of one call.
        for lo in range(0, n, chunk):
            size = min(chunk, n - lo)
            cbs.on_batch_begin(lo // steps_batch, {})
            # Fetched for every call: a callback may have replaced the weights (set_weights).
            model._handle, c, e = backend.train_epoch(
                model._handle_here(),
                dataset,
                order[lo : lo + chunk],
                steps_batch,
                model.rule.rule_id,
                model.rule.params(),
            )
            correct += int(c)
            sq_error += int(e)
            seen = lo + size
            cbs.on_batch_end(
                (seen - 1) // steps_batch,
                {
                    "size": size,
                    "loss": sq_error / (seen * model.classes * 255.0**2),
                    "accuracy": correct / seen,
                },
            )
        logs = {"loss": sq_error / (n * model.classes * 255.0**2), "accuracy": correct / n}
        if val is not None:
            cbs.on_test_begin({})
            val_logs = model._evaluate_arrays(*val)
            cbs.on_test_end(val_logs)
            logs.update({f"val_{k}": v for k, v in val_logs.items()})
        logs["seconds"] = time.perf_counter() - start
        if isinstance(backend, distributed.Parallel):
            logs["communication_seconds"] = backend.communication_seconds
        cbs.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    cbs.on_train_end({})
    model.history = history
    return history


class _CollapseWatch(callbacks_mod.Callback):
    """Warns (once per ``fit``) when training has collapsed: the accuracy is no better than
    always answering the commonest class and the network gives (nearly) every input the same
    class, or most hidden units never fire. Checked on a fixed probe of training samples after
    every epoch but the first of a multi-epoch run."""

    PROBE = 512

    def __init__(self, xq: np.ndarray, yq: np.ndarray, epochs_in_fit: int) -> None:
        super().__init__()
        self.epochs_in_fit = epochs_in_fit
        step = max(1, len(xq) // self.PROBE)
        self.x, self.y = xq[::step][: self.PROBE], yq[::step][: self.PROBE]
        self.majority = float(np.bincount(yq).max()) / len(yq)
        self.done = False
        self.seen = 0

    def on_epoch_end(self, epoch: int, logs: callbacks_mod.Logs = None) -> None:
        self.seen += 1
        # Not before a quarter of the fit's epochs (at least two): a small dataset's first
        # epochs are a handful of updates.
        early = self.seen < min(self.epochs_in_fit, max(2, self.epochs_in_fit // 4))
        if self.done or early or len(np.unique(self.y)) < 2:
            return
        # Above the commonest class's share by a margin that imbalanced and hard sets clear.
        m = self.majority
        if logs["accuracy"] > min(max(1.5 * m, m + 0.05), m + 0.1 * (1 - m)):
            return
        predicted = np.argmax(self.model._predict_arrays(self.x), axis=1)
        same_class = float(np.bincount(predicted).max()) / len(predicted)
        model = self.model
        hidden = model._backend().activations(model._handle_here(), self.x)[1:-1]
        dead = [float(np.mean(a.max(axis=0) == 0)) for a in hidden]
        dead_all = sum(d * a.shape[1] for d, a in zip(dead, hidden)) / max(
            1, sum(a.shape[1] for a in hidden)
        )
        if same_class < 0.9 and dead_all < 0.5:
            return
        self.done = True
        layers = ", ".join(
            f"{layer.name} {100 * d:.0f}%" for layer, d in zip(self.model.weighted_layers, dead)
        )
        warnings.warn(
            f"training has collapsed after epoch {epoch + 1}: accuracy {logs['accuracy']:.3f} "
            f"(always answering the commonest class gives {self.majority:.3f}), "
            f"{100 * same_class:.0f}% of sampled inputs get the same class"
            + (f", dead hidden units: {layers}" if layers else "")
            + ". Try: wider hidden layers (e.g. 256+ units) or fewer of them, a larger rule "
            "step (e.g. compile(step=4096)), or a larger shift on the output layer "
            "(Dense(classes, shift=kmax + 1))",
            GraiaWarning,
            stacklevel=user_stacklevel(),
        )
