"""Layers: shapes and weight-code options. No arithmetic happens here (see docs/arithmetic.md)."""

from __future__ import annotations

import math
import numbers

from graia import _validation
from graia.errors import GraiaValueError
from graia.spec import KMAX_LIMIT

INITIALIZERS = ("uniform", "codes")


class Layer:
    """Base class of Graia layers."""

    #: Whether the layer has weights that a rule learns (``Dense``, ``Conv2D``).
    weighted = False
    #: Whether the layer is a training-time augmentation (``RandomFlip``, ``RandomTranslation``).
    augmentation = False
    name: str | None = None

    def get_config(self) -> dict:
        raise NotImplementedError


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
    layer: Layer, kind: str, kmax: int, shift: int | None, initializer: str
) -> None:
    """The weight-code options shared by ``Dense`` and ``Conv2D`` (see ``Dense``)."""
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
        initializer: str = "uniform",
        name: str | None = None,
    ) -> None:
        self.units = _validation.integer(units, "Dense units", minimum=1)
        _weight_options(self, "Dense", kmax, shift, initializer)
        self.name = _validation.name(name, "Dense name")

    def get_config(self) -> dict:
        return {
            "class": "Dense",
            "units": self.units,
            "kmax": self.kmax,
            "shift": None if self.shift_pending else self.shift,
            "initializer": self.initializer,
            "name": self.name,
        }

    def __repr__(self) -> str:
        return f"Dense({self.units}, kmax={self.kmax}, shift={self.shift})"


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
        kmax, shift, initializer, name: as for :class:`Dense` (fan-in is
            ``kernel height * kernel width * input channels``).
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
        initializer: str = "uniform",
        name: str | None = None,
    ) -> None:
        self.filters = _validation.integer(filters, "Conv2D filters", minimum=1)
        self.kernel_size = _pair(kernel_size, "Conv2D kernel_size")
        self.strides = _pair(strides, "Conv2D strides")
        if not isinstance(padding, str) or padding not in PADDINGS:
            raise GraiaValueError(f"Conv2D padding must be one of {PADDINGS}, got {padding!r:.80}")
        self.padding = padding
        _weight_options(self, "Conv2D", kmax, shift, initializer)
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
            "initializer": self.initializer,
            "name": self.name,
        }

    def __repr__(self) -> str:
        return (
            f"Conv2D({self.filters}, {self.kernel_size}, strides={self.strides}, "
            f"padding={self.padding!r}, kmax={self.kmax}, shift={self.shift})"
        )


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


class _Augmentation(Layer):
    """A training-time image transform (docs/arithmetic.md §4.1): no weights, the identity in
    ``predict``/``evaluate``/export. Augmentation layers go directly after an image ``Input``."""

    augmentation = True


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


#: Layer classes by the name model files use.
CLASSES: dict[str, type[Layer]] = {
    cls.__name__: cls
    for cls in (
        Input,
        Dense,
        Conv2D,
        MaxPooling2D,
        AveragePooling2D,
        Flatten,
        RandomFlip,
        RandomTranslation,
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
    for key in ("kernel_size", "strides", "pool_size", "height_factor", "width_factor"):
        if isinstance(options.get(key), list):
            options[key] = tuple(options[key])
    try:
        return cls(**options)
    except TypeError as exc:
        raise GraiaValueError(f"bad {cls.__name__} options in a layer config: {exc}") from None
