"""``Sequential``: the layer stack, its config and weights, and the entry points of training,
inference and saving. The training loop is graia/training.py, saving and loading
graia/saving.py, the input checks graia/_validation.py; the backends do the arithmetic."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np

from graia import _validation, adapt, augment, backends, saving, spec, training
from graia import layers as layers_mod
from graia import rules as rules_mod
from graia import state as state_mod
from graia._validation import quantize_inputs
from graia.backends.interface import (
    HostState,
    layer_blocks,
)
from graia.errors import GraiaError, GraiaValueError
from graia.saving import load_model

__all__ = ["Sequential", "load_model", "quantize_inputs"]

SEED_MAX = (1 << 64) - 1
#: ``predict_proba``'s default softmax temperature, in u8 output units.
PROBA_TEMPERATURE = 32.0


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
        if layer.name is None:
            kind = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", type(layer).__name__).lower()
            layer.name = f"{kind}_{len(self.layers) - 1}"
        self.layers.append(layer)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input sample, as given to ``Input``."""
        self._require_layers()
        return self.layers[0].shape

    @property
    def weighted_layers(self) -> list[layers_mod.Layer]:
        """The layers with weights (``Conv2D`` and ``Dense``), in order."""
        return state_mod.weighted(self.layers)

    @property
    def dense_layers(self) -> list[layers_mod.Layer]:
        """The weighted layers (an alias kept from Dense-only models)."""
        return self.weighted_layers

    @property
    def blocks(self) -> list[state_mod.Block]:
        """Each weighted layer's geometry (docs/arithmetic.md §3.1)."""
        self._require_layers()
        return state_mod.plan(self.layers)

    @property
    def sizes(self) -> list[int]:
        """Features per layer boundary: the input's, then each weighted layer's output's."""
        blocks = self.blocks
        return [blocks[0].n_in] + [b.n_out for b in blocks]

    @property
    def is_dense(self) -> bool:
        """Whether every weighted layer is ``Dense`` (what export and ``seed_hebbian`` support)."""
        return all(isinstance(layer, layers_mod.Dense) for layer in self.weighted_layers)

    @property
    def classes(self) -> int:
        return self.layers[-1].units

    def _require_layers(self) -> None:
        if len(self.layers) < 2:
            raise GraiaError("the model needs an Input layer and at least one Dense layer")

    def _check_bounds(self) -> None:
        """Raise a one-line error if the stack cannot be built (order, shapes, overflow)."""
        state_mod.plan(self.layers)

    def _initial_state(self) -> HostState:
        self._require_layers()
        return state_mod.initial(self.layers, self.seed)

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

    def _validate_xy(
        self, x: Any, y: Any, what: str = "", learn: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Inputs as u8 and labels (any form, :func:`_validation.class_ids`) as class ids;
        ``learn``: class names first seen here become the model's."""
        xq = self._validate_x(x, f"x{what}")
        yq, names = _validation.class_ids(
            y, len(xq), self.classes, self.class_names, f"y{what}", learn
        )
        self.class_names = names
        return xq, yq

    @property
    def class_names(self) -> list | None:
        """The name of each class (output unit), learned by ``fit`` from labels that are not
        integers (sorted), or set by the user; ``None``: labels are the integer class ids.
        ``predict_classes`` returns names when the model has them."""
        return getattr(self, "_class_names", None)

    @class_names.setter
    def class_names(self, value: Any) -> None:
        self._class_names = _validation.class_names(value, self.classes)

    def _validate_x(self, x: Any, what: str = "x") -> np.ndarray:
        self._require_layers()
        return _validation.inputs(
            x, self.input_shape, self.sizes[0], what, self._preprocessing_layer()
        )

    def _preprocessing_layer(self) -> layers_mod.Layer | None:
        """The ``Normalization``/``Rescaling`` right after ``Input`` (§8), if any."""
        return self.layers[1] if len(self.layers) > 1 and self.layers[1].preprocessing else None

    def adapt(self, x: Any) -> list[int]:
        """Choose the activation shift of every weighted layer built with ``shift=None`` (and
        not yet adapted) from the inputs ``x``, layer by layer, with exact integer arithmetic
        (docs/arithmetic.md §3.3); ``fit`` does this before its first update. Returns every
        weighted layer's shift."""
        self._adapt_arrays(self._validate_x(x))
        return [layer.shift for layer in self.weighted_layers]

    def _adapt_arrays(self, xq: np.ndarray) -> None:
        """:meth:`adapt` on validated u8 inputs."""
        pending = [layer.shift_pending for layer in self.weighted_layers]
        if not any(pending):
            return
        state = self._host_state()
        state["shift"] = adapt.choose_shifts(state, xq[adapt.sample_rows(len(xq))], pending)
        self._set_host_state(state)
        for layer, shift in zip(self.weighted_layers, state["shift"]):
            layer.shift, layer.shift_pending = int(shift), False

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
        class_weight: dict | None = None,
        sample_weight: Any = None,
    ):
        """Train for ``epochs - initial_epoch`` epochs; returns a ``History``.

        Every epoch runs inside the backend, in a few calls of whole batches. Metrics per epoch: ``loss`` (mean squared output
        error, outputs and targets scaled to [0, 1]) and ``accuracy`` measured during the epoch
        (before each batch's update), and ``val_loss``/``val_accuracy`` after it.

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
        return training.fit(
            self,
            x,
            y,
            epochs=epochs,
            batch_size=batch_size,
            validation_data=validation_data,
            validation_split=validation_split,
            shuffle=shuffle,
            callbacks=callbacks,
            verbose=verbose,
            initial_epoch=initial_epoch,
            distribute=distribute,
            class_weight=class_weight,
            sample_weight=sample_weight,
        )

    # ---------------------------------------------------------------------------- inference
    def _flip_axes(self, average_flips: bool) -> list[tuple[int, ...]]:
        """The mirror images one prediction adds to each image (§4.2): none, or those of the
        model's ``RandomFlip`` (a model without one is refused here, before any compute)."""
        return augment.mirror_axes(self.layers) if average_flips else []

    def _predict_arrays(
        self, xq: np.ndarray, flip_axes: Sequence[tuple[int, ...]] = ()
    ) -> np.ndarray:
        handle = self._handle_here()
        if not flip_axes:
            return self._backend().predict(handle, xq)
        views = augment.mirror_views(self.layers, xq, flip_axes)
        return np.sum([self._backend().predict(handle, v) for v in views], axis=0, dtype=np.uint16)

    def predict(
        self,
        x: Any,
        batch_size: int | None = None,
        verbose: int = 0,
        average_flips: bool = False,
    ) -> np.ndarray:
        """Output activations (u8, shape ``(n, classes)``); the class is their argmax.

        ``average_flips=True`` (a model with a ``RandomFlip`` layer) sums them over each sample
        and its mirror images, the flips the layer trains on (test-time augmentation,
        docs/arithmetic.md §4.2): u16, 2 or 4 times the range. ``x`` as for :meth:`fit`: zero
        samples or a ragged list raise ``GraiaValueError``."""
        xq = self._validate_x(x)
        if batch_size is not None:
            batch_size = _validation.positive(batch_size, "batch_size")
        flip_axes = self._flip_axes(average_flips)
        if batch_size is None:
            return self._predict_arrays(xq, flip_axes)
        return np.concatenate(
            [
                self._predict_arrays(xq[i : i + batch_size], flip_axes)
                for i in range(0, len(xq), batch_size)
            ]
        )

    def predict_classes(self, x: Any, average_flips: bool = False) -> np.ndarray:
        """Predicted class ids (ties go to the lowest index), or their names when the model has
        :attr:`class_names`; ``average_flips`` as in :meth:`predict`."""
        ids = np.argmax(self.predict(x, average_flips=average_flips), axis=1)
        if self.class_names is None:
            return ids
        names = np.empty(len(self.class_names), object)
        names[:] = self.class_names
        kinds = {type(n) for n in self.class_names}
        # Strings and numbers come back as a plain array of them, other names as objects.
        return names[ids].astype(kinds.pop()) if kinds in ({str}, {int}, {float}) else names[ids]

    def predict_proba(
        self,
        x: Any,
        batch_size: int | None = None,
        temperature: float = PROBA_TEMPERATURE,
        average_flips: bool = False,
    ) -> np.ndarray:
        """Class probabilities, f64 ``(n, classes)``, rows summing to 1: the softmax of the u8
        outputs :meth:`predict` returns divided by ``temperature`` (in output units; default 32,
        so an output 255 above another is e**8 times as likely). The ranking is ``predict``'s;
        the probabilities are a fixed read of the outputs, not calibrated on data (a lower
        ``temperature`` sharpens them). ``average_flips`` reads the mean over the mirror images."""
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float, np.number))
            or not np.isfinite(temperature)
            or temperature <= 0
        ):
            raise GraiaValueError(
                f"temperature must be a positive finite number, got {temperature!r:.80}"
            )
        out = self.predict(x, batch_size=batch_size, average_flips=average_flips)
        views = 1 + len(self._flip_axes(average_flips))
        logits = out.astype(np.float64) / (views * float(temperature))
        weights = np.exp(logits - logits.max(axis=1, keepdims=True, initial=0.0))
        return weights / weights.sum(axis=1, keepdims=True)

    def _evaluate_arrays(
        self, xq: np.ndarray, yq: np.ndarray, flip_axes: Sequence[tuple[int, ...]] = ()
    ) -> dict[str, float]:
        views = 1 + len(flip_axes)
        out = self._predict_arrays(xq, flip_axes).astype(np.int64)
        values = self.rule.values if self.rule is not None else {}
        targets = np.full_like(out, values.get("target_off", 0) * views)
        targets[np.arange(len(yq)), yq] = values.get("target_on", 255) * views
        loss = float(((out - targets) ** 2).sum()) / (out.size * (255.0 * views) ** 2)
        return {"loss": loss, "accuracy": float(np.mean(np.argmax(out, axis=1) == yq))}

    def evaluate(
        self,
        x: Any,
        y: Any,
        batch_size: int | None = None,
        verbose: int = 0,
        return_dict: bool = False,
        average_flips: bool = False,
    ):
        """``[loss, accuracy]`` (or a dict with ``return_dict=True``) on ``(x, y)``;
        ``average_flips`` as in :meth:`predict` (the loss then compares the mean output)."""
        if batch_size is not None:
            _validation.positive(batch_size, "batch_size")
        xq, yq = self._validate_xy(x, y)
        result = self._evaluate_arrays(xq, yq, self._flip_axes(average_flips))
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in result.items()))
        return result if return_dict else [result["loss"], result["accuracy"]]

    def activations(self, x: Any) -> list[np.ndarray]:
        """Every layer's u8 activations for one sample ``x`` (input first), computed by the
        backend in use (identical on every backend)."""
        xq = self._validate_x(_validation.array(x, "x")[None, ...])
        return [a[0] for a in self._backend().activations(self._handle_here(), xq)]

    def diagnostics(self, x: Any, y: Any = None) -> list[dict[str, Any]]:
        """Per weighted layer: ``dead`` (fraction of units never active on ``x``), ``saturated``
        (fraction of activations at 255), ``codes`` (weight-code histogram: count of ``|code|``
        0, 1, ..., kmax+1) and, when labels ``y`` are given, ``probe_accuracy``: the accuracy of a
        nearest-class-mean classifier on the layer's activations (a cheap linear-readability probe).
        """
        if y is None:
            xq = self._validate_x(x)
        else:
            xq, yq = self._validate_xy(x, y)
        acts = self._backend().activations(self._handle_here(), xq)[1:]
        report = []
        for layer, a, codes in zip(self.weighted_layers, acts, self.get_codes()):
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
        """Each weighted layer's latent weights, i32 ``(fan_in, units)`` (2**20 is a unit weight);
        a ``Conv2D``'s rows are its patch (kernel row, kernel column, input channel)."""
        return [lat.copy() for (lat,) in layer_blocks(self._host_state(), "latent")]

    def get_codes(self) -> list[np.ndarray]:
        """Each weighted layer's weight codes, i8 ``(fan_in, units)``: 0 or ``±(k+1)`` for
        ``±2**-k``."""
        return [
            spec.codes_of_latents(w, layer.kmax)
            for w, layer in zip(self.get_weights(), self.weighted_layers)
        ]

    def _weight_shapes(self) -> list[tuple[int, int]]:
        return [(b.fan_in, b.out_c) for b in self.blocks]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Set the latent weights from arrays shaped like :meth:`get_weights`' (momenta reset)."""
        shapes = self._weight_shapes()
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
        return sum(rows * cols for rows, cols in self._weight_shapes())

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
            **({"class_names": self.class_names} if self.class_names is not None else {}),
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
        saving.save_model(self, path)

    def save_weights(self, path: str | os.PathLike) -> None:
        """Save only the latent weights (as :meth:`get_weights` returns them) to one file.

        The file has the same safe format as :meth:`save` (``config.json`` marks it as
        ``"content": "weights"`` and lists the layers; arrays ``weights_0``, ``weights_1``, ...,
        i32 ``(n_in, n_out)``). Momenta, rule and RNG position are not saved; load it into a
        model of the same layer sizes with :meth:`load_weights`.
        """
        saving.save_weights(self, path)

    def load_weights(self, path: str | os.PathLike) -> None:
        """Load weights written by :meth:`save_weights` into this model (momenta reset).

        Raises:
            ModelFileError: The file is unreadable, is not a weights file, or its arrays do not
                match this model's layer sizes (nothing is changed then).
        """
        saving.load_weights(self, path)
