"""Unit parallelism on the Futhark backends (graia.backends.interface.UnitParallelBackend,
docs/arithmetic.md §7.7).

A rank's shard stays on the device: per layer its block's latents, momenta and fixed-point
weights, and each hidden layer's feedback rows. A batch keeps, between the contract's calls, each
hidden layer's input, sums ``z`` and owned activations as device arrays; only what the caller
exchanges over MPI (owned activations, partial sums) comes back to the host. The entry points
(``units_*`` in futhark/graia.fut) work on one layer's block each, whatever the depth.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graia.backends.futhark.ffi import Context, Value
from graia.backends.interface import (
    COUNTER_SEED,
    COUNTER_STEP,
    HostState,
    shard_blocks,
    shard_feedback_blocks,
)
from graia.errors import GraiaError
from graia.rules import REGISTRY

_LOCAL_HEADS = REGISTRY["local_heads"].rule_id


class FutharkShard:
    """A rank's shard on a Futhark backend: ``host`` (the shard's host arrays but the learned
    ones; its counters advance with every batch), ``blocks`` (per layer ``[latent, momentum,
    weights]`` device arrays), ``feedback`` (per hidden layer), and the batch in progress."""

    def __init__(self, backend: Any, host: HostState, blocks: list[list[Value]], feedback) -> None:
        self.backend = backend
        self.host = host
        self.blocks = blocks
        self.feedback: list[Value] = feedback
        hidden = len(feedback)
        self.inputs: list[Value | None] = [None] * hidden
        self.zs: list[Value | None] = [None] * hidden
        self.acts: list[Value | None] = [None] * hidden

    @property
    def seed(self) -> int:
        return int(self.host["counters"][COUNTER_SEED])

    @property
    def step(self) -> int:
        return int(self.host["counters"][COUNTER_STEP])

    def __repr__(self) -> str:
        return f"<FutharkShard on {self.backend.name}>"


def _outputs(c: Context, *names: str) -> list:
    return [c.ffi.new(f"struct futhark_{name} **") for name in names]


class UnitParallelMixin:
    """The unit-parallel methods of :class:`graia.backends.futhark.backend.FutharkBackend`."""

    context: Context
    cpu_loops: bool
    name: str

    def units_load(self, shard: HostState) -> FutharkShard:
        c = self.context
        host = {k: np.array(v, copy=True) for k, v in shard.items()}
        latents = shard_blocks(host, "latent")
        momenta = shard_blocks(host, "momentum")
        with c.lock:
            blocks = []
            for layer, (lat, mom) in enumerate(zip(latents, momenta)):
                lv = c.new_array(np.ascontiguousarray(lat, np.int32))
                mv = c.new_array(np.ascontiguousarray(mom, np.int32))
                (w,) = _outputs(c, "i32_2d")
                kmax = int(host["kmax"][layer])
                c.check(c.lib.futhark_entry_units_weights(c.ctx, w, kmax, lv.ptr), "units_load")
                blocks.append([lv, mv, Value(c, w[0], "i32_2d")])
            feedback = [
                c.new_array(np.ascontiguousarray(fb, np.int8)) for fb in shard_feedback_blocks(host)
            ]
            c.sync("units_load")
        return FutharkShard(self, host, blocks, feedback)

    def units_dump(self, handle: FutharkShard) -> HostState:
        c = self.context
        self._check_shard(handle)
        with c.lock:
            latent = [c.to_numpy(lat, np.int32).ravel() for lat, _, _ in handle.blocks]
            momentum = [c.to_numpy(mom, np.int32).ravel() for _, mom, _ in handle.blocks]
        out = {k: v.copy() for k, v in handle.host.items()}
        out["latent"] = np.concatenate(latent).astype(np.int32, copy=False)
        out["momentum"] = np.concatenate(momentum).astype(np.int32, copy=False)
        return out

    def units_forward(
        self, handle: FutharkShard, layer: int, inputs: np.ndarray, params: np.ndarray
    ) -> np.ndarray:
        c = self.context
        self._check_shard(handle)
        host = handle.host
        lo = int(host["unit_ranges"][layer, 0])
        units = int(host["sizes"][layer + 1])
        inputs = np.ascontiguousarray(inputs, np.uint8)
        params = np.ascontiguousarray(params, np.int64)
        with c.lock:
            xv, pv = c.new_array(inputs), c.new_array(params)
            z, a = _outputs(c, "i32_2d", "u8_2d")
            rc = c.lib.futhark_entry_units_forward(
                c.ctx, z, a, bool(self.cpu_loops), pv.ptr, handle.seed, handle.step, layer,
                int(host["shift"][layer]), handle.blocks[layer][2].ptr, xv.ptr, units, lo,
            )  # fmt: skip
            c.check(rc, "units_forward")
            handle.inputs[layer] = xv
            handle.zs[layer] = Value(c, z[0], "i32_2d")
            handle.acts[layer] = Value(c, a[0], "u8_2d")
            c.sync("units_forward")
            del pv
            return c.to_numpy(handle.acts[layer], np.uint8)

    def units_partials(self, handle: FutharkShard, rule_id: int, params: np.ndarray) -> np.ndarray:
        c = self.context
        self._check_shard(handle)
        with c.lock:
            values = []
            if rule_id == _LOCAL_HEADS:
                for fb, acts in zip(handle.feedback, handle.acts):
                    (u,) = _outputs(c, "i32_2d")
                    c.check(
                        c.lib.futhark_entry_units_head_sums(c.ctx, u, fb.ptr, acts.ptr),
                        "units_partials",
                    )
                    values.append(Value(c, u[0], "i32_2d"))
            (z,) = _outputs(c, "i32_2d")
            rc = c.lib.futhark_entry_units_output_z(
                c.ctx, z, bool(self.cpu_loops), handle.acts[-1].ptr, handle.blocks[-1][2].ptr
            )
            c.check(rc, "units_partials")
            values.append(Value(c, z[0], "i32_2d"))
            c.sync("units_partials")
            return np.stack([c.to_numpy(v, np.int32) for v in values])

    def units_step(
        self,
        handle: FutharkShard,
        sums: np.ndarray,
        labels: np.ndarray,
        rule_id: int,
        params: np.ndarray,
    ) -> tuple[int, int]:
        c = self.context
        self._check_shard(handle)
        host = handle.host
        ranges = host["unit_ranges"]
        hidden = len(ranges)
        cpu = bool(self.cpu_loops)
        seed, t = handle.seed, handle.step
        with c.lock:
            keep = [
                c.new_array(np.ascontiguousarray(a, dtype))
                for a, dtype in ((sums, np.int32), (labels, np.int32), (params, np.int64))
            ]
            sv, lv, pv = keep
            for layer in range(hidden):
                keep.append(c.new_array(np.ascontiguousarray(host["geometry"][layer])))
                lat, mom, _ = handle.blocks[layer]
                outs = _outputs(c, "i32_2d", "i32_2d", "i32_2d")
                rc = c.lib.futhark_entry_units_hidden_step(
                    c.ctx, *outs, cpu, pv.ptr, int(rule_id), seed, t, layer,
                    int(host["kmax"][layer]), int(host["shift"][layer]), keep[-1].ptr, lat.ptr,
                    mom.ptr, handle.feedback[layer].ptr, handle.inputs[layer].ptr,
                    handle.zs[layer].ptr, int(host["shift"][-1]), sv.ptr, lv.ptr,
                    int(host["sizes"][layer + 1]), int(ranges[layer, 0]),
                )  # fmt: skip
                c.check(rc, "units_step")
                handle.blocks[layer] = [Value(c, o[0], "i32_2d") for o in outs]
            keep.append(c.new_array(np.ascontiguousarray(host["geometry"][hidden])))
            lat, mom, _ = handle.blocks[hidden]
            outs = _outputs(c, "i32_2d", "i32_2d", "i32_2d")
            correct, sq_error = c.ffi.new("int64_t *"), c.ffi.new("int64_t *")
            rc = c.lib.futhark_entry_units_output_step(
                c.ctx, *outs, correct, sq_error, cpu, pv.ptr, seed, t, hidden,
                int(host["kmax"][hidden]), int(host["shift"][hidden]), keep[-1].ptr, lat.ptr,
                mom.ptr, handle.acts[-1].ptr, sv.ptr, lv.ptr, int(ranges[-1, 0]),
            )  # fmt: skip
            c.check(rc, "units_step")
            handle.blocks[hidden] = [Value(c, o[0], "i32_2d") for o in outs]
            c.sync("units_step")
            del keep
        host["counters"][COUNTER_STEP] = t + 1
        return int(correct[0]), int(sq_error[0])

    def _check_shard(self, handle: Any) -> None:
        if not isinstance(handle, FutharkShard) or handle.backend is not self:
            raise GraiaError(f"shard {handle!r} does not belong to backend {self.name!r}")
