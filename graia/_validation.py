"""Checks of user arguments shared by the public API, with one message format."""

from __future__ import annotations

import operator
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
