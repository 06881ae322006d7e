"""Layers: shapes and weight-code options. No arithmetic happens here (see docs/arithmetic.md)."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from graia import _validation, spec
from graia.backends.interface import POOL_AVERAGE, POOL_MAX, POOL_NONE, Block
from graia.errors import GraiaError, GraiaValueError
from graia.spec import KMAX_LIMIT

INITIALIZERS = ("uniform", "codes")


class Layer:
    """Base class of Graia layers."""

    #: Whether the layer has weights that a rule learns (``Dense``, ``Conv2D``).
    weighted = False
    #: Whether the layer is a training-time augmentation (``RandomFlip``, ``RandomTranslation``).
    augmentation = False
    #: Whether the layer maps the model's raw inputs to u8 (``Normalization``, ``Rescaling``).
    preprocessing = False
    name: str | None = None

    def get_config(self) -> dict:
        raise NotImplementedError

    def plan(self, shape: tuple[int, ...], blocks: list[Block], previous: Layer, label: str):
        """This layer's part of a model's blocks (graia.state.plan): given its input ``shape``
        (``(h, w, c)`` for an image, ``(features,)`` otherwise) and the layer before it, append
        its block to ``blocks`` (or complete the last one) and return its output shape.

        Raises:
            GraiaValueError: starting with ``label``, when the layer does not fit there.
        """
        raise GraiaValueError(f"{label}: {type(self).__name__} is not a layer graia can use")


def _image(shape: tuple[int, ...], layer: Layer, label: str) -> tuple[int, int, int]:
    """``shape`` as an image ``(h, w, c)``, or the error of a layer that needs one."""
    if len(shape) != 3:
        raise GraiaValueError(
            f"{label}: {type(layer).__name__} needs an image input (h, w) or (h, w, channels), "
            f"got a flat input of {math.prod(shape)} values"
        )
    return shape  # type: ignore[return-value]


def _conv_extent(size: int, kernel: int, stride: int, padding: str) -> tuple[int, int]:
    """(output size, padding before) of one axis, as Keras computes them."""
    if padding == "same":
        out = -(-size // stride)
        return out, max((out - 1) * stride + kernel - size, 0) // 2
    return (size - kernel) // stride + 1 if size >= kernel else 0, 0


def _pair(value: int | tuple[int, int], what: str) -> tuple[int, int]:
    """An int or a pair of ints as a pair of positive ints (Keras's ``kernel_size=3`` form)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise GraiaValueError(f"{what} must be an int or a pair of ints, got {value!r:.80}")
        return (
            _validation.integer(value[0], what, 1, 1024),
            _validation.integer(value[1], what, 1, 1024),
        )
    v = _validation.integer(value, what, 1, 1024)
    return (v, v)


def _weight_options(
    layer: Layer, kind: str, kmax: int, shift: int | None, use_bias: bool, initializer: str
) -> None:
    """The weight-code options shared by ``Dense`` and ``Conv2D`` (see ``Dense``)."""
    if not isinstance(use_bias, (bool, np.bool_)):
        raise GraiaValueError(f"{kind} use_bias must be True or False, got {use_bias!r:.80}")
    layer.use_bias = bool(use_bias)
    layer.kmax = _validation.integer(kmax, f"{kind} kmax", 0, KMAX_LIMIT)
    # ``shift=None``: chosen from the data at the first fit or by ``adapt`` (arithmetic.md §3.3);
    # until then the layer computes with ``kmax``.
    layer.shift_pending = shift is None
    layer.shift = _validation.integer(
        layer.kmax if shift is None else shift, f"{kind} shift", 0, 30
    )
    if not isinstance(initializer, str) or initializer not in INITIALIZERS:
        raise GraiaValueError(
            f"{kind} initializer must be one of {INITIALIZERS}, got {initializer!r}"
        )
    layer.initializer = initializer


class Input(Layer):
    """The network's input: ``shape`` is an int or a tuple (images are flattened, shape kept)."""

    def __init__(self, shape: int | tuple[int, ...], name: str | None = None) -> None:
        dims = shape if isinstance(shape, (tuple, list)) else (shape,)
        if not dims:
            raise GraiaValueError(f"Input shape must be an int or a tuple of ints, got {shape!r}")
        self.shape = tuple(_validation.integer(d, "Input shape entry", minimum=1) for d in dims)
        self.units = math.prod(self.shape)
        self.name = _validation.name(name, "Input name") or "input"

    def get_config(self) -> dict:
        return {"class": "Input", "shape": list(self.shape), "name": self.name}

    def __repr__(self) -> str:
        return f"Input(shape={self.shape})"


class Dense(Layer):
    """A fully connected layer of ``units`` u8 units with power-of-two weights.

    Args:
        units: number of units.
        kmax: largest shift: weights are 0 or ``±2**-k`` for ``0 <= k <= kmax``
            (``kmax=0`` gives ternary weights {-1, 0, +1}).
        shift: the activation's right shift, ``a = clamp(z >> shift, 0, 255)``; ``None`` (the
            default): chosen from the training data before the first update of ``fit`` (or by
            ``model.adapt(x)``) so that the layer's activations span 0..255
            (docs/arithmetic.md §3.3); ``kmax`` until then. ``shift=kmax`` is the weights' fixed
            point (the activation is the clamped weighted sum), the earlier default.
        use_bias: give each unit a bias: one more input, the constant 255, whose weight starts
            at 0 and is learnt like the others (docs/arithmetic.md §3, §6); it is the last row
            of the layer's weights. Models saved before biases existed load with ``use_bias=False``.
        initializer: ``"uniform"`` (latents uniform, scaled by fan-in) or ``"codes"``
            (codes uniform over all non-zero codes, as the original Graia did).
        name: the layer's name.
    """

    weighted = True

    def __init__(
        self,
        units: int,
        kmax: int = 8,
        shift: int | None = None,
        use_bias: bool = True,
        initializer: str = "uniform",
        name: str | None = None,
    ) -> None:
        self.units = _validation.integer(units, "Dense units", minimum=1)
        _weight_options(self, "Dense", kmax, shift, use_bias, initializer)
        self.name = _validation.name(name, "Dense name")

    def get_config(self) -> dict:
        return {
            "class": "Dense",
            "units": self.units,
            "kmax": self.kmax,
            "shift": None if self.shift_pending else self.shift,
            "use_bias": self.use_bias,
            "initializer": self.initializer,
            "name": self.name,
        }

    def __repr__(self) -> str:
        return f"Dense({self.units}, kmax={self.kmax}, shift={self.shift})"

    def plan(self, shape, blocks, previous, label):
        """A 1x1 convolution of a 1x1 image whose channels are the (flattened) inputs."""
        if len(shape) == 3 and not isinstance(previous, Input):
            raise GraiaValueError(
                f"{label}: add Flatten() before a Dense layer that follows an image layer"
            )
        block = Block(
            in_h=1, in_w=1, in_c=math.prod(shape), k_h=1, k_w=1, stride_h=1, stride_w=1,
            pad_top=0, pad_left=0, out_h=1, out_w=1, out_c=self.units, pool=POOL_NONE,
            pool_h=1, pool_w=1, bias=int(self.use_bias),
        )  # fmt: skip
        blocks.append(block)
        return (self.units,)


PADDINGS = ("valid", "same")


class Conv2D(Layer):
    """A 2-D convolution over channels-last images, u8 activations, power-of-two weights.

    The arithmetic is docs/arithmetic.md §3.1: every output position is a Dense unit whose inputs
    are the ``kernel_size`` patch of all input channels there (zeros outside the image).

    Args:
        filters: number of output channels.
        kernel_size: an int or ``(height, width)``.
        strides: an int or ``(height, width)``.
        padding: ``"valid"`` (no padding) or ``"same"`` (zeros so that the output has
            ``ceil(size / stride)`` positions, the extra one at the bottom/right, as in Keras).
        use_bias: one bias per filter, as for :class:`Dense`; off by default: on Graia's
            validation suite a convolution's bias cost 5 points on digits
            (docs/journal/2026-12-07-bias.md).
        kmax, shift, initializer, name: as for :class:`Dense` (fan-in is
            ``kernel height * kernel width * input channels``, plus one with a bias).
    """

    weighted = True

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int] = 1,
        padding: str = "valid",
        kmax: int = 8,
        shift: int | None = None,
        use_bias: bool = False,
        initializer: str = "uniform",
        name: str | None = None,
    ) -> None:
        self.filters = _validation.integer(filters, "Conv2D filters", minimum=1)
        self.kernel_size = _pair(kernel_size, "Conv2D kernel_size")
        self.strides = _pair(strides, "Conv2D strides")
        if not isinstance(padding, str) or padding not in PADDINGS:
            raise GraiaValueError(f"Conv2D padding must be one of {PADDINGS}, got {padding!r:.80}")
        self.padding = padding
        _weight_options(self, "Conv2D", kmax, shift, use_bias, initializer)
        self.name = _validation.name(name, "Conv2D name")

    @property
    def units(self) -> int:
        """Output channels (the layer's units at every position)."""
        return self.filters

    def get_config(self) -> dict:
        return {
            "class": "Conv2D",
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "kmax": self.kmax,
            "shift": None if self.shift_pending else self.shift,
            "use_bias": self.use_bias,
            "initializer": self.initializer,
            "name": self.name,
        }

    def __repr__(self) -> str:
        return (
            f"Conv2D({self.filters}, {self.kernel_size}, strides={self.strides}, "
            f"padding={self.padding!r}, kmax={self.kmax}, shift={self.shift})"
        )

    def plan(self, shape, blocks, previous, label):
        """The convolution's block, no pooling yet (a pooling layer right after completes it)."""
        h, w, c = _image(shape, self, label)
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        out_h, pad_top = _conv_extent(h, kh, sh, self.padding)
        out_w, pad_left = _conv_extent(w, kw, sw, self.padding)
        if out_h < 1 or out_w < 1:
            raise GraiaValueError(
                f"{label}: kernel {kh}x{kw} does not fit its {h}x{w} input with padding "
                f"'valid' (use padding='same' or a smaller kernel)"
            )
        block = Block(
            in_h=h, in_w=w, in_c=c, k_h=kh, k_w=kw, stride_h=sh, stride_w=sw,
            pad_top=pad_top, pad_left=pad_left, out_h=out_h, out_w=out_w,
            out_c=self.filters, pool=POOL_NONE, pool_h=1, pool_w=1, bias=int(self.use_bias),
        )  # fmt: skip
        blocks.append(block)
        return (out_h, out_w, self.filters)


class _Pooling2D(Layer):
    """Non-overlapping pooling windows (stride = window, no padding: a remainder is dropped)."""

    kind = ""

    def __init__(self, pool_size: int | tuple[int, int] = 2, name: str | None = None) -> None:
        cls = type(self).__name__
        self.pool_size = _pair(pool_size, f"{cls} pool_size")
        self.name = _validation.name(name, f"{cls} name")

    def get_config(self) -> dict:
        return {"class": type(self).__name__, "pool_size": list(self.pool_size), "name": self.name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.pool_size})"

    def window(self, h: int, w: int) -> tuple[int, int]:
        """The pooling window over a convolution output of ``h x w``."""
        return self.pool_size

    def plan(self, shape, blocks, previous, label):
        """Completes the block of the ``Conv2D`` right before it with this pooling."""
        if not isinstance(previous, Conv2D):
            raise GraiaValueError(f"{label}: a pooling layer must directly follow a Conv2D")
        h, w, c = _image(shape, self, label)
        ph, pw = self.window(h, w)
        if h < ph or w < pw:
            raise GraiaValueError(f"{label}: pool {ph}x{pw} is larger than its {h}x{w} input")
        code = {"max": POOL_MAX, "average": POOL_AVERAGE}[self.kind]
        blocks[-1] = dataclasses.replace(blocks[-1], pool=code, pool_h=ph, pool_w=pw)
        return (h // ph, w // pw, c)


class MaxPooling2D(_Pooling2D):
    """The largest activation of each window (§3.2; ties go to the first in row-major order).
    Must directly follow a ``Conv2D``."""

    kind = "max"


class AveragePooling2D(_Pooling2D):
    """``floor(sum / window size)`` of each window (§3.2; a right shift for power-of-two windows).
    Must directly follow a ``Conv2D``."""

    kind = "average"


class Flatten(Layer):
    """Channels-last images to vectors (``(h, w, c)`` to ``h * w * c``); no arithmetic."""

    def __init__(self, name: str | None = None) -> None:
        self.name = _validation.name(name, "Flatten name")

    def get_config(self) -> dict:
        return {"class": "Flatten", "name": self.name}

    def __repr__(self) -> str:
        return "Flatten()"

    def plan(self, shape, blocks, previous, label):
        return (math.prod(shape),)


class GlobalAveragePooling2D(_Pooling2D):
    """The average of each channel over the whole image, ``floor(sum / (h * w))``: average
    pooling (§3.2) whose window is the whole output of the ``Conv2D`` it must directly follow.
    Its output is one value per channel (a vector, as Keras's), so a ``Dense`` layer may follow
    without ``Flatten``."""

    kind = "average"

    def __init__(self, name: str | None = None) -> None:
        self.name = _validation.name(name, "GlobalAveragePooling2D name")

    def get_config(self) -> dict:
        return {"class": "GlobalAveragePooling2D", "name": self.name}

    def __repr__(self) -> str:
        return "GlobalAveragePooling2D()"

    def window(self, h: int, w: int) -> tuple[int, int]:
        return h, w

    def plan(self, shape, blocks, previous, label):
        return (math.prod(super().plan(shape, blocks, previous, label)),)


class _Augmentation(Layer):
    """A training-time image transform (docs/arithmetic.md §4.1): no weights, the identity in
    ``predict``/``evaluate``/export. Augmentation layers go directly after an image ``Input``."""

    augmentation = True

    def plan(self, shape, blocks, previous, label):
        """Not a block: a training-time transform of the input (§4.1), transparent to the
        shapes, and only directly after ``Input`` (or another augmentation layer)."""
        if not isinstance(previous, Input):
            raise GraiaValueError(
                f"{label}: {type(self).__name__} must come directly after Input "
                f"(or another augmentation layer)"
            )
        _image(shape, self, label)
        return shape


FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


class RandomFlip(_Augmentation):
    """While training, flips each image left-right (``"horizontal"``), top-bottom
    (``"vertical"``) or either independently (``"horizontal_and_vertical"``), each with
    probability 1/2, drawn per sample and epoch from the model's seed (§4.1)."""

    def __init__(self, mode: str = "horizontal", name: str | None = None) -> None:
        if not isinstance(mode, str) or mode not in FLIP_MODES:
            raise GraiaValueError(f"RandomFlip mode must be one of {FLIP_MODES}, got {mode!r:.80}")
        self.mode = mode
        self.name = _validation.name(name, "RandomFlip name")

    def get_config(self) -> dict:
        return {"class": "RandomFlip", "mode": self.mode, "name": self.name}

    def __repr__(self) -> str:
        return f"RandomFlip({self.mode!r})"


def _factor(value: float | tuple[float, float], what: str) -> tuple[float, float]:
    """Keras's translation factor: ``f`` in [0, 1] means ``(-f, f)``; a pair ``(lower, upper)``
    of fractions in [-1, 1] with ``lower <= upper``."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else None
    if pair is None:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
            raise GraiaValueError(
                f"{what} must be a fraction in [0, 1] or a pair (lower, upper) in [-1, 1], "
                f"got {value!r:.80}"
            )
        return (-float(value), float(value))
    if (
        len(pair) != 2
        or any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in pair)
        or not -1 <= pair[0] <= pair[1] <= 1
    ):
        raise GraiaValueError(
            f"{what} must be a pair (lower, upper) with -1 <= lower <= upper <= 1, "
            f"got {value!r:.80}"
        )
    return (float(pair[0]), float(pair[1]))


class RandomTranslation(_Augmentation):
    """While training, shifts each image by a whole number of pixels, drawn per sample and epoch
    from the model's seed (§4.1), uniformly within ``round(lower * size) .. round(upper * size)``
    on each axis; the area shifted in holds ``fill_value``.

    Args:
        height_factor: a fraction ``f`` of the height (shifts in ``-f .. f``), or a pair
            ``(lower, upper)``; positive shifts move the image down.
        width_factor: the same for the width; positive shifts move the image right.
        fill_mode: ``"constant"`` only (Keras's default ``"reflect"`` is not supported).
        fill_value: the u8 value of the pixels shifted in (0..255).
        name: the layer's name.
    """

    def __init__(
        self,
        height_factor: float | tuple[float, float],
        width_factor: float | tuple[float, float],
        fill_mode: str = "constant",
        fill_value: int = 0,
        name: str | None = None,
    ) -> None:
        self.height_factor = _factor(height_factor, "RandomTranslation height_factor")
        self.width_factor = _factor(width_factor, "RandomTranslation width_factor")
        if fill_mode != "constant":
            raise GraiaValueError(
                f"RandomTranslation fill_mode must be 'constant', got {fill_mode!r:.80}"
            )
        self.fill_mode = fill_mode
        self.fill_value = _validation.integer(fill_value, "RandomTranslation fill_value", 0, 255)
        self.name = _validation.name(name, "RandomTranslation name")

    def get_config(self) -> dict:
        return {
            "class": "RandomTranslation",
            "height_factor": list(self.height_factor),
            "width_factor": list(self.width_factor),
            "fill_mode": self.fill_mode,
            "fill_value": self.fill_value,
            "name": self.name,
        }

    def __repr__(self) -> str:
        return (
            f"RandomTranslation({self.height_factor}, {self.width_factor}, "
            f"fill_value={self.fill_value})"
        )


def _floats(value: Any, what: str, limit: float) -> np.ndarray:
    """A finite real number or a 1-D sequence of them, each of magnitude below ``limit``, as a
    1-D f64 array (one entry per channel)."""
    try:
        arr = np.array(value, dtype=np.float64, ndmin=1)
    except (TypeError, ValueError):
        raise GraiaValueError(f"{what} must be a number or a 1-D list of numbers") from None
    if arr.ndim != 1 or arr.size == 0 or np.asarray(value).dtype == bool:
        raise GraiaValueError(f"{what} must be a number or a 1-D list of numbers")
    if not np.all(np.isfinite(arr)) or np.any(np.abs(arr) >= limit):
        raise GraiaValueError(f"{what} must be finite and of magnitude below {limit:g}")
    return arr


_INTEGER_KEYS = ("multiplier", "bias", "shift")


class _Preprocessing(Layer):
    """A per-channel affine map of the raw inputs to u8, ``round(x * scale + offset)`` clamped to
    0..255, computed in integers after one float-to-fixed-point step (docs/arithmetic.md §8), on
    the host, before any backend sees the data. Goes directly after ``Input``.

    The integers ``multiplier``, ``bias`` and ``shift`` (one each per channel) define the layer;
    a channel is an entry of the input's last axis, or every feature when there is one entry."""

    preprocessing = True
    _integers: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _set_map(self, scale: np.ndarray, offset: np.ndarray) -> None:
        """Derive the integers of ``u8 = round(x * scale + offset)`` (u8 units)."""
        what = f"{type(self).__name__} {self.name or ''}".rstrip()
        scale = _floats(scale, f"{what}: the scale in u8 units", 2.0**31)
        offset = _floats(offset, f"{what}: the offset in u8 units", 2.0**40)
        scale, offset = np.broadcast_arrays(scale, offset)
        self._integers = spec.affine_integers(scale, offset)

    @property
    def channels(self) -> int | None:
        """Entries of the per-channel integers (``None`` before ``adapt``)."""
        return None if self._integers is None else len(self._integers[0])

    def integers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(multiplier, bias, shift)``, i64 per channel (§8); a one-line error if the layer has
        no map yet."""
        if self._integers is None:
            raise GraiaError(
                f"{type(self).__name__} layer {self.name!r} is not adapted: call "
                f"layer.adapt(x_train) or give mean and variance"
            )
        return self._integers

    def describe(self) -> str:
        """One line for ``model.summary()``: what the layer maps, and its channels."""
        if self._integers is None:
            return "raw -> u8 (docs/arithmetic.md §8), not adapted yet"
        return f"raw -> u8 (docs/arithmetic.md §8), {self.channels} channel(s)"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The u8 inputs of the raw samples ``x`` (numeric, finite, ``(n, features)``)."""
        return spec.preprocess(spec.input_fixed(x), *self.integers())

    def _integer_config(self) -> dict:
        if self._integers is None:
            return {}
        return {"integers": {k: v.tolist() for k, v in zip(_INTEGER_KEYS, self._integers)}}

    def _restore(self, integers: dict) -> None:
        """Set the integers from a model file's config (checked: a file may be hostile)."""
        try:
            values = [integers[k] for k in _INTEGER_KEYS]
            if not all(
                isinstance(v, list) and all(type(e) is int for e in v)  # not bool
                for v in values
            ):
                raise TypeError
            arrays = [np.array(v, dtype=np.int64, ndmin=1) for v in values]
        except (KeyError, TypeError, ValueError, OverflowError):
            raise GraiaValueError(
                f"{type(self).__name__} config: 'integers' must map {', '.join(_INTEGER_KEYS)} "
                "to lists of ints"
            ) from None
        m, b, s = arrays
        if (
            any(a.ndim != 1 or len(a) != len(m) or len(a) == 0 for a in arrays)
            or np.abs(m).max() > spec.PRE_MULTIPLIER_MAX
            or np.abs(b).max() > spec.PRE_BIAS_MAX
            or s.min() < 0
            or s.max() > spec.PRE_SHIFT_MAX
        ):
            raise GraiaValueError(
                f"{type(self).__name__} config: multiplier, bias and shift must be equally long "
                f"lists within the bounds of docs/arithmetic.md §8"
            )
        self._integers = (m, b, s)


class Rescaling(_Preprocessing):
    """Keras's ``Rescaling``: the input ``x * scale + offset``, which should lie in [0, 1], becomes
    the u8 ``round(255 * (x * scale + offset))`` clamped to 0..255 (docs/arithmetic.md §8).
    ``Rescaling(1 / 255)`` passes 0..255 pixel values through unchanged; ``scale`` and ``offset``
    are numbers or one value per entry of the input's last axis."""

    def __init__(
        self, scale: float | Sequence[float], offset: float | Sequence[float] = 0.0,
        name: str | None = None,
    ) -> None:  # fmt: skip
        self.name = _validation.name(name, "Rescaling name")
        self.scale = _floats(scale, "Rescaling scale", 2.0**31 / 255)
        self.offset = _floats(offset, "Rescaling offset", 2.0**40 / 255)
        if len(self.scale) != len(self.offset) and 1 not in (len(self.scale), len(self.offset)):
            raise GraiaValueError("Rescaling scale and offset must have the same length")
        self._set_map(self.scale * 255.0, self.offset * 255.0)

    def get_config(self) -> dict:
        return {
            "class": "Rescaling",
            "scale": self.scale.tolist(),
            "offset": self.offset.tolist(),
            "name": self.name,
            **self._integer_config(),
        }

    def __repr__(self) -> str:
        return f"Rescaling(scale={self.scale.tolist()}, offset={self.offset.tolist()})"


#: ``Normalization``'s u8 code of a standardised value ``z``: ``NORM_CENTRE + NORM_SPREAD * z``
#: (so the mean is 128 and -1.6..+1.6 standard deviations span the u8 range: a wider spread
#: than 32 (±4) gave 1.9 points more on 12 tables' validation splits, 128 (±1) lost them,
#: docs/journal/2026-12-07-defaults-2.md).
NORM_CENTRE = 128.0
NORM_SPREAD = 80.0


class Normalization(_Preprocessing):
    """Keras's ``Normalization``: standardises each feature with the training data's mean and
    variance, ``z = (x - mean) / sqrt(variance)``, then stores ``z`` as the u8
    ``round(128 + 80 * z)`` clamped to 0..255 (±1.6 standard deviations; docs/arithmetic.md §8).
    A feature of variance 0 becomes 128.

    Args:
        axis: ``-1`` (one mean per entry of the input's last axis: per feature for a flat input)
            or ``None`` (one mean for all).
        mean, variance: given, instead of :meth:`adapt` (numbers or one per channel).
        name: the layer's name.
    """

    def __init__(
        self,
        axis: int | None = -1,
        mean: float | Sequence[float] | None = None,
        variance: float | Sequence[float] | None = None,
        name: str | None = None,
    ) -> None:
        if axis not in (-1, None) or isinstance(axis, bool):
            raise GraiaValueError(f"Normalization axis must be -1 or None, got {axis!r:.80}")
        self.axis = axis
        self.name = _validation.name(name, "Normalization name")
        self.mean: np.ndarray | None = None
        self.variance: np.ndarray | None = None
        if (mean is None) != (variance is None):
            raise GraiaValueError("Normalization: give both mean and variance, or neither")
        if mean is not None:
            self._set_statistics(
                _floats(mean, "Normalization mean", 2.0**40),
                _floats(variance, "Normalization variance", 2.0**80),
            )

    def _set_statistics(self, mean: np.ndarray, variance: np.ndarray) -> None:
        if len(mean) != len(variance) and 1 not in (len(mean), len(variance)):
            raise GraiaValueError("Normalization mean and variance must have the same length")
        if np.any(variance < 0):
            raise GraiaValueError("Normalization variance must not be negative")
        mean, variance = np.broadcast_arrays(mean, variance)
        sd = np.sqrt(variance)
        scale = np.divide(NORM_SPREAD, sd, out=np.zeros_like(sd), where=sd > 0)
        if np.any(scale >= 2.0**31):
            raise GraiaValueError(
                "Normalization: a variance is too small for §8's fixed point "
                f"(standard deviation under {NORM_SPREAD / 2.0**31:.1e}); rescale that feature"
            )
        self._set_map(scale, NORM_CENTRE - mean * scale)
        self.mean, self.variance = mean.copy(), variance.copy()

    def adapt(self, data: Any) -> None:
        """Compute the mean and variance of ``data`` (samples first: ``(n, ..., channels)``),
        per entry of its last axis (``axis=-1``) or over everything (``axis=None``), as Keras
        does; finite numbers only."""
        arr = np.asarray(data)
        if arr.dtype == bool or arr.dtype.kind not in "iuf" or arr.ndim < 1 or arr.size == 0:
            raise GraiaValueError(
                "Normalization.adapt(data): data must be a non-empty numeric array, got "
                f"dtype {arr.dtype}, shape {arr.shape}"
            )
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise GraiaValueError("Normalization.adapt(data): data must be finite")
        rows = arr.reshape(-1, 1) if self.axis is None or arr.ndim == 1 else arr.reshape(
            -1, arr.shape[-1]
        )  # fmt: skip
        self._set_statistics(rows.mean(axis=0), rows.var(axis=0))

    def get_config(self) -> dict:
        return {
            "class": "Normalization",
            "axis": self.axis,
            "mean": None if self.mean is None else self.mean.tolist(),
            "variance": None if self.variance is None else self.variance.tolist(),
            "name": self.name,
            **self._integer_config(),
        }

    def __repr__(self) -> str:
        state = "adapted" if self._integers is not None else "not adapted"
        return f"Normalization(axis={self.axis}, {state})"


#: Layer classes by the name model files use.
CLASSES: dict[str, type[Layer]] = {
    cls.__name__: cls
    for cls in (
        Input,
        Dense,
        Conv2D,
        MaxPooling2D,
        AveragePooling2D,
        GlobalAveragePooling2D,
        Flatten,
        RandomFlip,
        RandomTranslation,
        Normalization,
        Rescaling,
    )
}


def from_config(config: dict) -> Layer:
    """Rebuild a layer from :meth:`Layer.get_config`'s output."""
    options = {k: v for k, v in config.items() if k != "class"}
    cls = CLASSES.get(config.get("class"))  # type: ignore[arg-type]
    if cls is None:
        raise GraiaValueError(f"unknown layer class {config.get('class')!r:.80}")
    if cls is Input:
        return Input(tuple(options["shape"]), name=options.get("name"))
    integers = options.pop("integers", None) if issubclass(cls, _Preprocessing) else None
    for key in ("kernel_size", "strides", "pool_size", "height_factor", "width_factor"):
        if isinstance(options.get(key), list):
            options[key] = tuple(options[key])
    try:
        layer = cls(**options)
        if integers is not None:
            if not isinstance(integers, dict):
                raise GraiaValueError(f"{cls.__name__} config: 'integers' must be an object")
            layer._restore(integers)
        return layer
    except TypeError as exc:
        raise GraiaValueError(f"bad {cls.__name__} options in a layer config: {exc}") from None
