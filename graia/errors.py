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


def user_stacklevel() -> int:
    """The ``stacklevel`` for ``warnings.warn`` that points at the first caller outside graia
    (the user's line), however deep inside graia the warning is raised."""
    import os
    import sys

    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame = frame.f_back
        level += 1
    return level
