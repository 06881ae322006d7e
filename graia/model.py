"""``Sequential``: validation and orchestration of training; the backends do the arithmetic."""

from __future__ import annotations

import numbers
import os
import secrets
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from graia import _validation, backends, spec
from graia import layers as layers_mod
from graia import rules as rules_mod
from graia.backends.interface import (
    COUNTER_PREV_LOSS,
    COUNTER_SEED,
    COUNTER_STEP,
    HOST_STATE_DTYPES,
    HostState,
    layer_offsets,
)
from graia.errors import GraiaError, GraiaValueError, GraiaWarning

SEED_MAX = (1 << 64) - 1


def quantize_inputs(x: Any, what: str = "x") -> np.ndarray:
    """Inputs as u8: uint8 arrays pass through; integer arrays must lie in 0..255; float arrays
    must lie in [0, 1] and become ``floor(x * 255 + 0.5)``. Anything else is a ValueError."""
    arr = np.asarray(x)
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool or arr.dtype.kind not in "iuf":
        raise GraiaValueError(
            f"{what} must be a numeric array (uint8, int or float), got dtype {arr.dtype}"
        )
    if arr.size == 0:
        return arr.astype(np.uint8)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise GraiaValueError(f"{what} contains NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise GraiaValueError(
                f"{what}: float inputs must lie in [0, 1] (got values in [{lo:g}, {hi:g}]); "
                "pass uint8 arrays for 0..255 data"
            )
        return np.floor(arr * 255.0 + 0.5).astype(np.uint8)
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi > 255:
        raise GraiaValueError(
            f"{what}: integer inputs must lie in 0..255, got values in [{lo}, {hi}]"
        )
    return arr.astype(np.uint8)


class Sequential:
    """A stack of layers: ``Input`` first, then ``Dense`` layers; the last one is the output.

    Args:
        layers: the layers (more can be added with :meth:`add`).
        seed: the seed of every random choice (initialisation, sample order, rounding);
            ``None`` draws one at random (see ``model.seed``).
        name: the model's name.
    """

    def __init__(
        self,
        layers: Sequence[layers_mod.Layer] | None = None,
        seed: int | None = None,
        name: str | None = None,
    ) -> None:
        if seed is None:
            seed = secrets.randbits(63)
        self.seed = _validation.integer(seed, "seed (or None)", 0, SEED_MAX)
        self.name = _validation.name(name, "Sequential name") or "sequential"
        self.layers: list[layers_mod.Layer] = []
        self.rule: rules_mod.Rule | None = None
        self.stop_training = False
        self.history = None
        self._handle: Any = None
        self._handle_backend: str | None = None
        for layer in layers or []:
            self.add(layer)

    # ----------------------------------------------------------------------------- structure
    def add(self, layer: layers_mod.Layer) -> None:
        """Append a layer (an ``Input`` must come first, and only first)."""
        if not isinstance(layer, layers_mod.Layer):
            raise GraiaValueError(f"add() takes a graia layer, got {type(layer).__name__}")
        if isinstance(layer, layers_mod.Input) != (not self.layers):
            raise GraiaValueError("the first layer must be graia.layers.Input, and only the first")
        if self._handle is not None:
            raise GraiaError("cannot add layers to a model that has been built")
        if isinstance(layer, layers_mod.Dense) and layer.name is None:
            layer.name = f"dense_{len(self.layers) - 1}"
        self.layers.append(layer)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input sample, as given to ``Input``."""
        self._require_layers()
        return self.layers[0].shape

    @property
    def dense_layers(self) -> list[layers_mod.Dense]:
        return self.layers[1:]

    @property
    def sizes(self) -> list[int]:
        """Units per layer, input first."""
        return [layer.units for layer in self.layers]

    @property
    def classes(self) -> int:
        return self.layers[-1].units

    def _require_layers(self) -> None:
        if len(self.layers) < 2:
            raise GraiaError("the model needs an Input layer and at least one Dense layer")

    def _check_bounds(self) -> None:
        for i, layer in enumerate(self.dense_layers):
            n_in = self.sizes[i]
            if not spec.forward_bound_ok(n_in, layer.kmax):
                limit = spec.I32_MAX // (255 << layer.kmax)
                raise GraiaValueError(
                    f"layer {layer.name!r}: {n_in} inputs with kmax={layer.kmax} could overflow the "
                    f"32-bit sum (at most {limit} inputs for this kmax; see docs/arithmetic.md §3)"
                )

    def _initial_state(self) -> HostState:
        self._require_layers()
        self._check_bounds()
        sizes = np.array(self.sizes, np.int64)
        latent = [
            spec.init_latent(
                self.seed, i, self.sizes[i], layer.units, layer.kmax, layer.initializer
            )
            for i, layer in enumerate(self.dense_layers)
        ]
        total = int(layer_offsets(sizes)[-1])
        return {
            "sizes": sizes,
            "kmax": np.array([la.kmax for la in self.dense_layers], np.int32),
            "shift": np.array([la.shift for la in self.dense_layers], np.int32),
            "latent": np.concatenate(latent).astype(np.int32),
            "momentum": np.zeros(total, np.int32),
            "feedback": self._feedback(sizes),
            "counters": np.array([np.int64(np.uint64(self.seed).view(np.int64)), 0, 255], np.int64),
        }

    def _feedback(self, sizes: np.ndarray) -> np.ndarray:
        parts = [
            spec.feedback_matrix(np.uint64(self.seed), i, int(sizes[i + 1]), int(sizes[-1]))
            for i in range(len(sizes) - 2)
        ]
        return np.concatenate(parts).astype(np.int8) if parts else np.zeros(0, np.int8)

    def build(self) -> None:
        """Create the weights (done by ``compile``/``fit`` when needed)."""
        if self._handle is None:
            self._set_host_state(self._initial_state())

    @property
    def built(self) -> bool:
        return self._handle is not None

    # ------------------------------------------------------------------- backend-resident state
    def _backend(self):
        return backends.get()

    def _handle_here(self):
        """The state's handle on the backend in use, moving it there if needed."""
        self.build()
        here = backends.name()
        if self._handle_backend != here:
            host = backends.get(self._handle_backend).dump(self._handle)
            self._handle = backends.get(here).load(host)
            self._handle_backend = here
        return self._handle

    def _host_state(self) -> HostState:
        self.build()
        return backends.get(self._handle_backend).dump(self._handle)

    def _set_host_state(self, state: HostState) -> None:
        here = backends.name()
        self._handle = backends.get(here).load(state)
        self._handle_backend = here

    # ----------------------------------------------------------------------------- training
    def compile(
        self,
        rule: str | rules_mod.Rule | None = None,
        metrics: Sequence[str] = ("accuracy",),
        **rule_options: int,
    ) -> None:
        """Choose the learning rule (``None``: the library's default) and its options."""
        self.rule = rules_mod.get(rule, **rule_options)
        unknown = [m for m in metrics if m not in ("accuracy", "acc")]
        if unknown:
            raise GraiaValueError(f"compile(): unknown metric(s) {unknown}; valid: ['accuracy']")
        self.build()

    def _validate_xy(self, x: Any, y: Any, what: str = "") -> tuple[np.ndarray, np.ndarray]:
        xq = self._validate_x(x, f"x{what}")
        yarr = np.asarray(y)
        if yarr.dtype == bool or yarr.dtype.kind not in "iu":
            if (
                yarr.dtype.kind == "f"
                and yarr.size
                and np.all(np.isfinite(yarr))
                and np.all(yarr == np.round(yarr))
            ):
                raise GraiaValueError(
                    f"y{what} must hold integer class ids, got float dtype {yarr.dtype}; use y.astype(int)"
                )
            raise GraiaValueError(f"y{what} must hold integer class ids, got dtype {yarr.dtype}")
        if yarr.ndim != 1:
            raise GraiaValueError(
                f"y{what} must be 1-D (one class id per sample), got shape {yarr.shape}"
            )
        if len(yarr) != len(xq):
            raise GraiaValueError(f"x{what} has {len(xq)} samples but y{what} has {len(yarr)}")
        lo, hi = int(yarr.min()), int(yarr.max())
        if lo < 0 or hi >= self.classes:
            raise GraiaValueError(
                f"y{what}: class ids must lie in 0..{self.classes - 1}, got values in [{lo}, {hi}]"
            )
        return xq, yarr.astype(np.int32)

    def _validate_x(self, x: Any, what: str = "x", allow_empty: bool = False) -> np.ndarray:
        self._require_layers()
        arr = np.asarray(x)
        shape = self.input_shape
        features = self.sizes[0]
        if arr.ndim == 0 or (arr.shape[0] == 0 and not allow_empty):
            raise GraiaValueError(
                f"{what} is empty; expected shape (n, {', '.join(map(str, shape))}) with n > 0"
            )
        if arr.shape[1:] != shape and arr.shape[1:] != (features,):
            raise GraiaValueError(
                f"{what} has shape {arr.shape}; expected (n, {', '.join(map(str, shape))})"
                + (f" or (n, {features})" if len(shape) > 1 else "")
            )
        return np.ascontiguousarray(quantize_inputs(arr, what).reshape(len(arr), features))

    @staticmethod
    def _positive(value: Any, what: str) -> int:
        return _validation.integer(value, what, minimum=1)

    def fit(
        self,
        x: Any,
        y: Any,
        epochs: int = 1,
        batch_size: int = 32,
        validation_data: tuple[Any, Any] | None = None,
        validation_split: float = 0.0,
        shuffle: bool = True,
        callbacks: Sequence[Any] | None = None,
        verbose: int | str = "auto",
        initial_epoch: int = 0,
    ):
        """Train for ``epochs - initial_epoch`` epochs; returns a ``History``.

        Every epoch runs whole inside the backend. Metrics per epoch: ``loss`` (mean squared output
        error, outputs and targets scaled to [0, 1]) and ``accuracy`` measured during the epoch
        (before each batch's update), and ``val_loss``/``val_accuracy`` after it.
        """
        from graia import callbacks as callbacks_mod

        if self.rule is None:
            raise GraiaError("call compile() before fit()")
        epochs = self._positive(epochs, "epochs")
        batch_size = self._positive(batch_size, "batch_size")
        initial_epoch = _validation.integer(initial_epoch, "initial_epoch", minimum=0)
        if not spec.learning_bound_ok(batch_size, self.classes):
            raise GraiaValueError(
                f"batch_size={batch_size} with {self.classes} classes could overflow the 32-bit "
                f"learning sum (batch_size * classes must be at most {spec.I32_MAX // 65025})"
            )
        if (
            isinstance(validation_split, (bool, np.bool_))
            or not isinstance(validation_split, numbers.Real)
            or not 0.0 <= validation_split < 1.0
        ):
            raise GraiaValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
        if validation_data is not None and validation_split:
            raise GraiaValueError("pass either validation_data or validation_split, not both")
        xq, yq = self._validate_xy(x, y)
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
            val = self._validate_xy(*validation_data, what="_val")
        else:
            val = None
        if verbose == "auto":
            verbose = 1 if _is_terminal(sys.stderr) else 2
        backend = self._backend()
        dataset = backend.upload(xq, yq)
        history = callbacks_mod.History()
        cbs = callbacks_mod.CallbackList(list(callbacks or []) + [history], model=self)
        cbs.set_params(
            {"epochs": epochs, "batch_size": batch_size, "verbose": verbose, "samples": len(xq)}
        )
        self.stop_training = False
        cbs.on_train_begin({})
        n = len(xq)
        steps_batch = 1 if self.rule.online else batch_size
        chunk = epoch_chunk(n, steps_batch)
        progress = _Progress(epochs, initial_epoch, n, verbose)
        watch = _CollapseWatch(self, xq, yq)
        for epoch in range(initial_epoch, epochs):
            cbs.on_epoch_begin(epoch, {})
            if shuffle:
                order = spec.permutation(n, np.uint64(self.seed), epoch)
            else:
                order = np.arange(n, dtype=np.int32)
            start = time.perf_counter()
            correct = sq_error = 0
            # Fetched every epoch: a callback may have replaced the weights (set_weights).
            handle = self._handle_here()
            # The epoch in a few calls of whole batches, for progress; the global step lives in
            # the state, so the bits are those of one call.
            for lo in range(0, n, chunk):
                handle, c, e = backend.train_epoch(
                    handle,
                    dataset,
                    order[lo : lo + chunk],
                    steps_batch,
                    self.rule.rule_id,
                    self.rule.params(),
                )
                self._handle = handle
                correct += int(c)
                sq_error += int(e)
                progress.advance(min(chunk, n - lo))
            logs = {
                "loss": sq_error / (n * self.classes * 255.0**2),
                "accuracy": correct / n,
            }
            if val is not None:
                progress.status("validating")
                logs.update({f"val_{k}": v for k, v in self._evaluate_arrays(*val).items()})
            logs["seconds"] = time.perf_counter() - start
            progress.epoch_end(epoch, logs)
            watch.check(epoch, epochs - initial_epoch, logs)
            cbs.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        progress.close()
        cbs.on_train_end({})
        self.history = history
        return history

    # ---------------------------------------------------------------------------- inference
    def _predict_arrays(self, xq: np.ndarray) -> np.ndarray:
        return self._backend().predict(self._handle_here(), xq)

    def predict(self, x: Any, batch_size: int | None = None, verbose: int = 0) -> np.ndarray:
        """Output activations (u8, shape ``(n, classes)``); the class is their argmax.

        Zero samples give an empty ``(0, classes)`` array, as in Keras."""
        xq = self._validate_x(x, allow_empty=True)
        if batch_size is not None:
            batch_size = self._positive(batch_size, "batch_size")
        if len(xq) == 0:
            return np.zeros((0, self.classes), np.uint8)
        if batch_size is None:
            return self._predict_arrays(xq)
        return np.concatenate(
            [self._predict_arrays(xq[i : i + batch_size]) for i in range(0, len(xq), batch_size)]
        )

    def predict_classes(self, x: Any) -> np.ndarray:
        """Predicted class ids (ties go to the lowest index)."""
        return np.argmax(self.predict(x), axis=1)

    def _evaluate_arrays(self, xq: np.ndarray, yq: np.ndarray) -> dict[str, float]:
        out = self._predict_arrays(xq).astype(np.int64)
        values = self.rule.values if self.rule is not None else {}
        targets = np.full_like(out, values.get("target_off", 0))
        targets[np.arange(len(yq)), yq] = values.get("target_on", 255)
        loss = float(((out - targets) ** 2).sum()) / (out.size * 255.0**2)
        return {"loss": loss, "accuracy": float(np.mean(np.argmax(out, axis=1) == yq))}

    def evaluate(
        self,
        x: Any,
        y: Any,
        batch_size: int | None = None,
        verbose: int = 0,
        return_dict: bool = False,
    ):
        """``[loss, accuracy]`` (or a dict with ``return_dict=True``) on ``(x, y)``."""
        if batch_size is not None:
            self._positive(batch_size, "batch_size")
        xq, yq = self._validate_xy(x, y)
        result = self._evaluate_arrays(xq, yq)
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in result.items()))
        return result if return_dict else [result["loss"], result["accuracy"]]

    def activations(self, x: Any) -> list[np.ndarray]:
        """Every layer's u8 activations for one sample ``x`` (input first), computed by the
        backend in use (identical on every backend)."""
        xq = self._validate_x(np.asarray(x)[None, ...])
        return [a[0] for a in self._backend().activations(self._handle_here(), xq)]

    def diagnostics(self, x: Any, y: Any = None) -> list[dict[str, Any]]:
        """Per Dense layer: ``dead`` (fraction of units never active on ``x``), ``saturated``
        (fraction of activations at 255), ``codes`` (weight-code histogram: count of ``|code|``
        0, 1, ..., kmax+1) and, when labels ``y`` are given, ``probe_accuracy``: the accuracy of a
        nearest-class-mean classifier on the layer's activations (a cheap linear-readability probe).
        """
        if y is None:
            xq = self._validate_x(x)
        else:
            xq, yq = self._validate_xy(x, y)
        from graia.backends.numba import NumbaBackend

        acts = NumbaBackend().activations(self._host_state(), xq)[1:]
        report = []
        for layer, a, codes in zip(self.dense_layers, acts, self.get_codes()):
            entry = {
                "layer": layer.name,
                "dead": float(np.mean(a.max(axis=0) == 0)),
                "saturated": float(np.mean(a == 255)),
                "codes": np.bincount(np.abs(codes).ravel(), minlength=layer.kmax + 2).tolist(),
            }
            if y is not None:
                feats = a.astype(np.float64)
                present = np.unique(yq)
                means = np.stack([feats[yq == c].mean(axis=0) for c in present])
                dist = (means**2).sum(axis=1)[None, :] - 2.0 * feats @ means.T
                entry["probe_accuracy"] = float(np.mean(present[np.argmin(dist, axis=1)] == yq))
            report.append(entry)
        return report

    # ------------------------------------------------------------------------------ weights
    def get_weights(self) -> list[np.ndarray]:
        """Each Dense layer's latent weights, i32 ``(n_in, n_out)`` (2**20 is a unit weight)."""
        state = self._host_state()
        offs = layer_offsets(state["sizes"])
        return [
            state["latent"][offs[i] : offs[i + 1]].reshape(self.sizes[i], self.sizes[i + 1]).copy()
            for i in range(len(self.dense_layers))
        ]

    def get_codes(self) -> list[np.ndarray]:
        """Each Dense layer's weight codes, i8 ``(n_in, n_out)``: 0 or ``±(k+1)`` for ``±2**-k``."""
        return [
            spec.codes_of_latents(w, layer.kmax)
            for w, layer in zip(self.get_weights(), self.dense_layers)
        ]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Set the latent weights from arrays shaped like :meth:`get_weights`' (momenta reset)."""
        shapes = [(self.sizes[i], self.sizes[i + 1]) for i in range(len(self.dense_layers))]
        if len(weights) != len(shapes):
            raise GraiaValueError(f"set_weights: expected {len(shapes)} arrays, got {len(weights)}")
        flat = []
        for i, (w, shape) in enumerate(zip(weights, shapes)):
            w = np.asarray(w)
            if w.shape != shape or w.dtype.kind not in "iu":
                raise GraiaValueError(
                    f"set_weights: array {i} must be integer with shape {shape}, got {w.dtype} {w.shape}"
                )
            if w.size and (int(w.min()) < -spec.LATENT_MAX or int(w.max()) > spec.LATENT_MAX):
                raise GraiaValueError(
                    f"set_weights: array {i} has values outside ±{spec.LATENT_MAX}"
                )
            flat.append(w.astype(np.int32).ravel())
        state = self._host_state()
        state["latent"] = np.concatenate(flat)
        state["momentum"] = np.zeros_like(state["momentum"])
        self._set_host_state(state)

    # ------------------------------------------------------------------------------- summary
    def count_params(self) -> int:
        return sum(self.sizes[i] * self.sizes[i + 1] for i in range(len(self.dense_layers)))

    def summary(self, print_fn=print) -> None:
        """Print layers, output shapes, parameter counts, weight-code histograms, the backend,
        and the deployed sizes (packed bytes, shift-adds, activation memory) against a float32
        model of the same shape."""
        from graia.export.summary import summary_text

        print_fn(summary_text(self))

    def export(self, path: str | os.PathLike, format: str = "c", samples: Any = None):
        """Export for deployment: dependency-free C (``graia_model.h``/``.c``, shifts and adds
        only) or ONNX (``graia_model.onnx``) into the directory ``path``, both bit-exact with
        :meth:`predict`. ``samples``: C only, inputs for the embedded self-test. Returns a
        :class:`graia.export.Exported` (files written, sizes). See docs/deploy.md."""
        from graia.export import export

        return export(self, path, format=format, samples=samples)

    # ---------------------------------------------------------------------------- save/load
    def get_config(self) -> dict:
        return {
            "name": self.name,
            "seed": self.seed,
            "layers": [layer.get_config() for layer in self.layers],
            "rule": self.rule.get_config() if self.rule else None,
        }

    def save(self, path: str | os.PathLike) -> None:
        """Save architecture, rule, weights and training position to one file (a zip, no pickle).

        The file holds ``config.json`` (layers, rule and options, seed, name, versions),
        ``metadata.json`` (backend, date, Python version) and the state arrays ``latent``,
        ``momentum`` and ``counters`` (RNG seed, global step, previous loss) as ``.npy``, so
        :func:`load_model` followed by ``fit(..., initial_epoch=...)`` continues exactly where
        training stopped. The write is atomic: an existing file is replaced only once the new one
        is complete. Load it with :func:`load_model` on any backend.
        """
        from graia import __version__, io

        state = self._host_state()
        config = {"graia_version": __version__, "content": "model", **self.get_config()}
        metadata = {
            "backend": self._handle_backend,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "python": sys.version.split()[0],
        }
        arrays = {k: state[k] for k in ("latent", "momentum", "counters")}
        io.write_model_file(path, config, metadata, arrays)

    def save_weights(self, path: str | os.PathLike) -> None:
        """Save only the latent weights (as :meth:`get_weights` returns them) to one file.

        The file has the same safe format as :meth:`save` (``config.json`` marks it as
        ``"content": "weights"`` and lists the layers; arrays ``weights_0``, ``weights_1``, ...,
        i32 ``(n_in, n_out)``). Momenta, rule and RNG position are not saved; load it into a
        model of the same layer sizes with :meth:`load_weights`.
        """
        from graia import __version__, io

        config = {
            "graia_version": __version__,
            "content": "weights",
            "layers": [layer.get_config() for layer in self.layers],
        }
        arrays = {f"weights_{i}": w for i, w in enumerate(self.get_weights())}
        metadata = {"saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        io.write_model_file(path, config, metadata, arrays)

    def load_weights(self, path: str | os.PathLike) -> None:
        """Load weights written by :meth:`save_weights` into this model (momenta reset).

        Raises:
            ModelFileError: The file is unreadable, is not a weights file, or its arrays do not
                match this model's layer sizes (nothing is changed then).
        """
        from graia import io
        from graia.errors import ModelFileError

        source = os.fspath(path)
        self._require_layers()
        shapes = [(self.sizes[i], self.sizes[i + 1]) for i in range(len(self.dense_layers))]
        names = [f"weights_{i}" for i in range(len(shapes))]

        def expected_arrays(config: dict[str, Any]) -> dict[str, tuple[Any, tuple[int, ...]]]:
            if config.get("content") != "weights":
                raise ModelFileError(
                    f"{source}: not a weights file (written by save_weights); "
                    "load a whole model with graia.load_model()"
                )
            return {name: (np.int32, shape) for name, shape in zip(names, shapes)}

        _config, _metadata, arrays = io.read_model_file(path, expected=expected_arrays)
        try:
            self.set_weights([np.ascontiguousarray(arrays[n]) for n in names])
        except GraiaValueError as exc:
            raise ModelFileError(f"{source}: {exc}") from exc


def _model_from_config(config: dict[str, Any], source: str) -> Sequential:
    """The (unbuilt) model a ``config.json`` describes; ModelFileError when it is invalid."""
    from graia.errors import ModelFileError

    if config.get("content") == "weights":
        raise ModelFileError(
            f"{source}: holds weights only (written by save_weights); build the model and call "
            "model.load_weights() instead"
        )
    try:
        layer_configs = config["layers"]
        if not isinstance(layer_configs, list) or not all(
            isinstance(c, dict) for c in layer_configs
        ):
            raise TypeError(f"'layers' must be a list of objects, got {layer_configs!r:.80}")
        seed = config["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"'seed' must be an int, got {seed!r:.80}")
        name = config.get("name")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"'name' must be a string, got {name!r:.80}")
        model = Sequential([layers_mod.from_config(c) for c in layer_configs], seed=seed, name=name)
        model._require_layers()
        model._check_bounds()
        rule = config.get("rule")
        if rule is not None:
            if not isinstance(rule, dict) or not isinstance(rule.get("options", {}), dict):
                raise TypeError(
                    f"'rule' must be an object with 'name' and 'options', got {rule!r:.80}"
                )
            model.rule = rules_mod.get(rule["name"], **rule.get("options", {}))
    except KeyError as exc:
        raise ModelFileError(f"{source}: invalid config.json: missing key {exc}") from exc
    except (TypeError, ValueError, GraiaError) as exc:
        raise ModelFileError(f"{source}: invalid config.json: {exc}") from exc
    return model


def load_model(path: str | os.PathLike) -> Sequential:
    """Load a model saved with :meth:`Sequential.save`, on the backend in use.

    Restores layers, rule and options, seed, name, latent weights, momenta and the training
    counters, so predictions are identical on every backend and ``fit(initial_epoch=...)``
    resumes exactly. Nothing is unpickled, and the arrays are checked against the architecture
    in the file's config before any of them is decompressed (docs/security.md).

    Raises:
        ModelFileError: The file is missing, not a model file, truncated or corrupt, of a newer
            format version, lacks a member or an array, has arrays of the wrong dtype or shape,
            an invalid config, out-of-range weights, or counters that do not match its seed.
    """
    from graia import io
    from graia.errors import ModelFileError

    source = os.fspath(path)
    built: list[Sequential] = []

    def expected_arrays(config: dict[str, Any]) -> dict[str, tuple[Any, tuple[int, ...]]]:
        model = _model_from_config(config, source)
        built.append(model)
        synapses = sum(a * b for a, b in zip(model.sizes, model.sizes[1:]))
        shapes = {"latent": (synapses,), "momentum": (synapses,), "counters": (3,)}
        return {key: (HOST_STATE_DTYPES[key], shape) for key, shape in shapes.items()}

    _config, _metadata, arrays = io.read_model_file(path, expected=expected_arrays)
    model = built[0]
    counters = arrays["counters"]
    if int(counters[COUNTER_SEED]) != int(np.uint64(model.seed).view(np.int64)):
        raise ModelFileError(f"{source}: the saved RNG counters do not match the model's seed")
    if counters[COUNTER_STEP] < 0 or not 0 <= counters[COUNTER_PREV_LOSS] <= 255:
        raise ModelFileError(f"{source}: invalid training counters {counters.tolist()}")
    if np.abs(arrays["latent"].astype(np.int64)).max(initial=0) > spec.LATENT_MAX:
        raise ModelFileError(f"{source}: latent weights out of range (at most ±{spec.LATENT_MAX})")
    state = model._initial_state()
    for key in ("latent", "momentum", "counters"):
        state[key] = np.ascontiguousarray(arrays[key], dtype=HOST_STATE_DTYPES[key])
    model._set_host_state(state)
    return model


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


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _Progress:
    """Training progress on stderr: a bar moving within epochs (``verbose=1`` on a terminal), or
    one plain line per epoch (``verbose=2``, or ``verbose=1`` when stderr is not a terminal,
    where a bar's redraws would pile up on one line); nothing for ``verbose=0``."""

    def __init__(self, epochs: int, initial_epoch: int, samples: int, verbose: int) -> None:
        self.epochs = epochs
        self.samples = samples
        self.verbose = verbose
        self.bar = None
        if verbose == 1 and _is_terminal(sys.stderr):
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=epochs * samples,
                initial=initial_epoch * samples,
                unit="sample",
                unit_scale=True,
                dynamic_ncols=True,
                file=sys.stderr,
                desc=f"epoch {initial_epoch + 1}/{epochs}",
            )

    def advance(self, samples: int) -> None:
        if self.bar is not None:
            self.bar.update(samples)

    def status(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(text)

    def epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        shown = {k: f"{v:.4f}" for k, v in logs.items() if k != "seconds"}
        if self.bar is not None:
            self.bar.set_description(f"epoch {min(epoch + 2, self.epochs)}/{self.epochs}")
            self.bar.set_postfix(shown)
        elif self.verbose:
            print(
                f"Epoch {epoch + 1}/{self.epochs} - {logs['seconds']:.1f}s - "
                + " - ".join(f"{k}: {v}" for k, v in shown.items()),
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _CollapseWatch:
    """Warns (once per ``fit``) when training has collapsed: the accuracy is no better than
    always answering the commonest class and the network gives (nearly) every input the same
    class, or most hidden units never fire. Checked on a fixed probe of training samples after
    every epoch but the first of a multi-epoch run."""

    PROBE = 512

    def __init__(self, model: Sequential, xq: np.ndarray, yq: np.ndarray) -> None:
        self.model = model
        step = max(1, len(xq) // self.PROBE)
        self.x, self.y = xq[::step][: self.PROBE], yq[::step][: self.PROBE]
        self.majority = float(np.bincount(yq).max()) / len(yq)
        self.done = False
        self.seen = 0

    def check(self, epoch: int, epochs_in_fit: int, logs: dict[str, float]) -> None:
        self.seen += 1
        if self.done or (self.seen == 1 and epochs_in_fit > 1) or len(np.unique(self.y)) < 2:
            return
        if logs["accuracy"] > max(1.5 * self.majority, self.majority + 0.05):
            return
        predicted = np.argmax(self.model._predict_arrays(self.x), axis=1)
        same_class = float(np.bincount(predicted).max()) / len(predicted)
        from graia.backends.numba import NumbaBackend

        hidden = NumbaBackend().activations(self.model._host_state(), self.x)[1:-1]
        dead = [float(np.mean(a.max(axis=0) == 0)) for a in hidden]
        dead_all = sum(d * a.shape[1] for d, a in zip(dead, hidden)) / max(
            1, sum(a.shape[1] for a in hidden)
        )
        if same_class < 0.9 and dead_all < 0.5:
            return
        self.done = True
        layers = ", ".join(
            f"{layer.name} {100 * d:.0f}%" for layer, d in zip(self.model.dense_layers, dead)
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
            stacklevel=3,
        )
