"""The Futhark backends: one wrapper for the multicore and the OpenCL compiled modules.

``futhark/graia.fut`` is compiled at install time (CMakeLists.txt) by ``futhark multicore`` and
``futhark opencl`` into the CFFI extension modules ``graia.backends._futhark_multicore`` and
``graia.backends._futhark_opencl``. Both export the same C API; this module drives it directly
(config, context, arrays, entry points) rather than through futhark-ffi's runtime class, so that it
can set the thread count and OpenCL device, sync before reading results, and keep inputs alive
until the device is done with them.

The network state is one opaque Futhark value that stays on the device; datasets are Futhark arrays
that stay there across epochs; ``train_epoch`` runs a whole epoch in one entry-point call.

Environment:

- ``GRAIA_NUM_THREADS``: threads of the multicore backend (default: every core this process may
  use).
- ``GRAIA_OPENCL_PLATFORM``, ``GRAIA_OPENCL_DEVICE``: substrings of the OpenCL platform and device
  names to use (the first match wins; ``#k`` before the device name picks the k-th match), as
  Futhark's ``-p``/``-d`` options. Without them the first GPU is used, else the first device.
- ``GRAIA_OPENCL_BUILD_OPTIONS``: extra options for the OpenCL kernel compiler.
- ``GRAIA_FUTHARK_PROFILE=1``: record Futhark's per-kernel profile (see ``FutharkBackend.report``;
  ``benchmarks/speed.py --profile`` prints it). Costs a little time per kernel.
"""

from __future__ import annotations

import importlib
import json
import os
import threading
import weakref
from typing import Any

import numpy as np

from graia.backends.interface import (
    HOST_STATE_DTYPES,
    HostState,
    feedback_blocks,
    layer_blocks,
)
from graia.errors import GraiaError

__all__ = ["KINDS", "FutharkBackend", "device_info", "probe"]

#: The compiled modules, by backend name.
KINDS = {
    "multicore": "graia.backends._futhark_multicore",
    "opencl": "graia.backends._futhark_opencl",
}

#: The deepest network the compiled modules have entry points for (scripts/gen_graia_fut.py).
MAX_LAYERS = 4

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

# OpenCL constants (CL/cl.h).
_CL_PLATFORM_NAME = 0x0902
_CL_PLATFORM_VERSION = 0x0901
_CL_DEVICE_TYPE_ALL = 0xFFFFFFFF
_CL_DEVICE_TYPE = 0x1000
_CL_DEVICE_NAME = 0x102B
_CL_DEVICE_VERSION = 0x102F
_CL_DEVICE_MAX_COMPUTE_UNITS = 0x1002
_CL_DEVICE_GLOBAL_MEM_SIZE = 0x101F
_CL_DEVICE_MAX_WORK_GROUP_SIZE = 0x1004
_CL_DEVICE_TYPE_CPU = 1 << 1
_CL_DEVICE_TYPE_GPU = 1 << 2

#: Futhark 0.25's intra-block scans (used by its matrix products when a whole row fits in one
#: thread block) assume thread blocks of at most 1024 threads, as on GPUs; PoCL offers 4096 on
#: CPUs, and the results are then wrong. PoCL reads this variable when it initialises, which is
#: why it is set when this module is imported (it only affects PoCL, and only if not set already).
_MAX_BLOCK = 1024
os.environ.setdefault("POCL_MAX_WORK_GROUP_SIZE", str(_MAX_BLOCK))

#: PoCL (as in Debian 12's 3.1) miscompiles the "last thread block" step of Futhark's
#: single-pass reductions (code meant for thread 0 runs on every thread, so a counter in device
#: memory drifts and every later reduction returns a stale value). Compiling the kernels without
#: optimisation avoids it; PoCL only serves tests on CPUs, so the speed lost does not matter.
_POCL_WORKAROUND = "-cl-opt-disable"

_NOT_BUILT = {
    "multicore": (
        "the compiled module graia.backends._futhark_multicore is not installed: graia was "
        "installed without the futhark compiler. Run scripts/install-toolchain (as root), then "
        "reinstall graia (pip install .)"
    ),
    "opencl": (
        "the compiled module graia.backends._futhark_opencl is not installed: graia was installed "
        "without the futhark compiler or without OpenCL headers and ICD loader. Run "
        "scripts/install-toolchain (as root; it installs futhark, ocl-icd-opencl-dev, "
        "opencl-headers and pocl-opencl-icd), then reinstall graia (pip install .)"
    ),
}


def _not_built_reason(kind: str) -> str:
    """Why the build left ``kind`` out, as CMakeLists.txt recorded it; else the general advice."""
    try:
        from graia.backends._build_notes import NOT_BUILT
    except ImportError:  # a source tree that was never built
        return _NOT_BUILT[kind]
    return NOT_BUILT.get(kind, _NOT_BUILT[kind])


def _import(kind: str):
    """The compiled module of ``kind``; ImportError with a helpful message if it cannot load."""
    if kind not in KINDS:
        raise GraiaError(f"unknown Futhark backend {kind!r}; valid: {', '.join(KINDS)}")
    try:
        return importlib.import_module(KINDS[kind])
    except ModuleNotFoundError as exc:
        if exc.name == KINDS[kind]:
            raise ImportError(_not_built_reason(kind)) from exc
        raise
    except ImportError as exc:  # e.g. libOpenCL.so.1 missing at run time
        msg = str(exc)
        if "OpenCL" in msg:
            msg += " (the OpenCL ICD loader is missing: apt-get install ocl-icd-libopencl1)"
        raise ImportError(f"{KINDS[kind]} failed to load: {msg}") from exc


# --------------------------------------------------------------------------------------------
# OpenCL platform/device enumeration (mirrors Futhark's own choice of device)


def _cl_string(ffi, getter, obj, param) -> str:
    size = ffi.new("size_t *")
    if getter(obj, param, 0, ffi.NULL, size) != 0:
        return ""
    buf = ffi.new("char[]", size[0] + 1)
    if getter(obj, param, size[0], buf, ffi.NULL) != 0:
        return ""
    return ffi.string(buf).decode(errors="replace")


def _cl_devices(mod) -> list[dict[str, Any]]:
    """Every OpenCL device, in the order Futhark sees them (platforms, then devices)."""
    ffi, lib = mod.ffi, mod.lib
    count = ffi.new("cl_uint *")
    if lib.clGetPlatformIDs(0, ffi.NULL, count) != 0 or count[0] == 0:
        return []
    platforms = ffi.new("cl_platform_id[]", count[0])
    if lib.clGetPlatformIDs(count[0], platforms, ffi.NULL) != 0:
        return []
    out = []
    for p in platforms:
        pname = _cl_string(ffi, lib.clGetPlatformInfo, p, _CL_PLATFORM_NAME)
        pversion = _cl_string(ffi, lib.clGetPlatformInfo, p, _CL_PLATFORM_VERSION)
        ndev = ffi.new("cl_uint *")
        if lib.clGetDeviceIDs(p, _CL_DEVICE_TYPE_ALL, 0, ffi.NULL, ndev) != 0 or ndev[0] == 0:
            continue
        devices = ffi.new("cl_device_id[]", ndev[0])
        if lib.clGetDeviceIDs(p, _CL_DEVICE_TYPE_ALL, ndev[0], devices, ffi.NULL) != 0:
            continue
        for d in devices:
            out.append(_cl_device_record(mod, d, pname, pversion))
    return out


def _cl_device_record(mod, device, pname: str, pversion: str) -> dict[str, Any]:
    ffi, lib = mod.ffi, mod.lib
    dtype = ffi.new("cl_device_type *")
    lib.clGetDeviceInfo(device, _CL_DEVICE_TYPE, ffi.sizeof("cl_device_type"), dtype, ffi.NULL)
    units = ffi.new("cl_uint *")
    lib.clGetDeviceInfo(
        device, _CL_DEVICE_MAX_COMPUTE_UNITS, ffi.sizeof("cl_uint"), units, ffi.NULL
    )
    mem = ffi.new("cl_ulong *")
    lib.clGetDeviceInfo(device, _CL_DEVICE_GLOBAL_MEM_SIZE, ffi.sizeof("cl_ulong"), mem, ffi.NULL)
    block = ffi.new("size_t *")
    lib.clGetDeviceInfo(
        device, _CL_DEVICE_MAX_WORK_GROUP_SIZE, ffi.sizeof("size_t"), block, ffi.NULL
    )
    kind = (
        "gpu"
        if dtype[0] & _CL_DEVICE_TYPE_GPU
        else "cpu"
        if dtype[0] & _CL_DEVICE_TYPE_CPU
        else "other"
    )
    return {
        "platform": pname,
        "platform_version": pversion,
        "device": _cl_string(ffi, lib.clGetDeviceInfo, device, _CL_DEVICE_NAME),
        "device_version": _cl_string(ffi, lib.clGetDeviceInfo, device, _CL_DEVICE_VERSION),
        "type": kind,
        "compute_units": int(units[0]),
        "global_memory_bytes": int(mem[0]),
        "max_work_group_size": int(block[0]),
    }


def _choose_device(devices: list[dict], platform: str, device: str) -> dict | None:
    """The device Futhark picks for these preferences (see get_preferred_device in its runtime)."""
    number = 0
    if device.startswith("#"):
        digits = ""
        rest = device[1:]
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        number, device = int(digits or 0), rest.lstrip()
    preferred = bool(platform or device)
    matches = 0
    for d in devices:
        if platform not in d["platform"] or device not in d["device"]:
            continue
        if not preferred and "Apple" in d["platform"] and "Intel(R) Core(TM)" in d["device"]:
            continue  # Futhark's blacklist
        if matches == number:
            return d
        matches += 1
    return None


def _pick_device(devices: list[dict], platform: str, device: str) -> tuple[dict | None, str, str]:
    """The device to use, and the platform and device strings to give Futhark for it.

    With a preference, Futhark's own rule (`_choose_device`). Without one, the first GPU if there
    is any (Futhark alone would take the first device, which may be a CPU: PoCL is often listed
    before the GPU's platform), else the first device.
    """
    if platform or device:
        return _choose_device(devices, platform, device), platform, device
    gpus = [d for d in devices if d["type"] == "gpu"]
    if gpus:
        return gpus[0], gpus[0]["platform"], gpus[0]["device"]
    return _choose_device(devices, "", ""), "", ""


def _opencl_preferences(platform: str | None, device: str | None) -> tuple[str, str]:
    if platform is None:
        platform = os.environ.get("GRAIA_OPENCL_PLATFORM", "")
    if device is None:
        device = os.environ.get("GRAIA_OPENCL_DEVICE", "")
    return platform, device


# --------------------------------------------------------------------------------------------
# Context and values


def _default_threads() -> int:
    env = os.environ.get("GRAIA_NUM_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            raise GraiaError(f"GRAIA_NUM_THREADS must be a positive integer, got {env!r}") from None
        if n < 1:
            raise GraiaError(f"GRAIA_NUM_THREADS must be a positive integer, got {env!r}")
        return n
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _free_context(lib, ctx, cfg, alive: list[bool] | None = None) -> None:
    if alive is not None:
        alive[0] = False
    lib.futhark_context_free(ctx)
    lib.futhark_context_config_free(cfg)


class _Context:
    """A Futhark configuration and context of one compiled module, with error handling."""

    def __init__(
        self,
        kind: str,
        *,
        num_threads: int | None = None,
        platform: str | None = None,
        device: str | None = None,
        build_options: list[str] | None = None,
    ) -> None:
        self.kind = kind
        self.mod = _import(kind)
        self.ffi, self.lib = self.mod.ffi, self.mod.lib
        self.lock = threading.RLock()
        self.opencl_device: dict | None = None
        self.num_threads: int | None = None
        self.build_options: list[str] = []
        lib, ffi = self.lib, self.ffi
        cfg = lib.futhark_context_config_new()
        if cfg == ffi.NULL:
            raise GraiaError(f"futhark {kind}: cannot allocate a context configuration")
        keep = []  # C strings must outlive the config calls
        if os.environ.get("GRAIA_FUTHARK_PROFILE", "").strip() == "1":
            lib.futhark_context_config_set_profiling(cfg, 1)
        if kind == "multicore":
            self.num_threads = num_threads or _default_threads()
            lib.futhark_context_config_set_num_threads(cfg, self.num_threads)
        else:
            platform, device = _opencl_preferences(platform, device)
            devices = _cl_devices(self.mod)
            if not devices:
                lib.futhark_context_config_free(cfg)
                raise GraiaError(_no_opencl_reason())
            chosen, platform, device = _pick_device(devices, platform, device)
            if chosen is None:
                lib.futhark_context_config_free(cfg)
                listing = "; ".join(f"{d['platform']}: {d['device']}" for d in devices)
                raise GraiaError(
                    f"no OpenCL device matches platform {platform!r} and device {device!r} "
                    f"(GRAIA_OPENCL_PLATFORM / GRAIA_OPENCL_DEVICE); available: {listing}"
                )
            if chosen["max_work_group_size"] > _MAX_BLOCK:
                lib.futhark_context_config_free(cfg)
                raise GraiaError(_large_blocks_reason(chosen))
            self.opencl_device = chosen
            for setter, value in (
                (lib.futhark_context_config_set_platform, platform),
                (lib.futhark_context_config_set_device, device),
            ):
                if value:
                    keep.append(ffi.new("char[]", value.encode()))
                    setter(cfg, keep[-1])
            options = list(build_options or [])
            options += os.environ.get("GRAIA_OPENCL_BUILD_OPTIONS", "").split()
            if (
                "Portable Computing Language" in chosen["platform"]
                or "pocl" in chosen["platform"].lower()
            ):
                options.append(_POCL_WORKAROUND)
            for opt in options:
                keep.append(ffi.new("char[]", opt.encode()))
                lib.futhark_context_config_add_build_option(cfg, keep[-1])
            self.build_options = options
        ctx = lib.futhark_context_new(cfg)
        if ctx == ffi.NULL:
            lib.futhark_context_config_free(cfg)
            raise GraiaError(f"futhark {kind}: cannot create a context")
        err = lib.futhark_context_get_error(ctx)
        if err != ffi.NULL:
            msg = self._take_string(err)
            _free_context(lib, ctx, cfg)
            raise GraiaError(f"futhark {kind}: cannot create a context: {msg.strip()}")
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

    def new_array(self, a: np.ndarray) -> _Value:
        """Copy a C-contiguous numpy array to the device. Keep ``a`` alive until the next sync."""
        elem = _FUT_ELEM[a.dtype]
        name = f"{elem}_{a.ndim}d"
        ptr = self.ffi.cast(_CTYPES[a.dtype] + " *", self.ffi.from_buffer(a))
        out = getattr(self.lib, f"futhark_new_{name}")(self.ctx, ptr, *a.shape)
        if out == self.ffi.NULL:
            raise self.error(f"copying a {a.dtype} array of shape {a.shape} to the device")
        return _Value(self, out, name)

    def to_numpy(self, value: _Value, dtype) -> np.ndarray:
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


class _Value:
    """An array or opaque value owned by a context; freed when garbage-collected."""

    __slots__ = ("__weakref__", "_finalizer", "context", "name", "ptr")

    def __init__(self, context: _Context, ptr, name: str) -> None:
        self.context = context  # keeps the context alive while the value lives
        self.ptr = ptr
        self.name = name
        free = getattr(context.lib, f"futhark_free_{name}")
        self._finalizer = weakref.finalize(self, _free_value, free, context.ctx, ptr, context.alive)

    def free(self) -> None:
        self._finalizer()


class FutharkState:
    """A network resident on a Futhark backend: an opaque ``net<depth>`` value, and the parts of
    its host state that training never changes (kept here, so that ``dump`` need not fetch them).
    """

    def __init__(
        self,
        value: _Value,
        backend: FutharkBackend,
        depth: int,
        fixed: HostState,
        seed: int,
    ) -> None:
        self.value = value
        self.backend = backend
        self.depth = depth
        self.fixed = fixed
        self.seed = seed

    def replaced(self, value: _Value) -> FutharkState:
        """The same network with a new device value (after training)."""
        return FutharkState(value, self.backend, self.depth, self.fixed, self.seed)

    def __repr__(self) -> str:
        return f"<FutharkState on {self.backend.name}>"


class FutharkDataset:
    """A dataset (``x`` u8 ``(n, features)``, ``y`` i32 ``(n,)``) resident on a Futhark backend."""

    def __init__(
        self, x: _Value, y: _Value, n: int, features: int, backend: FutharkBackend
    ) -> None:
        self.x, self.y = x, y
        self.n, self.features = n, features
        self.backend = backend

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"<FutharkDataset {self.n}x{self.features} on {self.backend.name}>"


# --------------------------------------------------------------------------------------------
# The backend


class FutharkBackend:
    """A Futhark-compiled backend: ``kind`` is ``"multicore"`` or ``"opencl"``.

    Implements graia.backends.interface.Backend. The context is created on first use (for OpenCL
    that compiles the kernels, or loads them from the driver's cache).
    """

    def __init__(
        self,
        kind: str = "multicore",
        *,
        num_threads: int | None = None,
        platform: str | None = None,
        device: str | None = None,
        build_options: list[str] | None = None,
    ) -> None:
        if kind not in KINDS:
            raise GraiaError(f"unknown Futhark backend {kind!r}; valid: {', '.join(KINDS)}")
        self.kind = kind
        self._options = {
            "num_threads": num_threads,
            "platform": platform,
            "device": device,
            "build_options": build_options,
        }
        env = os.environ.get("GRAIA_FUTHARK_CPU_LOOPS", "").strip()
        self._cpu_loops = (env == "1") if env in ("0", "1") else None
        self._context: _Context | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.kind

    @property
    def cpu_loops(self) -> bool:
        """Whether the compiled code uses its CPU forms of the matrix products (same bits, faster
        on CPUs; the other forms are tiled for GPUs): on for multicore and for OpenCL on a CPU
        device (PoCL, which also miscompiles some of the tiled forms), off on GPUs. Env
        ``GRAIA_FUTHARK_CPU_LOOPS=0/1`` overrides it."""
        if self._cpu_loops is None:
            device = self.context.opencl_device
            self._cpu_loops = self.kind == "multicore" or (device or {}).get("type") == "cpu"
        return self._cpu_loops

    @property
    def context(self) -> _Context:
        if self._context is None:
            with self._lock:
                if self._context is None:
                    self._context = _Context(self.kind, **self._options)
        return self._context

    def __repr__(self) -> str:
        return f"FutharkBackend({self.kind!r})"

    # ---- the interface ---------------------------------------------------------------------

    def load(self, state: HostState) -> FutharkState:
        c = self.context
        host = {k: np.ascontiguousarray(state[k], dt) for k, dt in HOST_STATE_DTYPES.items()}
        depth = len(host["sizes"]) - 1
        if not 1 <= depth <= MAX_LAYERS:
            raise GraiaError(
                f"the {self.kind} backend runs networks of 1 to {MAX_LAYERS} weighted layers, not "
                f"{depth}; use GRAIA_BACKEND=numba for deeper ones"
            )
        seed, t, prev_loss = (int(v) for v in host["counters"])
        arrays = []
        for (lat, mom), kmax, shift in zip(
            layer_blocks(host, "latent", "momentum"), host["kmax"], host["shift"]
        ):
            arrays.append((int(kmax), int(shift), lat, mom))
        feedback = feedback_blocks(host)
        with c.lock:
            keep = [c.new_array(host["geometry"])]
            args: list = [bool(self.cpu_loops), seed, t, prev_loss, keep[0].ptr]
            for kmax, shift, lat, mom in arrays:
                keep += [c.new_array(lat), c.new_array(mom)]
                args += [kmax, shift, keep[-2].ptr, keep[-1].ptr]
            for fb in feedback:
                keep.append(c.new_array(fb))
                args.append(keep[-1].ptr)
            out = c.ffi.new(f"struct futhark_opaque_net{depth} **")
            c.check(getattr(c.lib, f"futhark_entry_load_{depth}")(c.ctx, out, *args), "load")
            result = _Value(c, out[0], f"opaque_net{depth}")
            c.sync("load")
            del keep
        fixed = {k: host[k].copy() for k in ("sizes", "geometry", "kmax", "shift", "feedback")}
        return FutharkState(result, self, depth, fixed, seed)

    def dump(self, handle: FutharkState) -> HostState:
        c = self.context
        self._check_handle(handle)
        d = handle.depth
        with c.lock:
            t = c.ffi.new("int64_t *")
            prev_loss = c.ffi.new("int64_t *")
            outs = [c.ffi.new("struct futhark_i32_2d **") for _ in range(2 * d)]
            c.check(
                getattr(c.lib, f"futhark_entry_dump_{d}")(
                    c.ctx, t, prev_loss, *outs, handle.value.ptr
                ),
                "dump",
            )
            values = [_Value(c, o[0], "i32_2d") for o in outs]
            c.sync("dump")
            blocks = [c.to_numpy(v, np.int32).ravel() for v in values]
        host = {k: v.copy() for k, v in handle.fixed.items()}
        host["latent"] = np.concatenate(blocks[0::2]).astype(np.int32, copy=False)
        host["momentum"] = np.concatenate(blocks[1::2]).astype(np.int32, copy=False)
        host["counters"] = np.array([handle.seed, t[0], prev_loss[0]], np.int64)
        return host

    def upload(self, x: np.ndarray, y: np.ndarray) -> FutharkDataset:
        c = self.context
        x = np.ascontiguousarray(x, np.uint8)
        y = np.ascontiguousarray(y, np.int32)
        if x.ndim != 2:
            x = x.reshape(x.shape[0], -1)
        with c.lock:
            xv = c.new_array(x)
            yv = c.new_array(y)
            c.sync("upload")
        return FutharkDataset(xv, yv, int(x.shape[0]), int(x.shape[1]), self)

    def train_epoch(
        self,
        handle: FutharkState,
        dataset: FutharkDataset,
        order: np.ndarray,
        batch_size: int,
        rule_id: int,
        params: np.ndarray,
    ) -> tuple[FutharkState, int, int]:
        c = self.context
        self._check_handle(handle)
        if not isinstance(dataset, FutharkDataset) or dataset.backend is not self:
            raise GraiaError(f"dataset {dataset!r} was not uploaded to backend {self.name!r}")
        order = np.ascontiguousarray(order, np.int32)
        params = np.ascontiguousarray(params, np.int64)
        with c.lock:
            ov = c.new_array(order)
            pv = c.new_array(params)
            out = c.ffi.new(f"struct futhark_opaque_net{handle.depth} **")
            correct = c.ffi.new("int64_t *")
            sq_error = c.ffi.new("int64_t *")
            rc = getattr(c.lib, f"futhark_entry_train_epoch_{handle.depth}")(
                c.ctx,
                out,
                correct,
                sq_error,
                handle.value.ptr,
                dataset.x.ptr,
                dataset.y.ptr,
                ov.ptr,
                int(batch_size),
                int(rule_id),
                pv.ptr,
            )
            c.check(rc, "train_epoch")
            result = _Value(c, out[0], f"opaque_net{handle.depth}")
            c.sync("train_epoch")  # before reading the scalars, and before order/params go
            del ov, pv
        return handle.replaced(result), int(correct[0]), int(sq_error[0])

    def predict(self, handle: FutharkState, x: np.ndarray) -> np.ndarray:
        return self._forward(handle, x, "predict", 1)[0]

    # ---- extras ----------------------------------------------------------------------------

    def activations(self, handle: FutharkState, x: np.ndarray) -> list[np.ndarray]:
        """Every layer's u8 activations (input first) for the rows of ``x``."""
        x = np.ascontiguousarray(x, np.uint8)
        return [x, *self._forward(handle, x, "activations", handle.depth)]

    def _forward(self, handle: FutharkState, x: np.ndarray, entry: str, outputs: int):
        """Run entry ``<entry>_<depth>`` on the rows of ``x``; its ``outputs`` u8 matrices."""
        c = self.context
        self._check_handle(handle)
        x = np.ascontiguousarray(x, np.uint8)
        with c.lock:
            xv = c.new_array(x)
            outs = [c.ffi.new("struct futhark_u8_2d **") for _ in range(outputs)]
            c.check(
                getattr(c.lib, f"futhark_entry_{entry}_{handle.depth}")(
                    c.ctx, *outs, handle.value.ptr, xv.ptr
                ),
                entry,
            )
            values = [_Value(c, o[0], "u8_2d") for o in outs]
            c.sync(entry)
            del xv
            return [c.to_numpy(v, np.uint8) for v in values]

    def report(self) -> dict[str, Any]:
        """Futhark's report since the last one: ``memory`` (peak bytes per memory space) and, with
        ``GRAIA_FUTHARK_PROFILE=1``, ``events`` (each kernel run and copy, with its duration)."""
        c = self.context
        with c.lock:
            return c.report()

    def device_info(self) -> dict[str, Any]:
        """What this backend runs on (for ``graia info``)."""
        return device_info(self.kind, self.context)

    def _check_handle(self, handle: Any) -> None:
        if not isinstance(handle, FutharkState) or handle.backend is not self:
            raise GraiaError(f"state {handle!r} does not belong to backend {self.name!r}")


# --------------------------------------------------------------------------------------------
# Probing and information


def _no_opencl_reason() -> str:
    return (
        "no OpenCL platform with a device was found: install an OpenCL driver (on CPUs, "
        "apt-get install pocl-opencl-icd; on NVIDIA GPUs the driver's OpenCL ICD, which must be "
        "listed in /etc/OpenCL/vendors or OCL_ICD_VENDORS)"
    )


def _large_blocks_reason(d: dict) -> str:
    return (
        f"OpenCL device {d['device']!r} ({d['platform']}) allows thread blocks of "
        f"{d['max_work_group_size']} work items; Futhark 0.25's code is only correct up to "
        f"{_MAX_BLOCK}. For PoCL, set POCL_MAX_WORK_GROUP_SIZE={_MAX_BLOCK} before anything in "
        "the process initialises OpenCL (graia does so when graia.backends.futhark is imported)"
    )


def probe(kind: str) -> tuple[bool, str]:
    """Whether backend ``kind`` can run here, and if not, why (with what to do about it).

    Cheap: it imports the compiled module and, for OpenCL, checks that the device Futhark would
    pick exists. It does not compile the OpenCL kernels (that happens on first use).
    """
    try:
        mod = _import(kind)
    except (ImportError, GraiaError) as exc:
        return False, str(exc)
    if kind == "multicore":
        return True, ""
    try:
        devices = _cl_devices(mod)
    except Exception as exc:  # noqa: BLE001 - a broken ICD must not break `import graia`
        return False, f"querying OpenCL platforms failed: {exc}"
    if not devices:
        return False, _no_opencl_reason()
    platform, device = _opencl_preferences(None, None)
    chosen, _, _ = _pick_device(devices, platform, device)
    if chosen is None:
        listing = "; ".join(f"{d['platform']}: {d['device']}" for d in devices)
        return False, (
            f"no OpenCL device matches GRAIA_OPENCL_PLATFORM={platform!r} "
            f"GRAIA_OPENCL_DEVICE={device!r}; available: {listing}"
        )
    if chosen["max_work_group_size"] > _MAX_BLOCK:
        return False, _large_blocks_reason(chosen)
    return True, ""


def device_info(kind: str, context: _Context | None = None) -> dict[str, Any]:
    """A description of what backend ``kind`` runs on: threads, or OpenCL platform and device."""
    ok, reason = probe(kind)
    info: dict[str, Any] = {"backend": kind, "available": ok}
    if not ok:
        info["reason"] = reason
        return info
    mod = _import(kind)
    info["module"] = KINDS[kind]
    if kind == "multicore":
        info["threads"] = context.num_threads if context is not None else _default_threads()
        return info
    if context is not None and context.opencl_device is not None:
        info.update(context.opencl_device)
        info["build_options"] = context.build_options
    else:
        platform, device = _opencl_preferences(None, None)
        chosen, _, _ = _pick_device(_cl_devices(mod), platform, device)
        if chosen is not None:
            info.update(chosen)
    info["all_devices"] = [f"{d['platform']}: {d['device']}" for d in _cl_devices(mod)]
    return info
