"""The Futhark wrapper itself (graia/backends/futhark/): build, probing, handles, errors, and
that its CPU and GPU forms of the matrix products give the same bits. Bit-identity with the
Numba reference over whole training runs is tests/test_cross_backend.py's job."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from graia import spec, state
from graia.backends import futhark
from graia.backends.futhark import opencl
from graia.backends.interface import HOST_STATE_DTYPES
from graia.errors import GraiaError


def _state(sizes, kmax, seed=3):
    sizes = np.array(sizes, np.int64)
    layers = len(sizes) - 1
    latent = np.concatenate(
        [
            spec.init_latent(seed, i, int(sizes[i]), int(sizes[i + 1]), kmax, "uniform")
            for i in range(layers)
        ]
    ).astype(np.int32)
    classes = int(sizes[-1])
    feedback = [
        spec.feedback_matrix(np.uint64(seed), i, int(sizes[i + 1]), classes)
        for i in range(layers - 1)
    ]
    fb = np.concatenate(feedback).astype(np.int8) if feedback else np.zeros(0, np.int8)
    dense = [
        state.Block(1, 1, int(sizes[i]), 1, 1, 1, 1, 0, 0, 1, 1, int(sizes[i + 1]), 0, 1, 1)
        for i in range(layers)
    ]
    return {
        "sizes": sizes,
        "geometry": state.geometry(dense),
        "kmax": np.full(layers, kmax, np.int32),
        "shift": np.full(layers, kmax, np.int32),
        "latent": latent,
        "momentum": np.zeros_like(latent),
        "feedback": fb,
        "head_latent": state.initial_heads(fb),
        "head_momentum": np.zeros(fb.shape, np.int32),
        "counters": np.array([seed, 0, 255], np.int64),
    }


def _data(n, features, classes, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, features), dtype=np.uint8)
    x[rng.random(x.shape) < 0.5] = 0
    return x, rng.integers(0, classes, size=n).astype(np.int32)


DFA = np.array([256, 3, 7, 2, 255, 0, 40], np.int64)


def test_probe_unknown_kind():
    ok, reason = futhark.probe("vulkan")
    assert not ok and "unknown" in reason


def test_probe_gives_reasons():
    for kind in futhark.KINDS:
        ok, reason = futhark.probe(kind)
        assert isinstance(ok, bool) and isinstance(reason, str)
        assert ok or reason, f"{kind}: no reason given"


def test_load_dump_round_trip(futhark_backend):
    be = futhark.FutharkBackend(futhark_backend)
    state = _state([9, 7, 4], 5)
    out = be.dump(be.load(state))
    assert set(out) == set(HOST_STATE_DTYPES)
    for key, dtype in HOST_STATE_DTYPES.items():
        assert out[key].dtype == dtype, key
        np.testing.assert_array_equal(out[key], state[key], err_msg=key)


def test_cpu_and_gpu_forms_agree(futhark_backend, monkeypatch):
    """The CPU loops and the tiled map-reduce forms give the same bits on one backend."""
    x, y = _data(97, 23, 6)
    results = []
    for flag in ("0", "1"):
        monkeypatch.setenv("GRAIA_FUTHARK_CPU_LOOPS", flag)
        be = futhark.FutharkBackend(futhark_backend)
        assert be.cpu_loops == (flag == "1")
        handle, data = be.load(_state([23, 11, 9, 6], 6)), be.upload(x, y)
        metrics = []
        for epoch in range(2):
            order = spec.permutation(len(x), np.uint64(3), epoch)
            handle, correct, sq = be.train_epoch(handle, data, order, 10, 0, DFA)
            metrics.append((correct, sq))
        results.append((be.dump(handle), metrics, be.predict(handle, x)))
    (s0, m0, p0), (s1, m1, p1) = results
    assert m0 == m1
    for key in s0:
        np.testing.assert_array_equal(s0[key], s1[key], err_msg=key)
    np.testing.assert_array_equal(p0, p1)


def test_state_handles_are_values(futhark_backend):
    """train_epoch returns a new handle and leaves the old one usable (no aliasing)."""
    be = futhark.FutharkBackend(futhark_backend)
    x, y = _data(40, 12, 3)
    h0 = be.load(_state([12, 3], 4))
    data = be.upload(x, y)
    before = be.dump(h0)
    h1, _, _ = be.train_epoch(h0, data, np.arange(40, dtype=np.int32), 8, 0, DFA)
    np.testing.assert_array_equal(be.dump(h0)["latent"], before["latent"])
    assert not np.array_equal(be.dump(h1)["latent"], before["latent"])
    assert be.dump(h1)["counters"][1] == 5  # five batches


def test_activations_match_predict(futhark_backend):
    be = futhark.FutharkBackend(futhark_backend)
    x, _ = _data(15, 10, 4)
    h = be.load(_state([10, 8, 4], 3))
    acts = be.activations(h, x)
    assert [a.shape for a in acts] == [(15, 10), (15, 8), (15, 4)]
    np.testing.assert_array_equal(acts[0], x)
    np.testing.assert_array_equal(acts[-1], be.predict(h, x))


def test_runtime_error_is_graia_error(futhark_backend):
    be = futhark.FutharkBackend(futhark_backend)
    x, y = _data(5, 4, 2)
    h, data = be.load(_state([4, 2], 2)), be.upload(x, y)
    with pytest.raises(GraiaError, match="train_epoch"):
        be.train_epoch(h, data, np.arange(5, dtype=np.int32), 2, 99, DFA)
    # the context is still usable afterwards
    _, correct, _ = be.train_epoch(h, data, np.arange(5, dtype=np.int32), 2, 0, DFA)
    assert 0 <= correct <= 5


def test_handles_belong_to_their_backend(futhark_backend):
    a = futhark.FutharkBackend(futhark_backend)
    b = futhark.FutharkBackend(futhark_backend)
    h = a.load(_state([4, 2], 2))
    with pytest.raises(GraiaError):
        b.dump(h)


def test_device_info(futhark_backend):
    info = futhark.FutharkBackend(futhark_backend).device_info()
    assert info["available"] and info["backend"] == futhark_backend
    if futhark_backend == "multicore":
        assert info["threads"] >= 1
    else:
        assert info["platform"] and info["device"]
        assert info["max_work_group_size"] <= 1024


def test_opencl_device_choice_prefers_gpus():
    """Without a preference the first GPU wins (PoCL is often listed first); with one,
    Futhark's own substring rule, '#k' picking the k-th match."""
    devices = [
        {"platform": "Portable Computing Language", "device": "cpu-haswell", "type": "cpu"},
        {"platform": "NVIDIA CUDA", "device": "NVIDIA H100", "type": "gpu"},
        {"platform": "NVIDIA CUDA", "device": "NVIDIA H100", "type": "gpu"},
    ]
    chosen, platform, device = opencl.pick_device(devices, "", "")
    assert chosen is devices[1] and (platform, device) == ("NVIDIA CUDA", "NVIDIA H100")
    assert opencl.pick_device(devices, "Portable", "")[0] is devices[0]
    assert opencl.pick_device(devices, "", "#1 H100")[0] is devices[2]
    assert opencl.pick_device(devices, "AMD", "")[0] is None
    assert opencl.pick_device(devices[:1], "", "")[0] is devices[0]


def test_opencl_device_by_index_and_local_rank():
    """Identical GPUs apart: a number is a GPU index (a device index without GPUs); under MPI
    without a preference, GPU local rank mod GPU count. Futhark is given the strings that pick
    that very device by its own rule."""
    devices = [
        {"platform": "Portable Computing Language", "device": "cpu-haswell", "type": "cpu"},
        {"platform": "NVIDIA CUDA", "device": "NVIDIA H100", "type": "gpu"},
        {"platform": "NVIDIA CUDA", "device": "NVIDIA H100", "type": "gpu"},
    ]

    def futhark_picks(platform: str, device: str) -> dict | None:
        return opencl._choose_device(devices, platform, device)

    for expected, chosen in (
        (devices[2], opencl.pick_device(devices, "", "1")),
        (devices[1], opencl.pick_device(devices, "NVIDIA", "0")),
        (devices[0], opencl.pick_device(devices, "Portable", "0")),
        (devices[1], opencl.pick_device(devices, "", "", local_rank=0)),
        (devices[2], opencl.pick_device(devices, "", "", local_rank=1)),
        (devices[1], opencl.pick_device(devices, "", "", local_rank=4)),
    ):
        assert chosen[0] is expected
        assert futhark_picks(*chosen[1:]) is expected
    assert opencl.pick_device(devices, "", "2")[0] is None
    assert opencl.pick_device(devices[:1], "", "", local_rank=3)[0] is devices[0]


def test_opencl_program_cache_location(tmp_path, monkeypatch):
    """One cache file per device, under GRAIA_OPENCL_CACHE or the user's cache directory; ``0``
    or a directory that cannot be made turns it off."""
    device = {"platform": "NVIDIA CUDA", "device": "NVIDIA H100 80GB HBM3"}
    monkeypatch.setenv("GRAIA_OPENCL_CACHE", str(tmp_path / "kernels"))
    path = Path(opencl.program_cache(device))
    assert path == tmp_path / "kernels" / "opencl-NVIDIA-CUDA-NVIDIA-H100-80GB-HBM3.bin"
    assert path.parent.is_dir()
    monkeypatch.setenv("GRAIA_OPENCL_CACHE", "0")
    assert opencl.program_cache(device) is None
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("GRAIA_OPENCL_CACHE", str(tmp_path / "file" / "below"))
    assert opencl.program_cache(device) is None
    monkeypatch.delenv("GRAIA_OPENCL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert Path(opencl.program_cache(device)).parent == tmp_path / "xdg" / "graia"


def test_generated_interface_is_current():
    """futhark/host.fut and futhark/graia.fut are what scripts/gen_graia_fut.py writes from the
    Python declarations (graia/backends/interface.py, abi.py, graia/rules): the geometry row,
    pool codes, rule ids and parameters, depth limit and entry-point parameters."""
    script = Path(__file__).resolve().parent.parent / "scripts" / "gen_graia_fut.py"
    if not script.exists() or shutil.which("futhark") is None:
        pytest.skip("needs the source tree and the futhark compiler")
    proc = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_deeper_networks_than_compiled_are_refused(futhark_backend):
    be = futhark.FutharkBackend(futhark_backend)
    sizes = [3] * (futhark.MAX_LAYERS + 1) + [2]
    with pytest.raises(GraiaError, match="numba"):
        be.load(_state(sizes, 2))


@pytest.mark.parametrize("depth", range(1, futhark.MAX_LAYERS + 1))
def test_every_depth_round_trips(futhark_backend, depth):
    be = futhark.FutharkBackend(futhark_backend)
    state = _state([5, *range(4, 4 + depth - 1), 3], 4)
    x, y = _data(11, 5, 3)
    handle, _, _ = be.train_epoch(
        be.load(state), be.upload(x, y), np.arange(11, dtype=np.int32), 4, 0, DFA
    )
    out = be.dump(handle)
    assert out["counters"][1] == 3
    assert len(be.activations(handle, x)) == depth + 1
