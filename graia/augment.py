"""Training-time data augmentation (docs/arithmetic.md §4.1): each epoch's u8 training images,
transformed on the host by the model's ``RandomFlip``/``RandomTranslation`` layers; and the
mirror images a prediction with flips averaged reads (§4.2).

The transform of sample ``i`` in epoch ``e`` depends only on the model's seed, the layer's
position, ``e`` and ``i`` (never on the backend, the batch or the MPI rank), so every backend and
every distributed mode trains on the same images. It is vectorised numpy over all samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from graia import layers as layers_mod
from graia import spec
from graia.errors import GraiaValueError

#: Samples transformed at a time (bounds the temporary copies).
_CHUNK = 8192
_LOW32 = np.uint64(0xFFFFFFFF)
_HIGH = np.uint64(32)


def has_augmentation(layers: Sequence[layers_mod.Layer]) -> bool:
    """Whether a layer stack has augmentation layers (only then does training transform)."""
    return any(layer.augmentation for layer in layers)


def shift_bounds(factor: tuple[float, float], size: int) -> tuple[int, int]:
    """The whole-pixel shift range of a translation factor: each bound ``factor * size`` rounded
    half away from zero (so ``0.1`` of 28 pixels gives ``-3 .. 3``)."""
    return tuple(  # type: ignore[return-value]
        int(math.copysign(math.floor(abs(f * size) + 0.5), f)) for f in factor
    )


def _flip(x: np.ndarray, layer: layers_mod.RandomFlip, keys: np.ndarray) -> np.ndarray:
    out = x.copy()
    if layer.mode != "vertical":  # bit 0 flips left-right
        chosen = (keys & np.uint64(1)).astype(bool)
        out[chosen] = out[chosen][:, :, ::-1]
    if layer.mode != "horizontal":  # bit 1 flips top-bottom
        chosen = ((keys >> np.uint64(1)) & np.uint64(1)).astype(bool)
        out[chosen] = out[chosen][:, ::-1]
    return out


def _draw(words: np.ndarray, bounds: tuple[int, int]) -> np.ndarray:
    low, high = bounds
    return low + (words % np.uint64(high - low + 1)).astype(np.int64)


def _span(shift: int, size: int) -> tuple[slice, slice]:
    """(target, source) slices of one axis shifted by ``shift`` pixels (positive: down/right)."""
    if shift >= 0:
        return slice(shift, size), slice(0, max(size - shift, 0))
    return slice(0, max(size + shift, 0)), slice(-shift, size)


def _translate(x: np.ndarray, layer: layers_mod.RandomTranslation, keys: np.ndarray) -> np.ndarray:
    h, w = x.shape[1:3]
    dy = _draw(keys & _LOW32, shift_bounds(layer.height_factor, h))
    dx = _draw(keys >> _HIGH, shift_bounds(layer.width_factor, w))
    out = np.full_like(x, layer.fill_value)
    # One copy per distinct shift (at most a few dozen), not per sample.
    pairs, group = np.unique(np.stack([dy, dx], axis=1), axis=0, return_inverse=True)
    for g, (sy, sx) in enumerate(pairs):
        (to_rows, from_rows), (to_cols, from_cols) = _span(int(sy), h), _span(int(sx), w)
        chosen = np.flatnonzero(group.ravel() == g)
        out[chosen, to_rows, to_cols] = x[chosen, from_rows, from_cols]
    return out


_TRANSFORMS = {layers_mod.RandomFlip: _flip, layers_mod.RandomTranslation: _translate}


def _image_shape(layers: Sequence[layers_mod.Layer]) -> tuple[int, int, int]:
    """``(height, width, channels)`` of the images a layer stack's ``Input`` reads."""
    shape = layers[0].shape
    return shape[0], shape[1], shape[2] if len(shape) == 3 else 1


def augment(layers: Sequence[layers_mod.Layer], x: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """Epoch ``epoch``'s training inputs: ``x`` (u8 ``(n, features)``, the validated inputs of
    the model whose stack is ``layers``) through its augmentation layers in order (§4.1)."""
    h, w, c = _image_shape(layers)
    n = len(x)
    steps = [
        (layer, spec.augment_keys(np.uint64(seed), position, epoch, n))
        for position, layer in enumerate(layers)
        if layer.augmentation
    ]
    out = np.empty_like(x)
    for lo in range(0, n, _CHUNK):
        images = x[lo : lo + _CHUNK].reshape(-1, h, w, c)
        for layer, keys in steps:
            images = _TRANSFORMS[type(layer)](images, layer, keys[lo : lo + _CHUNK])
        out[lo : lo + _CHUNK] = images.reshape(len(images), -1)
    return out


def mirror_axes(layers: Sequence[layers_mod.Layer]) -> list[tuple[int, ...]]:
    """§4.2: the image axes (1: rows, 2: columns of ``(n, h, w, c)``) each mirror image of a
    prediction with flips averaged reverses, from the stack's ``RandomFlip`` layers: left-right
    (``"horizontal"``), top-bottom (``"vertical"``), or both and the two together
    (``"horizontal_and_vertical"``), in that order."""
    modes = {layer.mode for layer in layers if isinstance(layer, layers_mod.RandomFlip)}
    if not modes:
        raise GraiaValueError("average_flips needs a model with a RandomFlip layer")
    left_right = bool(modes - {"vertical"})
    top_bottom = bool(modes - {"horizontal"})
    return [(2,)] * left_right + [(1,)] * top_bottom + [(1, 2)] * (left_right and top_bottom)


def mirror_views(
    layers: Sequence[layers_mod.Layer], x: np.ndarray, flip_axes: Sequence[tuple[int, ...]]
) -> list[np.ndarray]:
    """§4.2: ``x`` (u8 ``(n, features)``, validated) and its mirror images, one per entry of
    ``flip_axes`` (:func:`mirror_axes` of the same stack)."""
    images = x.reshape(len(x), *_image_shape(layers))
    return [x] + [np.flip(images, axes).reshape(len(x), -1) for axes in flip_axes]
