"""Saving and loading models and weights: ``Sequential.save``/``save_weights``/``load_weights``
and ``load_model``, through the model's public config and state (:class:`graia.state.Model`), so
this module sits below graia/model.py. The file format itself (a zip of JSON and ``.npy``, no
pickle, atomic writes) is graia/io.py's."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from graia import backends, io, spec
from graia._version import __version__
from graia.backends.interface import (
    COUNTER_PREV_LOSS,
    COUNTER_SEED,
    COUNTER_STEP,
    HOST_STATE_DTYPES,
)
from graia.errors import GraiaError, GraiaValueError, ModelFileError
from graia.state import LEARNED, Model

#: The kind of model :func:`load_model_checked` builds (``Sequential``).
M = TypeVar("M", bound=Model)

#: Largest step counter a model file may hold: more batches than training reaches (2^48 at a
#: million batches a second is nine years), far below where the counter's int64 (and the uint64
#: hashes it feeds, docs/arithmetic.md §5) would wrap.
MAX_STEP = 1 << 48
#: Arrays model files of format version 1 lack: the local heads, which had not learned then
#: and start as the feedback matrices.
_SINCE_VERSION_2 = ("head_latent", "head_momentum")
#: The format version whose weighted layers may have a bias (``use_bias``); earlier files'
#: layers have none.
_SINCE_VERSION_4_BIAS = 4


def _without_biases(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with ``use_bias: False`` in each weighted layer that does not say."""
    layers = config.get("layers")
    if not isinstance(layers, list):
        return config
    weighted = ("Dense", "Conv2D")
    return {
        **config,
        "layers": [
            {"use_bias": False, **layer}
            if isinstance(layer, dict) and layer.get("class") in weighted
            else layer
            for layer in layers
        ],
    }


def save_model(model: Model, path: str | os.PathLike) -> None:
    """Write ``model`` whole to ``path`` (see :meth:`Sequential.save`)."""
    state = model.get_state()
    names = model.class_names
    if names is not None and not all(isinstance(n, (str, int, float)) for n in names):
        raise GraiaValueError(
            "save: class_names must be strings or numbers to be saved (JSON), got "
            f"{sorted({type(n).__name__ for n in names})}"
        )
    config = {"graia_version": __version__, "content": "model", **model.get_config()}
    metadata = {
        "backend": backends.name(),
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": sys.version.split()[0],
    }
    arrays = {k: state[k] for k in LEARNED}
    io.write_model_file(path, config, metadata, arrays)


def save_weights(model: Model, path: str | os.PathLike) -> None:
    """Write ``model``'s latent weights to ``path`` (see :meth:`Sequential.save_weights`)."""
    config = {
        "graia_version": __version__,
        "content": "weights",
        "layers": [layer.get_config() for layer in model.layers],
    }
    arrays = {f"weights_{i}": w for i, w in enumerate(model.get_weights())}
    metadata = {"saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    io.write_model_file(path, config, metadata, arrays)


def load_weights(model: Model, path: str | os.PathLike) -> None:
    """Set ``model``'s weights from a ``save_weights`` file (see :meth:`Sequential.load_weights`)."""
    source = os.fspath(path)
    shapes = model.weight_shapes
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


def _model_from_config(config: dict[str, Any], source: str, from_config: Callable[[dict], M]) -> M:
    """The (unbuilt) model ``from_config`` makes of a ``config.json``; ModelFileError when it
    is invalid."""
    if config.get("content") == "weights":
        raise ModelFileError(
            f"{source}: holds weights only (written by save_weights); build the model and call "
            "model.load_weights() instead"
        )
    if config.get("format_version", io.FORMAT_VERSION) < _SINCE_VERSION_4_BIAS:
        config = _without_biases(config)
    try:
        model = from_config(config)
    except KeyError as exc:
        raise ModelFileError(f"{source}: invalid config.json: missing key {exc}") from exc
    except (TypeError, ValueError, GraiaError) as exc:
        raise ModelFileError(f"{source}: invalid config.json: {exc}") from exc
    return model


def load_model_checked(
    path: str | os.PathLike,
    from_config: Callable[[dict[str, Any]], M],
    check: Callable[[M], None] | None = None,
) -> M:
    """``graia.load_model``: the model ``from_config`` (``Sequential.from_config``) makes of the
    file's config, with the file's state. ``check`` is called with that model (unbuilt, no array
    read yet) so that a caller can refuse it (by raising ``ModelFileError``) before any array is
    decompressed: the demo refuses models it cannot draw or that are too large."""
    source = os.fspath(path)
    built: list[M] = []

    def expected_arrays(config: dict[str, Any]) -> dict[str, tuple[Any, tuple[int, ...]]]:
        model = _model_from_config(config, source, from_config)
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
        if not spec.within(arrays.get(key, np.zeros(0, np.int32)), spec.I32_MAX):
            raise ModelFileError(
                f"{source}: {key.replace('_', ' ')} out of range (at most ±{spec.I32_MAX})"
            )
    for key in ("latent", "head_latent"):
        if not spec.within(arrays.get(key, np.zeros(0, np.int32)), spec.LATENT_MAX):
            raise ModelFileError(
                f"{source}: {key.replace('_', ' ')} weights out of range "
                f"(at most ±{spec.LATENT_MAX})"
            )
    # A version-1 file lacks the heads: the model keeps its initial ones.
    model.set_state({key: arrays[key] for key in LEARNED if key in arrays})
    return model
