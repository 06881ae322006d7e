"""Exception hierarchy for Graia.

Every error Graia raises on purpose derives from :class:`GraiaError`, so callers can catch
them all at once. The subclasses that describe bad input also derive from :class:`ValueError`,
so code written against the standard library (or Keras) catches them as usual.
"""

from __future__ import annotations

__all__ = ["DatasetError", "GraiaError", "GraiaValueError", "GraiaWarning", "ModelFileError"]


class GraiaError(Exception):
    """Base class of all errors raised by Graia."""


class GraiaValueError(GraiaError, ValueError):
    """An argument or the data passed to Graia is invalid (wrong shape, type, range...)."""


class ModelFileError(GraiaError, ValueError):
    """A model file is missing, truncated, corrupt, unsafe or of an unsupported version."""


class DatasetError(GraiaError, ValueError):
    """A dataset cannot be found, downloaded, verified or parsed."""


class GraiaWarning(UserWarning):
    """Something is probably wrong but Graia carries on (e.g. training that learns nothing)."""
