"""Write futhark/tests/data/*: one training epoch per case, computed by the Numba oracle.

``futhark test`` runs ``test_train_epoch`` of futhark/tests/entries.fut on each ``.in`` file, with
the GPU and the CPU forms of the products, and compares with the ``.out`` file written here from
graia/backends/numba.py. Run it after changing the arithmetic (docs/arithmetic.md) on purpose:

    python scripts/gen_futhark_test_data.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from graia import layers as L
from graia.backends.numba import NumbaBackend
from graia.model import Sequential
from graia.rules import get as get_rule

DATA = ROOT / "futhark" / "tests" / "data"

_SUFFIX = {np.int8: "i8", np.uint8: "u8", np.int32: "i32", np.int64: "i64"}


def value(a) -> str:
    """A numpy array or scalar in Futhark's textual value format."""
    a = np.asarray(a)
    suffix = _SUFFIX[a.dtype.type]
    if a.ndim == 0:
        return f"{int(a)}{suffix}"
    if a.size == 0:
        return f"empty({''.join(f'[{n}]' for n in a.shape)}{suffix})"
    if a.ndim == 1:
        return "[" + ", ".join(f"{int(v)}{suffix}" for v in a) + "]"
    return "[" + ", ".join(value(row) for row in a) + "]"


#: name -> (layers, rule, rule options, samples, batch size)
CASES = {
    "train_dfa": (
        [L.Input(5), L.Dense(4, kmax=3, use_bias=False), L.Dense(3, kmax=3, use_bias=False)],
        "dfa",
        {"step": 4096},
        12,
        4,
    ),
    "train_dfa_decay": (
        [L.Input(5), L.Dense(6, kmax=4), L.Dense(4, kmax=3), L.Dense(3)],
        "dfa",
        {"step": 2048, "decay_shift": 6},
        10,
        3,
    ),
    "train_seed_hebbian": ([L.Input(5), L.Dense(4, kmax=2), L.Dense(3)], "seed_hebbian", {}, 8, 1),
    "train_dfa_dropout": (
        [L.Input(6), L.Dense(8, shift=6), L.Dense(5), L.Dense(3)],
        "dfa",
        {"step": 4096, "dropout": 77},
        12,
        5,
    ),
    "train_local_heads": (
        [L.Input(6), L.Dense(8, shift=6), L.Dense(5), L.Dense(3)],
        "local_heads",
        {"step": 4096, "head_shift": 2, "head_step": 65536, "head_kmax": 3},
        12,
        4,
    ),
    "train_conv_max": (
        [
            L.Input((6, 5)),
            L.Conv2D(3, 3, kmax=4, use_bias=True),
            L.MaxPooling2D(2),
            L.Flatten(),
            L.Dense(3),
        ],
        "dfa",
        {"step": 4096},
        10,
        4,
    ),
    "train_conv_average": (
        [
            L.Input((7, 6, 2)),
            L.Conv2D(4, (3, 2), strides=(2, 1), padding="same", shift=7),
            L.AveragePooling2D((2, 3)),
            L.Flatten(),
            L.Dense(5),
            L.Dense(3),
        ],
        "local_heads",
        {"step": 4096, "dropout": 60, "head_shift": 3},
        9,
        4,
    ),
    "train_conv_same": (
        [L.Input((5, 5, 1)), L.Conv2D(2, 3, padding="same", kmax=2), L.Flatten(), L.Dense(3)],
        "dfa",
        {"step": 8192, "decay_shift": 5},
        8,
        3,
    ),
}


def case(name: str, layers, rule: str, options: dict, samples: int, batch: int) -> None:
    rng = np.random.default_rng(sum(map(ord, name)))
    model = Sequential(layers, seed=int(rng.integers(1 << 62)))
    model.build()
    state = model._initial_state()
    # Train a few steps from the start so that momenta and counters are not all trivial.
    state["counters"][1] = int(rng.integers(0, 1000))
    state["momentum"] = rng.integers(-5000, 5000, state["momentum"].size).astype(np.int32)
    state["head_momentum"] = rng.integers(-5000, 5000, state["head_momentum"].size).astype(np.int32)
    features = int(state["sizes"][0])
    x = rng.integers(0, 256, (samples, features)).astype(np.uint8)
    x[x < 60] = 0  # zero inputs take the CPU forms' skip path
    y = rng.integers(0, model.classes, samples).astype(np.int32)
    order = rng.permutation(samples).astype(np.int32)
    r = get_rule(rule, **options)
    params = r.params()
    inputs = [
        state["sizes"], state["geometry"], state["kmax"], state["shift"], state["latent"],
        state["momentum"], state["feedback"], state["head_latent"], state["head_momentum"],
        state["counters"], x, y, order,
        np.int64(batch), np.int32(r.rule_id), params,
    ]  # fmt: skip
    backend = NumbaBackend()
    handle = backend.load(state)
    handle, correct, sq = backend.train_epoch(handle, (x, y), order, batch, r.rule_id, params)
    after = backend.dump(handle)
    result = [
        after["latent"],
        after["momentum"],
        after["counters"],
        np.int64(correct),
        np.int64(sq),
        after["head_latent"],
        after["head_momentum"],
    ]
    (DATA / f"{name}.in").write_text("\n".join(map(value, inputs)) + "\n")
    (DATA / f"{name}.out").write_text("\n".join(map(value, result * 2)) + "\n")


def main() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    for name, spec in CASES.items():
        case(name, *spec)
        print(f"wrote {DATA / name}.in/.out")


if __name__ == "__main__":
    main()
