"""The cuda backend (Futhark's CUDA output on an NVIDIA GPU).

It needs a GPU, which CI does not have: there the registry must say why cuda is absent (checked
everywhere), and the GPU tests skip with that reason (in CI too, unlike a missing CPU backend:
tests/conftest.py). On a machine with CUDA they check the device it reports and the bits of
training at the benchmark's shapes (the GPU's tiled products at full width) against the Numba
oracle; tests/test_cross_backend.py and tests/test_conv.py run their every-rule and property
checks on cuda through the ``futhark_backend`` fixture.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import graia
from graia import backend
from graia.backends.numba import NumbaBackend


def _cuda_or_skip() -> None:
    ok, reason = backend.available()["cuda"]
    if not ok:
        pytest.skip(f"backend 'cuda' unavailable (it needs an NVIDIA GPU): {reason}")


def test_registry_says_why_cuda_is_absent_or_what_it_runs_on() -> None:
    assert backend.BACKENDS["cuda"].needs_gpu
    assert not any(backend.BACKENDS[n].needs_gpu for n in ("numba", "multicore", "opencl"))
    ok, reason = backend.available()["cuda"]
    info = backend.details("cuda") if ok else None
    if ok:
        assert reason == ""
        assert info["type"] == "gpu" and info["compute_capability"]
    else:
        assert reason, "an unavailable backend must say why"
        with (
            pytest.raises(backend.BackendError, match="cuda.*cannot run here"),
            backend.use("cuda"),
        ):
            pass


def test_info_reports_cuda(capsys: pytest.CaptureFixture[str]) -> None:
    from graia.cli import main

    assert main(["info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    entry = report["backends"]["cuda"]
    assert entry["available"] == backend.available()["cuda"][0]
    if not entry["available"]:
        assert entry["reason"]


def _dense(sizes: list[int], seed: int) -> graia.Sequential:
    layers = [graia.layers.Input(sizes[0])] + [graia.layers.Dense(u) for u in sizes[1:]]
    model = graia.Sequential(layers, seed=seed)
    with backend.use("numba"):
        model.compile("dfa")
    return model


@pytest.mark.parametrize(("hidden", "batch_size"), [(512, 64), (512, 1024), (4000, 128)])
def test_benchmark_shapes_match_the_oracle(hidden: int, batch_size: int) -> None:
    """784-hidden-10 Dense networks at the benchmark's batch sizes: same weights, momenta,
    counters and predictions as Numba after two epochs."""
    _cuda_or_skip()
    rng = np.random.default_rng(hidden + batch_size)
    n = 2 * batch_size + 37  # a short last batch too
    x = rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
    x[rng.random(x.shape) < 0.5] = 0  # as sparse as images' borders
    x[:3] = 255  # the largest inputs
    y = rng.integers(0, 10, size=n).astype(np.int32)
    states = []
    for name in ("numba", "cuda"):
        model = _dense([784, hidden, 10], seed=7)
        with backend.use(name):
            model.fit(x, y, epochs=2, batch_size=batch_size, verbose=0)
            states.append((model.get_state(), model.predict(x)))
    for key in states[0][0]:
        np.testing.assert_array_equal(states[0][0][key], states[1][0][key], err_msg=key)
    np.testing.assert_array_equal(states[0][1], states[1][1])


def test_program_cache_gives_the_same_bits(tmp_path, monkeypatch) -> None:
    """A second context loads the compiled program from GRAIA_CUDA_CACHE's file and computes the
    same as the first (which wrote it)."""
    _cuda_or_skip()
    from graia.backends.futhark import FutharkBackend

    monkeypatch.setenv("GRAIA_CUDA_CACHE", str(tmp_path))
    model = _dense([64, 48, 10], seed=3)
    x = np.random.default_rng(0).integers(0, 256, size=(50, 64), dtype=np.uint8)
    outputs = []
    for _ in range(2):
        engine = FutharkBackend("cuda")
        outputs.append(engine.predict(engine.load(model.get_state()), x))
        assert engine.device_info()["compute_capability"]
    assert list(tmp_path.glob("cuda-*.bin")), "no program cache was written"
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(outputs[0], NumbaBackend().predict(model.get_state(), x))


def test_context_is_shared_with_pytorch() -> None:
    """Graia's CUDA context is the device's primary one (PyTorch's and CuPy's), and after a
    Graia call the thread's current context is as before: PyTorch's cuBLAS, captured in a CUDA
    graph, still runs (with a context of Futhark's own left current it failed,
    scripts/futhark_cffi.py)."""
    _cuda_or_skip()
    import importlib

    from graia.backends.futhark import FutharkBackend

    model = _dense([64, 48, 10], seed=3)
    x = np.random.default_rng(0).integers(0, 256, size=(50, 64), dtype=np.uint8)
    engine = FutharkBackend("cuda")
    engine.predict(engine.load(model.get_state()), x)
    mod = importlib.import_module("graia.backends._futhark_cuda")
    ffi, lib = mod.ffi, mod.lib
    device = ffi.new("CUdevice *")
    assert lib.cuDeviceGet(device, engine.device_info()["index"]) == lib.CUDA_SUCCESS
    primary, current = ffi.new("CUcontext *"), ffi.new("CUcontext *")
    assert lib.cuDevicePrimaryCtxRetain(primary, device[0]) == lib.CUDA_SUCCESS
    try:
        assert lib.cuCtxGetCurrent(current) == lib.CUDA_SUCCESS
        assert current[0] in (ffi.NULL, primary[0]), "a context of Graia's own is left current"
    finally:
        lib.cuDevicePrimaryCtxRelease(device[0])
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch without CUDA")
    a = torch.ones(64, 64, device="cuda")
    side = torch.cuda.Stream()  # a warm-up before capture, as PyTorch's documentation says
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        a @ a
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = a @ a
    graph.replay()
    assert out[0, 0].item() == 64
    engine.predict(engine.load(model.get_state()), x)  # and Graia after PyTorch
    del engine


def test_device_choice_and_cache_file(tmp_path, monkeypatch) -> None:
    """GRAIA_CUDA_DEVICE as an index or a name (``#k`` the k-th match); one cache file per card
    and architecture (no GPU needed)."""
    from graia.backends.futhark import cuda

    devices = [{"index": i, "device": name} for i, name in enumerate(["H100", "A100", "H100"])]
    assert cuda._pick(devices, "1")["index"] == 1
    assert cuda._pick(devices, "#1 H100")["index"] == 2
    assert cuda._pick(devices, "A100")["index"] == 1
    assert cuda._pick(devices, "5") is None and cuda._pick(devices, "V100") is None
    monkeypatch.setenv("GRAIA_CUDA_CACHE", str(tmp_path))
    card = {"device": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
    assert cuda._cache_file(card) == str(tmp_path / "cuda-NVIDIA-H100-80GB-HBM3-sm90.bin")
    monkeypatch.setenv("GRAIA_CUDA_CACHE", "0")
    assert cuda._cache_file(card) is None
