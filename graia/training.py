"""The model's training: :class:`Trainer`, a base class of ``Sequential`` (as Keras's trainer is of
its model) holding ``compile`` and ``fit``, and the loop behind ``fit``: argument checks, epochs
split into backend calls, validation, and the callbacks (the progress bar and the collapse warning
among them)."""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from graia import _validation, augment, backends, distributed, spec
from graia import callbacks as callbacks_mod
from graia import rules as rules_mod
from graia.errors import GraiaError, GraiaValueError, GraiaWarning, user_stacklevel

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


class Trainer:
    """The training half of a model, a base class of :class:`graia.Sequential` (as Keras's trainer
    is of its model): ``compile`` and ``fit`` work on ``self``, through the model's layers, rule
    and state."""

    def compile(
        self,
        rule: str | rules_mod.Rule | None = None,
        metrics: Sequence[str] = ("accuracy",),
        **rule_options: int | Sequence[int],
    ) -> None:
        """Choose the learning rule (``None``: the library's default) and its options."""
        rule = rules_mod.get(rule, **rule_options)
        if not rule.supports_conv and not self.is_dense:
            raise GraiaValueError(
                f"rule {rule.name!r} supports Dense layers only; use 'dfa' or 'local_heads' "
                f"for a model with Conv2D layers"
            )
        rule.check_hidden_layers(self.sizes[1:-1])
        self.rule = rule
        unknown = [m for m in metrics if m not in ("accuracy", "acc")]
        if unknown:
            raise GraiaValueError(f"compile(): unknown metric(s) {unknown}; valid: ['accuracy']")
        self.build()

    def fit(
        self,
        x: Any,
        y: Any = None,
        epochs: int = 1,
        batch_size: int = 32,
        validation_data: tuple[Any, Any] | None = None,
        validation_split: float = 0.0,
        shuffle: bool = True,
        callbacks: Sequence[Any] | None = None,
        verbose: int | str = "auto",
        initial_epoch: int = 0,
        distribute: str | None = None,
        class_weight: Mapping[Any, float] | None = None,
        sample_weight: Any = None,
    ) -> callbacks_mod.History:
        """Train for ``epochs - initial_epoch`` epochs; returns a ``History``.

        Every epoch runs inside the backend, in a few calls of whole batches. Metrics per epoch:
        ``loss`` (mean squared output error, outputs and targets scaled to [0, 1]) and
        ``accuracy`` measured during the epoch (before each batch's update), and
        ``val_loss``/``val_accuracy`` after it.

        ``distribute="data"`` (under ``mpirun``, rules ``dfa``/``local_heads``, every backend)
        shares the rows of each batch among the MPI ranks, ``distribute="units"`` (Dense
        networks) the units of every hidden layer; every rank calls ``fit`` with the same model
        and data, and the result is one process's bit for bit, on every rank. Only rank 0
        prints; a rank that fails aborts the job. See docs/distributed.md.

        ``class_weight`` (``{class: weight}``) and ``sample_weight`` (one per sample) weigh the
        samples as in Keras: each epoch visits a sample about ``weight / mean weight`` times
        (docs/arithmetic.md §5.1), so its expected contribution is proportional to its weight.

        ``x`` may also be an iterable of ``(x, y)`` batches with ``y`` left out (a generator, a
        PyTorch ``DataLoader``, a ``tf.data``-like dataset): each batch is trained as one batch,
        in order, holding one batch at a time; ``batch_size`` and ``shuffle`` do not apply.
        """
        if self.rule is None:
            raise GraiaError("call compile() before fit()")
        distributed.validate(distribute, self.rule.name, backends.name())
        distributed.validate_model(distribute, self)
        epochs = _validation.positive(epochs, "epochs")
        batch_size = _validation.positive(batch_size, "batch_size")
        initial_epoch = _validation.integer(initial_epoch, "initial_epoch", minimum=0)
        if not spec.learning_bound_ok(batch_size, self.classes):
            raise GraiaValueError(
                f"batch_size={batch_size} with {self.classes} classes could overflow the 32-bit "
                f"learning sum (batch_size * classes must be at most {spec.G_MAX // 65025})"
            )
        validation_split = _validation.fraction(validation_split, "validation_split")
        if validation_data is not None and validation_split:
            raise GraiaValueError("pass either validation_data or validation_split, not both")
        if is_batches(x, y):
            return fit_batches(
                self,
                x,
                epochs,
                initial_epoch,
                validation_data,
                validation_split,
                callbacks,
                verbose,
                distribute,
                class_weight,
                sample_weight,
            )
        xq, yq = self._validate_xy(x, y, learn=True)
        weights = sample_weights(self, yq, class_weight, sample_weight)
        if validation_split:
            cut = int(len(xq) * (1.0 - validation_split))
            if cut <= 0 or cut >= len(xq):
                raise GraiaValueError(
                    f"validation_split={validation_split} leaves no training or no validation "
                    "samples"
                )
            val = (xq[cut:], yq[cut:])
            xq, yq = xq[:cut], yq[:cut]
            weights = None if weights is None else weights[:cut]
        elif validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise GraiaValueError("validation_data must be a tuple (x_val, y_val)")
            val = self._validate_xy(*validation_data, what="_val")
        else:
            val = None
        if weights is not None:
            if not weights.any():
                raise GraiaValueError("sample_weight/class_weight: every training sample weighs 0")
            weights = spec.normalised_weights(weights)
        # Shifts left to the data are chosen before the first update (§3.3).
        self._adapt_arrays(xq)
        # In a distributed run only rank 0 prints (the user's callbacks run on every rank).
        lead = distribute is None or distributed.rank() == 0
        watch = [_CollapseWatch(xq, yq, epochs - initial_epoch)] if lead else []
        cbs, history = _callback_list(
            self, callbacks, verbose if lead else 0, watch,
            {"epochs": epochs, "batch_size": batch_size, "samples": len(xq)},
        )  # fmt: skip
        backend = self._backend()
        guard = contextlib.nullcontext()
        if distribute is not None:
            schedule = {
                "distribute": distribute,
                "batch_size": batch_size,
                "epochs": epochs,
                "initial_epoch": initial_epoch,
                "shuffle": bool(shuffle),
                "samples": len(xq),
            }
            distributed.check_agreement(self.get_state(), xq, yq, self.rule.params(), schedule)
            backend = distributed.WRAPPERS[distribute](backend)
            guard = distributed.abort_on_error()
        # With augmentation layers each epoch uploads its own transformed images (§4.1).
        augmenting = augment.has_augmentation(self.layers)
        dataset = None if augmenting else backend.upload(xq, yq)
        updates = epochs * -(-len(xq) // batch_size)
        with guard, _step_schedule(self, callbacks, epochs, updates) as decay:
            return _epochs(
                self,
                backend,
                dataset,
                cbs,
                history,
                xq,
                yq,
                val,
                epochs,
                initial_epoch,
                1 if self.rule.online else batch_size,
                shuffle,
                weights,
                decay,
            )


@contextlib.contextmanager
def _step_schedule(
    model: Trainer, callbacks: Sequence[Any] | None, epochs: int, updates: int | None
):
    """The rule's ``step_decay`` schedule for one ``fit`` of ``updates`` updates in all (``None``
    if unknown): yields ``decay(epoch)``, the epoch's ``step`` (linear from
    ``rules.first_step(step, updates)`` down over the absolute epochs ``0 .. epochs - 1``, so
    ``fit(epochs=E, initial_epoch=k)`` continues it), or ``None`` (off, or replaced by the user's
    ``StepScheduler`` of ``step``). The option keeps its value after."""
    if not model.rule.step_decay or any(
        isinstance(cb, callbacks_mod.StepScheduler) and cb.option == "step"
        for cb in callbacks or []
    ):
        yield None
        return
    step = model.rule.values["step"]
    schedule = callbacks_mod.linear_step(rules_mod.first_step(step, updates), epochs)
    try:
        yield lambda epoch: schedule(epoch, 0)
    finally:
        model.rule.values["step"] = step


def _callback_list(
    model: Trainer, callbacks: Sequence[Any] | None, verbose: int | str, watch: list,
    params: dict[str, Any],
) -> tuple[callbacks_mod.CallbackList, callbacks_mod.History]:  # fmt: skip
    """The callbacks of one ``fit``: the progress bar (unless ``verbose`` is 0 or the user
    gave one), ``watch``, the user's, and the ``History``; ``params`` plus ``verbose`` set."""
    if verbose == "auto":
        verbose = 1 if callbacks_mod._is_terminal(sys.stderr) else 2
    user_callbacks = list(callbacks or [])
    has_progbar = any(isinstance(cb, callbacks_mod.ProgbarLogger) for cb in user_callbacks)
    progress = [callbacks_mod.ProgbarLogger()] if verbose and not has_progbar else []
    history = callbacks_mod.History()
    # The progress line first, then the collapse warning, then the user's callbacks, so what
    # they print follows the epoch's line.
    cbs = callbacks_mod.CallbackList([*progress, *watch, *user_callbacks, history], model=model)
    cbs.set_params({**params, "verbose": verbose})
    return cbs, history


def _train_call(model: Trainer, backend, dataset, order: np.ndarray, steps_batch: int):
    """One ``train_epoch`` call over ``order``: returns ``(correct, sq_error)``. The handle is
    fetched for every call: a callback may have replaced the weights (set_weights)."""
    model._handle, c, e = backend.train_epoch(
        model._handle_here(), dataset, order, steps_batch, model.rule.rule_id, model.rule.params()
    )
    return int(c), int(e)


def _metrics(model: Trainer, correct: int, sq_error: int, seen: int) -> dict[str, float]:
    """``loss`` and ``accuracy`` of the ``seen`` samples trained so far in an epoch."""
    return {"loss": sq_error / (seen * model.classes * 255.0**2), "accuracy": correct / seen}


def _end_epoch(
    model: Trainer, cbs: callbacks_mod.CallbackList, val, epoch: int, logs: dict,
    start: float, extra: dict | None = None,
) -> bool:  # fmt: skip
    """Validate (``val_*``, if there is validation data), time the epoch, add ``extra``, run the
    epoch-end callbacks; returns whether training should stop."""
    if val is not None:
        cbs.on_test_begin({})
        val_logs = model._evaluate_arrays(*val)
        cbs.on_test_end(val_logs)
        logs.update({f"val_{k}": v for k, v in val_logs.items()})
    logs["seconds"] = time.perf_counter() - start
    logs.update(extra or {})
    cbs.on_epoch_end(epoch, logs)
    return model.stop_training


def _epochs(
    model, backend, dataset, cbs, history, xq, yq, val, epochs, initial_epoch, steps_batch, shuffle,
    weights=None, decay=None,
):  # fmt: skip
    """The epochs of :func:`fit`, its arguments checked; ``dataset`` is ``None`` when the model
    augments its inputs (then uploaded per epoch); ``weights``: §5.1's normalised weights;
    ``decay(epoch)`` the epoch's rule step."""
    model.stop_training = False
    cbs.on_train_begin({})
    augmenting = dataset is None
    for epoch in range(initial_epoch, epochs):
        if decay is not None:
            model.rule.values["step"] = decay(epoch)
        cbs.on_epoch_begin(epoch, {})
        order = epoch_order(len(xq), model.seed, epoch, shuffle, weights)
        n, chunk = len(order), epoch_chunk(len(order), steps_batch)
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
            c, e = _train_call(model, backend, dataset, order[lo : lo + chunk], steps_batch)
            correct += c
            sq_error += e
            seen = lo + size
            cbs.on_batch_end(
                (seen - 1) // steps_batch,
                {"size": size, **_metrics(model, correct, sq_error, seen)},
            )
        extra = {}
        if isinstance(backend, distributed.Parallel):
            extra["communication_seconds"] = backend.communication_seconds
        if _end_epoch(model, cbs, val, epoch, _metrics(model, correct, sq_error, n), start, extra):
            break
    cbs.on_train_end({})
    model.history = history
    return history


def is_batches(x: Any, y: Any) -> bool:
    """Whether ``fit``'s ``x`` is an iterable of ``(x, y)`` batches (``y`` not given): a
    generator, a PyTorch ``DataLoader``, a ``tf.data``-like object, anything iterable but an
    array, a list or a tuple."""
    return y is None and hasattr(x, "__iter__") and not isinstance(x, (np.ndarray, list, tuple))


def _unpack_batch(model: Trainer, batch: Any, step: int) -> tuple[np.ndarray, np.ndarray]:
    """One yielded ``(x, y)`` batch, validated like ``fit``'s arrays (tensors with ``numpy()``
    are read through it)."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise GraiaValueError(
            f"batch {step} of x must be a pair (x, y), got {type(batch).__name__}"
            + (f" of {len(batch)}" if isinstance(batch, (tuple, list)) else "")
        )
    xb, yb = (
        b.numpy() if hasattr(b, "numpy") and not isinstance(b, np.ndarray) else b for b in batch
    )
    xq, yq = model._validate_xy(xb, yb, what=f" of batch {step}", learn=True)
    if not spec.learning_bound_ok(len(xq), model.classes):
        raise GraiaValueError(
            f"batch {step} holds {len(xq)} samples: with {model.classes} classes that could "
            f"overflow the 32-bit learning sum (at most {spec.G_MAX // 65025 // model.classes})"
        )
    return xq, yq


def fit_batches(
    model: Trainer, batches: Any, epochs: int, initial_epoch: int, validation_data: Any,
    validation_split: float, callbacks: Sequence[Any] | None, verbose: int | str,
    distribute: str | None, class_weight: Any, sample_weight: Any,
) -> callbacks_mod.History:  # fmt: skip
    """``fit`` on an iterable of ``(x, y)`` batches: each batch is validated, uploaded and
    trained as one batch, in the order given, so only one batch is held at a time. With the
    batches of the array path (``shuffle=False``, the same batch size) the bits are the same
    when ``batches`` has a length (without one, §7.2's first step is not raised).
    Every epoch iterates ``batches`` again; a one-shot iterator allows one epoch."""
    unsupported = {
        "validation_split": validation_split > 0,
        "distribute": distribute is not None,
        "class_weight": class_weight is not None,
        "sample_weight": sample_weight is not None,
    }
    for name, given in unsupported.items():
        if given:
            raise GraiaValueError(
                f"fit: {name} is not supported when x is an iterable of batches"
                + (" (pass validation_data)" if name == "validation_split" else "")
            )
    if augment.has_augmentation(model.layers):
        raise GraiaValueError(
            "fit: a model with augmentation layers trains on arrays, not on an iterable of batches"
        )
    if iter(batches) is batches and epochs - initial_epoch > 1:
        raise GraiaValueError(
            f"fit: x is a one-shot iterator (e.g. a generator), which cannot be read again for "
            f"{epochs - initial_epoch} epochs; pass an iterable with __iter__ (a DataLoader, a "
            "class) or run one epoch per fit call"
        )
    val = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise GraiaValueError("validation_data must be a tuple (x_val, y_val)")
        val = model._validate_xy(*validation_data, what="_val")
    steps = len(batches) if hasattr(batches, "__len__") else None
    cbs, history = _callback_list(
        model, callbacks, verbose, [], {"epochs": epochs, "steps": steps, "samples": None}
    )
    backend = model._backend()
    with _step_schedule(model, callbacks, epochs, steps and epochs * steps) as decay:
        return _batch_epochs(
            model, backend, batches, cbs, history, val, epochs, initial_epoch, decay
        )


def _batch_epochs(model, backend, batches, cbs, history, val, epochs, initial_epoch, decay):
    """The epochs of :func:`fit_batches`, its arguments checked."""
    model.stop_training = False
    cbs.on_train_begin({})
    for epoch in range(initial_epoch, epochs):
        if decay is not None:
            model.rule.values["step"] = decay(epoch)
        cbs.on_epoch_begin(epoch, {})
        start = time.perf_counter()
        correct = sq_error = seen = 0
        for step, batch in enumerate(batches):
            xq, yq = _unpack_batch(model, batch, step)
            # Shifts left to the data are chosen from the first batch (§3.3).
            model._adapt_arrays(xq)
            cbs.on_batch_begin(step, {})
            dataset = backend.upload(xq, yq)
            order = np.arange(len(xq), dtype=np.int32)
            c, e = _train_call(model, backend, dataset, order, 1 if model.rule.online else len(xq))
            del dataset  # one batch on the device at a time
            correct, sq_error, seen = correct + c, sq_error + e, seen + len(xq)
            cbs.on_batch_end(step, {"size": len(xq), **_metrics(model, correct, sq_error, seen)})
        if seen == 0:
            raise GraiaValueError(f"fit: x yielded no batches in epoch {epoch + 1}")
        if _end_epoch(model, cbs, val, epoch, _metrics(model, correct, sq_error, seen), start):
            break
    cbs.on_train_end({})
    model.history = history
    return history


def epoch_order(
    n: int, seed: int, epoch: int, shuffle: bool, weights: np.ndarray | None
) -> np.ndarray:
    """Epoch ``epoch``'s sample order (i32): §5's permutation of ``0..n-1`` (or ``0..n-1`` with
    ``shuffle=False``); with sample weights, each sample ``i`` is listed ``count_i`` times
    (§5.1, in index order) and that list is what is permuted."""
    if weights is None:
        return (
            spec.permutation(n, np.uint64(seed), epoch) if shuffle else np.arange(n, dtype=np.int32)
        )
    counts = spec.weighted_counts(weights, np.uint64(seed), epoch)
    if not counts.any():  # a tiny set may draw nothing: its heaviest sample then goes once
        counts[np.argmax(weights)] = 1
    visits = np.repeat(np.arange(n, dtype=np.int32), counts)
    return visits[spec.permutation(len(visits), np.uint64(seed), epoch)] if shuffle else visits


def sample_weights(
    model: Trainer, yq: np.ndarray, class_weight: Any, sample_weight: Any
) -> np.ndarray | None:
    """Each sample's weight ``sample_weight[i] * class_weight[y_i]`` (Keras's product; a class
    missing from ``class_weight`` weighs 1) in §5.1's fixed point, i64; ``None`` without
    weights. Weights are finite, in ``[0, 2**16]``; ``class_weight``'s keys are class ids, or
    class names for a model that has them."""
    if class_weight is None and sample_weight is None:
        return None
    w = np.ones(len(yq), np.float64)
    if sample_weight is not None:
        arr = np.asarray(sample_weight)
        if arr.dtype == bool or arr.dtype.kind not in "iuf" or arr.shape != (len(yq),):
            raise GraiaValueError(
                f"sample_weight must be 1-D numbers, one per sample ({len(yq)}), got dtype "
                f"{arr.dtype}, shape {arr.shape}"
            )
        w *= arr
    if class_weight is not None:
        if not isinstance(class_weight, Mapping):
            raise GraiaValueError(
                f"class_weight must be a dict {{class: weight}}, got {type(class_weight).__name__}"
            )
        names = model.class_names
        index = {name: i for i, name in enumerate(names)} if names is not None else None
        per_class = np.ones(model.classes, np.float64)
        for key, value in class_weight.items():
            if index is not None:
                c = index.get(key)
            else:
                known = isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_))
                c = int(key) if known and 0 <= key < model.classes else None
            if c is None:
                raise GraiaValueError(f"class_weight: {key!r:.40} is not a class of this model")
            if isinstance(value, (bool, np.bool_)) or not isinstance(
                value, (int, float, np.number)
            ):
                raise GraiaValueError(
                    f"class_weight[{key!r:.40}] must be a number, got {value!r:.40}"
                )
            per_class[c] = value
        w *= per_class[yq]
    if not np.all(np.isfinite(w)) or w.min() < 0 or w.max() > spec.WEIGHT_MAX:
        raise GraiaValueError(
            f"sample_weight/class_weight: each sample's weight must be finite and in "
            f"[0, {spec.WEIGHT_MAX}], got values in [{w.min():g}, {w.max():g}]"
        )
    return np.rint(np.ldexp(w, spec.WEIGHT_FRACTION_BITS)).astype(np.int64)


def _chance_bound(share: float) -> float:
    """The score above which a model is above the chance level ``share``: by a margin that
    imbalanced and hard data sets clear (at least 0.05, at most a tenth of what is left)."""
    return min(max(1.5 * share, share + 0.05), share + 0.1 * (1 - share))


def _mean_recall(y: np.ndarray, predicted: np.ndarray) -> float:
    """The balanced accuracy: each class's share of its samples answered right, averaged over the
    classes in ``y``. Answers that do not depend on the inputs, however spread over classes,
    score ``1 / classes`` on average."""
    return float(np.mean([np.mean(predicted[y == c] == c) for c in np.unique(y)]))


class _CollapseWatch(callbacks_mod.Callback):
    """Warns (once per ``fit``) when training has collapsed: the network is at chance at two
    checks in a row, or at the fit's last epoch. At chance: the accuracy measured during the
    epoch is not above always answering the commonest class, and on a fixed probe of training
    samples after the epoch the answers match the labels no better than chance: their mean
    recall per class is about ``1 / classes``, as for answers that ignore the inputs, be they
    one class or spread over several. A fit that learns may dip to chance for an epoch (an
    imbalanced set's), not stay there; dead hidden units alone are no collapse (a healthy fit
    may leave half of them silent). Checked after every epoch from a quarter of the fit's
    epochs on (at least the second)."""

    PROBE = 512

    def __init__(self, xq: np.ndarray, yq: np.ndarray, epochs_in_fit: int) -> None:
        super().__init__()
        self.epochs_in_fit = epochs_in_fit
        step = max(1, len(xq) // self.PROBE)
        self.x, self.y = xq[::step][: self.PROBE], yq[::step][: self.PROBE]
        self.majority = float(np.bincount(yq).max()) / len(yq)
        self.classes = len(np.unique(self.y))
        self.done = False
        self.seen = 0
        #: Whether the previous check found the network at chance.
        self.at_chance = False

    def on_epoch_end(self, epoch: int, logs: callbacks_mod.Logs = None) -> None:
        self.seen += 1
        # Not before a quarter of the fit's epochs (at least two): a small dataset's first
        # epochs are a handful of updates.
        early = self.seen < min(self.epochs_in_fit, max(2, self.epochs_in_fit // 4))
        if self.done or early or self.classes < 2:
            return
        before, self.at_chance = self.at_chance, False
        if logs["accuracy"] > _chance_bound(self.majority):
            return
        predicted = np.argmax(self.model._predict_arrays(self.x), axis=1)
        recall = _mean_recall(self.y, predicted)
        self.at_chance = recall <= _chance_bound(1 / self.classes)
        if not self.at_chance or not (before or self.seen == self.epochs_in_fit):
            return
        self.done = True
        same_class = float(np.bincount(predicted).max()) / len(predicted)
        model = self.model
        hidden = model._backend().activations(model._handle_here(), self.x)[1:-1]
        dead = [float(np.mean(a.max(axis=0) == 0)) for a in hidden]
        layers = ", ".join(
            f"{layer.name} {100 * d:.0f}%" for layer, d in zip(model.weighted_layers, dead)
        )
        warnings.warn(
            f"training has collapsed after epoch {epoch + 1}: accuracy {logs['accuracy']:.3f} "
            f"(always answering the commonest class gives {self.majority:.3f}); on "
            f"{len(self.y)} training samples after the epoch, the mean recall per class is "
            f"{recall:.3f} (chance {1 / self.classes:.3f}) and {100 * same_class:.0f}% get the same "
            "class"
            + (f", dead hidden units: {layers}" if layers else "")
            + ". Try: wider hidden layers (e.g. 256+ units) or fewer of them, a larger rule "
            "step (e.g. compile(step=4096)), or leaving every layer's shift to the data "
            "(shift=None, the default)",
            GraiaWarning,
            stacklevel=user_stacklevel(),
        )
