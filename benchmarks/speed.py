"""Speed benchmark: Graia's backends against what a user would use instead, and against ceilings.

For 784-H-10 networks on Fashion-MNIST (rule dfa with dropout, the recipe's), for every width H
and batch size asked for, one timed epoch per available backend (after a warm-up), and in the same
run on the same machine:

- the same rule written plainly in PyTorch float32 (clamped activations, power-of-two weights,
  fixed random ternary feedback, sign-of-momentum step; GPU if there is one, else the same CPU
  threads), with its accuracy after the epoch beside Graia's, to show it learns;
- the same rule with each batch's step captured in a CUDA graph (static input buffers, one replay
  a batch: PyTorch without its launch cost; on a GPU);
- a PyTorch backprop MLP of the same shape (Adam, cross-entropy): float32, and on a GPU also TF32
  and bf16 autocast, each eager and captured in a CUDA graph, each with its accuracy after the
  epoch (to check it learns);
- measured ceilings of this machine: integer shift+add and multiply-add throughput from register
  micro-kernels and memory bandwidth (CuPy kernels on a GPU, Numba loops on the CPU), and each
  backend's share of the multiply-add ceiling in synapse-terms per second;
- peak memory (device memory from Futhark's report; host RSS for CPU backends).

``--digits`` adds the digits recipe (64-512-512-10, batch 32, its rule and options) on its 1,437
training images (``--samples`` does not apply; ``--cpu-samples`` does), each backend and a
PyTorch backprop MLP of the same shape. ``--baseline DIR``
also times the backends ``--baseline-backends`` of another source tree (e.g. a worktree of an
older commit with its compiled module built in place: ``graia/backends/_futhark_multicore*.so``),
each in a subprocess that imports graia from DIR, in the same run, labelled ``backend@commit``.
``--repeat R`` times R epochs after the warm-up and keeps the fastest (every contender alike).

``--profile`` adds Futhark's per-kernel breakdown of one epoch (``GRAIA_FUTHARK_PROFILE=1``).
``--json FILE`` writes every number. CPU backends are timed on ``--cpu-samples`` samples and
their epoch time scaled to the full epoch (their cost is linear in samples). Usage::

    python benchmarks/speed.py                                  # everything, default grid
    python benchmarks/speed.py --widths 1000 --batches 64 --backends multicore numba
    python benchmarks/speed.py --widths 512 4000 --batches 64 --digits --cpu-samples 6000 \
        --backends multicore numba --torch-device cpu --baseline ../a5fbd01 --repeat 2
    python benchmarks/speed.py --backends --json torch.json       # the PyTorch baselines alone
    python benchmarks/speed.py --backends cuda --no-torch --baselines torch.json
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections import defaultdict

import numpy as np

import graia
from graia.backends import futhark as futhark_backend

CLASSES = 10
FEATURES = 784


def terms_per_sample(hidden) -> int:
    """Synapse-terms per trained sample: a forward and a learning term per synapse (``hidden``
    a width of 784-H-10, or :data:`DIGITS`: 64-512-512-10)."""
    sizes = (64, 512, 512, CLASSES) if hidden == DIGITS else (FEATURES, hidden, CLASSES)
    return 2 * sum(a * b for a, b in itertools.pairwise(sizes))


# ---------------------------------------------------------------------------------------------
# Graia


def build(hidden: int) -> graia.Sequential:
    model = graia.Sequential(
        [
            graia.layers.Input(FEATURES),
            graia.layers.Dense(hidden, shift=9),
            graia.layers.Dense(CLASSES),
        ],
        seed=0,
    )
    model.compile("dfa", step=128, dropout=77)
    return model


#: The digits recipe's case name (``--digits``): 64-512-512-10, batch 32, the recipe's rule.
DIGITS = "digits"


def digits_data():
    """The digits recipe's training and test images, flattened (64 features)."""
    (x, y), (xt, yt) = graia.datasets.load_data("digits")
    return x.reshape(len(x), -1), y, xt.reshape(len(xt), -1), yt


def build_case(case) -> graia.Sequential:
    """The network of a case: a width ``H`` (784-H-10, :func:`build`) or :data:`DIGITS`."""
    if case == DIGITS:
        from graia.recipes import DENSE_RECIPES

        return DENSE_RECIPES["digits"].build((64,), CLASSES, seed=0)
    return build(case)


def time_graia(backend, x, y, xt, yt, hidden, batch, repeat=1):
    """Seconds for one epoch over ``x`` through ``fit`` (the fastest of ``repeat``), and test
    accuracy after it. ``hidden`` is a width or :data:`DIGITS`."""
    with graia.backend.use(backend):
        model = build_case(hidden)
        model.fit(x[: 4 * batch], y[: 4 * batch], epochs=1, batch_size=batch, verbose=0)
        model = build_case(hidden)
        model.fit(x[:batch], y[:batch], epochs=1, batch_size=batch, verbose=0)  # upload, JIT

        def epoch(n):
            model.fit(x[:n], y[:n], epochs=1, batch_size=batch, verbose=0)

        return timed(epoch, len(x), repeat), float(model.evaluate(xt, yt)[1])


def commit_of(tree: str) -> str:
    """The short commit a source tree is checked out at (its directory name if not a git tree)."""
    try:
        return subprocess.run(
            ["git", "-C", tree, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return os.path.basename(os.path.abspath(tree))


def time_baseline(tree, backend, hidden, batch, samples, repeat):
    """:func:`time_graia` of ``backend`` in graia imported from the source tree ``tree`` (a
    subprocess running this script's ``--child`` mode): seconds and accuracy."""
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
    env.pop("GRAIA_BACKEND", None)
    out = subprocess.run(
        [sys.executable, __file__, "--child", backend, str(hidden), str(batch), str(samples)]
        + ["--repeat", str(repeat)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise SystemExit(f"speed: the baseline in {tree} failed:\n{out.stderr}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not os.path.abspath(result["graia"]).startswith(os.path.abspath(tree)):
        raise SystemExit(f"speed: the baseline imported graia from {result['graia']}, not {tree}")
    return result["seconds"], result["accuracy"], result["default"]


def child(backend, hidden, batch, samples, repeat):
    """``--child``: one :func:`time_graia` in this process's graia, as a JSON line."""
    hidden = hidden if hidden == DIGITS else int(hidden)
    x, y, xt, yt = load_case(hidden, samples)
    sec, acc = time_graia(backend, x, y, xt, yt, hidden, batch, repeat)
    where = os.path.dirname(graia.__file__)
    default = graia.backend.name()
    print(json.dumps({"seconds": sec, "accuracy": acc, "graia": where, "default": default}))


def load_case(hidden, n):
    """The first ``n`` training samples of a case's data (digits: all of them), and its test
    split."""
    if hidden == DIGITS:
        x, y, xt, yt = digits_data()
        n = len(x)
    else:
        x, y, xt, yt = fashion_data()
    return x[:n], y[:n], xt, yt


@functools.cache
def fashion_data():
    """Fashion-MNIST's training and test images, flattened (784 features), read once a run."""
    (x, y), (xt, yt) = graia.datasets.fashion_mnist.load_data()
    return x.reshape(-1, FEATURES), y, xt.reshape(-1, FEATURES), yt


def profile_epoch(backend, x, y, hidden, batch) -> dict:
    """Futhark's per-kernel profile of one epoch (a fresh profiled context)."""
    os.environ["GRAIA_FUTHARK_PROFILE"] = "1"
    try:
        be = futhark_backend.FutharkBackend(backend)
        be.device_info()  # creates the context now, while profiling is asked for
    finally:
        del os.environ["GRAIA_FUTHARK_PROFILE"]
    host = build(hidden)._initial_state()
    params = graia.rules.get("dfa", step=128, dropout=77).params()
    handle, data = be.load(host), be.upload(x, y)
    order = np.arange(len(x), dtype=np.int32)
    be.train_epoch(handle, data, order[: 2 * batch], batch, 0, params)
    be.report()  # drop the warm-up's events
    start = time.perf_counter()
    be.train_epoch(handle, data, order, batch, 0, params)
    wall = time.perf_counter() - start
    report = be.report()
    batches = -(-len(x) // batch)
    kinds: dict[str, list[float]] = defaultdict(list)
    for event in report.get("events", []):
        kinds[event["name"]].append(float(event.get("duration", 0.0)))
    rows = sorted(
        ((name, len(d), sum(d)) for name, d in kinds.items()), key=lambda r: r[2], reverse=True
    )
    # The multicore backend nests its events (a task's wall time, each thread's loop, a total):
    # its time is the sum of the tasks' wall times.
    counted = [r for r in rows if "_task_" in r[0]] if backend == "multicore" else rows
    return {
        "wall_s": wall,
        "batches": batches,
        "peak_device_bytes": report.get("memory", {}),
        "events_per_batch": sum(r[1] for r in counted) / batches,
        "device_us_per_batch": sum(r[2] for r in counted) / batches,
        "kernels": [
            {"name": n, "count": c, "us_total": t, "us_per_batch": t / batches} for n, c, t in rows
        ],
    }


# ---------------------------------------------------------------------------------------------
# PyTorch baselines


#: Where the PyTorch baselines run: "auto" (the GPU if there is one), "cpu" or "cuda".
TORCH_DEVICE = "auto"


def torch_device():
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if TORCH_DEVICE == "cuda" or (TORCH_DEVICE == "auto" and torch.cuda.is_available()):
        return torch, "cuda"
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    return torch, "cpu"


def _torch_on_gpu() -> bool:
    """Whether the PyTorch baselines would run on a CUDA GPU."""
    try:
        return torch_device()[1] == "cuda"
    except ImportError:
        return False


def torch_sync(torch, dev):
    if dev == "cuda":
        torch.cuda.synchronize()


def time_torch_same_rule(x, y, xt, yt, hidden, batch, pow2, graph=False, repeat=1):
    """The dfa rule in PyTorch float32: seconds for one epoch, test accuracy after it. With
    ``pow2`` the weights are rounded to powers of two as Graia's are; without, the latent float
    weights are used directly (less work: the baseline most favourable to PyTorch). With
    ``graph`` (CUDA only) a batch's step is captured once in a CUDA graph, with static input
    buffers that each batch is copied into before a replay, as an expert would remove PyTorch's
    per-kernel launch cost; a short last batch runs eagerly."""
    torch, dev = torch_device()
    gen = torch.Generator(device="cpu").manual_seed(0)

    def tensor(a, dtype):
        return torch.as_tensor(a, dtype=dtype, device=dev)

    xs, ys = tensor(x, torch.float32), tensor(y, torch.int64)
    latent = [
        (torch.rand(a, b, generator=gen) * 2 - 1).to(dev) * (3.0 / a) ** 0.5
        for a, b in ((FEATURES, hidden), (hidden, CLASSES))
    ]
    momentum = [torch.zeros_like(w) for w in latent]
    feedback = (torch.randint(-1, 2, (hidden, CLASSES), generator=gen)).float().to(dev)
    shifts = (2.0**-9, 2.0**-8)  # activation shifts of the recipe, as scales
    step, kmax = 128 / 2**20, 8

    def quantise(w):  # nearest power of two, dead zone below 2^-kmax
        mag = torch.exp2(torch.round(torch.log2(w.abs().clamp_min(1e-30))))
        return torch.where(mag >= 2.0**-kmax, torch.sign(w) * mag.clamp_max(1.0), 0.0)

    def forward(xb, train):
        w0, w1 = (quantise(w) for w in latent) if pow2 else latent
        z0 = (xb @ w0) * 2**kmax * shifts[0]
        h = z0.floor().clamp(0, 255)
        if train:
            h = h * (torch.rand(h.shape, device=dev) >= 77 / 256)
        out = ((h @ w1) * 2**kmax * shifts[1]).floor().clamp(0, 255)
        return z0, h, out

    targets = torch.eye(CLASSES, device=dev) * 255  # a lookup: no host sync inside a graph

    def train_step(xb, yb):
        z0, h, out = forward(xb, True)
        target = targets[yb]
        e = out - target
        d0 = (e @ feedback.T) * ((z0 > 0) & (z0 < 255))
        for layer, (pre, d) in enumerate(((xb, d0), (h, e))):
            g = pre.T @ d
            c = momentum[layer] + (g - momentum[layer]) / 8
            latent[layer] -= step * torch.sign(c)
            momentum[layer] += (g - momentum[layer]) / 128

    run_step = train_step
    if graph:
        run_step = _graphed(torch, train_step, xs[:batch].clone(), ys[:batch].clone())

    def epoch(n):
        for i in range(0, n, batch):
            run_step(xs[i : i + batch], ys[i : i + batch])
        torch_sync(torch, dev)

    epoch(4 * batch)
    seconds = timed(epoch, len(x), repeat)
    with torch.no_grad():
        pred = forward(tensor(xt, torch.float32), False)[2].argmax(1).cpu().numpy()
    return seconds, float((pred == yt).mean()), dev


def timed(epoch, n, repeat):
    """The fastest of ``repeat`` calls ``epoch(n)``, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        epoch(n)
        times.append(time.perf_counter() - start)
    return min(times)


def _graphed(torch, step, static_x, static_y):
    """``step(x, y)`` as a CUDA graph replayed on static input buffers (a batch of their size is
    copied in first; any other size runs ``step`` eagerly). Warmed up on a side stream first, as
    capture requires; the warm-up steps train too, like the eager warm-up epoch."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step(static_x, static_y)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step(static_x, static_y)

    def run(xb, yb):
        if len(xb) != len(static_x):
            step(xb, yb)
            return
        static_x.copy_(xb)
        static_y.copy_(yb)
        graph.replay()

    return run


def backprop_steps(torch, dev, net, opt, mode, graph, static_x, static_y):
    """``(forward, step)`` of a backprop baseline: ``net``'s forward pass in ``mode`` (bf16
    autocast when ``"bf16"``), and one training step of a batch ``(xb, yb)`` (cross-entropy,
    optimiser ``opt``), with ``graph`` captured in a CUDA graph on copies of the batch
    ``static_x``, ``static_y`` (every batch must have their shape) and replayed."""

    def forward(xb):
        # A CUDA graph must not capture autocast's cache of cast weights (PyTorch's CUDA graph
        # notes): with ``graph`` every replay casts the weights afresh.
        with torch.autocast(
            dev, dtype=torch.bfloat16, enabled=mode == "bf16", cache_enabled=not graph
        ):
            return net(xb)

    def train_step(xb, yb):
        opt.zero_grad(set_to_none=not graph)
        loss = torch.nn.functional.cross_entropy(forward(xb).float(), yb)
        loss.backward()
        opt.step()

    if graph:
        return forward, _graphed(torch, train_step, static_x.clone(), static_y.clone())
    return forward, train_step


#: PyTorch's settings for the backprop baseline: plain float32, TF32 matrix products, bf16
#: autocast (each on the GPU; on the CPU only float32 is timed).
BACKPROP_MODES = ("fp32", "tf32", "bf16")


def time_torch_backprop(x, y, xt, yt, hidden, batch, mode="fp32", graph=False, repeat=1):
    """One epoch of a backprop MLP of the same shape (Adam, cross-entropy) in ``mode``
    (:data:`BACKPROP_MODES`), with ``graph`` its step captured in a CUDA graph (Adam with
    ``capturable=True``): seconds, and test accuracy after the epoch (to check it learns)."""
    torch, dev = torch_device()
    torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
    torch.backends.cudnn.allow_tf32 = mode == "tf32"
    torch.manual_seed(0)
    sizes = (x.shape[1], *((512, 512) if hidden == DIGITS else (hidden,)), CLASSES)
    stack = []
    for a, b in itertools.pairwise(sizes):
        stack += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    net = torch.nn.Sequential(*stack[:-1]).to(dev)
    opt = torch.optim.Adam(net.parameters(), 1e-3, capturable=graph)
    xs = torch.as_tensor(x / 255.0, dtype=torch.float32, device=dev)
    ys = torch.as_tensor(y, dtype=torch.int64, device=dev)
    forward, run_step = backprop_steps(torch, dev, net, opt, mode, graph, xs[:batch], ys[:batch])

    def epoch(n):
        for i in range(0, n, batch):
            run_step(xs[i : i + batch], ys[i : i + batch])
        torch_sync(torch, dev)

    try:
        epoch(4 * batch)
        seconds = timed(epoch, len(x), repeat)
        with torch.no_grad():
            xts = torch.as_tensor(xt / 255.0, dtype=torch.float32, device=dev)
            pred = forward(xts).float().argmax(1).cpu().numpy()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return seconds, float((pred == yt).mean())


# ---------------------------------------------------------------------------------------------
# Ceilings

_GPU_KERNELS = r"""
extern "C" __global__ void shift_add(const int *in, int *out, int iters) {
  int t = blockIdx.x * blockDim.x + threadIdx.x;
  int a0 = in[t & 1023], a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3, a4 = a0 + 4, a5 = a0 + 5,
      a6 = a0 + 6, a7 = a0 + 7, x = in[(t + 7) & 1023] & 255, s = in[(t + 3) & 1023] & 7;
  for (int i = 0; i < iters; i++) {
    a0 += x << s; a1 += x << s; a2 += x << s; a3 += x << s;
    a4 += x << s; a5 += x << s; a6 += x << s; a7 += x << s; x ^= a0 & 1;
  }
  out[t] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}
extern "C" __global__ void mul_add(const int *in, int *out, int iters) {
  int t = blockIdx.x * blockDim.x + threadIdx.x;
  int a0 = in[t & 1023], a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3, a4 = a0 + 4, a5 = a0 + 5,
      a6 = a0 + 6, a7 = a0 + 7, x = in[(t + 7) & 1023] & 255, w = in[(t + 3) & 1023];
  for (int i = 0; i < iters; i++) {
    a0 += x * w; a1 += x * w; a2 += x * w; a3 += x * w;
    a4 += x * w; a5 += x * w; a6 += x * w; a7 += x * w; x ^= a0 & 1;
  }
  out[t] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}
"""


def gpu_ceilings() -> dict:
    """Integer shift+add and multiply-add terms/s, and copy bandwidth, on the CUDA GPU."""
    import cupy as cp

    module = cp.RawModule(code=_GPU_KERNELS)
    blocks, threads, iters = 132 * 64, 256, 4096
    inp = cp.arange(1024, dtype=cp.int32)
    out = cp.empty(blocks * threads, cp.int32)
    result = {}
    for name in ("shift_add", "mul_add"):
        kernel = module.get_function(name)
        kernel((blocks,), (threads,), (inp, out, cp.int32(16)))
        cp.cuda.Device().synchronize()
        start = time.perf_counter()
        kernel((blocks,), (threads,), (inp, out, cp.int32(iters)))
        cp.cuda.Device().synchronize()
        result[f"{name}_terms_per_s"] = blocks * threads * iters * 8 / (time.perf_counter() - start)
    src = cp.ones(1 << 28, cp.uint8)
    dst = cp.empty_like(src)
    cp.copyto(dst, src)
    cp.cuda.Device().synchronize()
    start = time.perf_counter()
    for _ in range(10):
        cp.copyto(dst, src)
    cp.cuda.Device().synchronize()
    result["memory_bytes_per_s"] = 2 * 10 * src.nbytes / (time.perf_counter() - start)
    result["how"] = "CuPy register micro-kernels (8 chains a thread), device-to-device copy"
    return result


def cpu_ceilings() -> dict:
    """Integer shift+add and multiply-add terms/s (vectorised Numba loops over L1-resident data
    on every core), and memory bandwidth (a parallel copy of 512 MB)."""
    from numba import njit, prange

    @njit(parallel=True, cache=False)
    def shift_add(x, s, acc, reps):
        for c in prange(acc.shape[0]):
            a = acc[c]
            for _ in range(reps):
                for i in range(x.shape[0]):
                    a[i] += np.int32(x[i]) << s[i]

    @njit(parallel=True, cache=False)
    def mul_add(x, w, acc, reps):
        for c in prange(acc.shape[0]):
            a = acc[c]
            for _ in range(reps):
                for i in range(x.shape[0]):
                    a[i] += np.int32(x[i]) * w[i]

    @njit(parallel=True, cache=False)
    def copy(src, dst):
        for i in prange(src.shape[0]):
            dst[i] = src[i]

    cores = len(os.sched_getaffinity(0))
    n, reps = 2048, 20000
    x = np.arange(n, dtype=np.uint8)
    s = (np.arange(n) % 8).astype(np.int32)
    acc = np.zeros((cores, n), np.int32)
    result = {}
    for name, fn, arg in (("shift_add", shift_add, s), ("mul_add", mul_add, s * 3 - 11)):
        fn(x, arg, acc, 1)
        start = time.perf_counter()
        fn(x, arg, acc, reps)
        result[f"{name}_terms_per_s"] = cores * n * reps / (time.perf_counter() - start)
    src = np.ones(1 << 26, np.int64)
    dst = np.empty_like(src)
    copy(src, dst)
    start = time.perf_counter()
    for _ in range(5):
        copy(src, dst)
    result["memory_bytes_per_s"] = 2 * 5 * src.nbytes / (time.perf_counter() - start)
    result["how"] = f"Numba loops on {cores} cores (L1-resident), parallel 512 MB copy"
    return result


def machine() -> dict:
    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        info["cpu"] = names[0] if names else info["cpu"]
    except OSError:
        pass
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=True,
        )
        info["gpu"] = smi.stdout.strip().splitlines()[0]
    except (OSError, subprocess.CalledProcessError):
        pass
    try:
        import torch

        info["torch"] = f"{torch.__version__} (CUDA {torch.version.cuda})"
    except ImportError:
        pass
    return info


# ---------------------------------------------------------------------------------------------


def markdown(info: dict) -> str:
    """The results as Markdown tables (the form docs/performance.md shows them in)."""
    m = info["machine"]
    c = info["ceilings"]
    lines = [
        f"Machine: {m.get('gpu') or m['cpu']} ({m['cores']} CPU cores: {m['cpu']})"
        + (f"; OpenCL: {m['opencl_device']}" if "opencl_device" in m else ""),
        (
            f"Ceilings ({c['how']}): integer shift+add {c['shift_add_terms_per_s'] / 1e9:.0f} G "
            f"terms/s, multiply-add {c['mul_add_terms_per_s'] / 1e9:.0f} G terms/s, memory "
            f"{c['memory_bytes_per_s'] / 1e9:.0f} GB/s."
        ),
        "",
        "| network | batch | what | s/epoch | G terms/s | % of mul-add ceiling | accuracy, 1 epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in info["runs"]:
        terms = terms_per_sample(run["hidden"]) * run["samples"]
        for name, sec in run["seconds_per_epoch"].items():
            acc = run.get("accuracy_after_epoch", {}).get(name)
            lines.append(
                f"| {network_name(run['hidden'])} | {run['batch']} | {name} | {sec:.3f} | "
                f"{terms / sec / 1e9:.0f} | {terms / sec / c['mul_add_terms_per_s']:.1%} | "
                + (f"{acc:.4f} |" if acc is not None else " |")
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="*", default=[100, 1000, 4000])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--digits", action="store_true", help="also the digits recipe")
    parser.add_argument("--samples", type=int, default=60000)
    parser.add_argument("--cpu-samples", type=int, default=60000)
    parser.add_argument(
        "--backends",
        nargs="*",
        default=list(graia.backend.NAMES),
        help="Graia backends to time (none: only the PyTorch baselines and the ceilings)",
    )
    parser.add_argument("--baseline", help="also time the graia of this source tree")
    parser.add_argument(
        "--baseline-backends", nargs="+", default=["numba", "multicore"], help="(with --baseline)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="timed epochs; the fastest counts")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch baselines")
    parser.add_argument("--torch-device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--profile", action="store_true", help="per-kernel Futhark profile")
    parser.add_argument("--json", help="write all results to this file")
    parser.add_argument(
        "--baselines",
        help="a --json file of an earlier run on this machine (e.g. --backends with no names) "
        "whose PyTorch timings to compare with, instead of timing them again (--no-torch)",
    )
    parser.add_argument("--markdown", help="write the results as Markdown tables to this file")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child[:2], int(args.child[2]), int(args.child[3]), args.repeat)
        return
    global TORCH_DEVICE
    TORCH_DEVICE = args.torch_device

    backends = [b for b in args.backends if graia.backend.available()[b][0]]
    for b in set(args.backends) - set(backends):
        print(f"{b}: unavailable ({graia.backend.available()[b][1]})")
    # Backends on a GPU time the full epoch; CPU backends --cpu-samples of it.
    on_gpu = {
        b
        for b in backends
        if b in futhark_backend.KINDS and futhark_backend.device_info(b).get("type") == "gpu"
    }
    # The device's ceilings where a Graia backend or the PyTorch baselines run on a GPU.
    gpu = bool(on_gpu) or (not backends and not args.no_torch and _torch_on_gpu())
    try:
        ceilings = gpu_ceilings() if gpu else cpu_ceilings()
    except ImportError:
        ceilings = cpu_ceilings()
    info = {"machine": machine(), "ceilings": ceilings, "samples": args.samples, "runs": []}
    info["machine"]["default_backend"] = graia.backend.name()
    info["machine"]["load_average"] = os.getloadavg()
    if "opencl" in backends:
        d = futhark_backend.device_info("opencl")
        info["machine"]["opencl_device"] = f"{d.get('platform')}: {d.get('device')}"
    if "cuda" in backends:
        d = futhark_backend.device_info("cuda")
        info["machine"]["cuda_device"] = (
            f"{d.get('device')} (compute capability {d.get('compute_capability')}, "
            f"CUDA driver {d.get('cuda_driver')})"
        )
    baseline = commit_of(args.baseline) if args.baseline else None
    if baseline:
        info["baseline"] = {"tree": os.path.abspath(args.baseline), "commit": baseline}
    print(json.dumps(info["machine"]))
    print(
        "ceilings: "
        + ", ".join(
            f"{k} {v / 1e9:.1f} G" if isinstance(v, float) else f"{k}: {v}"
            for k, v in ceilings.items()
        )
    )
    mul_add = ceilings["mul_add_terms_per_s"]
    earlier = {}
    if args.baselines:
        with open(args.baselines) as f:
            loaded = json.load(f)
        info["baselines_from"] = {"file": args.baselines, "machine": loaded["machine"]}
        earlier = {(r["hidden"], r["batch"]): r for r in loaded["runs"]}

    cases = [(h, b) for h in args.widths for b in args.batches]
    if args.digits:
        from graia.recipes import DENSE_RECIPES

        cases.append((DIGITS, DENSE_RECIPES["digits"].batch_size))
    for hidden, batch in cases:
        x, y, xt, yt = load_case(hidden, args.samples)
        full = len(x)  # the epoch every time is scaled to
        run: dict = {"hidden": hidden, "batch": batch, "samples": full, "seconds_per_epoch": {}}
        terms = terms_per_sample(hidden) * full
        for b in backends:
            n = full if b in on_gpu else min(full, args.cpu_samples)
            sec, acc = time_graia(b, x[:n], y[:n], xt, yt, hidden, batch, args.repeat)
            run["seconds_per_epoch"][b] = sec * full / n
            run.setdefault("accuracy_after_epoch", {})[b] = acc
            if b not in on_gpu:
                run.setdefault("peak_rss_bytes", {})[b] = (
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
                )
        if baseline:
            for b in args.baseline_backends:
                n = min(full, args.cpu_samples)
                sec, acc, default = time_baseline(args.baseline, b, hidden, batch, n, args.repeat)
                info["baseline"]["default_backend"] = default
                run["seconds_per_epoch"][f"{b}@{baseline}"] = sec * full / n
                run["accuracy_after_epoch"][f"{b}@{baseline}"] = acc
        if not args.no_torch:
            try:
                # On the CPU, PyTorch too is timed on --cpu-samples and scaled.
                dev = torch_device()[1]
                n = full if dev == "cuda" else min(full, args.cpu_samples)
                scale = full / n
                graphs = (False, True) if dev == "cuda" else (False,)
                # The same rule is written for 784-H-10 only.
                for pow2, graph in itertools.product((False, True), graphs):
                    if hidden == DIGITS:
                        break
                    label = "torch_same_rule" + "_pow2" * pow2 + "_graph" * graph
                    sec, acc, dev = time_torch_same_rule(
                        x[:n], y[:n], xt, yt, hidden, batch, pow2, graph, args.repeat
                    )
                    run["seconds_per_epoch"][f"{label}_{dev}"] = sec * scale
                    run.setdefault("accuracy_after_epoch", {})[f"{label}_{dev}"] = acc
                modes = BACKPROP_MODES if dev == "cuda" else ("fp32",)
                for mode, graph in itertools.product(modes, graphs):
                    label = f"torch_backprop_{mode}" + "_graph" * graph + f"_{dev}"
                    sec, acc = time_torch_backprop(
                        x[:n], y[:n], xt, yt, hidden, batch, mode, graph, args.repeat
                    )
                    run["seconds_per_epoch"][label] = sec * scale
                    run.setdefault("accuracy_after_epoch", {})[label] = acc
            except ImportError:
                print("PyTorch is not installed: no PyTorch baselines (pip install torch)")
        if (hidden, batch) in earlier:
            for key in ("seconds_per_epoch", "accuracy_after_epoch"):
                for name, value in earlier[hidden, batch].get(key, {}).items():
                    if name.startswith("torch"):
                        run.setdefault(key, {})[name] = value
        if args.profile and hidden != DIGITS:
            for b in backends:
                if b != "numba":
                    n = full if b in on_gpu else min(full, args.cpu_samples)
                    run.setdefault("profile", {})[b] = profile_epoch(b, x[:n], y[:n], hidden, batch)
        info["runs"].append(run)
        if args.json:  # after every configuration: a run cut short keeps what it measured
            with open(args.json, "w") as f:
                json.dump(info, f, indent=1)
        print(f"\n{network_name(hidden)}, batch {batch}, {full} samples", flush=True)
        secs = run["seconds_per_epoch"]
        same = min((v for k, v in secs.items() if k.startswith("torch_same_rule")), default=None)
        backprop = {k: v for k, v in secs.items() if k.startswith("torch_backprop")}
        for name, sec in secs.items():
            ratios = [f"{terms / sec / 1e9:8.1f} G terms/s"]
            if not name.startswith("torch"):
                ratios.append(f"{terms / sec / mul_add:6.1%} of int mul-add ceiling")
                if same:
                    ratios.append(f"{same / sec:5.2f}x vs fastest torch same rule")
                for what, key in (
                    ("fp32 eager backprop", next((k for k in backprop if "fp32_c" in k), "")),
                    ("fastest backprop", min(backprop, key=backprop.get, default="")),
                ):
                    if key:
                        ratios.append(f"{backprop[key] / sec:5.2f}x vs {what}")
                for other in ("numba", f"numba@{baseline}", f"multicore@{baseline}"):
                    if other in secs and other != name:
                        ratios.append(f"{secs[other] / sec:5.2f}x vs {other}")
            acc = run.get("accuracy_after_epoch", {}).get(name)
            tail = f"  acc {acc:.4f}" if acc is not None else ""
            print(f"  {name:<24}{sec:9.3f} s/epoch  " + "  ".join(ratios) + tail, flush=True)
        for b, prof in run.get("profile", {}).items():
            print(
                f"  profile {b}: {prof['events_per_batch']:.1f} events/batch, "
                f"{prof['device_us_per_batch']:.0f} us device time/batch, "
                f"peak memory {prof['peak_device_bytes']}"
            )
            for k in prof["kernels"][:12]:
                print(f"    {k['us_per_batch']:8.1f} us/batch  {k['count']:6d}x  {k['name']}")
    info["machine"]["load_average_after"] = os.getloadavg()
    print(
        f"load average before {info['machine']['load_average']}, after "
        f"{info['machine']['load_average_after']}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(info, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(info))


def network_name(hidden) -> str:
    return "digits recipe 64-512-512-10" if hidden == DIGITS else f"784-{hidden}-10"


if __name__ == "__main__":
    main()
