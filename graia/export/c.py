"""C99 export: ``graia_model.h`` and ``graia_model.c``, dependency-free, shifts and adds only.

One emitter per layer kind (:data:`EMITTERS`) writes that layer's constant tables and its call in
``graia_model_predict``; kernels shared by layers of a kind (``graia_dense``) are emitted once.
The generated code uses only ``<stdint.h>`` and ``<stddef.h>``, static buffers sized at compile
time, and integer shifts, additions and comparisons (docs/arithmetic.md §2-3), so its outputs
are the bytes ``model.predict`` returns.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from graia.export.plan import SUM_BYTES, DensePlan, DeploymentPlan, PreprocessPlan
from graia.files import atomic_write
from graia.spec import BIAS_INPUT

HEADER = "graia_model.h"
SOURCE = "graia_model.c"

# docs/arithmetic.md §3 with each weight applied as a shift of the input; see plan.py for the
# packing. Per input row, the signed term of every possible code field is tabled first (at most 2
# shifts per code value), so the inner loop is a table look-up and an add, without branches on
# the (unpredictable) codes. A layer with a bias has one more row, whose input is the constant
# GRAIA_BIAS_INPUT. z <= 0 is tested first: >> of a negative int is implementation-defined in C.
_DENSE_KERNEL = (
    f"#define GRAIA_BIAS_INPUT {BIAS_INPUT}\n\n"
    + """\
/* docs/arithmetic.md section 3: z[j] = sum_i x[i] * W[i][j] with W = +-2^(kmax - k) applied
 * as a left shift of x[i] (|code| = k + 1), then a[j] = clamp(z[j] >> shift, 0, 255). When
 * `bias` is 1, the table has one more row, the last, whose input is GRAIA_BIAS_INPUT. Rows
 * whose input is 0 are skipped; codes are sign-magnitude fields of `bits` bits, least
 * significant bit first. */
static inline void graia_dense(const uint8_t *x, size_t n_in, unsigned bias,
                               const uint8_t *codes, size_t row_bytes, size_t n_out,
                               unsigned bits, unsigned kmax, unsigned shift, uint8_t *out)
{
    const unsigned field_mask = (1u << bits) - 1u;
    const unsigned sign_bit = 1u << (bits - 1u);
    size_t i, j;
    unsigned magnitude;
    for (j = 0; j < n_out; j++) {
        graia_sums[j] = 0;
    }
    graia_terms[0] = 0;
    graia_terms[sign_bit] = 0;
    for (i = 0; i < n_in + bias; i++, codes += row_bytes) {
        const uint8_t *p = codes;
        const int32_t xi = i < n_in ? x[i] : GRAIA_BIAS_INPUT;
        uint32_t window = 0;
        unsigned held = 0;
        if (xi == 0) {
            continue;
        }
        for (magnitude = 1u; magnitude <= kmax + 1u; magnitude++) {
            const int32_t term = xi << (kmax + 1u - magnitude);
            graia_terms[magnitude] = term;
            graia_terms[sign_bit | magnitude] = -term;
        }
        for (j = 0; j < n_out; j++) {
            if (held < bits) {
                window |= (uint32_t)*p++ << held;
                held += 8u;
            }
            graia_sums[j] += graia_terms[window & field_mask];
            window >>= bits;
            held -= bits;
        }
    }
    for (j = 0; j < n_out; j++) {
        const int32_t z = graia_sums[j];
        out[j] = z <= 0 ? 0u : (z >> shift) >= 255 ? 255u : (uint8_t)(z >> shift);
    }
}
"""
)


# docs/arithmetic.md §8, the model's Normalization/Rescaling: the one float step (a power-of-two
# scaling, exact, and a round half to even written with comparisons: no <math.h>), then integers.
# v <= 0 is tested before the shift, as in graia_dense.
_PREPROCESS = """\
/* docs/arithmetic.md section 8: q = rne(x * 2^16) saturated to +-2^46 (NaN gives 0; graia
 * refuses it), then input[f] = clamp((q * m[f] + b[f]) >> s[f], 0, 255). */
static int64_t graia_fixed(double x)
{
    const double limit = 70368744177664.0; /* 2^46 */
    const double v = x * 65536.0;          /* exact: a power-of-two scaling */
    double frac;
    int64_t q;
    if (v != v) {
        return 0;
    }
    if (v <= -limit) {
        return -INT64_C(70368744177664);
    }
    if (v >= limit) {
        return INT64_C(70368744177664);
    }
    q = (int64_t)v; /* toward zero; exact below 2^53 */
    frac = v - (double)q;
    if (frac > 0.5 || (frac == 0.5 && (q & 1) != 0)) {
        q++;
    } else if (frac < -0.5 || (frac == -0.5 && (q & 1) != 0)) {
        q--;
    }
    return q;
}

void graia_model_preprocess(const double features[GRAIA_MODEL_INPUTS],
                            uint8_t input[GRAIA_MODEL_INPUTS])
{
    size_t f;
    for (f = 0; f < GRAIA_MODEL_INPUTS; f++) {
        const int64_t v = graia_fixed(features[f]) * graia_pre_multiplier[f] + graia_pre_bias[f];
        const int64_t a = v <= 0 ? 0 : v >> graia_pre_shift[f];
        input[f] = a >= 255 ? 255u : (uint8_t)a;
    }
}
"""

_PREPROCESS_DECLARATION = """
/* The model's preprocessing layer (docs/arithmetic.md section 8): raw features, in the order of
 * the model's flattened input, to the u8 input of graia_model_predict, exactly as graia maps
 * them. */
void graia_model_preprocess(const double features[GRAIA_MODEL_INPUTS],
                            uint8_t input[GRAIA_MODEL_INPUTS]);
"""


def _preprocess_tables(pre: PreprocessPlan) -> str:
    return (
        f"/* {_comment_text(pre.name)}: multiplier, bias and shift of each input feature */\n"
        + _c_array("graia_pre_multiplier", pre.multiplier, ctype="int32_t")
        + _c_array("graia_pre_bias", pre.bias, per_line=6, ctype="int64_t")
        + _c_array("graia_pre_shift", pre.shift)
    )


@dataclass
class Emitted:
    """One layer's share of ``graia_model.c``."""

    tables: str
    call: str
    rom_bytes: int
    kernels: dict[str, str] = field(default_factory=dict)
    description: str = ""


def _c_array(name: str, values: np.ndarray, per_line: int = 24, ctype: str = "uint8_t") -> str:
    """A ``static const`` array definition of ``values`` (decimal, to keep it short)."""
    flat = values.ravel().tolist()
    # An i64 literal below -2^63 + 1 would not parse; §8's bounds keep them far inside.
    literal = (lambda v: f"INT64_C({v})") if ctype == "int64_t" else str
    rows = [
        "    " + ", ".join(map(literal, flat[i : i + per_line]))
        for i in range(0, len(flat), per_line)
    ]
    return f"static const {ctype} {name}[{len(flat)}] = {{\n" + ",\n".join(rows) + "\n};\n"


def _comment_text(text: str) -> str:
    """``text`` (a user's model or layer name) made safe inside a C block comment: printable
    ASCII on one line, every other character written ``<U+XXXX>`` (so no bidirectional control
    character reaches the source: gcc's -Wbidi-chars), a space between ``/`` and ``*`` either way
    round (no comment ends or nests: -Wcomment) and between two ``?`` (no trigraph)."""
    text = "".join(c if " " <= c <= "~" else f"<U+{ord(c):04X}>" for c in " ".join(text.split()))
    return re.sub(r"/(?=\*)|\*(?=/)|\?(?=\?)", lambda m: m.group() + " ", text)


def _emit_dense(layer: DensePlan, index: int, source: str, target: str) -> Emitted:
    table = f"graia_layer{index}_codes"
    bias = " + bias" if layer.bias else ""
    description = (
        f"{_comment_text(layer.name)}: dense {layer.n_in}{bias} -> {layer.n_out}, kmax "
        f"{layer.kmax}, shift {layer.shift}, {layer.bits}-bit codes, {layer.row_bytes} bytes a row"
    )
    return Emitted(
        tables=f"/* layer {index}, {description} */\n" + _c_array(table, layer.packed()),
        call=(
            f"graia_dense({source}, {layer.n_in}u, {layer.bias}u, {table}, {layer.row_bytes}u, "
            f"{layer.n_out}u, {layer.bits}u, {layer.kmax}u, {layer.shift}u, {target});"
        ),
        rom_bytes=layer.table_bytes,
        kernels={"graia_dense": _DENSE_KERNEL},
        description=description,
    )


#: The emitter of each layer kind (``LayerPlan.kind``): ``(layer, index, source, target)``.
EMITTERS: dict[str, Callable[..., Emitted]] = {"dense": _emit_dense}


@dataclass(frozen=True)
class CExport:
    """What :func:`write` produced."""

    files: tuple[str, ...]
    weight_bytes: int
    golden_bytes: int
    ram_bytes: int
    preprocess_bytes: int = 0

    @property
    def rom_bytes(self) -> int:
        """Constant data (weight and preprocessing tables, self-test pairs); code on top."""
        return self.weight_bytes + self.golden_bytes + self.preprocess_bytes

    def describe(self) -> str:
        return (
            f"ROM {self.rom_bytes:,} bytes of constant data (weight codes {self.weight_bytes:,}, "
            f"self-test pairs {self.golden_bytes:,}"
            + (f", preprocessing {self.preprocess_bytes:,}" if self.preprocess_bytes else "")
            + f") plus code; RAM {self.ram_bytes:,} bytes static"
        )


def _header(plan: DeploymentPlan, report: CExport, banner: str) -> str:
    return f"""\
{banner}
#ifndef GRAIA_MODEL_H
#define GRAIA_MODEL_H

#include <stdint.h>

#define GRAIA_MODEL_INPUTS {plan.inputs}
#define GRAIA_MODEL_OUTPUTS {plan.outputs}
#define GRAIA_MODEL_LAYERS {len(plan.layers)}
#define GRAIA_MODEL_ROM_BYTES {report.rom_bytes}
#define GRAIA_MODEL_RAM_BYTES {report.ram_bytes}

#ifdef __cplusplus
extern "C" {{
#endif

/* The output activations (0..255) for one input, exactly as model.predict gives them. */
void graia_model_predict(const uint8_t input[GRAIA_MODEL_INPUTS],
                         uint8_t output[GRAIA_MODEL_OUTPUTS]);

{_PREPROCESS_DECLARATION if plan.preprocess else ""}
/* The predicted class: the index of the largest output, ties to the lowest index. */
int graia_model_classify(const uint8_t input[GRAIA_MODEL_INPUTS]);

/* Runs the golden input/output pairs embedded at export; returns how many do not match
 * (0: the build computes what model.predict computed). */
int graia_model_self_test(void);

#ifdef __cplusplus
}}
#endif

#endif /* GRAIA_MODEL_H */
"""


def _source(
    plan: DeploymentPlan,
    emitted: list[Emitted],
    golden_inputs: np.ndarray,
    golden_outputs: np.ndarray,
    report: CExport,
    banner: str,
) -> str:
    memory = plan.memory
    buffers = [
        f"static uint8_t graia_activations{i}[{size}];\n"
        for i, size in enumerate(memory.buffers)
        if size
    ]
    kernels: dict[str, str] = {}
    for part in emitted:
        kernels.update(part.kernels)
    layer_lines = "".join(f" *   {i}: {part.description}\n" for i, part in enumerate(emitted))
    calls = "".join(f"    {part.call}\n" for part in emitted)
    return f"""\
{banner}
#include "graia_model.h"

#include <stddef.h>

/* Layers:
{layer_lines} */

/* Static RAM: i32 sums of the widest layer, the i32 term of each code of one input, u8
 * activations of the hidden layers, classify's output. */
static int32_t graia_sums[{memory.sums}];
static int32_t graia_terms[{memory.terms}];
{"".join(buffers)}static uint8_t graia_output[GRAIA_MODEL_OUTPUTS];

{"".join(part.tables for part in emitted)}
{"".join(kernels.values())}{_preprocess_source(plan)}
void graia_model_predict(const uint8_t input[GRAIA_MODEL_INPUTS],
                         uint8_t output[GRAIA_MODEL_OUTPUTS])
{{
{calls}}}

int graia_model_classify(const uint8_t input[GRAIA_MODEL_INPUTS])
{{
    int best = 0, j;
    graia_model_predict(input, graia_output);
    for (j = 1; j < GRAIA_MODEL_OUTPUTS; j++) {{
        if (graia_output[j] > graia_output[best]) {{
            best = j;
        }}
    }}
    return best;
}}

/* Golden pairs: inputs and the outputs model.predict gave for them at export. */
#define GRAIA_GOLDEN_PAIRS {len(golden_inputs)}
{_c_array("graia_golden_inputs", golden_inputs)}
{_c_array("graia_golden_outputs", golden_outputs)}
int graia_model_self_test(void)
{{
    const uint8_t *input = graia_golden_inputs;
    const uint8_t *expected = graia_golden_outputs;
    int failures = 0, pair, j;
    for (pair = 0; pair < GRAIA_GOLDEN_PAIRS; pair++) {{
        graia_model_predict(input, graia_output);
        for (j = 0; j < GRAIA_MODEL_OUTPUTS; j++) {{
            if (graia_output[j] != expected[j]) {{
                failures++;
                break;
            }}
        }}
        input += GRAIA_MODEL_INPUTS;
        expected += GRAIA_MODEL_OUTPUTS;
    }}
    return failures;
}}
"""


def _preprocess_source(plan: DeploymentPlan) -> str:
    """The preprocessing layer's tables and function, or nothing."""
    return "" if plan.preprocess is None else _preprocess_tables(plan.preprocess) + _PREPROCESS


def _wiring(plan: DeploymentPlan) -> list[tuple[str, str]]:
    """Each layer's source and target arrays: the caller's input and output at the ends, the two
    activation buffers in turn between them (as the memory plan sizes them)."""
    names = ["input"] + [f"graia_activations{i % 2}" for i in range(len(plan.layers) - 1)]
    return list(zip(names, names[1:] + ["output"]))


def write(
    plan: DeploymentPlan,
    directory: str | os.PathLike,
    golden_inputs: np.ndarray,
    golden_outputs: np.ndarray,
    title: str,
) -> CExport:
    """Write ``graia_model.h`` and ``graia_model.c`` into ``directory`` (created if needed)."""
    emitted = [
        EMITTERS[layer.kind](layer, i, source, target)
        for i, (layer, (source, target)) in enumerate(zip(plan.layers, _wiring(plan)))
    ]
    report = CExport(
        files=(
            os.path.join(os.fspath(directory), HEADER),
            os.path.join(os.fspath(directory), SOURCE),
        ),
        weight_bytes=sum(part.rom_bytes for part in emitted),
        golden_bytes=golden_inputs.size + golden_outputs.size,
        ram_bytes=plan.memory.ram_bytes,
        preprocess_bytes=plan.preprocess.table_bytes if plan.preprocess else 0,
    )
    memory = plan.memory
    banner = (
        f"/* {_comment_text(title)}\n"
        f" * ROM: {report.rom_bytes} bytes of constant data = weight codes {report.weight_bytes}"
        f" + self-test pairs {report.golden_bytes}"
        + (f" + preprocessing {report.preprocess_bytes}" if report.preprocess_bytes else "")
        + ", plus code.\n"
        f" * RAM: {report.ram_bytes} bytes static = i32 sums {SUM_BYTES * memory.sums}"
        f" + i32 code terms {SUM_BYTES * memory.terms} + u8 activations {sum(memory.buffers)}"
        f" + classify output {memory.outputs}.\n"
        " * The integer forward pass of docs/arithmetic.md sections 2-3: shifts, adds and compares\n"
        " * only; no multiplication, division, floating point or malloc. Not reentrant (static\n"
        " * buffers).\n"
        " * Generated file: do not edit. */"
    )
    os.makedirs(directory, exist_ok=True)
    texts = (
        _header(plan, report, banner),
        _source(plan, emitted, golden_inputs, golden_outputs, report, banner),
    )
    for path, text in zip(report.files, texts):
        with atomic_write(path) as f:
            f.write(text.encode("utf-8"))
    return report
