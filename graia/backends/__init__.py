"""The backend registry: which engine computes, chosen when graia is imported.

``GRAIA_BACKEND=opencl|multicore|numba`` picks one explicitly; an explicit choice that cannot run
is an error that says why (never a silent fallback). Unset, the fastest that works
(:data:`DEFAULT_ORDER`, :func:`default_reason`): opencl when its device is a GPU, else numba, else
multicore. ``use(name)`` switches within a ``with`` block.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

from graia.errors import GraiaError

#: Every backend.
NAMES = ("opencl", "multicore", "numba")

#: The order in which the default is chosen, fastest first, as measured by benchmarks/speed.py
#: (docs/performance.md): OpenCL on a GPU; on CPUs the Numba reference, which is still faster than
#: the Futhark multicore backend (0.76-0.89x of Numba on 2 cores, 784-512-10 to 784-4000-10);
#: OpenCL on a CPU (PoCL) is far slower than both, so it is never the default.
DEFAULT_ORDER = ("opencl", "numba", "multicore")


class BackendError(GraiaError):
    """A backend was asked for that is unknown or cannot run here."""


_instances: dict[str, Any] = {}
_probes: dict[str, tuple[bool, str]] = {}
_local = threading.local()
_default: str | None = None
_default_error: BackendError | None = None


def _probe(name: str) -> tuple[bool, str]:
    if name not in _probes:
        if name == "numba":
            try:
                import numba  # noqa: F401

                _probes[name] = (True, "")
            except ImportError as exc:  # pragma: no cover - numba is a dependency
                _probes[name] = (False, f"numba is not installed ({exc}): pip install numba")
        else:
            try:
                from graia.backends import futhark
            except ImportError as exc:
                _probes[name] = (False, f"the Futhark backend wrapper failed to import: {exc}")
            else:
                _probes[name] = futhark.probe(name)
    return _probes[name]


def available() -> dict[str, tuple[bool, str]]:
    """Every backend with ``(usable, reason it is not)``."""
    return {name: _probe(name) for name in NAMES}


def _check(name: str, source: str) -> str:
    if name not in NAMES:
        raise BackendError(f"unknown backend {name!r} ({source}); valid: {', '.join(NAMES)}")
    ok, reason = _probe(name)
    if not ok:
        raise BackendError(f"backend {name!r} ({source}) cannot run here: {reason}")
    return name


def _good_default(name: str) -> bool:
    if name != "opencl":
        return True
    from graia.backends import futhark

    return futhark.device_info("opencl").get("type") == "gpu"


def _select_default() -> None:
    global _default, _default_error
    wanted = os.environ.get("GRAIA_BACKEND", "").strip().lower()
    try:
        if wanted:
            _default = _check(wanted, "GRAIA_BACKEND")
        else:
            _default = next(n for n in DEFAULT_ORDER if _probe(n)[0] and _good_default(n))
    except BackendError as exc:
        _default, _default_error = None, exc


def default_reason() -> str:
    """Why the backend in use by default is the default (for ``graia info``)."""
    wanted = os.environ.get("GRAIA_BACKEND", "").strip()
    if wanted:
        return f"GRAIA_BACKEND={wanted}"
    chosen = name()
    if chosen == "opencl":
        return "default: OpenCL on a GPU is the fastest backend"
    reason = "default on CPUs: measured faster than multicore (docs/performance.md)"
    return reason if chosen == "numba" else "default: the fastest backend available here"


def name() -> str:
    """The backend in use (raises :class:`BackendError` if the requested one cannot run)."""
    scoped = getattr(_local, "stack", None)
    if scoped:
        return scoped[-1]
    if _default is None:
        if _default_error is None:
            _select_default()
            return name()
        raise _default_error
    return _default


def get(backend: str | None = None) -> Any:
    """The backend object named ``backend`` (default: the one in use)."""
    chosen = name() if backend is None else _check(backend, "argument")
    if chosen not in _instances:
        if chosen == "numba":
            from graia.backends.numba import NumbaBackend

            _instances[chosen] = NumbaBackend()
        else:
            from graia.backends.futhark import FutharkBackend

            _instances[chosen] = FutharkBackend(chosen)
    return _instances[chosen]


@contextlib.contextmanager
def use(backend: str) -> Iterator[str]:
    """Use ``backend`` inside a ``with`` block (this thread only)."""
    _check(backend, "use()")
    stack = _local.__dict__.setdefault("stack", [])
    stack.append(backend)
    try:
        yield backend
    finally:
        stack.pop()


_select_default()
