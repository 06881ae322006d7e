#!/usr/bin/env python3
"""Write the C source of a CFFI extension module for a Futhark-generated library.

Usage: futhark_cffi.py STEM MODULE OUTPUT.c

STEM is the prefix of what `futhark <backend> --library -o STEM` wrote (STEM.c, STEM.h,
STEM.json); MODULE is the extension's full dotted name, whose last part starts with an
underscore (e.g. graia.backends._futhark_opencl).
Called by CMakeLists.txt at build time; futhark-ffi builds the cdef from the header and cffi emits
the source, which CMake compiles as a normal Python extension. For the OpenCL backend a few
OpenCL query functions are declared too, so that graia can name the platform and device; for the
CUDA backend a few CUDA driver queries (devices, compute capability, driver version), and its
context creation is adapted to CUDA 13 (:func:`patched_cuda_stem`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile

from futhark_ffi.build import build

OPENCL_QUERIES = """
typedef int32_t cl_int;
typedef uint32_t cl_uint;
typedef uint64_t cl_ulong;
typedef cl_ulong cl_bitfield;
typedef cl_bitfield cl_device_type;
typedef cl_uint cl_platform_info;
typedef cl_uint cl_device_info;
typedef cl_uint cl_command_queue_info;
typedef struct _cl_platform_id *cl_platform_id;
typedef struct _cl_device_id *cl_device_id;
cl_int clGetPlatformIDs(cl_uint, cl_platform_id *, cl_uint *);
cl_int clGetPlatformInfo(cl_platform_id, cl_platform_info, size_t, void *, size_t *);
cl_int clGetDeviceIDs(cl_platform_id, cl_device_type, cl_uint, cl_device_id *, cl_uint *);
cl_int clGetDeviceInfo(cl_device_id, cl_device_info, size_t, void *, size_t *);
cl_int clGetCommandQueueInfo(cl_command_queue, cl_command_queue_info, size_t, void *, size_t *);
"""

CUDA_QUERIES = """
typedef enum { CUDA_SUCCESS, ... } CUresult;
typedef int CUdevice;
typedef enum {
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
    CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
    ...
} CUdevice_attribute;
CUresult cuInit(unsigned int);
CUresult cuDriverGetVersion(int *);
CUresult cuDeviceGetCount(int *);
CUresult cuDeviceGet(CUdevice *, int);
CUresult cuDeviceGetName(char *, int, CUdevice);
CUresult cuDeviceGetAttribute(int *, CUdevice_attribute, CUdevice);
CUresult cuDeviceTotalMem_v2(size_t *, CUdevice);
"""

#: CUDA 13 gave cuCtxCreate a parameters argument (cuda.h maps it to cuCtxCreate_v4); Futhark
#: 0.25's C calls the three-argument form. The call goes through a shim that uses the form the
#: cuda.h at hand declares.
CUDA_CTX_CALL = "cuCtxCreate(&ctx->cu_ctx, 0, ctx->dev)"
CUDA_CTX_SHIM = """#include <nvrtc.h>
static CUresult graia_ctx_create(CUcontext *ctx, CUdevice dev) {
#if CUDA_VERSION >= 13000
  return cuCtxCreate(ctx, NULL, 0, dev);
#else
  return cuCtxCreate(ctx, 0, dev);
#endif
}
"""


def patched_cuda_stem(stem: str, directory: str) -> str:
    """A copy of Futhark's CUDA library ``stem`` in ``directory``, its context creation routed
    through :data:`CUDA_CTX_SHIM`; the new stem."""
    with open(stem + ".c") as f:
        source = f.read()
    if source.count(CUDA_CTX_CALL) != 1 or "#include <nvrtc.h>\n" not in source:
        raise SystemExit("futhark_cffi.py: Futhark's CUDA context creation is not as expected")
    source = source.replace(CUDA_CTX_CALL, "graia_ctx_create(&ctx->cu_ctx, ctx->dev)")
    source = source.replace("#include <nvrtc.h>\n", CUDA_CTX_SHIM, 1)
    new = os.path.join(directory, os.path.basename(stem))
    with open(new + ".c", "w") as f:
        f.write(source)
    for ext in (".h", ".json"):
        shutil.copyfile(stem + ext, new + ext)
    return new


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    stem, module, output = argv[1:]
    with open(stem + ".json") as f:
        backend = json.load(f)["backend"]
    package, _, name = module.rpartition(".")
    if not name.startswith("_"):
        print(
            f"futhark_cffi.py: module name {module!r} must start with an underscore",
            file=sys.stderr,
        )
        return 2
    # futhark-ffi turns "a/b/name" into the module "a.b._name".
    target = "/".join(package.split(".") + [name[1:]]) if package else name[1:]
    with tempfile.TemporaryDirectory() as directory:
        if backend == "cuda":
            stem = patched_cuda_stem(stem, directory)
        with contextlib.redirect_stdout(io.StringIO()):  # futhark-ffi prints what it detects
            ffi = build(stem, target)
    if backend == "opencl":
        ffi.cdef(OPENCL_QUERIES)
    elif backend == "cuda":
        ffi.cdef(CUDA_QUERIES)
    ffi.emit_c_code(output)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
