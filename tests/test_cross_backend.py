"""Every backend equals the Numba reference bit for bit: forward outputs, weights after training
steps and whole epochs, for every registered rule."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graia
from graia import rules
from graia.backends.numba import NumbaBackend

REFERENCE = NumbaBackend()


def _model(sizes, kmax, seed, rule, initializer="uniform", shift=None, bias=True):
    layers = [graia.layers.Input(sizes[0])] + [
        graia.layers.Dense(u, kmax=kmax, shift=shift, use_bias=bias, initializer=initializer)
        for u in sizes[1:]
    ]
    model = graia.Sequential(layers, seed=seed)
    with graia.backend.use("numba"):
        model.compile(rule)
    return model


def _data(n, features, classes, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, features), dtype=np.uint8)
    x[rng.random(x.shape) < 0.3] = 0  # zeros exercise the sparse paths
    return x, rng.integers(0, classes, size=n).astype(np.int32)


def _train(name, model, x, y, epochs, batch_size):
    with graia.backend.use(name):
        model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
        return model.get_state(), model.predict(x)


def _assert_same(state_a, state_b):
    for key in state_a:
        np.testing.assert_array_equal(state_a[key], state_b[key], err_msg=f"host state {key!r}")


@pytest.mark.parametrize("rule", sorted(rules.REGISTRY))
def test_fixed_run_matches_reference(futhark_backend, rule):
    """Several layers, a few epochs: identical weights, momenta, counters and predictions."""
    x, y = _data(203, 37, 5, seed=1)
    init = "codes" if rule == "seed_hebbian" else "uniform"
    ref = _train("numba", _model([37, 23, 17, 5], 6, 11, rule, init), x, y, 3, 16)
    got = _train(futhark_backend, _model([37, 23, 17, 5], 6, 11, rule, init), x, y, 3, 16)
    _assert_same(ref[0], got[0])
    np.testing.assert_array_equal(ref[1], got[1])


def test_learned_heads_match_reference(futhark_backend):
    """``local_heads`` with learning heads (§7.4): heads, weights and predictions identical."""
    x, y = _data(203, 37, 5, seed=2)
    results = []
    for name in ("numba", futhark_backend):
        model = _model([37, 23, 17, 5], 6, 12, "dfa")
        with graia.backend.use("numba"):
            model.compile("local_heads", step=1024, head_step=16384, head_kmax=3, head_shift=(3, 2))
        results.append(_train(name, model, x, y, 3, 16))
    initial = results[0][0]["feedback"].astype(np.int32) << 20
    assert (results[0][0]["head_latent"] != initial).any()  # the heads did learn
    _assert_same(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=2, max_size=4),
    classes=st.integers(2, 12),
    kmax=st.integers(0, 10),
    seed=st.integers(0, 2**64 - 1),
    n=st.integers(1, 70),
    batch_size=st.integers(1, 33),
    rule=st.sampled_from(sorted(rules.REGISTRY)),
    initializer=st.sampled_from(["uniform", "codes"]),
    shift_delta=st.integers(-2, 3),
    bias=st.booleans(),
)
def test_property_matches_reference(
    futhark_backend, sizes, classes, kmax, seed, n, batch_size, rule, initializer, shift_delta, bias
):
    """Random layer sizes, weight codes, kmax, shifts, biases and data: forward and training
    agree."""
    sizes = sizes + [classes]
    shift = max(0, kmax + shift_delta)
    x, y = _data(n, sizes[0], classes, seed % 1000)
    ref_model = _model(sizes, kmax, seed, rule, initializer, shift, bias)
    got_model = _model(sizes, kmax, seed, rule, initializer, shift, bias)
    with graia.backend.use(futhark_backend):
        np.testing.assert_array_equal(
            got_model.predict(x), REFERENCE.predict(ref_model.get_state(), x)
        )
    ref = _train("numba", ref_model, x, y, 2, batch_size)
    got = _train(futhark_backend, got_model, x, y, 2, batch_size)
    _assert_same(ref[0], got[0])
    np.testing.assert_array_equal(ref[1], got[1])


def test_activations_match_reference(backend_name):
    """``model.activations`` runs on the backend in use (through the registry), same bits."""
    x, _ = _data(1, 37, 5, seed=4)
    model = _model([37, 23, 17, 5], 6, 11, "dfa")
    reference = REFERENCE.activations(model.get_state(), x)
    with graia.backend.use(backend_name):
        got = model.activations(x[0])
    assert len(got) == len(reference)
    for a, b in zip(got, reference):
        np.testing.assert_array_equal(a, b[0])


DIGEST_SCRIPT = """
import hashlib, json, numpy as np, graia
x, y = np.load({data!r})["x"], np.load({data!r})["y"]
model = graia.Sequential([graia.layers.Input(64), graia.layers.Dense(48), graia.layers.Dense(32),
                          graia.layers.Dense(10)], seed=2024)
model.compile("dfa", step=512)
h = model.fit(x, y, epochs=3, batch_size=32, verbose=0)
digest = hashlib.sha256()
for w in model.get_weights():
    digest.update(w.tobytes())
digest.update(model.predict(x).tobytes())
print(json.dumps({{"backend": graia.backend.name(), "sha256": digest.hexdigest(),
                  "accuracy": h.history["accuracy"]}}))
"""


def run_digest(name: str, data_path: str) -> dict:
    """Train the fixed run in a fresh process with ``GRAIA_BACKEND=name``; its digest."""
    env = dict(os.environ, GRAIA_BACKEND=name)
    proc = subprocess.run(
        [sys.executable, "-c", DIGEST_SCRIPT.format(data=data_path)],
        env=env,
        cwd=os.path.dirname(data_path),  # not the source tree: import the installed graia
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_subprocess_digests_match(tmp_path, require_backend):
    """Each backend in its own process (GRAIA_BACKEND set): the same sha256 as the reference."""
    from graia.datasets import digits

    (x, y), _ = digits.load_data()
    data = tmp_path / "digits.npz"
    np.savez(data, x=x[:400].reshape(400, 64), y=y[:400])
    results = {}
    for name in graia.backend.NAMES:
        if graia.backend.BACKENDS[name].needs_gpu and not graia.backend.available()[name][0]:
            continue  # no GPU here: tests/test_cuda.py skips, saying why
        require_backend(name)
        results[name] = run_digest(name, str(data))
        assert results[name]["backend"] == name
    digests = {name: r["sha256"] for name, r in results.items()}
    assert len(set(digests.values())) == 1, digests
    assert hashlib.sha256(b"").hexdigest() not in digests.values()
