"""Inputs for benchmarks/update_loop.fut's entry points, in Futhark's binary value format: the
first Dense layer of 784-512-10 at batch 64 (random latents, momenta, sums; half the inputs 0).

    python benchmarks/update_loop_input.py OUT_DIR [DECAY_SHIFT]

writes OUT_DIR/step.in (for ``step_only``) and OUT_DIR/update.in (for ``update``). Time them with
the executable of the harness, as docs/performance.md's vectorisation report does::

    futhark multicore -o /tmp/ul benchmarks/update_loop.fut      # writes /tmp/ul.c
    gcc -O3 -march=native -std=c99 /tmp/ul.c -o /tmp/ul -lm -lpthread
    /tmp/ul -e step_only --num-threads 1 -r 41 -b < OUT_DIR/step.in > /dev/null
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

from graia.backends.interface import POOL_NONE, Block

_TYPES = {"int64": b" i64", "uint64": b" u64", "int32": b" i32", "uint8": b"  u8"}


def write_value(f, a) -> None:
    """One value in Futhark's binary format: 'b', version 2, rank, type, dimensions, data."""
    a = np.asarray(a)
    f.write(b"b" + bytes([2, a.ndim]) + _TYPES[a.dtype.name])
    f.write(b"".join(struct.pack("<q", d) for d in a.shape))
    f.write(a.tobytes())


def main() -> None:
    out = Path(sys.argv[1])
    decay = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    rng = np.random.default_rng(0)
    k, m, b = 784, 512, 64
    params = np.array([2048, 3, 7, decay, 255, 0, 0], np.int64)  # dfa's vector (§7.2)
    dense = Block(1, 1, k, 1, 1, 1, 1, 0, 0, 1, 1, m, POOL_NONE, 1, 1)
    geometry = np.array(dense.row(), np.int64)
    latent = rng.integers(-(1 << 20), 1 << 20, (k, m)).astype(np.int32)
    momentum = rng.integers(-(1 << 20), 1 << 20, (k, m)).astype(np.int32)
    sums = rng.integers(-(1 << 24), 1 << 24, (k, m)).astype(np.int32)
    pre = (rng.integers(0, 256, (b, k)) * (rng.random((b, k)) < 0.5)).astype(np.uint8)
    deltas = rng.integers(-2000, 2000, (b, m)).astype(np.int32)
    head = [params, np.uint64(7), np.int64(3), np.int32(8), geometry, latent, momentum]
    for name, tail in (("step.in", [sums]), ("update.in", [pre, deltas])):
        with open(out / name, "wb") as f:
            for value in head + tail:
                write_value(f, value)


if __name__ == "__main__":
    main()
