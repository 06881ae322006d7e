"""Checks of user arguments shared by the public API, with one message format."""

from __future__ import annotations

import numbers
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from graia.errors import GraiaValueError


def integer(value: Any, what: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as a Python int: any integral type (``int``, ``numpy.int64``, ...) is accepted;
    bools, floats and strings are not, nor values outside ``[minimum, maximum]``.

    Raises:
        GraiaValueError: naming ``what``, the accepted range and the value given.
    """
    if minimum is not None and maximum is not None:
        wanted = f"an int in [{minimum}, {maximum}]"
    elif minimum == 1:
        wanted = "a positive int"
    elif minimum == 0:
        wanted = "a non-negative int"
    elif minimum is not None:
        wanted = f"an int >= {minimum}"
    else:
        wanted = "an int"
    if isinstance(value, (bool, np.bool_)):
        raise GraiaValueError(f"{what} must be {wanted}, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise GraiaValueError(f"{what} must be {wanted}, got {value!r:.80}") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise GraiaValueError(f"{what} must be {wanted}, got {number}")
    return int(number)


def name(value: Any, what: str) -> str | None:
    """A name: ``None`` or a string that can be written to a model file (valid UTF-8)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise GraiaValueError(f"{what} must be a string or None, got {value!r:.80}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise GraiaValueError(f"{what} must be valid Unicode text, got {value!r:.80}") from None
    return value


def positive(value: Any, what: str) -> int:
    """``value`` as a positive Python int (see :func:`integer`)."""
    return integer(value, what, minimum=1)


def fraction(value: Any, what: str) -> float:
    """``value`` as a float in ``[0, 1)``: any real number but a bool."""
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, numbers.Real)
        or not 0.0 <= value < 1.0
    ):
        raise GraiaValueError(f"{what} must be in [0, 1), got {value!r:.80}")
    return float(value)


def array(x: Any, what: str) -> np.ndarray:
    """``np.asarray(x)``, a ``GraiaValueError`` naming ``what`` for what numpy cannot make an
    array of (ragged nested lists, objects that fail to convert)."""
    try:
        return np.asarray(x)
    except (ValueError, TypeError, OverflowError) as exc:
        problem = "ragged" if "inhomogeneous" in str(exc) else "not convertible to an array"
        raise GraiaValueError(
            f"{what} must be an array of equal-length samples (numbers); got a {problem} "
            f"{type(x).__name__}"
        ) from None


_PREPROCESSING_HINT = (
    "add graia.layers.Normalization() (then layer.adapt(x_train)) or "
    "graia.layers.Rescaling(scale, offset) right after Input"
)


def quantize_inputs(x: Any, what: str = "x") -> np.ndarray:
    """Inputs as u8: uint8 arrays pass through; integer arrays must lie in 0..255; float arrays
    must lie in [0, 1] and become ``floor(x * 255 + 0.5)``. Anything else is a ValueError."""
    arr = array(x, what)
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
            raise GraiaValueError(f"{what} must be finite, got NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise GraiaValueError(
                f"{what} must lie in [0, 1] when float, got values in [{lo:g}, {hi:g}]; "
                f"{_PREPROCESSING_HINT}, or pass uint8 arrays for 0..255 data"
            )
        return np.floor(arr * 255.0 + 0.5).astype(np.uint8)
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi > 255:
        raise GraiaValueError(
            f"{what} must lie in 0..255 when integer, got values in [{lo}, {hi}]; "
            f"{_PREPROCESSING_HINT}"
        )
    return arr.astype(np.uint8)


def inputs(
    x: Any,
    shape: tuple[int, ...],
    features: int,
    what: str = "x",
    preprocess: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Samples for a network whose input has ``shape`` (``features`` values in all): an array
    ``(n, *shape)`` or ``(n, features)`` with ``n > 0`` (the one contract of ``fit``,
    ``evaluate`` and ``predict``), quantised by :func:`quantize_inputs` (or, for a model with a
    preprocessing layer, any finite numbers mapped by ``preprocess``) and returned as a
    contiguous u8 ``(n, features)``."""
    arr = array(x, what)
    expected = f"(n, {', '.join(map(str, shape))})" + (
        f" or (n, {features})" if len(shape) > 1 else ""
    )
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise GraiaValueError(f"{what} is empty; expected shape {expected} with n > 0")
    accepted = {shape, (features,)}
    if len(shape) == 2:  # one-channel images may come with or without their channel axis
        accepted.add(shape + (1,))
    elif len(shape) == 3 and shape[-1] == 1:
        accepted.add(shape[:-1])
    if arr.shape[1:] not in accepted:
        raise GraiaValueError(f"{what} must have shape {expected}, got {arr.shape}")
    if preprocess is not None:
        return np.ascontiguousarray(preprocess(raw_numbers(arr, what).reshape(len(arr), features)))
    return np.ascontiguousarray(quantize_inputs(arr, what).reshape(len(arr), features))


def raw_numbers(arr: np.ndarray, what: str) -> np.ndarray:
    """``arr`` if it holds finite numbers (any integer or float dtype), else a one-line error."""
    if arr.dtype == bool or arr.dtype.kind not in "iuf":
        raise GraiaValueError(
            f"{what} must be a numeric array (int or float), got dtype {arr.dtype}"
        )
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise GraiaValueError(f"{what} must be finite, got NaN or infinite values")
    return arr


def labels(y: Any, samples: int, classes: int, what: str = "y") -> np.ndarray:
    """Class ids as i32: a 1-D integer array of ``samples`` values in ``0..classes-1``."""
    arr = array(y, what)
    if arr.dtype == bool or arr.dtype.kind not in "iu":
        integral = (
            arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))
        )
        hint = "; use y.astype(int)" if integral else ""
        raise GraiaValueError(f"{what} must hold integer class ids, got dtype {arr.dtype}{hint}")
    if arr.ndim != 1:
        raise GraiaValueError(
            f"{what} must be 1-D (one class id per sample), got shape {arr.shape}"
        )
    if len(arr) != samples:
        raise GraiaValueError(
            f"{what} must hold one class id for each of the {samples} samples, got {len(arr)}"
        )
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= classes:
        raise GraiaValueError(
            f"{what} must hold class ids in 0..{classes - 1}, got values in [{lo}, {hi}]"
        )
    return arr.astype(np.int32)


def _label_kind(value: Any) -> str:
    """A label's kind, to refuse mixes (``1`` and ``"1"`` are different labels)."""
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (numbers.Integral, np.integer)):
        return "int"
    if isinstance(value, (numbers.Real, np.floating)):
        return "float"
    if isinstance(value, (str, np.str_)):
        return "str"
    return type(value).__name__


def _one_hot(arr: np.ndarray, classes: int, what: str) -> np.ndarray:
    """Class ids of one-hot rows ``(n, classes)``: numbers, one 1 and zeros elsewhere per row."""
    if arr.shape[1] != classes:
        raise GraiaValueError(
            f"{what} has rows of {arr.shape[1]} values, but one-hot rows need one per class "
            f"({classes})"
        )
    if arr.dtype.kind not in "biuf":
        raise GraiaValueError(f"{what}: one-hot rows must hold 0s and 1s, got dtype {arr.dtype}")
    ones = arr == 1
    bad = np.flatnonzero(~((ones | (arr == 0)).all(axis=1) & (ones.sum(axis=1) == 1)))
    if len(bad):
        raise GraiaValueError(
            f"{what} row {bad[0]} is not one-hot (one 1, zeros elsewhere): "
            f"{np.array2string(arr[bad[0]], threshold=8)}"
        )
    return np.argmax(arr, axis=1).astype(np.int32)


def class_ids(
    y: Any, samples: int, classes: int, names: list | None, what: str = "y", learn: bool = False
) -> tuple[np.ndarray, list | None]:
    """Labels in any of Keras's forms as i32 class ids, and the model's class names.

    ``y`` holds, per sample, a class id (an integer, as a 1-D array or an ``(n, 1)`` column), a
    one-hot row of ``classes`` values, or a class name (a string or any hashable, compared with
    ``names``). Without ``names``, integers are class ids; other labels are names, learned (sorted)
    when ``learn`` and there must be ``classes`` of them. Returns ``(ids, names)``."""
    if isinstance(y, np.ndarray):
        arr = y
    elif isinstance(y, (list, tuple)) and y and isinstance(y[0], tuple):
        arr = np.empty(len(y), object)  # tuples are names (lists of lists are one-hot rows)
        arr[:] = list(y)
    else:
        arr = np.asarray(y, dtype=object)
        if arr.ndim == 1 and any(isinstance(v, (list, np.ndarray)) for v in arr.tolist()):
            raise GraiaValueError(f"{what} is a ragged list: one-hot rows must have equal lengths")
    if arr.dtype == object and arr.ndim >= 1 and arr.size:
        kinds = {_label_kind(v) for v in arr.ravel().tolist()}
        if len(kinds) > 1:
            raise GraiaValueError(f"{what} mixes kinds of labels ({', '.join(sorted(kinds))})")
        if kinds <= {"int", "float", "bool"}:  # a list of numbers: as an array of them
            arr = np.asarray(arr.tolist())
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 2:
        if len(arr) != samples:
            raise GraiaValueError(
                f"{what} must hold one label for each of the {samples} samples, got {len(arr)}"
            )
        return _one_hot(arr, classes, what), names
    if arr.ndim != 1:
        raise GraiaValueError(
            f"{what} must be 1-D labels, an (n, 1) column or (n, classes) one-hot rows, "
            f"got shape {arr.shape}"
        )
    if names is None and (arr.dtype.kind in "iuf" or arr.size == 0):
        return labels(arr, samples, classes, what), None
    if len(arr) != samples:
        raise GraiaValueError(
            f"{what} must hold one label for each of the {samples} samples, got {len(arr)}"
        )
    values = arr.tolist()
    try:
        distinct = set(values)
    except TypeError:
        raise GraiaValueError(f"{what}: labels must be hashable (ints, strings, ...)") from None
    if names is None:
        if not learn:
            raise GraiaValueError(
                f"{what} holds class names but the model has none yet: fit it on such labels "
                "first, or set model.class_names"
            )
        if len(distinct) != classes:
            raise GraiaValueError(
                f"{what} holds {len(distinct)} distinct labels but the output layer has {classes} "
                "units; set model.class_names to name every class"
            )
        try:
            names = sorted(distinct)
        except TypeError:
            raise GraiaValueError(
                f"{what}: these labels cannot be sorted into classes; set model.class_names"
            ) from None
    index = {name: i for i, name in enumerate(names)}
    unknown = [v for v in distinct if v not in index]
    if unknown:
        raise GraiaValueError(
            f"{what} holds labels not among the model's class names: "
            f"{', '.join(sorted(map(repr, unknown))[:5])}"
        )
    return np.fromiter((index[v] for v in values), np.int32, len(values)), names


def class_names(value: Any, classes: int) -> list | None:
    """``model.class_names``: ``None``, or one distinct hashable name per class."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise GraiaValueError(f"class_names must be a list of {classes} names, got {value!r:.80}")
    names = [v.item() if isinstance(v, np.generic) else v for v in value]
    try:
        distinct = len(set(names)) == len(names)
    except TypeError:
        raise GraiaValueError("class_names must be hashable (ints, strings, ...)") from None
    if len(names) != classes or not distinct:
        raise GraiaValueError(
            f"class_names must be {classes} distinct names (one per output unit), got {value!r:.80}"
        )
    return names
