"""Run by tests/test_distributed.py under ``mpirun``: trains the cases below with
``distribute="data"`` on the backend ``GRAIA_BACKEND`` names and has rank 0 write their digests
(and the backend's name) to the JSON file named by argv[1].
With ``--kill``, rank 1 dies (``os._exit(3)``) after the first epoch. Imported by the test for the
same cases on one process."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings

import numpy as np

import graia
from graia import layers as L

#: (name, layers, rule, rule options): a Dense and a small conv net, both rules, with dropout.
CASES = [
    ("dense-dfa", "dense", "dfa", {"dropout": 40, "step": 1024}),
    ("dense-local_heads", "dense", "local_heads", {"dropout": 60}),
    ("conv-dfa", "conv", "dfa", {"dropout": 50}),
    ("conv-local_heads", "conv", "local_heads", {"dropout": 30, "step": 2048}),
]
EPOCHS = 2
BATCH = 32  # 150 samples: four whole batches and one of 22 rows


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(13)
    return rng.integers(0, 256, (150, 64)).astype(np.uint8), rng.integers(0, 10, 150)


def build(kind: str, rule: str, options: dict) -> graia.Sequential:
    if kind == "dense":
        stack = [L.Input(64), L.Dense(40), L.Dense(24), L.Dense(10)]
    else:
        stack = [L.Input((8, 8)), L.Conv2D(6, 3, padding="same"), L.MaxPooling2D(2)]
        stack += [L.Conv2D(4, 2), L.Flatten(), L.Dense(10)]
    model = graia.Sequential(stack, seed=2025)
    model.compile(rule, **options)
    return model


def digest(model: graia.Sequential, x: np.ndarray) -> str:
    """sha256 of the host state's learned parts and of the predictions."""
    state = model._host_state()
    h = hashlib.sha256()
    for key in ("latent", "momentum", "counters"):
        h.update(state[key].tobytes())
    h.update(model.predict(x).tobytes())
    return h.hexdigest()


def run(distribute: str | None, callbacks=()) -> dict[str, str]:
    x, y = data()
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny random problems may collapse: not the point
        for name, kind, rule, options in CASES:
            model = build(kind, rule, options)
            model.fit(x, y, epochs=EPOCHS, batch_size=BATCH, verbose=0,
                      distribute=distribute, callbacks=list(callbacks))  # fmt: skip
            out[name] = digest(model, x)
    return out


class _DieAfterFirstEpoch(graia.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        from graia import distributed

        if distributed.rank() == 1:
            os._exit(3)


if __name__ == "__main__":
    from graia import distributed

    kill = "--kill" in sys.argv
    result = run("data", [_DieAfterFirstEpoch()] if kill else [])
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
