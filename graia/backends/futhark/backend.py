"""The Futhark backend: a network resident on one compiled module (multicore, OpenCL or CUDA).

The network state is one opaque Futhark value that stays on the device; datasets are Futhark arrays
that stay there across epochs; ``train_epoch`` runs a whole epoch in one entry-point call. The
entry points are per network depth (``load_<d>``, ``train_epoch_<d>``, ...: futhark/graia.fut).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from graia.backends.abi import MAX_LAYERS, arguments, dump_results, load_params
from graia.backends.futhark.cuda import Cuda
from graia.backends.futhark.ffi import Context, Target, Value, import_compiled
from graia.backends.futhark.multicore import Multicore
from graia.backends.futhark.opencl import OpenCL
from graia.backends.futhark.units import UnitParallelMixin
from graia.backends.interface import (
    HOST_STATE_DTYPES,
    HostState,
    feedback_blocks,
    head_blocks,
    head_shapes,
    layer_blocks,
    weight_shapes,
)
from graia.errors import GraiaError
from graia.rules import heads_learn

#: The compiled targets, by backend name.
KINDS: dict[str, type[Multicore | OpenCL | Cuda]] = {t.name: t for t in (Multicore, OpenCL, Cuda)}


def _target_class(kind: str) -> type[Multicore | OpenCL | Cuda]:
    if kind not in KINDS:
        raise GraiaError(f"unknown Futhark backend {kind!r}; valid: {', '.join(KINDS)}")
    return KINDS[kind]


class FutharkState:
    """A network resident on a Futhark backend: an opaque ``net<depth>`` value, and the parts of
    its host state that training never changes (kept here, so that ``dump`` need not fetch them).
    """

    def __init__(
        self,
        value: Value,
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

    def replaced(self, value: Value) -> FutharkState:
        """The same network with a new device value (after training)."""
        return FutharkState(value, self.backend, self.depth, self.fixed, self.seed)

    def __repr__(self) -> str:
        return f"<FutharkState on {self.backend.name}>"


class FutharkDataset:
    """A dataset (``x`` u8 ``(n, features)``, ``y`` i32 ``(n,)``) resident on a Futhark backend."""

    def __init__(self, x: Value, y: Value, n: int, features: int, backend: FutharkBackend) -> None:
        self.x, self.y = x, y
        self.n, self.features = n, features
        self.backend = backend

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"<FutharkDataset {self.n}x{self.features} on {self.backend.name}>"


# --------------------------------------------------------------------------------------------
# The backend


class FutharkBackend(UnitParallelMixin):
    """A Futhark-compiled backend: ``kind`` is ``"multicore"``, ``"opencl"`` or ``"cuda"``
    (:data:`KINDS`); ``options`` go to its target: ``num_threads`` (multicore), ``platform``,
    ``device`` and ``build_options`` (opencl; see graia.backends.futhark.opencl), ``device``
    (cuda; graia.backends.futhark.cuda).

    Implements graia.backends.interface.Backend and UnitParallelBackend (units.py). The context is created on first use (for OpenCL
    that compiles the kernels, or loads them from the driver's cache).
    """

    def __init__(self, kind: str = "multicore", **options: Any) -> None:
        self.kind = kind
        self.target: Target = _target_class(kind)(**options)
        env = os.environ.get("GRAIA_FUTHARK_CPU_LOOPS", "").strip()
        self._cpu_loops = (env == "1") if env in ("0", "1") else None
        self._context: Context | None = None
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
            self._cpu_loops = self.context.target.runs_on_cpu
        return self._cpu_loops

    @property
    def context(self) -> Context:
        if self._context is None:
            with self._lock:
                if self._context is None:
                    self._context = Context(self.target)
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
        with c.lock:
            # Device copies by parameter name (kept alive until the sync), then load_<depth>'s
            # arguments in the order graia.backends.abi declares.
            arrays = {"geometry": c.new_array(host["geometry"])}
            for i, (lat, mom) in enumerate(layer_blocks(host, "latent", "momentum")):
                arrays |= {f"latent{i}": c.new_array(lat), f"momentum{i}": c.new_array(mom)}
            for i, fb in enumerate(feedback_blocks(host)):
                arrays[f"feedback{i}"] = c.new_array(fb)
            for i, (lat, mom) in enumerate(head_blocks(host)):
                arrays |= {
                    f"head_latent{i}": c.new_array(lat),
                    f"head_momentum{i}": c.new_array(mom),
                }
            scalars = {f"kmax{i}": int(v) for i, v in enumerate(host["kmax"])}
            scalars |= {f"shift{i}": int(v) for i, v in enumerate(host["shift"])}
            args = arguments(
                load_params(depth),
                cpu=bool(self.cpu_loops),
                seed=seed,
                t=t,
                prev_loss=prev_loss,
                **scalars,
                **{name: v.ptr for name, v in arrays.items()},
            )
            out = c.ffi.new(f"struct futhark_opaque_net{depth} **")
            c.check(getattr(c.lib, f"futhark_entry_load_{depth}")(c.ctx, out, *args), "load")
            result = Value(c, out[0], f"opaque_net{depth}")
            c.sync("load")
            del arrays
        fixed = {k: host[k].copy() for k in ("sizes", "geometry", "kmax", "shift", "feedback")}
        return FutharkState(result, self, depth, fixed, seed)

    def dump(self, handle: FutharkState) -> HostState:
        c = self.context
        self._check_handle(handle)
        results = dump_results(handle.depth)
        arrays = [name for name, kind in results if kind.startswith("[")]
        with c.lock:
            outs = {name: c.ffi.new("int64_t *") for name, kind in results if kind == "i64"}
            outs |= {name: c.ffi.new("struct futhark_i32_2d **") for name in arrays}
            c.check(
                getattr(c.lib, f"futhark_entry_dump_{handle.depth}")(
                    c.ctx, *(outs[name] for name, _ in results), handle.value.ptr
                ),
                "dump",
            )
            values = {name: Value(c, outs[name][0], "i32_2d") for name in arrays}
            c.sync("dump")
            blocks = {name: c.to_numpy(v, np.int32).ravel() for name, v in values.items()}
        host = {k: v.copy() for k, v in handle.fixed.items()}
        for key in ("latent", "momentum", "head_latent", "head_momentum"):
            # Each layer's (or hidden layer's) block in order: latent0, latent1, ...
            parts = [blocks[name] for name in arrays if name.rstrip("0123456789") == key]
            host[key] = np.concatenate(parts) if parts else np.zeros(0, np.int32)
        host["counters"] = np.array([handle.seed, outs["t"][0], outs["prev_loss"][0]], np.int64)
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
        self._check_dataset(dataset)
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
            result = Value(c, out[0], f"opaque_net{handle.depth}")
            c.sync("train_epoch")  # before reading the scalars, and before order/params go
            del ov, pv
        return handle.replaced(result), int(correct[0]), int(sq_error[0])

    def batch_sums(
        self,
        handle: FutharkState,
        dataset: FutharkDataset,
        idx: np.ndarray,
        row0: int,
        rule_id: int,
        params: np.ndarray,
    ) -> tuple[list[np.ndarray], int, int]:
        c = self.context
        self._check_handle(handle)
        self._check_dataset(dataset)
        idx = np.ascontiguousarray(idx, np.int32)
        # The heads' sums only when they learn (§7.4), as interface.Backend says.
        count = handle.depth + (handle.depth - 1) * heads_learn(rule_id, params)
        if idx.shape[0] == 0:  # a rank without rows in a short batch
            shapes = weight_shapes(handle.fixed["geometry"]) + head_shapes(handle.fixed["sizes"])
            return [np.zeros(shape, np.int64) for shape in shapes[:count]], 0, 0
        params = np.ascontiguousarray(params, np.int64)
        d = handle.depth
        with c.lock:
            iv = c.new_array(idx)
            pv = c.new_array(params)
            outs = [c.ffi.new("struct futhark_i64_2d **") for _ in range(2 * d - 1)]
            correct = c.ffi.new("int64_t *")
            sq_error = c.ffi.new("int64_t *")
            rc = getattr(c.lib, f"futhark_entry_batch_sums_{d}")(
                c.ctx, *outs, correct, sq_error, handle.value.ptr, dataset.x.ptr, dataset.y.ptr,
                iv.ptr, int(row0), int(rule_id), pv.ptr,
            )  # fmt: skip
            c.check(rc, "batch_sums")
            values = [Value(c, o[0], "i64_2d") for o in outs]
            c.sync("batch_sums")
            del iv, pv
            sums = [c.to_numpy(v, np.int64) for v in values[:count]]
        return sums, int(correct[0]), int(sq_error[0])

    def apply_sums(
        self, handle: FutharkState, sums: list[np.ndarray], rule_id: int, params: np.ndarray
    ) -> FutharkState:
        c = self.context
        self._check_handle(handle)
        params = np.ascontiguousarray(params, np.int64)
        d = handle.depth
        if len(sums) == d:  # heads that do not learn: their (unused) sums are zero
            sums = [
                *sums,
                *(np.zeros(shape, np.int64) for shape in head_shapes(handle.fixed["sizes"])),
            ]
        with c.lock:
            keep = [c.new_array(np.ascontiguousarray(g, np.int64)) for g in sums]
            pv = c.new_array(params)
            out = c.ffi.new(f"struct futhark_opaque_net{d} **")
            rc = getattr(c.lib, f"futhark_entry_apply_sums_{d}")(
                c.ctx, out, handle.value.ptr, *(v.ptr for v in keep), int(rule_id), pv.ptr
            )
            c.check(rc, "apply_sums")
            result = Value(c, out[0], f"opaque_net{d}")
            c.sync("apply_sums")
            del keep, pv
        return handle.replaced(result)

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
            values = [Value(c, o[0], "u8_2d") for o in outs]
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
        return device_info(self.kind, self.context.target)

    def _check_handle(self, handle: Any) -> None:
        if not isinstance(handle, FutharkState) or handle.backend is not self:
            raise GraiaError(f"state {handle!r} does not belong to backend {self.name!r}")

    def _check_dataset(self, dataset: Any) -> None:
        if not isinstance(dataset, FutharkDataset) or dataset.backend is not self:
            raise GraiaError(f"dataset {dataset!r} was not uploaded to backend {self.name!r}")


# --------------------------------------------------------------------------------------------
# Probing and information


def probe(kind: str) -> tuple[bool, str]:
    """Whether backend ``kind`` can run here, and if not, why (with what to do about it).

    Cheap: it imports the compiled module and, for OpenCL, checks that the device Futhark would
    pick exists. It does not compile the OpenCL kernels (that happens on first use).
    """
    try:
        target = _target_class(kind)()
        reason = target.unusable(import_compiled(target))
    except (ImportError, GraiaError) as exc:
        return False, str(exc)
    return not reason, reason


def device_info(kind: str, target: Target | None = None) -> dict[str, Any]:
    """A description of what backend ``kind`` runs on: threads, or OpenCL platform and device
    (those of ``target``, a configured context's, if given)."""
    ok, reason = probe(kind)
    info: dict[str, Any] = {"backend": kind, "available": ok}
    if not ok:
        info["reason"] = reason
        return info
    target = target or _target_class(kind)()
    info["module"] = target.module
    info.update(target.details(import_compiled(target)))
    return info
