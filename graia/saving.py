"""Saving and loading models and weights: ``Sequential.save``/``save_weights``/``load_weights``
and :func:`load_model`. The file format itself (a zip of JSON and ``.npy``, no pickle, atomic
writes) is graia/io.py's."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from graia import io, spec
from graia import layers as layers_mod
from graia import rules as rules_mod
from graia.backends.interface import (
    COUNTER_PREV_LOSS,
    COUNTER_SEED,
    COUNTER_STEP,
    HOST_STATE_DTYPES,
)
from graia.errors import GraiaError, GraiaValueError, ModelFileError

if TYPE_CHECKING:
    from graia.model import Sequential

#: The host-state arrays a model file holds (the rest follows from its config).
_LEARNED = ("latent", "momentum", "head_latent", "head_momentum", "counters")
#: Largest step counter a model file may hold: more batches than training reaches (2^48 at a
#: million batches a second is nine years), far below where the counter's int64 (and the uint64
#: hashes it feeds, docs/arithmetic.md §5) would wrap.
MAX_STEP = 1 << 48
#: Arrays model files of format version 1 lack: the local heads, which had not learned then
#: and start as the feedback matrices.
_SINCE_VERSION_2 = ("head_latent", "head_momentum")


def save_model(model: Sequential, path: str | os.PathLike) -> None:
    """Write ``model`` whole to ``path`` (see :meth:`Sequential.save`)."""
    from graia import __version__

    state = model._host_state()
    names = model.class_names
    if names is not None and not all(isinstance(n, (str, int, float)) for n in names):
        raise GraiaValueError(
            "save: class_names must be strings or numbers to be saved (JSON), got "
            f"{sorted({type(n).__name__ for n in names})}"
        )
    config = {"graia_version": __version__, "content": "model", **model.get_config()}
    metadata = {
        "backend": model._handle_backend,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": sys.version.split()[0],
    }
    arrays = {k: state[k] for k in _LEARNED}
    io.write_model_file(path, config, metadata, arrays)


def save_weights(model: Sequential, path: str | os.PathLike) -> None:
    """Write ``model``'s latent weights to ``path`` (see :meth:`Sequential.save_weights`)."""
    from graia import __version__

    config = {
        "graia_version": __version__,
        "content": "weights",
        "layers": [layer.get_config() for layer in model.layers],
    }
    arrays = {f"weights_{i}": w for i, w in enumerate(model.get_weights())}
    metadata = {"saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    io.write_model_file(path, config, metadata, arrays)


def load_weights(model: Sequential, path: str | os.PathLike) -> None:
    """Set ``model``'s weights from a ``save_weights`` file (see :meth:`Sequential.load_weights`)."""
    source = os.fspath(path)
    model._require_layers()
    shapes = model._weight_shapes()
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
        model.set_weights([np.ascontiguousarray(arrays[n]) for n in names])
    except GraiaValueError as exc:
        raise ModelFileError(f"{source}: {exc}") from exc


def _model_from_config(config: dict[str, Any], source: str) -> Sequential:
    """The (unbuilt) model a ``config.json`` describes; ModelFileError when it is invalid."""
    from graia.model import Sequential  # graia.model imports this module

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
    except KeyError as exc:
        raise ModelFileError(f"{source}: invalid config.json: missing key {exc}") from exc
    except (TypeError, ValueError, GraiaError) as exc:
        raise ModelFileError(f"{source}: invalid config.json: {exc}") from exc
    return model


def _json_names(names: Any) -> list | None:
    """A config's ``class_names``: ``None`` or a list of JSON strings and numbers."""
    if names is not None and (
        not isinstance(names, list) or not all(isinstance(n, (str, int, float)) for n in names)
    ):
        raise TypeError(f"'class_names' must be a list of strings or numbers, got {names!r:.80}")
    return names


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
    return load_model_checked(path)


def load_model_checked(
    path: str | os.PathLike, check: Callable[[Sequential], None] | None = None
) -> Sequential:
    """:func:`load_model`, calling ``check`` with the model the file's config describes (unbuilt,
    no array read yet) so that a caller can refuse it (by raising ``ModelFileError``) before any
    array is decompressed: the demo refuses models it cannot draw or that are too large."""
    source = os.fspath(path)
    built: list[Sequential] = []

    def expected_arrays(config: dict[str, Any]) -> dict[str, tuple[Any, tuple[int, ...]]]:
        model = _model_from_config(config, source)
        if check is not None:
            check(model)
        built.append(model)
        synapses = model.count_params()
        sizes = model.sizes
        heads = sum(sizes[1:-1]) * sizes[-1]
        shapes = {"latent": (synapses,), "momentum": (synapses,), "counters": (3,)}
        if config["format_version"] >= 2:
            shapes |= {key: (heads,) for key in _SINCE_VERSION_2}
        return {key: (HOST_STATE_DTYPES[key], shape) for key, shape in shapes.items()}

    _config, _metadata, arrays = io.read_model_file(path, expected=expected_arrays)
    model = built[0]
    counters = arrays["counters"]
    if int(counters[COUNTER_SEED]) != int(np.uint64(model.seed).view(np.int64)):
        raise ModelFileError(f"{source}: the saved RNG counters do not match the model's seed")
    if not 0 <= counters[COUNTER_STEP] <= MAX_STEP or not 0 <= counters[COUNTER_PREV_LOSS] <= 255:
        raise ModelFileError(
            f"{source}: invalid training counters {counters.tolist()} (the step at most "
            f"{MAX_STEP}, the previous loss 0..255)"
        )
    for key in ("momentum", "head_momentum"):
        if np.abs(arrays.get(key, np.zeros(0)).astype(np.int64)).max(initial=0) > spec.I32_MAX:
            raise ModelFileError(
                f"{source}: {key.replace('_', ' ')} out of range (at most ±{spec.I32_MAX})"
            )
    for key in ("latent", "head_latent"):
        if np.abs(arrays.get(key, np.zeros(0)).astype(np.int64)).max(initial=0) > spec.LATENT_MAX:
            raise ModelFileError(
                f"{source}: {key.replace('_', ' ')} weights out of range "
                f"(at most ±{spec.LATENT_MAX})"
            )
    state = model._initial_state()
    for key in _LEARNED:
        if key in arrays:  # else a version-1 file: the initial heads
            state[key] = np.ascontiguousarray(arrays[key], dtype=HOST_STATE_DTYPES[key])
    model._set_host_state(state)
    return model
