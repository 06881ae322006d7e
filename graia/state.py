"""From a layer stack to its geometry and initial host state (docs/arithmetic.md §3, §6).

Every weighted layer (``Conv2D`` or ``Dense``) is one *block*: a convolution, optionally followed
by the pooling layer right after it. A ``Dense`` layer is the block of a 1x1 convolution over a 1x1
image whose channels are the (flattened) inputs, so every backend runs one kind of block and the
host state keeps one row of integers per block (:data:`GEOMETRY_FIELDS`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from graia import layers as layers_mod
from graia import spec
from graia.backends.interface import GEOMETRY_FIELDS, Block, HostState
from graia.errors import GraiaValueError

#: The host-state arrays that learning changes (the rest follows from the layers and the seed):
#: what a model file holds and ``Sequential.set_state`` takes.
LEARNED = ("latent", "momentum", "head_latent", "head_momentum", "counters")


def plan(layers: Sequence[layers_mod.Layer]) -> list[Block]:
    """The blocks of a layer stack (``Input`` first), checking that it can be built.

    Raises:
        GraiaValueError: naming the layer that does not fit (wrong order, an empty output, a sum
            that could overflow 32 bits).
    """
    if len(layers) < 2 or not isinstance(layers[0], layers_mod.Input):
        raise GraiaValueError("the model needs an Input layer and at least one weighted layer")
    shape = layers[0].shape
    # Each layer's input shape: an image (h, w, c), or (features,).
    shape = (*shape, 1) if len(shape) == 2 else shape if len(shape) == 3 else (math.prod(shape),)
    blocks: list[Block] = []
    previous: layers_mod.Layer = layers[0]
    for layer in layers[1:]:
        label = f"layer {layer.name or type(layer).__name__!r}"
        if layer.preprocessing:
            # Not a block: the host maps raw inputs to u8 before any backend sees them (§8).
            _check_preprocessing(layer, layers, layers[0].shape, label)
            continue
        shape = layer.plan(shape, blocks, previous, label)
        if not layer.augmentation:  # which stay transparent: what follows sees the Input
            previous = layer
    if not isinstance(layers[-1], layers_mod.Dense):
        raise GraiaValueError("the last layer must be the Dense output layer (one unit per class)")
    for layer, block in zip(weighted(layers), blocks):
        if not spec.forward_bound_ok(block.fan_in, layer.kmax):
            limit = spec.I32_MAX // (255 << layer.kmax)
            raise GraiaValueError(
                f"layer {layer.name!r}: {block.fan_in} inputs per unit with kmax={layer.kmax} "
                f"could overflow the 32-bit sum (at most {limit} for this kmax; "
                f"see docs/arithmetic.md §3)"
            )
    return blocks


def _check_preprocessing(
    layer: layers_mod.Layer, layers: Sequence[layers_mod.Layer], shape: tuple[int, ...], label: str
) -> None:
    """A preprocessing layer goes directly after ``Input`` (one of them), with one integer per
    channel: one in all, one per entry of the input's last axis, or one per feature."""
    if layers[1] is not layer:
        raise GraiaValueError(
            f"{label}: {type(layer).__name__} must come directly after Input (one preprocessing "
            f"layer per model)"
        )
    channels = layer.channels
    if channels is not None and channels not in (1, shape[-1], math.prod(shape)):
        raise GraiaValueError(
            f"{label}: {type(layer).__name__} has {channels} values per channel, but the input "
            f"{shape} has {shape[-1]} entries on its last axis"
        )


def weighted(layers: Sequence[layers_mod.Layer]) -> list[layers_mod.Layer]:
    """The layers with weights (``Conv2D``, ``Dense``), in order."""
    return [layer for layer in layers if layer.weighted]


def geometry(blocks: Sequence[Block]) -> np.ndarray:
    """The ``geometry`` array of a host state: one row per block."""
    return np.array([b.row() for b in blocks], np.int64).reshape(len(blocks), len(GEOMETRY_FIELDS))


def initial(layers: Sequence[layers_mod.Layer], seed: int) -> HostState:
    """The host state of a freshly built model (§6): latents, zero momenta, feedback matrices,
    and the local heads, which start as the feedback matrices (§7.4)."""
    blocks = plan(layers)
    learned = weighted(layers)
    latent = [
        spec.init_latent(seed, i, b.fan_in, b.out_c, layer.kmax, layer.initializer, bool(b.bias))
        for i, (b, layer) in enumerate(zip(blocks, learned))
    ]
    classes = blocks[-1].n_out
    feedback = [
        spec.feedback_matrix(np.uint64(seed), i, b.n_out, classes)
        for i, b in enumerate(blocks[:-1])
    ]
    feedback = np.concatenate(feedback).astype(np.int8) if feedback else np.zeros(0, np.int8)
    sizes = [blocks[0].n_in] + [b.n_out for b in blocks]
    synapses = sum(b.fan_in * b.out_c for b in blocks)
    return {
        "sizes": np.array(sizes, np.int64),
        "geometry": geometry(blocks),
        "kmax": np.array([la.kmax for la in learned], np.int32),
        "shift": np.array([la.shift for la in learned], np.int32),
        "latent": np.concatenate(latent).astype(np.int32),
        "momentum": np.zeros(synapses, np.int32),
        "feedback": feedback,
        "head_latent": initial_heads(feedback),
        "head_momentum": np.zeros(feedback.shape, np.int32),
        "counters": np.array([np.int64(np.uint64(seed).view(np.int64)), 0, 255], np.int64),
    }


def initial_heads(feedback: np.ndarray) -> np.ndarray:
    """The local heads' latents before any learning (§7.4): the feedback matrices as unit
    weights, ``B << LATENT_ONE_BITS``."""
    return feedback.astype(np.int32) << spec.LATENT_ONE_BITS


class Model(Protocol):
    """The public surface of a model (:class:`graia.Sequential`) that saving, export and the
    summary read and write: its layers and config, its weights, and its whole learned state as a
    host state (``get_state``/``set_state``). Those modules sit below graia/model.py and know a
    model by this surface only."""

    name: str
    seed: int
    layers: list[layers_mod.Layer]
    rule: Any
    class_names: list | None

    @property
    def input_shape(self) -> tuple[int, ...]: ...
    @property
    def weighted_layers(self) -> list[layers_mod.Layer]: ...
    @property
    def sizes(self) -> list[int]: ...
    @property
    def is_dense(self) -> bool: ...
    @property
    def weight_shapes(self) -> list[tuple[int, int]]: ...
    @property
    def preprocessing_layer(self) -> layers_mod.Layer | None: ...
    def get_config(self) -> dict: ...
    def get_state(self) -> HostState: ...
    def set_state(self, arrays: Mapping[str, np.ndarray]) -> None: ...
    def get_weights(self) -> list[np.ndarray]: ...
    def set_weights(self, weights: Sequence[np.ndarray]) -> None: ...
    def get_codes(self) -> list[np.ndarray]: ...
    def count_params(self) -> int: ...
    def quantize(self, x: Any, what: str = "x") -> np.ndarray: ...
    def predict(self, x: Any) -> np.ndarray: ...
