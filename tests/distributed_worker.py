"""Run by tests/test_distributed.py under ``mpirun``: ``worker.py OUT [--mode data|units] [--save
DIR] [--kill]`` trains the mode's cases with ``distribute=mode`` (on the backend GRAIA_BACKEND
names) and has rank 0 write their digests (and the backend's name) to the JSON file OUT and, with ``--save``, each model to
``DIR/<case>.graia``. With ``--kill``, rank 1 dies (``os._exit(3)``) after the first epoch.
Imported by the test for the same cases on one process."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings

import numpy as np

import graia
from graia import layers as L

#: (name, layers, rule, rule options, use_bias): a Dense and a small conv net, both rules, with
#: dropout; the local_heads cases augment their images (RandomFlip, RandomTranslation) and learn
#: their heads; the Dense one gives each hidden layer its own head shift and a bias to the second
#: hidden layer only (``build``).
CASES = [
    ("dense-dfa", "dense", "dfa", {"dropout": 40, "step": 1024}, True),
    (
        "dense-local_heads",
        "dense-augmented",
        "local_heads",
        {"dropout": 60, "head_shift": (3, 6), "head_step": 16384},
        (False, True, False),
    ),
    ("conv-dfa", "conv", "dfa", {"dropout": 50}, True),
    (
        "conv-local_heads",
        "conv-augmented",
        "local_heads",
        {"dropout": 30, "step": 2048, "head_step": 16384, "head_kmax": 2},
        True,
    ),
]
#: The cases each mode runs (unit parallel splits Dense layers only).
MODE_CASES = {"data": [c[0] for c in CASES], "units": ["dense-dfa", "dense-local_heads"]}
EPOCHS = 2
BATCH = 32  # 150 samples: four whole batches and one of 22 rows


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(13)
    return rng.integers(0, 256, (150, 64)).astype(np.uint8), rng.integers(0, 10, 150)


def build(
    kind: str, rule: str, options: dict, use_bias: bool | tuple[bool, bool, bool] = True
) -> graia.Sequential:
    """The model of ``kind`` compiled with ``rule``; ``use_bias`` is every weighted layer's, or
    each of the three's in order."""
    bias = use_bias if isinstance(use_bias, tuple) else (use_bias,) * 3
    if kind.endswith("-augmented"):
        stack = [L.Input((8, 8)), L.RandomFlip(), L.RandomTranslation(0.25, 0.25)]
    else:
        stack = [L.Input(64 if kind == "dense" else (8, 8))]
    if kind.startswith("dense"):  # 40 units: not a multiple of 3 ranks
        stack += [L.Dense(40, use_bias=bias[0]), L.Dense(24, use_bias=bias[1])]
    else:
        stack += [L.Conv2D(6, 3, padding="same", use_bias=bias[0]), L.MaxPooling2D(2)]
        stack += [L.Conv2D(4, 2, use_bias=bias[1]), L.Flatten()]
    stack.append(L.Dense(10, use_bias=bias[2]))
    model = graia.Sequential(stack, seed=2025)
    model.compile(rule, **options)
    return model


def digest(model: graia.Sequential, x: np.ndarray) -> str:
    """sha256 of the host state's learned parts and of the predictions."""
    state = model.get_state()
    h = hashlib.sha256()
    for key in ("latent", "momentum", "head_latent", "head_momentum", "counters"):
        h.update(state[key].tobytes())
    h.update(model.predict(x).tobytes())
    return h.hexdigest()


def run(mode: str, distribute: str | None, callbacks=(), save: str | None = None) -> dict[str, str]:
    """The digests of ``mode``'s cases trained with ``distribute`` (None: one process); with
    ``save``, rank 0 writes each model there."""
    from graia import distributed

    x, y = data()
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny random problems may collapse: not the point
        for name, kind, rule, options, use_bias in CASES:
            if name not in MODE_CASES[mode]:
                continue
            model = build(kind, rule, options, use_bias)
            model.fit(x, y, epochs=EPOCHS, batch_size=BATCH, verbose=0,
                      distribute=distribute, callbacks=list(callbacks))  # fmt: skip
            out[name] = digest(model, x)
            if save and (distribute is None or distributed.rank() == 0):
                model.save(os.path.join(save, f"{name}.graia"))
    return out


class _DieAfterFirstEpoch(graia.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        from graia import distributed

        if distributed.rank() == 1:
            os._exit(3)


if __name__ == "__main__":
    from graia import distributed

    args = sys.argv[1:]
    mode = args[args.index("--mode") + 1] if "--mode" in args else "data"
    save = args[args.index("--save") + 1] if "--save" in args else None
    kill = "--kill" in args
    result = run(mode, mode, [_DieAfterFirstEpoch()] if kill else [], save)
    if distributed.rank() == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(
                {
                    "ranks": distributed.world().Get_size(),
                    "backend": graia.backend.name(),
                    "digests": result,
                },
                f,
            )
