#!/usr/bin/env python3
"""Write the C source of a CFFI extension module for a Futhark-generated library.

Usage: futhark_cffi.py STEM MODULE OUTPUT.c

STEM is the prefix of what `futhark <backend> --library -o STEM` wrote (STEM.c, STEM.h,
STEM.json); MODULE is the extension's full dotted name, whose last part starts with an
underscore (e.g. graia.backends._futhark_opencl).
Called by CMakeLists.txt at build time; futhark-ffi builds the cdef from the header and cffi emits
the source, which CMake compiles as a normal Python extension. For the OpenCL backend a few
OpenCL query functions are declared too, so that graia can name the platform and device; for the
CUDA backend a few CUDA driver queries (devices, compute capability, driver version, the current
and primary contexts), and its context is the device's primary one (:func:`patched_cuda_stem`).
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
typedef struct CUctx_st *CUcontext;
CUresult cuCtxGetCurrent(CUcontext *);
CUresult cuDevicePrimaryCtxRetain(CUcontext *, CUdevice);
CUresult cuDevicePrimaryCtxRelease(CUdevice);
"""

#: Futhark 0.25's CUDA library makes a context of its own (``cuCtxCreate``), leaves it current on
#: the thread that made it, and frees its memory at the end without making it current again. In a
#: process that also runs PyTorch or CuPy (which use the device's primary context) the wrong
#: context was then current for one of them: PyTorch's next cuBLAS call failed with
#: ``CUBLAS_STATUS_INTERNAL_ERROR``. Graia's module shares the primary context instead (device
#: pointers of either library are then valid in the other's kernels), takes it off the thread's
#: stack once the context is set up, and makes it current for the teardown. Each replacement is
#: of text that occurs once in Futhark's C; :func:`patched_cuda_stem` checks that it does. (This
#: also spares CUDA 13's new ``cuCtxCreate`` signature.)
CUDA_CONTEXT_PATCHES = (
    # Setup: the device's primary context, retained and made current, for the setup's calls.
    (
        "CUDA_SUCCEED_FATAL(cuCtxCreate(&ctx->cu_ctx, 0, ctx->dev));",
        (
            "CUDA_SUCCEED_FATAL(cuDevicePrimaryCtxRetain(&ctx->cu_ctx, ctx->dev));\n"
            "  CUDA_SUCCEED_FATAL(cuCtxPushCurrent(ctx->cu_ctx));"
        ),
    ),
    # The end of futhark_context_new: the caller's current context as before.
    (
        "    (void)futhark_context_sync(ctx);\n  }\n  return ctx;\n}",
        (
            "    (void)futhark_context_sync(ctx);\n"
            "    CUcontext graia_own;\n"
            "    CUDA_SUCCEED_FATAL(cuCtxPopCurrent(&graia_own));\n"
            "  }\n  return ctx;\n}"
        ),
    ),
    # futhark_context_free: current for the frees (whichever thread the finaliser runs on).
    (
        "void futhark_context_free(struct futhark_context* ctx) {\n",
        (
            "void futhark_context_free(struct futhark_context* ctx) {\n"
            "  if (ctx->kernels != NULL) {\n"
            "    CUDA_SUCCEED_FATAL(cuCtxPushCurrent(ctx->cu_ctx));\n"
            "  }\n"
        ),
    ),
    # The teardown: off the stack, and the primary context released rather than destroyed.
    (
        "CUDA_SUCCEED_FATAL(cuCtxDestroy(ctx->cu_ctx));",
        (
            "CUcontext graia_own;\n"
            "    CUDA_SUCCEED_FATAL(cuCtxPopCurrent(&graia_own));\n"
            "    CUDA_SUCCEED_FATAL(cuDevicePrimaryCtxRelease(ctx->dev));"
        ),
    ),
)


def patched_cuda_stem(stem: str, directory: str) -> str:
    """A copy of Futhark's CUDA library ``stem`` in ``directory`` with
    :data:`CUDA_CONTEXT_PATCHES` applied; the new stem."""
    with open(stem + ".c") as f:
        source = f.read()
    for old, new in CUDA_CONTEXT_PATCHES:
        if source.count(old) != 1:
            raise SystemExit(
                "futhark_cffi.py: Futhark's CUDA context code is not as expected: "
                f"{old.splitlines()[0]!r} should occur once"
            )
        source = source.replace(old, new)
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
