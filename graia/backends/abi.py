"""The compiled Futhark modules' side of the backend contract, declared once.

``scripts/gen_graia_fut.py`` writes both Futhark files of the interface from these declarations
(with :data:`~graia.backends.interface.GEOMETRY_FIELDS`, the pool codes and the rules of
``graia/rules``): ``futhark/host.fut`` (the geometry row and record, the pool codes, the rules'
ids and parameter record) and the entry points of ``futhark/graia.fut``, whose parameters are the
lists below. The wrappers in ``graia/backends/futhark/`` order their arguments by the same lists
(:func:`arguments`), so no order is written twice; tests/test_futhark_build.py checks that the
generated files are current.

A parameter is ``(name, Futhark type)``; sizes in brackets (``[k0]``) are the entry's size
parameters, in order of first appearance.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

#: The deepest network (in weighted layers) the Futhark modules have entry points for.
MAX_LAYERS = 4

Param = tuple[str, str]


def load_params(depth: int) -> list[Param]:
    """The parameters of ``load_<depth>``: the counters, the geometry rows, each layer's
    ``kmax``, ``shift``, latents and momenta, then each hidden layer's feedback matrix, then
    each hidden layer's local head (latents, momenta); ``cpu`` picks the CPU forms of the
    products."""
    classes = f"m{depth - 1}"
    params = [("cpu", "bool"), ("seed", "i64"), ("t", "i64"), ("prev_loss", "i64")]
    params.append(("geometry", f"[{depth}]geometry_row"))
    for i in range(depth):
        params += [(f"kmax{i}", "i32"), (f"shift{i}", "i32")]
        params += [(f"{part}{i}", f"[k{i}][m{i}]i32") for part in ("latent", "momentum")]
    params += [(f"feedback{i}", f"[n{i + 1}][{classes}]i8") for i in range(depth - 1)]
    for i in range(depth - 1):
        params += [
            (f"head_{part}{i}", f"[n{i + 1}][{classes}]i32") for part in ("latent", "momentum")
        ]
    return params


def dump_results(depth: int) -> list[Param]:
    """The results of ``dump_<depth>``: what training changes (``t``, ``prev_loss``, each
    layer's latents and momenta, then each hidden layer's head's)."""
    results = [("t", "i64"), ("prev_loss", "i64")]
    for i in range(depth):
        results += [(f"{part}{i}", f"[k{i}][m{i}]i32") for part in ("latent", "momentum")]
    for i in range(depth - 1):
        results += [
            (f"head_{part}{i}", f"[n{i + 1}][m{depth - 1}]i32") for part in ("latent", "momentum")
        ]
    return results


_BATCH = ("bt", "units_batch [n]")
_SUMS = [("sums", "[q][b][c]i32"), ("labels", "[b]i32")]

#: The parameters of the unit-parallel entries (docs/arithmetic.md §7.7; futhark/graia.fut).
UNITS: dict[str, list[Param]] = {
    "units_layer": [
        ("kmax", "i32"), ("shift", "i32"), ("geo", "geometry_row"),
        ("latent", "[k][m]i32"), ("momentum", "[k][m]i32"),
    ],
    "units_forward": [
        ("cpu", "bool"), _BATCH, ("l", "i64"), ("blk", "layer [k] [m]"), ("x", "[b][k]u8"),
        ("units", "i64"), ("unit0", "i64"),
    ],
    "units_head": [("latent", "[m][c]i32"), ("momentum", "[m][c]i32")],
    "units_head_sums": [_BATCH, ("h", "head [m] [c]"), ("a", "[b][m]u8")],
    "units_output_z": [("cpu", "bool"), ("a", "[b][m]u8"), ("blk", "layer [m] [c]")],
    "units_hidden_step": [
        ("cpu", "bool"), _BATCH, ("rule_id", "i32"), ("l", "i64"), ("blk", "layer [k] [m]"),
        ("fb", "[m][c]i8"), ("x", "[b][k]u8"), ("z", "[b][m]i32"), ("shift_out", "i32"), *_SUMS,
        ("units", "i64"), ("unit0", "i64"),
    ],
    "units_head_step": [
        ("cpu", "bool"), _BATCH, ("rule_id", "i32"), ("layers", "i64"), ("l", "i64"),
        ("h", "head [m] [c]"), ("a", "[b][m]u8"), ("shift_out", "i32"), *_SUMS,
        ("unit0", "i64"),
    ],
    "units_output_step": [
        ("cpu", "bool"), _BATCH, ("l", "i64"), ("blk", "layer [m] [c]"), ("a", "[b][m]u8"),
        *_SUMS, ("unit0", "i64"),
    ],
}  # fmt: skip


def size_params(params: Sequence[Param]) -> list[str]:
    """The size parameters of an entry with ``params``, in order of first appearance."""
    sizes: list[str] = []
    for _, kind in params:
        for size in re.findall(r"\[([a-z_]\w*)\]", kind):
            if size not in sizes:
                sizes.append(size)
    return sizes


def arguments(params: Sequence[Param], **values: Any) -> list[Any]:
    """``values`` (by parameter name) in the order of an entry's ``params``."""
    names = [name for name, _ in params]
    if set(values) != set(names):
        raise TypeError(
            f"entry arguments: missing {sorted(set(names) - set(values))}, "
            f"unexpected {sorted(set(values) - set(names))}"
        )
    return [values[name] for name in names]
