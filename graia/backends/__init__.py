"""The backend registry: which engine computes, chosen when first needed.

``GRAIA_BACKEND=opencl|cuda|multicore|numba`` picks one explicitly; an explicit choice that cannot
run is an error that says why (never a silent fallback). Unset, the first backend of
:data:`BACKENDS` that runs here and is a good default (:func:`default_reason` says why): opencl
when its device is a GPU, else cuda (an NVIDIA GPU that no OpenCL driver reaches), else
multicore, else numba. ``use(name)`` switches within a ``with`` block. The choice is
made when a backend is first asked for, not on import, so that importing graia (or a backend's
module, whose package this registry is) loads no backend.

Everything that differs between backends is in the one table :data:`BACKENDS`; a new backend is
one entry there (and its module).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from graia.backends.interface import Backend
from graia.errors import GraiaError


@dataclass(frozen=True)
class Entry:
    """How the registry handles one backend."""

    #: ``(usable, why not)``, cheaply (called once per process).
    probe: Callable[[], tuple[bool, str]]
    #: A new backend object (called once per process).
    create: Callable[[], Backend]
    #: Whether a usable backend is a good default here.
    good_default: Callable[[], bool]
    #: Why it is the default when it is (for ``graia info``).
    default_reason: str
    #: What it runs on (threads, device), or None when there is nothing to say.
    details: Callable[[], dict[str, Any] | None]
    #: Whether it runs only on a GPU, so that a machine without one (CI) lacks it by design:
    #: the tests skip it there, saying why, where a missing CPU backend fails them.
    needs_gpu: bool = False


def _numba_probe() -> tuple[bool, str]:
    try:
        import numba  # noqa: F401
    except ImportError as exc:  # pragma: no cover - numba is a dependency
        return False, f"numba is not installed ({exc}): pip install numba"
    return True, ""


def _numba_backend() -> Backend:
    from graia.backends.numba import NumbaBackend

    return NumbaBackend()


def _futhark_entry(
    kind: str,
    *,
    good_default: Callable[[], bool],
    default_reason: str,
    needs_gpu: bool = False,
) -> Entry:
    """The entry of a Futhark-compiled backend (graia.backends.futhark)."""

    def probe() -> tuple[bool, str]:
        try:
            from graia.backends import futhark
        except ImportError as exc:
            return False, f"the Futhark backend wrapper failed to import: {exc}"
        return futhark.probe(kind)

    def create() -> Backend:
        from graia.backends.futhark import FutharkBackend

        return FutharkBackend(kind)

    def details() -> dict[str, Any]:
        from graia.backends import futhark

        return futhark.device_info(kind)

    return Entry(probe, create, good_default, default_reason, details, needs_gpu)


def _opencl_on_gpu() -> bool:
    from graia.backends import futhark

    return futhark.device_info("opencl").get("type") == "gpu"


#: Every backend, in the order the default is chosen: fastest first, as measured by
#: benchmarks/speed.py (docs/performance.md): OpenCL on a GPU; on CPUs the Futhark multicore
#: backend, which since arithmetic revision 2 vectorises its update and was 2.3-3.1x faster than
#: before and faster than Numba in the same run (784-512-10, 784-4000-10, digits); then the Numba
#: reference, where the compiled modules are not built. OpenCL on a CPU (PoCL) is far slower than
#: both, so it is never the default.
BACKENDS: dict[str, Entry] = {
    "opencl": _futhark_entry(
        "opencl",
        good_default=_opencl_on_gpu,
        default_reason="default: OpenCL on a GPU is the fastest backend",
    ),
    "cuda": _futhark_entry(
        "cuda",
        good_default=lambda: True,
        default_reason="default: the NVIDIA GPU, where OpenCL does not reach it",
        needs_gpu=True,
    ),
    "multicore": _futhark_entry(
        "multicore",
        good_default=lambda: True,
        default_reason="default on CPUs: measured faster than numba (docs/performance.md)",
    ),
    "numba": Entry(
        probe=_numba_probe,
        create=_numba_backend,
        good_default=lambda: True,
        default_reason="default: the compiled multicore backend is not available here",
        details=lambda: None,
    ),
}

#: Every backend's name.
NAMES = tuple(BACKENDS)


class BackendError(GraiaError):
    """A backend was asked for that is unknown or cannot run here."""


_instances: dict[str, Backend] = {}
_probes: dict[str, tuple[bool, str]] = {}
_local = threading.local()
_default: str | None = None
_default_error: BackendError | None = None


def _probe(name: str) -> tuple[bool, str]:
    if name not in _probes:
        _probes[name] = BACKENDS[name].probe()
    return _probes[name]


def available() -> dict[str, tuple[bool, str]]:
    """Every backend with ``(usable, reason it is not)``."""
    return {name: _probe(name) for name in NAMES}


def details(name: str) -> dict[str, Any] | None:
    """What backend ``name`` runs on (threads, OpenCL device), or None when there is nothing
    to say."""
    return BACKENDS[_check(name, "details()")].details()


def _check(name: str, source: str) -> str:
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r} ({source}); valid: {', '.join(NAMES)}")
    ok, reason = _probe(name)
    if not ok:
        raise BackendError(f"backend {name!r} ({source}) cannot run here: {reason}")
    return name


def _select_default() -> None:
    global _default, _default_error
    wanted = os.environ.get("GRAIA_BACKEND", "").strip().lower()
    try:
        if wanted:
            _default = _check(wanted, "GRAIA_BACKEND")
        else:
            _default = next(n for n in NAMES if _probe(n)[0] and BACKENDS[n].good_default())
    except BackendError as exc:
        _default, _default_error = None, exc


def default_reason() -> str:
    """Why the backend in use by default is the default (for ``graia info``)."""
    wanted = os.environ.get("GRAIA_BACKEND", "").strip()
    if wanted:
        return f"GRAIA_BACKEND={wanted}"
    return BACKENDS[name()].default_reason


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


def get(backend: str | None = None) -> Backend:
    """The backend object named ``backend`` (default: the one in use)."""
    chosen = name() if backend is None else _check(backend, "argument")
    if chosen not in _instances:
        _instances[chosen] = BACKENDS[chosen].create()
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
