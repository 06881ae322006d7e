"""The Futhark backends: one wrapper for the multicore, OpenCL and CUDA compiled modules.

``futhark/graia.fut`` is compiled at install time (CMakeLists.txt) by ``futhark multicore``,
``futhark opencl`` and (where the CUDA toolkit is found) ``futhark cuda`` into the CFFI extension
modules ``graia.backends._futhark_multicore``, ``graia.backends._futhark_opencl`` and
``graia.backends._futhark_cuda``. All export the same C API; this package drives it directly
(config, context, arrays, entry points) rather than through futhark-ffi's runtime class, so that it
can set the thread count and OpenCL device, sync before reading results, and keep inputs alive
until the device is done with them.

- :mod:`.ffi`: loading a compiled module, its context and values (the C API common to both);
- :mod:`.multicore`, :mod:`.opencl`, :mod:`.cuda`: what each compiled module adds (threads; the
  OpenCL device, PoCL's work-arounds; the CUDA device and NVRTC's architecture), one *target*
  object each;
- :mod:`.backend`: :class:`FutharkBackend` (load/dump/upload/train_epoch/predict/activations per
  network depth), :func:`probe` and :func:`device_info`.

Environment: ``GRAIA_NUM_THREADS`` (:mod:`.multicore`); ``GRAIA_OPENCL_PLATFORM``,
``GRAIA_OPENCL_DEVICE``, ``GRAIA_OPENCL_BUILD_OPTIONS`` (:mod:`.opencl`); ``GRAIA_CUDA_DEVICE``,
``GRAIA_CUDA_CACHE`` (:mod:`.cuda`);
``GRAIA_FUTHARK_CPU_LOOPS=0/1`` (:attr:`FutharkBackend.cpu_loops`); ``GRAIA_FUTHARK_PROFILE=1``:
record Futhark's per-kernel profile (see ``FutharkBackend.report``; ``benchmarks/speed.py
--profile`` prints it). Costs a little time per kernel.
"""

from graia.backends.futhark.backend import (
    KINDS,
    MAX_LAYERS,
    FutharkBackend,
    FutharkDataset,
    FutharkState,
    device_info,
    probe,
)

__all__ = [
    "KINDS",
    "MAX_LAYERS",
    "FutharkBackend",
    "FutharkDataset",
    "FutharkState",
    "device_info",
    "probe",
]
