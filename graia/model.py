"""``Sequential``: the layer stack, its config, weights and state, inference, and the entry points
of saving and export. Its training (``compile``, ``fit``) is its base class
:class:`graia.training.Trainer`; the model file is graia/saving.py's, export graia/export/'s (both
through the model's public state), the input checks graia/_validation.py's; the backends do the
arithmetic."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from graia import _validation, adapt, augment, backends, saving, spec
from graia import export as export_mod
from graia import layers as layers_mod
from graia import rules as rules_mod
from graia import state as state_mod
from graia._validation import quantize_inputs
from graia.backends.interface import (
    HostState,
    layer_blocks,
)
from graia.errors import GraiaError, GraiaValueError
from graia.export.summary import summary_text
from graia.training import Trainer

__all__ = ["Sequential", "load_model", "quantize_inputs"]

SEED_MAX = (1 << 64) - 1
#: ``predict_proba``'s default softmax temperature, in u8 output units.
PROBA_TEMPERATURE = 32.0


class Sequential(Trainer):
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

    def get_state(self) -> HostState:
        """The model's whole state as host arrays (``interface.HostState``: geometry, weights,
        momenta, feedback and local heads, training counters), read from the backend that holds
        it (built first if needed): what ``save`` writes and ``set_state`` takes back."""
        self.build()
        return backends.get(self._handle_backend).dump(self._handle)

    def set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Replace learned arrays of the state (any of ``latent``, ``momentum``, ``head_latent``,
        ``head_momentum``, ``counters``, each of :meth:`get_state`'s dtype and shape; the others
        are kept, or are a fresh build's on an unbuilt model), on the backend in use.

        Raises:
            GraiaValueError: another key, an array of another dtype or shape, or latent weights
                outside ``±LATENT_MAX`` (nothing is changed then).
        """
        state = self.get_state() if self.built else self._initial_state()
        for key, value in arrays.items():
            value = np.asarray(value)
            if key not in state_mod.LEARNED:
                raise GraiaValueError(
                    f"set_state: {key!r:.40} is not a learned array; valid: "
                    f"{list(state_mod.LEARNED)}"
                )
            if value.dtype != state[key].dtype or value.shape != state[key].shape:
                raise GraiaValueError(
                    f"set_state: {key} must be {state[key].dtype} {state[key].shape}, got "
                    f"{value.dtype} {value.shape}"
                )
            if key in ("latent", "head_latent") and not spec.within(value, spec.LATENT_MAX):
                raise GraiaValueError(f"set_state: {key} has values outside ±{spec.LATENT_MAX}")
        state.update({key: np.ascontiguousarray(value) for key, value in arrays.items()})
        self._set_host_state(state)

    def _set_host_state(self, state: HostState) -> None:
        here = backends.name()
        self._handle = backends.get(here).load(state)
        self._handle_backend = here

    # ----------------------------------------------------------------------------- training
    def _validate_xy(
        self, x: Any, y: Any, what: str = "", learn: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Inputs as u8 and labels (any form, :func:`_validation.class_ids`) as class ids;
        ``learn``: class names first seen here become the model's."""
        xq = self.quantize(x, f"x{what}")
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

    def quantize(self, x: Any, what: str = "x") -> np.ndarray:
        """The u8 features the backends see for inputs ``x`` (as :meth:`predict` takes them):
        checked, flattened and quantised, through the preprocessing layer if the model has one
        (docs/arithmetic.md §8); ``what`` names ``x`` in error messages."""
        self._require_layers()
        return _validation.inputs(
            x, self.input_shape, self.sizes[0], what, self.preprocessing_layer
        )

    @property
    def preprocessing_layer(self) -> layers_mod.Layer | None:
        """The ``Normalization``/``Rescaling`` right after ``Input`` (§8), if any."""
        return self.layers[1] if len(self.layers) > 1 and self.layers[1].preprocessing else None

    def adapt(self, x: Any) -> list[int]:
        """Choose the activation shift of every weighted layer built with ``shift=None`` (and
        not yet adapted) from the inputs ``x``, layer by layer, with exact integer arithmetic
        (docs/arithmetic.md §3.3); ``fit`` does this before its first update. Returns every
        weighted layer's shift."""
        self._adapt_arrays(self.quantize(x))
        return [layer.shift for layer in self.weighted_layers]

    def _adapt_arrays(self, xq: np.ndarray) -> None:
        """:meth:`adapt` on validated u8 inputs."""
        pending = [layer.shift_pending for layer in self.weighted_layers]
        if not any(pending):
            return
        state = self.get_state()
        state["shift"] = adapt.choose_shifts(state, xq[adapt.sample_rows(len(xq))], pending)
        self._set_host_state(state)
        for layer, shift in zip(self.weighted_layers, state["shift"]):
            layer.shift, layer.shift_pending = int(shift), False

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
        xq = self.quantize(x)
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
        xq = self.quantize(_validation.array(x, "x")[None, ...])
        return [a[0] for a in self._backend().activations(self._handle_here(), xq)]

    def diagnostics(self, x: Any, y: Any = None) -> list[dict[str, Any]]:
        """Per weighted layer: ``dead`` (fraction of units never active on ``x``), ``saturated``
        (fraction of activations at 255), ``codes`` (weight-code histogram: count of ``|code|``
        0, 1, ..., kmax+1) and, when labels ``y`` are given, ``probe_accuracy``: the accuracy of a
        nearest-class-mean classifier on the layer's activations (a cheap linear-readability probe).
        """
        if y is None:
            xq = self.quantize(x)
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
        return [lat.copy() for (lat,) in layer_blocks(self.get_state(), "latent")]

    def get_codes(self) -> list[np.ndarray]:
        """Each weighted layer's weight codes, i8 ``(fan_in, units)``: 0 or ``±(k+1)`` for
        ``±2**-k``."""
        return [
            spec.codes_of_latents(w, layer.kmax)
            for w, layer in zip(self.get_weights(), self.weighted_layers)
        ]

    @property
    def weight_shapes(self) -> list[tuple[int, int]]:
        """Each weighted layer's weight shape ``(fan_in, units)``, as :meth:`get_weights` gives."""
        return [(b.fan_in, b.out_c) for b in self.blocks]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Set the latent weights from arrays shaped like :meth:`get_weights`' (momenta reset)."""
        shapes = self.weight_shapes
        if len(weights) != len(shapes):
            raise GraiaValueError(f"set_weights: expected {len(shapes)} arrays, got {len(weights)}")
        flat = []
        for i, (w, shape) in enumerate(zip(weights, shapes)):
            w = np.asarray(w)
            if w.shape != shape or w.dtype.kind not in "iu":
                raise GraiaValueError(
                    f"set_weights: array {i} must be integer with shape {shape}, got {w.dtype} {w.shape}"
                )
            if not spec.within(w, spec.LATENT_MAX):
                raise GraiaValueError(
                    f"set_weights: array {i} has values outside ±{spec.LATENT_MAX}"
                )
            flat.append(w.astype(np.int32).ravel())
        state = self.get_state()
        state["latent"] = np.concatenate(flat)
        state["momentum"] = np.zeros_like(state["momentum"])
        self._set_host_state(state)

    # ------------------------------------------------------------------------------- summary
    def count_params(self) -> int:
        return sum(rows * cols for rows, cols in self.weight_shapes)

    def summary(self, print_fn: Callable[[str], Any] = print) -> None:
        """Print layers, output shapes, parameter counts, weight-code histograms, the backend,
        and the deployed sizes (packed bytes, shift-adds, activation memory) against a float32
        model of the same shape."""
        print_fn(summary_text(self))

    def export(
        self, path: str | os.PathLike, format: str = "c", samples: Any = None
    ) -> export_mod.Exported:
        """Export for deployment: dependency-free C (``graia_model.h``/``.c``, shifts and adds
        only) or ONNX (``graia_model.onnx``) into the directory ``path``, both bit-exact with
        :meth:`predict`. ``samples``: C only, inputs for the embedded self-test. Returns a
        :class:`graia.export.Exported` (files written, sizes). See docs/deploy.md."""
        return export_mod.export(self, path, format=format, samples=samples)

    # ---------------------------------------------------------------------------- save/load
    def get_config(self) -> dict:
        return {
            "name": self.name,
            "seed": self.seed,
            "layers": [layer.get_config() for layer in self.layers],
            "rule": self.rule.get_config() if self.rule else None,
            **({"class_names": self.class_names} if self.class_names is not None else {}),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        """The (unbuilt) model a :meth:`get_config` describes: layers, seed, name, class names
        and rule (no weights).

        Raises:
            TypeError, KeyError: a config of the wrong form (naming the entry).
            GraiaError: a config the layers, the rule or their bounds refuse.
        """
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
        model = cls([layers_mod.from_config(c) for c in layer_configs], seed=seed, name=name)
        model._require_layers()
        model._check_bounds()
        model.class_names = _json_names(config.get("class_names"))
        rule = config.get("rule")
        if rule is not None:
            if not isinstance(rule, dict) or not isinstance(rule.get("options", {}), dict):
                raise TypeError(
                    f"'rule' must be an object with 'name' and 'options', got {rule!r:.80}"
                )
            # Files from before step_decay existed trained without it.
            decay = rule.get("step_decay", False)
            model.rule = rules_mod.get(rule["name"], step_decay=decay, **rule.get("options", {}))
            model.rule.check_hidden_layers(model.sizes[1:-1])
        return model

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


def load_model(path: str | os.PathLike) -> Sequential:
    """Load a model saved with :meth:`Sequential.save`, on the backend in use.

    Restores layers, rule and options, seed, name, latent weights, momenta and the training
    counters, so predictions are identical on every backend and ``fit(initial_epoch=...)``
    resumes exactly. Nothing is unpickled, and the arrays are checked against the architecture
    in the file's config before any of them is decompressed (docs/security.md).

    Raises:
        ModelFileError: The file is missing, not a model file, truncated or corrupt, of a newer
            format version, lacks a member or an array, has arrays of the wrong dtype or shape,
            an invalid config, out-of-range weights or momenta, or counters that do not match its
            seed or that training cannot reach.
    """
    return saving.load_model_checked(path, Sequential.from_config)


def _json_names(names: Any) -> list | None:
    """A config's ``class_names``: ``None`` or a list of JSON strings and numbers."""
    if names is not None and (
        not isinstance(names, list) or not all(isinstance(n, (str, int, float)) for n in names)
    ):
        raise TypeError(f"'class_names' must be a list of strings or numbers, got {names!r:.80}")
    return names
