"""The CUDA target: Futhark's CUDA backend on one NVIDIA GPU (kernels compiled by NVRTC).

Environment:

- ``GRAIA_CUDA_DEVICE``: which GPU, a number ``N`` (the N-th CUDA device, counting from 0) or a
  substring of its name (``#k`` before it picks the k-th match), as Futhark's ``-d`` option.
  Without it: the first device; in a process started by an MPI launcher, device
  ``local rank mod device count`` (graia.backends.interface.local_rank), one GPU per rank.
- ``GRAIA_CUDA_CACHE``: the directory where the compiled program (PTX) is kept, one file per
  device (default ``$XDG_CACHE_HOME/graia``, else ``~/.cache/graia``), so that only a machine's
  first process pays NVRTC; Futhark checks a file against the program and its options before it
  uses it. ``0`` turns the cache off.

Futhark 0.25 knows compute capabilities up to 8.7 and would compile for ``compute_80`` (with a
warning on every context) on newer cards; the target names the device's own architecture to NVRTC
instead, so that a Hopper card gets code for ``compute_90``.
"""

from __future__ import annotations

import os
import re
from types import ModuleType
from typing import Any

from graia.backends.futhark.ffi import cache_file
from graia.backends.interface import local_rank
from graia.errors import GraiaError


def _cache_file(device: dict[str, Any]) -> str | None:
    """The file that keeps the compiled program for ``device`` (``GRAIA_CUDA_CACHE``), or None."""
    arch = device["compute_capability"].replace(".", "")
    return cache_file("GRAIA_CUDA_CACHE", f"cuda {device['device']} sm{arch}")


def cuda_devices(mod: ModuleType) -> tuple[list[dict[str, Any]], str]:
    """Every CUDA device (in the driver's order), and why there is none when the list is empty."""
    ffi, lib = mod.ffi, mod.lib
    rc = lib.cuInit(0)
    if rc != lib.CUDA_SUCCESS:
        return [], (
            f"the CUDA driver did not initialise (CUresult {rc}): no NVIDIA GPU, or its driver is "
            "not loaded"
        )
    count = ffi.new("int *")
    if lib.cuDeviceGetCount(count) != lib.CUDA_SUCCESS or count[0] == 0:
        return [], "the CUDA driver lists no device"
    version = ffi.new("int *")
    lib.cuDriverGetVersion(version)
    out = []
    for i in range(count[0]):
        dev = ffi.new("CUdevice *")
        if lib.cuDeviceGet(dev, i) != lib.CUDA_SUCCESS:
            continue
        name = ffi.new("char[]", 256)
        lib.cuDeviceGetName(name, 255, dev[0])
        attrs = {}
        for key, attr in (
            ("major", lib.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
            ("minor", lib.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR),
            ("multiprocessors", lib.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT),
        ):
            value = ffi.new("int *")
            lib.cuDeviceGetAttribute(value, attr, dev[0])
            attrs[key] = int(value[0])
        memory = ffi.new("size_t *")
        lib.cuDeviceTotalMem_v2(memory, dev[0])
        out.append(
            {
                "index": i,
                "device": ffi.string(name).decode(errors="replace"),
                "type": "gpu",
                "compute_capability": f"{attrs['major']}.{attrs['minor']}",
                "multiprocessors": attrs["multiprocessors"],
                "global_memory_bytes": int(memory[0]),
                "cuda_driver": f"{version[0] // 1000}.{version[0] % 1000 // 10}",
            }
        )
    return out, ""


def _pick(devices: list[dict[str, Any]], wanted: str) -> dict[str, Any] | None:
    """The device that ``wanted`` (GRAIA_CUDA_DEVICE) names, as Futhark's rule picks it."""
    if not wanted:
        rank = local_rank()
        return devices[(rank or 0) % len(devices)]
    if wanted.isdigit():
        n = int(wanted)
        return devices[n] if n < len(devices) else None
    number, name = 0, wanted
    match = re.match(r"#(\d*)\s*(.*)", wanted)
    if match:
        number, name = int(match.group(1) or 0), match.group(2)
    matches = [d for d in devices if name in d["device"]]
    return matches[number] if number < len(matches) else None


class Cuda:
    """The ``cuda`` backend: one NVIDIA GPU, chosen by ``device``, else by ``GRAIA_CUDA_DEVICE``,
    else the first (under MPI, the local rank's; see module docs)."""

    name = "cuda"
    module = "graia.backends._futhark_cuda"
    not_built = (
        "the compiled module graia.backends._futhark_cuda is not installed: graia was installed "
        "without the futhark compiler or without the CUDA toolkit (cuda.h, libcuda, NVRTC). "
        "Install CUDA, then reinstall graia (pip install .)"
    )
    runs_on_cpu = False

    def __init__(self, *, device: str | None = None) -> None:
        if device is None:
            device = os.environ.get("GRAIA_CUDA_DEVICE", "")
        self.device = device.strip()
        #: Set by :meth:`configure`: the device in use.
        self.chosen: dict[str, Any] | None = None

    def _choose(self, mod: ModuleType) -> tuple[dict[str, Any] | None, str]:
        devices, problem = cuda_devices(mod)
        if not devices:
            return None, problem
        chosen = _pick(devices, self.device)
        if chosen is None:
            listing = "; ".join(f"#{d['index']}: {d['device']}" for d in devices)
            return None, (
                f"no CUDA device matches {self.device!r} (GRAIA_CUDA_DEVICE); available: {listing}"
            )
        return chosen, ""

    def configure(self, mod: ModuleType, cfg: Any, keep: list) -> None:
        ffi, lib = mod.ffi, mod.lib
        chosen, problem = self._choose(mod)
        if chosen is None:
            raise GraiaError(problem)
        # "#k": the k-th device whose name contains "" (every device): the driver's k-th.
        options = [
            (lib.futhark_context_config_set_device, f"#{chosen['index']}"),
            (
                lib.futhark_context_config_add_nvrtc_option,
                f"--gpu-architecture=compute_{chosen['compute_capability'].replace('.', '')}",
            ),
        ]
        cache = _cache_file(chosen)
        if cache:
            options.append((lib.futhark_context_config_set_cache_file, cache))
        for setter, value in options:
            keep.append(ffi.new("char[]", value.encode()))
            setter(cfg, keep[-1])
        self.chosen = chosen

    def unusable(self, mod: ModuleType) -> str:
        """Whether the device exists (without compiling any kernel)."""
        try:
            return self._choose(mod)[1]
        except Exception as exc:  # noqa: BLE001 - a broken driver must not break `import graia`
            return f"querying CUDA devices failed: {exc}"

    def details(self, mod: ModuleType) -> dict[str, Any]:
        info = dict(self.chosen or self._choose(mod)[0] or {})
        info["all_devices"] = [f"#{d['index']}: {d['device']}" for d in cuda_devices(mod)[0]]
        return info
