"""Unit parallelism on the Futhark backends (graia.backends.interface.UnitParallelBackend,
docs/arithmetic.md §7.7).

A rank's shard stays on the device: per layer its block's latents, momenta and fixed-point
weights, and each hidden layer's feedback rows and local head rows. A batch keeps, between the
contract's calls, each hidden layer's input, sums ``z`` and owned activations as device arrays;
only what the caller exchanges over MPI (owned activations, partial sums) comes back to the host.
The entry points (``units_*`` in futhark/graia.fut) work on one layer's block each, whatever the
depth.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graia.backends.abi import UNITS, arguments
from graia.backends.futhark.ffi import Context, Value
from graia.backends.interface import (
    COUNTER_SEED,
    COUNTER_STEP,
    HOST_STATE_DTYPES,
    Block,
    HostState,
    owns_output_bias,
    shard_blocks,
    shard_feedback_blocks,
    shard_head_blocks,
    with_bias,
)
from graia.errors import GraiaError
from graia.rules import by_id, heads_learn


class FutharkShard:
    """A rank's shard on a Futhark backend: ``host`` (the shard's host arrays but the learned
    ones; its counters advance with every batch), ``blocks`` (per layer an opaque ``layer``),
    ``feedback`` and ``heads`` (per hidden layer; the heads opaque ``head`` records), and the
    batch in progress (each hidden layer's input with its bias input, ``z`` and owned
    activations, and the output layer's input)."""

    def __init__(self, backend: Any, host: HostState, blocks: list[Value], feedback, heads) -> None:
        self.backend = backend
        self.host = host
        self.blocks = blocks
        self.feedback: list[Value] = feedback
        self.heads: list[Value] = heads
        hidden = len(feedback)
        self.inputs: list[Value | None] = [None] * hidden
        self.zs: list[Value | None] = [None] * hidden
        self.acts: list[Value | None] = [None] * hidden
        #: What the owned rows of the output layer multiply (interface.owns_output_bias).
        self.output_input: Value | None = None

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


def _call(c: Context, entry: str, outs: list, **values: Any) -> None:
    """Entry ``entry`` with results ``outs`` and its arguments by name (graia.backends.abi)."""
    rc = getattr(c.lib, f"futhark_entry_{entry}")(c.ctx, *outs, *arguments(UNITS[entry], **values))
    c.check(rc, entry)


def _batch(c: Context, handle: FutharkShard, params: np.ndarray) -> Value:
    """The batch's ``units_batch`` record: the rule's parameters ``params`` (i64, C-contiguous:
    the caller keeps them alive until it syncs) and the shard's seed and step."""
    pv = c.new_array(params)
    (out,) = _outputs(c, "opaque_units_batch")
    rc = c.lib.futhark_new_opaque_units_batch(c.ctx, out, pv.ptr, handle.seed, handle.step)
    c.check(rc, "units_batch")
    return Value(c, out[0], "opaque_units_batch")


def _learned(c: Context, block: Value, field: str, kind: str = "layer") -> np.ndarray:
    """A block's (or with ``kind="head"``, a head's) ``latent`` or ``momentum``, flat (the C
    API's projection of the record)."""
    (out,) = _outputs(c, "i32_2d")
    project = getattr(c.lib, f"futhark_project_opaque_{kind}_{field}")
    c.check(project(c.ctx, out, block.ptr), "units_dump")
    return c.to_numpy(Value(c, out[0], "i32_2d"), np.int32).ravel()


class UnitParallelMixin:
    """The unit-parallel methods of :class:`graia.backends.futhark.backend.FutharkBackend`."""

    context: Context
    cpu_loops: bool
    name: str

    def units_load(self, shard: HostState) -> FutharkShard:
        c = self.context
        # Copies in the contract's dtypes, kept by the shard (new_array's copies are asynchronous).
        host = {k: np.array(v, HOST_STATE_DTYPES.get(k)) for k, v in shard.items()}
        latents, momenta = shard_blocks(host, "latent"), shard_blocks(host, "momentum")
        layers = zip(host["kmax"], host["shift"], host["geometry"], latents, momenta)
        with c.lock:
            blocks = []
            for kmax, shift, *arrays in layers:
                geo, lat, mom = (c.new_array(a) for a in arrays)
                (out,) = _outputs(c, "opaque_layer")
                _call(
                    c, "units_layer", [out], kmax=int(kmax), shift=int(shift), geo=geo.ptr,
                    latent=lat.ptr, momentum=mom.ptr,
                )  # fmt: skip
                blocks.append(Value(c, out[0], "opaque_layer"))
            feedback = [c.new_array(fb) for fb in shard_feedback_blocks(host)]
            heads = []
            for lat, mom in shard_head_blocks(host):
                lv, mv = c.new_array(lat), c.new_array(mom)
                (out,) = _outputs(c, "opaque_head")
                _call(c, "units_head", [out], latent=lv.ptr, momentum=mv.ptr)
                heads.append(Value(c, out[0], "opaque_head"))
            c.sync("units_load")
        return FutharkShard(self, host, blocks, feedback, heads)

    def units_dump(self, handle: FutharkShard) -> HostState:
        c = self.context
        self._check_shard(handle)
        out = {k: v.copy() for k, v in handle.host.items()}
        with c.lock:
            for field in ("latent", "momentum"):
                out[field] = np.concatenate([_learned(c, b, field) for b in handle.blocks])
                heads = [_learned(c, h, field, "head") for h in handle.heads]
                out[f"head_{field}"] = np.concatenate(heads) if heads else np.zeros(0, np.int32)
        return out

    def units_forward(
        self, handle: FutharkShard, layer: int, inputs: np.ndarray, params: np.ndarray
    ) -> np.ndarray:
        c = self.context
        self._check_shard(handle)
        host = handle.host
        lo = int(host["unit_ranges"][layer, 0])
        units = int(host["sizes"][layer + 1])
        bias = Block.of_row(host["geometry"][layer]).bias
        inputs = np.ascontiguousarray(with_bias(inputs, bias), np.uint8)
        params = np.ascontiguousarray(params, np.int64)
        with c.lock:
            xv, bt = c.new_array(inputs), _batch(c, handle, params)
            z, a = _outputs(c, "i32_2d", "u8_2d")
            _call(
                c, "units_forward", [z, a], cpu=bool(self.cpu_loops), bt=bt.ptr, l=layer,
                blk=handle.blocks[layer].ptr, x=xv.ptr, units=units, unit0=lo,
            )  # fmt: skip
            handle.inputs[layer] = xv
            handle.zs[layer] = Value(c, z[0], "i32_2d")
            handle.acts[layer] = Value(c, a[0], "u8_2d")
            c.sync("units_forward")
            del bt
            acts = c.to_numpy(handle.acts[layer], np.uint8)
            if layer == len(handle.acts) - 1:
                handle.output_input = handle.acts[layer]
                if owns_output_bias(host):
                    rows = np.ascontiguousarray(with_bias(acts, True))
                    handle.output_input = c.new_array(rows)
                    c.sync("units_forward")
            return acts

    def units_partials(self, handle: FutharkShard, rule_id: int, params: np.ndarray) -> np.ndarray:
        c = self.context
        self._check_shard(handle)
        params = np.ascontiguousarray(params, np.int64)
        with c.lock:
            values = []
            bt = _batch(c, handle, params)
            if by_id(rule_id).local_heads:
                for head, acts in zip(handle.heads, handle.acts):
                    (u,) = _outputs(c, "i32_2d")
                    _call(c, "units_head_sums", [u], bt=bt.ptr, h=head.ptr, a=acts.ptr)
                    values.append(Value(c, u[0], "i32_2d"))
            (z,) = _outputs(c, "i32_2d")
            _call(
                c, "units_output_z", [z], cpu=bool(self.cpu_loops), a=handle.output_input.ptr,
                blk=handle.blocks[-1].ptr,
            )  # fmt: skip
            values.append(Value(c, z[0], "i32_2d"))
            c.sync("units_partials")
            del bt
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
        sums = np.ascontiguousarray(sums, np.int32)
        labels = np.ascontiguousarray(labels, np.int32)
        params = np.ascontiguousarray(params, np.int64)
        with c.lock:
            sv, lv, bt = c.new_array(sums), c.new_array(labels), _batch(c, handle, params)
            # What the hidden layers' and heads' steps share.
            shared = {
                "cpu": cpu, "bt": bt.ptr, "rule_id": int(rule_id),
                "shift_out": int(host["shift"][-1]), "sums": sv.ptr, "labels": lv.ptr,
            }  # fmt: skip
            for layer in range(hidden):
                (out,) = _outputs(c, "opaque_layer")
                _call(
                    c, "units_hidden_step", [out], **shared, l=layer,
                    blk=handle.blocks[layer].ptr, fb=handle.feedback[layer].ptr,
                    x=handle.inputs[layer].ptr, z=handle.zs[layer].ptr,
                    units=int(host["sizes"][layer + 1]), unit0=int(ranges[layer, 0]),
                )  # fmt: skip
                handle.blocks[layer] = Value(c, out[0], "opaque_layer")
                if heads_learn(rule_id, params):
                    (out,) = _outputs(c, "opaque_head")
                    _call(
                        c, "units_head_step", [out], **shared, layers=hidden + 1, l=layer,
                        h=handle.heads[layer].ptr, a=handle.acts[layer].ptr,
                        unit0=int(ranges[layer, 0]),
                    )  # fmt: skip
                    handle.heads[layer] = Value(c, out[0], "opaque_head")
            (out,) = _outputs(c, "opaque_layer")
            correct, sq_error = c.ffi.new("int64_t *"), c.ffi.new("int64_t *")
            _call(
                c, "units_output_step", [out, correct, sq_error], cpu=cpu, bt=bt.ptr, l=hidden,
                blk=handle.blocks[hidden].ptr, a=handle.output_input.ptr, sums=sv.ptr,
                labels=lv.ptr, unit0=int(ranges[-1, 0]),
            )  # fmt: skip
            handle.blocks[hidden] = Value(c, out[0], "opaque_layer")
            c.sync("units_step")
            del sv, lv, bt
        host["counters"][COUNTER_STEP] = handle.step + 1
        return int(correct[0]), int(sq_error[0])

    def _check_shard(self, handle: Any) -> None:
        if not isinstance(handle, FutharkShard) or handle.backend is not self:
            raise GraiaError(f"shard {handle!r} does not belong to backend {self.name!r}")
