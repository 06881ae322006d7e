"""Graia: integer neural networks with power-of-two weights that learn without backpropagation.

The same integer arithmetic (docs/arithmetic.md) runs on Futhark OpenCL, Futhark multicore C and a
Numba reference, bit for bit. The backend is chosen at import (``GRAIA_BACKEND``).
"""

from __future__ import annotations

__version__ = "0.1.0"

from graia import backends as backend
from graia import callbacks, datasets, layers, plot, rules
from graia.errors import GraiaError, GraiaWarning
from graia.model import Sequential, load_model

__all__ = [
    "GraiaError",
    "GraiaWarning",
    "Sequential",
    "__version__",
    "backend",
    "callbacks",
    "datasets",
    "layers",
    "load_model",
    "plot",
    "rules",
]
