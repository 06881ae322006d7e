"""The C API of a Futhark-compiled module, driven through CFFI: loading the module, a context, and
the values (arrays and opaque records) it owns.

Futhark's C API is the same for every compiled backend; what differs (threads, OpenCL device) is
set on the context configuration by a :class:`Target` (``multicore.Multicore``,
``opencl.OpenCL``).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import threading
import weakref
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from graia.errors import GraiaError

_CTYPES = {
    np.dtype(np.int8): "int8_t",
    np.dtype(np.uint8): "uint8_t",
    np.dtype(np.int32): "int32_t",
    np.dtype(np.int64): "int64_t",
}
_FUT_ELEM = {
    np.dtype(np.int8): "i8",
    np.dtype(np.uint8): "u8",
    np.dtype(np.int32): "i32",
    np.dtype(np.int64): "i64",
}


class Target(Protocol):
    """What one compiled Futhark backend adds to the common C API."""

    #: The backend's name (``graia.backend``'s).
    name: str
    #: Import name of the compiled CFFI module (CMakeLists.txt builds and installs it).
    module: str
    #: What to do when the build left the module out.
    not_built: str

    @property
    def runs_on_cpu(self) -> bool:
        """Whether the configured context computes on CPU cores."""

    def configure(self, mod: ModuleType, cfg: Any, keep: list) -> None:
        """Set this target's options on the context configuration ``cfg`` (C strings it passes
        go into ``keep``, which outlives the configuration calls); GraiaError if it cannot run."""

    def unusable(self, mod: ModuleType) -> str:
        """Why the target cannot run here, or ``""`` (cheap: for probing)."""

    def details(self, mod: ModuleType) -> dict[str, Any]:
        """What the target runs on (for ``graia info``)."""


def cache_file(variable: str, name: str) -> str | None:
    """The file in which Futhark keeps a compiled GPU program (its cache file): ``name`` with
    every run of other characters than letters and digits made one ``-``, plus ``.bin``, in the
    directory that environment ``variable`` names (default ``$XDG_CACHE_HOME/graia``, else
    ``~/.cache/graia``); None when ``variable`` is ``0`` or the directory cannot be created."""
    setting = os.environ.get(variable, "").strip()
    if setting == "0":
        return None
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = setting or os.path.join(home, "graia")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:
        return None  # a read-only home: compile every time, as without a cache
    return os.path.join(directory, re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-") + ".bin")


def not_built_reason(target: Target) -> str:
    """Why the build left ``target`` out, as CMakeLists.txt recorded it; else the general advice."""
    try:
        from graia.backends._build_notes import NOT_BUILT
    except ImportError:  # a source tree that was never built
        return target.not_built
    return NOT_BUILT.get(target.name, target.not_built)


def import_compiled(target: Target) -> ModuleType:
    """The compiled module of ``target``; ImportError with a helpful message if it cannot load."""
    try:
        return importlib.import_module(target.module)
    except ModuleNotFoundError as exc:
        if exc.name == target.module:
            raise ImportError(not_built_reason(target)) from exc
        raise
    except ImportError as exc:  # e.g. libOpenCL.so.1 missing at run time
        msg = str(exc)
        if "OpenCL" in msg:
            msg += " (the OpenCL ICD loader is missing: apt-get install ocl-icd-libopencl1)"
        raise ImportError(f"{target.module} failed to load: {msg}") from exc


def _free_context(lib, ctx, cfg, alive: list[bool] | None = None) -> None:
    if alive is not None:
        alive[0] = False
    lib.futhark_context_free(ctx)
    lib.futhark_context_config_free(cfg)


class Context:
    """A Futhark configuration and context of one compiled module, with error handling."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.kind = target.name
        self.mod = import_compiled(target)
        self.ffi, self.lib = self.mod.ffi, self.mod.lib
        self.lock = threading.RLock()
        lib, ffi = self.lib, self.ffi
        cfg = lib.futhark_context_config_new()
        if cfg == ffi.NULL:
            raise GraiaError(f"futhark {self.kind}: cannot allocate a context configuration")
        keep: list = []  # C strings must outlive the config calls
        if os.environ.get("GRAIA_FUTHARK_PROFILE", "").strip() == "1":
            lib.futhark_context_config_set_profiling(cfg, 1)
        try:
            target.configure(self.mod, cfg, keep)
        except BaseException:
            lib.futhark_context_config_free(cfg)
            raise
        ctx = lib.futhark_context_new(cfg)
        if ctx == ffi.NULL:
            lib.futhark_context_config_free(cfg)
            raise GraiaError(f"futhark {self.kind}: cannot create a context")
        err = lib.futhark_context_get_error(ctx)
        if err != ffi.NULL:
            msg = self._take_string(err)
            _free_context(lib, ctx, cfg)
            raise GraiaError(f"futhark {self.kind}: cannot create a context: {msg.strip()}")
        self.ctx = ctx
        #: Shared with the values' finalizers: the garbage collector may finalise a context and
        #: its values in any order (e.g. within a reference cycle), and a value must not be freed
        #: after its context (which releases the value's memory itself).
        self.alive = [True]
        self._finalizer = weakref.finalize(self, _free_context, lib, ctx, cfg, self.alive)

    def _take_string(self, ptr) -> str:
        s = self.ffi.string(ptr).decode(errors="replace")
        self.lib.free(ptr)
        return s

    def error(self, what: str) -> GraiaError:
        ptr = self.lib.futhark_context_get_error(self.ctx)
        msg = self._take_string(ptr).strip() if ptr != self.ffi.NULL else "unknown error"
        return GraiaError(f"futhark {self.kind}: {what} failed: {msg}")

    def check(self, rc: int, what: str) -> None:
        if rc != 0:
            raise self.error(what)

    def sync(self, what: str = "sync") -> None:
        self.check(self.lib.futhark_context_sync(self.ctx), what)

    def report(self) -> dict[str, Any]:
        """Futhark's report: peak memory per space and the profiled events since the last report."""
        ptr = self.lib.futhark_context_report(self.ctx)
        if ptr == self.ffi.NULL:
            raise self.error("report")
        return json.loads(self._take_string(ptr))

    # ---- arrays ----------------------------------------------------------------------------

    def new_array(self, a: np.ndarray) -> Value:
        """Copy a C-contiguous numpy array to the device. Keep ``a`` alive until the next sync."""
        elem = _FUT_ELEM[a.dtype]
        name = f"{elem}_{a.ndim}d"
        ptr = self.ffi.cast(_CTYPES[a.dtype] + " *", self.ffi.from_buffer(a))
        out = getattr(self.lib, f"futhark_new_{name}")(self.ctx, ptr, *a.shape)
        if out == self.ffi.NULL:
            raise self.error(f"copying a {a.dtype} array of shape {a.shape} to the device")
        return Value(self, out, name)

    def to_numpy(self, value: Value, dtype) -> np.ndarray:
        """Copy an array value back to the host (syncs)."""
        dtype = np.dtype(dtype)
        ndim = int(value.name.split("_")[1][:-1])
        shape_ptr = getattr(self.lib, f"futhark_shape_{value.name}")(self.ctx, value.ptr)
        shape = tuple(int(shape_ptr[i]) for i in range(ndim))
        out = np.empty(shape, dtype)
        if out.size:
            dst = self.ffi.cast(_CTYPES[dtype] + " *", self.ffi.from_buffer(out))
            self.check(
                getattr(self.lib, f"futhark_values_{value.name}")(self.ctx, value.ptr, dst),
                "reading an array",
            )
        self.sync("reading an array")
        return out


def _free_value(free, ctx, ptr, alive: list[bool]) -> None:
    if alive[0]:
        free(ctx, ptr)


class Value:
    """An array or opaque value owned by a context; freed when garbage-collected."""

    __slots__ = ("__weakref__", "_finalizer", "context", "name", "ptr")

    def __init__(self, context: Context, ptr, name: str) -> None:
        self.context = context  # keeps the context alive while the value lives
        self.ptr = ptr
        self.name = name
        free = getattr(context.lib, f"futhark_free_{name}")
        self._finalizer = weakref.finalize(self, _free_value, free, context.ctx, ptr, context.alive)

    def free(self) -> None:
        self._finalizer()
