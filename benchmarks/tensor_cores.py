"""What a tensor-core route would give Graia's Dense products (issue 32): timings of the first
layer's two products of a 784-H-10 network, per batch, through PyTorch on a CUDA GPU, against the
integer ALU route that Graia's kernels take today.

For each width H and batch B it times, with CUDA events (median of many runs after a warm-up):

- ``forward``: ``x (B, 784) @ W (784, H)``; ``learning``: ``a^T (784, B) @ d (B, H)``;
- as int8 IMMA with int32 accumulators (``torch._int_mm``, cuBLASLt): u8 activations are fed as
  ``x - 128`` (s8) and ``128 * column sums of W`` added back, exactly; a weight ``±2^p`` with
  ``p > 6`` needs a second product (docs/arithmetic.md §3.4), counted here as two products when
  ``--kmax`` is above 6;
- as bf16 and fp16 products with fp32 accumulation, and in float32 (TF32 off), for scale;
- each as a share of the measured ceiling of its operand type (an 8192-cube product through
  cuBLAS: int8, bf16, fp16, TF32, float32).

Each int8 result is checked bit for bit against an int64 product on the CPU, on random data and
on the extremes (all-255 inputs, the largest weights). Usage::

    python benchmarks/tensor_cores.py --widths 512 4000 --batches 64 128 1024
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def timed(torch, fn, reps: int = 200) -> float:
    """Median seconds of ``fn()`` over ``reps`` runs, timed with CUDA events."""
    for _ in range(10):
        fn()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return float(np.median(times))


def _timed_or_inf(torch, fn, reps: int = 200) -> float:
    """:func:`timed`, or infinity where the library refuses the product (e.g. cuBLASLt's int8
    kernels for some shapes and layouts: CUBLAS_STATUS_NOT_SUPPORTED)."""
    try:
        return timed(torch, fn, reps)
    except RuntimeError as exc:
        print(f"  (refused: {str(exc).splitlines()[0][:160]})")
        return float("inf")


def int8_mm(torch, a8, b8):
    """``a8 @ b8`` through torch._int_mm, the second operand column-major (cuBLASLt's int8
    kernels refuse some row-major shapes)."""
    return torch._int_mm(a8, b8.t().contiguous().t())


def int8_product(torch, x_u8, w_s8):
    """``x @ w`` exactly, for u8 ``x`` and s8 ``w``, through the int8 tensor cores:
    ``(x - 128) @ w + 128 * sum(w, rows)`` (every partial sum fits i32 by §3's bound)."""
    shifted = (x_u8.to(torch.int16) - 128).to(torch.int8)
    return int8_mm(torch, shifted, w_s8) + 128 * w_s8.to(torch.int32).sum(0)


def check_exact(torch, b: int, k: int, n: int, rng) -> None:
    """int8_product equals the int64 product on random data and on the extremes."""
    cases = [
        (rng.integers(0, 256, (b, k)), rng.choice([-64, -1, 0, 1, 2, 64], (k, n))),
        (np.full((b, k), 255), np.full((k, n), 64)),
        (np.full((b, k), 255), np.full((k, n), -64)),
        (np.zeros((b, k)), np.full((k, n), -64)),
    ]
    for x, w in cases:
        got = int8_product(
            torch,
            torch.as_tensor(x.astype(np.uint8), device="cuda"),
            torch.as_tensor(w.astype(np.int8), device="cuda"),
        )
        want = x.astype(np.int64) @ w.astype(np.int64)
        if not np.array_equal(got.cpu().numpy().astype(np.int64), want):
            raise SystemExit(f"int8 route NOT exact at B={b} K={k} N={n}")


def check_bf16_chunk(torch) -> str:
    """Whether a bf16 product with fp32 output is exact for one chunk at §3.4's limit (1028
    terms of 255 * 64) on random and extreme data; a sentence saying what was seen."""
    rng = np.random.default_rng(1)
    k = 1028
    cases = [
        (rng.integers(0, 256, (64, k)), rng.choice([-64, -8, -1, 0, 1, 2, 32, 64], (k, 64))),
        (np.full((64, k), 255), np.full((k, 64), 64)),
        (np.full((64, k), 255), np.full((k, 64), -64)),
    ]
    for x, w in cases:
        a = torch.as_tensor(x, dtype=torch.bfloat16, device="cuda")
        b = torch.as_tensor(w, dtype=torch.bfloat16, device="cuda")
        try:
            got = torch.mm(a, b, out_dtype=torch.float32)
        except (TypeError, RuntimeError) as exc:
            return f"bf16 with fp32 output not reachable through torch.mm ({exc})"
        want = x.astype(np.int64) @ w.astype(np.int64)
        if not np.array_equal(got.cpu().numpy().astype(np.int64), want):
            return f"bf16 chunk of {k} terms NOT exact"
    return f"bf16 operands, fp32 output: exact on chunks of {k} terms of up to 255 * 64"


def ceilings(torch, size: int = 8192) -> dict:
    """Measured tensor-core ceilings: operations per second (2 per multiply-add) of one
    ``size`` cube product per operand type, through PyTorch (cuBLAS/cuBLASLt), random data."""
    out = {}
    a8 = torch.randint(-128, 128, (size, size), dtype=torch.int8, device="cuda")
    b8 = torch.randint(-128, 128, (size, size), dtype=torch.int8, device="cuda")
    ops = 2 * size**3
    # cuBLASLt's int8 kernels want the second operand column-major; a row-major one may take a
    # slower path or be refused: the faster of the two layouts is the ceiling.
    b8_cols = b8.t().contiguous().t()
    out["int8"] = ops / min(
        _timed_or_inf(torch, lambda: torch._int_mm(a8, b8), reps=20),
        _timed_or_inf(torch, lambda: torch._int_mm(a8, b8_cols), reps=20),
    )
    for name, dtype, tf32 in (
        ("bf16", torch.bfloat16, False),
        ("fp16", torch.float16, False),
        ("tf32", torch.float32, True),
        ("fp32", torch.float32, False),
    ):
        fa, fb = a8.to(dtype), b8.to(dtype)
        torch.backends.cuda.matmul.allow_tf32 = tf32
        try:
            out[name] = ops / timed(torch, lambda fa=fa, fb=fb: fa @ fb, reps=20)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = False
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[512, 4000])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 128, 1024])
    parser.add_argument("--kmax", type=int, default=8, help="the layer's largest shift")
    parser.add_argument("--json", help="write the timings to this file")
    args = parser.parse_args()
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    rng = np.random.default_rng(0)
    products = 1 if args.kmax <= 6 else 2 if args.kmax <= 13 else 3
    print(f"{torch.cuda.get_device_name()}; int8 products per weight product: {products}")
    bf16 = check_bf16_chunk(torch)
    print(bf16)
    peak = ceilings(torch)
    print(
        "measured ceilings (8192^3 products): "
        + ", ".join(f"{k} {v / 1e12:.0f} T op/s" for k, v in peak.items())
    )
    rows = []
    for n in args.widths:
        for b in args.batches:
            # The two products of the first layer: forward (B,784)@(784,H); learning
            # (784,B)@(B,H). _int_mm wants the inner size a multiple of 8 and more than 16 rows.
            check_exact(torch, max(b, 32), 784, n, rng)
            row = {"hidden": n, "batch": b}
            for what, (m, k) in (("forward", (b, 784)), ("learning", (784, b))):
                a8 = torch.randint(-128, 128, (m, k), dtype=torch.int8, device="cuda")
                b8 = torch.randint(-64, 65, (k, n), dtype=torch.int8, device="cuda")
                b8_cols = b8.t().contiguous().t()
                if m > 16:
                    row[f"{what}_int8_s"] = products * min(
                        _timed_or_inf(torch, lambda a8=a8, b8=b8: torch._int_mm(a8, b8)),
                        _timed_or_inf(torch, lambda a8=a8, b=b8_cols: torch._int_mm(a8, b)),
                    )
                for name, dtype in (
                    ("bf16", torch.bfloat16),
                    ("fp16", torch.float16),
                    ("fp32", torch.float32),
                ):
                    fa, fb = a8.to(dtype), b8.to(dtype)
                    row[f"{what}_{name}_s"] = timed(torch, lambda fa=fa, fb=fb: fa @ fb)
            rows.append(row)
            ops = 2 * b * 784 * n
            print(
                f"784x{n} batch {b:5d}: "
                + "  ".join(
                    f"{key[:-2]} {sec * 1e6:7.1f} us ({ops / sec / 1e12:6.1f} T op/s, "
                    f"{ops / sec / peak[key[:-2].split('_')[1]]:.0%})"
                    for key, sec in row.items()
                    if key.endswith("_s")
                )
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "device": torch.cuda.get_device_name(),
                    "torch": f"{torch.__version__} (CUDA {torch.version.cuda})",
                    "bf16_check": bf16,
                    "ceilings_ops_per_s": peak,
                    "rows": rows,
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
