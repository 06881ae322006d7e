"""Graia: integer neural networks with power-of-two weights that learn without backpropagation.

The same integer arithmetic (docs/arithmetic.md) runs on Futhark OpenCL, Futhark multicore C and a
Numba reference, bit for bit. The backend is chosen when first needed (``GRAIA_BACKEND``).
"""

from __future__ import annotations

from graia import _interrupt

if _interrupt.is_command():  # Ctrl-C while the imports below run: cli.md's message, exit 130
    _interrupt.exit_on_interrupt()

from graia import backends as backend
from graia import callbacks, datasets, layers, plot, rules
from graia._version import __version__
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
