"""What the multicore backend's profiled tasks do: label each task of a ``speed.py --profile``
run by the loop it runs in the generated C, and sum a batch's time by label.

Futhark's multicore profile names tasks by number only (``futhark_mc_segmap_task_414490``). This
finds each task's function in the C that ``futhark multicore --library`` wrote (the build
directory's ``futhark/graia_multicore.c``, from the same sources as the installed module), the
parallel loop it calls, and labels it by what that loop reads and computes:

- ``update: sums + step``: a loop over the batch's rows (the learning sums ``G = preᵀ d``) and the
  counter hash (revision 2's ``mix32``, revision 1's SplitMix64) in one loop nest: a layer's fused
  update (§7.2; in revision 1 it also wrote the weights);
- ``step`` / ``dropout``: the hash without a sum over rows, with or without latents and momenta;
- ``weights from latents``: the weight code's float-exponent read (``to_bits32``; revision 1's
  count of leading zeros sat in the update's loop);
- ``forward product``: the tiled product (``col_tiles``); ``copy``: Futhark's array copies;
- ``other``: the rest (output error, deltas, metrics, transposes).

Usage::

    python benchmarks/speed.py --backends multicore --widths 512 --batches 64 --profile \\
        --no-torch --json out.json
    python benchmarks/profile_tasks.py out.json build/cp311-cp311-linux_x86_64/futhark/graia_multicore.c
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict

#: The counter hash in the C: mix32's first multiplier (0x7FEB352D, arithmetic revision 2, §4),
#: or the names Futhark gives mix32's and revision 1's SplitMix64 (mix64) results.
HASH = re.compile(r"mul32\(2146121005|mix(32|64)_res")
#: The weight code: revision 2's float-exponent read, revision 1's count of leading zeros.
WEIGHT_CODE = re.compile(r"futrts_to_bits32\(|futrts_clzz64\(")


def functions(c_source: str) -> dict[str, str]:
    """Every multicore task and parallel-loop function of the C, by name, with its body."""
    starts = [
        (m.start(), m.group(1))
        for m in re.finditer(r"^(?:static )?int (futhark_mc_\w+)\(", c_source, re.MULTILINE)
    ]
    return {
        name: c_source[start : (starts[i + 1][0] if i + 1 < len(starts) else len(c_source))]
        for i, (start, name) in enumerate(starts)
    }


def label(task: str, funcs: dict[str, str]) -> str:
    """What ``task`` computes, from its parallel loop's body."""
    if "_copy_" in task:
        return "copy"
    body = funcs.get(task, "")
    loops = set(re.findall(r"futhark_mc_\w*parloop_\d+", body)) - {task}
    code = "".join(funcs.get(p, "") for p in loops) or body
    if HASH.search(code) and "for (int64_t s_" in code:
        return "update: sums + step"
    if HASH.search(code):
        return "step" if "momentum" in code or "mem_param" in code else "dropout"
    if WEIGHT_CODE.search(code):
        return "weights from latents"
    if "col_tiles" in code:
        return "forward product"
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="speed.py --profile --json output")
    parser.add_argument("c", help="the generated graia_multicore.c")
    args = parser.parse_args()
    with open(args.c) as f:
        funcs = functions(f.read())
    with open(args.json) as f:
        info = json.load(f)
    for run in info["runs"]:
        prof = run.get("profile", {}).get("multicore")
        if not prof:
            continue
        batches = prof["batches"]
        tasks = [k for k in prof["kernels"] if "_task_" in k["name"]]
        total = sum(k["us_total"] for k in tasks) / batches
        wall = prof["wall_s"] * 1e6 / batches
        print(
            f"784-{run['hidden']}-10, batch {run['batch']}: {wall:.0f} us wall a batch, "
            f"{total:.0f} us in Futhark's tasks"
        )
        by_label: dict[str, float] = defaultdict(float)
        for k in tasks:
            by_label[label(k["name"], funcs)] += k["us_total"] / batches
        for name, us in sorted(by_label.items(), key=lambda kv: -kv[1]):
            print(f"  {us:8.0f} us  {us / wall:6.1%} of the batch's wall time  {name}")
        for k in tasks[:8]:
            print(
                f"    {k['us_total'] / batches:8.0f} us  {label(k['name'], funcs):22} {k['name']}"
            )


if __name__ == "__main__":
    main()
