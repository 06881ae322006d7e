"""The OpenCL target: which platform and device a context uses, and PoCL's work-arounds.

Environment:

- ``GRAIA_OPENCL_PLATFORM``: a substring of the OpenCL platform's name.
- ``GRAIA_OPENCL_DEVICE``: which device, in one of two forms:

  - a number ``N`` (``0``, ``1``, ...): the N-th GPU (counting from 0, in the order Futhark
    lists the devices, of the platforms that ``GRAIA_OPENCL_PLATFORM`` matches), or the N-th
    device where there is no GPU. Two GPUs of the same model have the same name; this tells
    them apart.
  - a substring of the device's name (the first match wins; ``#k`` before it picks the k-th
    match, counting from 0), as Futhark's ``-d`` option.

  Without it: the first GPU, else the first device; except in a process started by an MPI
  launcher (``mpirun``, ``srun``: its local rank is read from ``OMPI_COMM_WORLD_LOCAL_RANK``,
  ``MPI_LOCALRANKID``, ``SLURM_LOCALID`` or, once graia.distributed has started MPI, as MPI
  gave it: graia.backends.interface.local_rank), where a platform has several GPUs: GPU
  ``local rank mod GPU count``, one GPU per rank.
- ``GRAIA_OPENCL_BUILD_OPTIONS``: extra options for the OpenCL kernel compiler.
- ``GRAIA_OPENCL_CACHE``: the directory where the compiled program is kept, one file per device
  (default ``$XDG_CACHE_HOME/graia``, else ``~/.cache/graia``), so that only a machine's first
  process pays the kernel compiler (minutes on an NVIDIA GPU; docs/performance.md). Futhark
  checks a file against the program's source and build options before it uses it, and compiles
  again when they differ. ``0`` turns the cache off.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

from graia.backends.futhark.ffi import cache_file
from graia.backends.interface import local_rank
from graia.errors import GraiaError

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


def program_cache(device: dict[str, Any]) -> str | None:
    """The file that keeps the compiled program for ``device`` (``GRAIA_OPENCL_CACHE``), or
    ``None`` when the cache is off or its directory cannot be created."""
    return cache_file("GRAIA_OPENCL_CACHE", f"opencl {device['platform']} {device['device']}")


# --------------------------------------------------------------------------------------------
# Platform/device enumeration (mirrors Futhark's own choice of device)


def _cl_string(ffi, getter, obj, param) -> str:
    size = ffi.new("size_t *")
    if getter(obj, param, 0, ffi.NULL, size) != 0:
        return ""
    buf = ffi.new("char[]", size[0] + 1)
    if getter(obj, param, size[0], buf, ffi.NULL) != 0:
        return ""
    return ffi.string(buf).decode(errors="replace")


def cl_devices(mod: ModuleType) -> list[dict[str, Any]]:
    """Every OpenCL device, in the order Futhark sees them (platforms, then devices; ``index``
    is the position in that order)."""
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
            out[-1]["index"] = len(out) - 1
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


def _futhark_selector(devices: list[dict], chosen: dict) -> tuple[str, str]:
    """The platform and device strings with which Futhark's rule (`_choose_device`) picks
    ``chosen``: its platform and name, and ``#k`` for the k-th of the devices of that name."""
    same = [
        d
        for d in devices
        if chosen["platform"] in d["platform"] and chosen["device"] in d["device"]
    ]
    k = next(i for i, d in enumerate(same) if d is chosen)
    return chosen["platform"], f"#{k} {chosen['device']}" if k else chosen["device"]


def _gpu_or_device(devices: list[dict], platform: str, index: int) -> dict | None:
    """The ``index``-th GPU of the platforms matching ``platform``, or the ``index``-th device
    when they have no GPU."""
    matching = [d for d in devices if platform in d["platform"]]
    gpus = [d for d in matching if d["type"] == "gpu"] or matching
    return gpus[index] if index < len(gpus) else None


def pick_device(
    devices: list[dict], platform: str, device: str, local_rank: int | None = None
) -> tuple[dict | None, str, str]:
    """The device to use, and the platform and device strings to give Futhark for it.

    A number ``device`` is an index (`_gpu_or_device`). A name uses Futhark's own rule
    (`_choose_device`). Without one, the first GPU if there is any (Futhark alone would take the
    first device, which may be a CPU: PoCL is often listed before the GPU's platform), else the
    first device; under MPI (``local_rank`` not None), GPU ``local_rank mod count`` of the first
    platform that has any.
    """
    if device.strip().isdigit():
        chosen = _gpu_or_device(devices, platform, int(device))
    elif platform or device:
        return _choose_device(devices, platform, device), platform, device
    else:
        gpus = [d for d in devices if d["type"] == "gpu"]
        if not gpus:
            return _choose_device(devices, "", ""), "", ""
        chosen = gpus[0]
        if local_rank is not None:
            same_platform = [d for d in gpus if d["platform"] == chosen["platform"]]
            chosen = same_platform[local_rank % len(same_platform)]
    if chosen is None:
        return None, platform, device
    return (chosen, *_futhark_selector(devices, chosen))


def _is_pocl(device: dict) -> bool:
    return (
        "Portable Computing Language" in device["platform"] or "pocl" in device["platform"].lower()
    )


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


# --------------------------------------------------------------------------------------------
# The target


class OpenCL:
    """The ``opencl`` backend: one OpenCL device, chosen by the arguments, else by
    ``GRAIA_OPENCL_PLATFORM``/``GRAIA_OPENCL_DEVICE``, else the first GPU or, under MPI, the
    local rank's GPU (see module docs)."""

    name = "opencl"
    module = "graia.backends._futhark_opencl"
    not_built = (
        "the compiled module graia.backends._futhark_opencl is not installed: graia was installed "
        "without the futhark compiler or without OpenCL headers and ICD loader. Run "
        "scripts/install-toolchain (as root; it installs futhark, ocl-icd-opencl-dev, "
        "opencl-headers and pocl-opencl-icd), then reinstall graia (pip install .)"
    )

    def __init__(
        self,
        *,
        platform: str | None = None,
        device: str | None = None,
        build_options: list[str] | None = None,
    ) -> None:
        if platform is None:
            platform = os.environ.get("GRAIA_OPENCL_PLATFORM", "")
        if device is None:
            device = os.environ.get("GRAIA_OPENCL_DEVICE", "")
        self.platform, self.device = platform, device
        self.extra_build_options = list(build_options or [])
        #: Set by :meth:`configure`: the device in use and the kernel compiler's options.
        self.chosen: dict[str, Any] | None = None
        self.build_options: list[str] = []

    @property
    def runs_on_cpu(self) -> bool:
        return (self.chosen or {}).get("type") == "cpu"

    def _choose(self, devices: list[dict]) -> tuple[dict | None, str, str, str]:
        """The device and the strings to give Futhark, or why none is usable."""
        if not devices:
            return None, "", "", _no_opencl_reason()
        chosen, platform, device = pick_device(devices, self.platform, self.device, local_rank())
        if chosen is None:
            listing = "; ".join(f"{d['platform']}: {d['device']}" for d in devices)
            return (
                None,
                "",
                "",
                (
                    f"no OpenCL device matches platform {self.platform!r} and device "
                    f"{self.device!r} (GRAIA_OPENCL_PLATFORM / GRAIA_OPENCL_DEVICE); "
                    f"available: {listing}"
                ),
            )
        if chosen["max_work_group_size"] > _MAX_BLOCK:
            return None, "", "", _large_blocks_reason(chosen)
        return chosen, platform, device, ""

    def configure(self, mod: ModuleType, cfg: Any, keep: list) -> None:
        ffi, lib = mod.ffi, mod.lib
        chosen, platform, device, problem = self._choose(cl_devices(mod))
        if chosen is None:
            raise GraiaError(problem)
        for setter, value in (
            (lib.futhark_context_config_set_platform, platform),
            (lib.futhark_context_config_set_device, device),
        ):
            if value:
                keep.append(ffi.new("char[]", value.encode()))
                setter(cfg, keep[-1])
        options = (
            self.extra_build_options + os.environ.get("GRAIA_OPENCL_BUILD_OPTIONS", "").split()
        )
        if _is_pocl(chosen):
            options.append(_POCL_WORKAROUND)
        for opt in options:
            keep.append(ffi.new("char[]", opt.encode()))
            lib.futhark_context_config_add_build_option(cfg, keep[-1])
        cache = program_cache(chosen)
        if cache:
            keep.append(ffi.new("char[]", cache.encode()))
            lib.futhark_context_config_set_cache_file(cfg, keep[-1])
        self.chosen, self.build_options = chosen, options

    def unusable(self, mod: ModuleType) -> str:
        """Whether the device Futhark would pick exists (without compiling any kernel)."""
        try:
            devices = cl_devices(mod)
        except Exception as exc:  # noqa: BLE001 - a broken ICD must not break `import graia`
            return f"querying OpenCL platforms failed: {exc}"
        return self._choose(devices)[3]

    def details(self, mod: ModuleType) -> dict[str, Any]:
        devices = cl_devices(mod)
        info: dict[str, Any] = {}
        if self.chosen is not None:
            info.update(self.chosen)
            info["build_options"] = self.build_options
        else:
            chosen = self._choose(devices)[0]
            if chosen is not None:
                info.update(chosen)
        info["all_devices"] = [f"{d['platform']}: {d['device']}" for d in devices]
        return info
