"""Layers: shapes and weight-code options. No arithmetic happens here (see docs/arithmetic.md)."""

from __future__ import annotations

import math

from graia import _validation
from graia.errors import GraiaValueError
from graia.spec import KMAX_LIMIT

INITIALIZERS = ("uniform", "codes")


class Layer:
    """Base class of Graia layers."""

    def get_config(self) -> dict:
        raise NotImplementedError


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
        shift: the activation's right shift, ``a = clamp(z >> shift, 0, 255)``; default ``kmax``
            (the weights' fixed point, so the activation is the clamped weighted sum).
        initializer: ``"uniform"`` (latents uniform, scaled by fan-in) or ``"codes"``
            (codes uniform over all non-zero codes, as the original Graia did).
        name: the layer's name.
    """

    def __init__(
        self,
        units: int,
        kmax: int = 8,
        shift: int | None = None,
        initializer: str = "uniform",
        name: str | None = None,
    ) -> None:
        self.units = _validation.integer(units, "Dense units", minimum=1)
        self.kmax = _validation.integer(kmax, "Dense kmax", 0, KMAX_LIMIT)
        self.shift = _validation.integer(
            self.kmax if shift is None else shift, "Dense shift", 0, 30
        )
        if not isinstance(initializer, str) or initializer not in INITIALIZERS:
            raise GraiaValueError(
                f"Dense initializer must be one of {INITIALIZERS}, got {initializer!r}"
            )
        self.initializer = initializer
        self.name = _validation.name(name, "Dense name")

    def get_config(self) -> dict:
        return {
            "class": "Dense",
            "units": self.units,
            "kmax": self.kmax,
            "shift": self.shift,
            "initializer": self.initializer,
            "name": self.name,
        }

    def __repr__(self) -> str:
        return f"Dense({self.units}, kmax={self.kmax}, shift={self.shift})"


def from_config(config: dict) -> Layer:
    """Rebuild a layer from :meth:`Layer.get_config`'s output."""
    options = {k: v for k, v in config.items() if k != "class"}
    if config.get("class") == "Input":
        return Input(tuple(options["shape"]), name=options.get("name"))
    if config.get("class") == "Dense":
        return Dense(**options)
    raise GraiaValueError(f"unknown layer class {config.get('class')!r}")
