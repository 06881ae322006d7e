"""ONNX export: a graph that onnxruntime runs with outputs identical to ``model.predict``.

Every op works on integers, and each one is exact for the values it sees (docs/arithmetic.md §3):

* ``Cast`` u8 -> int32 of the activations: exact widening.
* ``MatMul`` int32 x int32 with the weights as ``W = ±2^(kmax-k)`` or 0 (stored int16, cast to
  int32 once): every product ``x * W`` is an exact integer, and the model is rejected at build time
  unless ``fan_in * 255 * 2^kmax <= 2^31 - 1``, so no partial sum can wrap, in any summation order.
* ``Add`` int32 of a layer's biases, ``BIAS_INPUT * W`` of its last weight row (computed at export,
  exact: at most ``255 * 2^14`` in magnitude): the bias input's term of §3's sum, and the same
  bound holds for the total, since ``fan_in`` counts the bias row.
* ``Clip`` int32 to ``[0, 256 * 2^shift - 1]`` (or ``2^31 - 1``): for integers, clamping before
  the floor shift gives ``clamp(z >> shift, 0, 255)`` exactly, and makes the value non-negative.
* ``Cast`` to uint32 and ``BitShift`` right by ``shift``: ONNX shifts are defined on unsigned
  types only, which is why the clip comes first; on a non-negative value it is the floor division
  of §3.
* ``Cast`` to u8: the value is already in 0..255.

A model with a ``Normalization`` or ``Rescaling`` layer takes its raw features as a double
tensor and maps them to u8 first, exactly as docs/arithmetic.md §8 says (see ``_emit_preprocess``).

Outputs: ``activations`` (u8, ``(n, classes)``) and ``class`` (int64, ``ArgMax``, which returns
the first index of the maximum: the spec's tie rule). No float tensor appears after the input.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from graia.errors import GraiaError
from graia.export.plan import DensePlan, DeploymentPlan, PreprocessPlan
from graia.files import atomic_write
from graia.spec import BIAS_INPUT, I32_MAX, PRE_Q_MAX

FILENAME = "graia_model.onnx"
#: Opset 13: integer ``Clip`` with tensor bounds, ``BitShift``, ``ArgMax`` select_last_index.
OPSET = 13
#: IR version 8 (ONNX 1.10), readable by every onnxruntime since 1.10.
IR_VERSION = 8


def _modules():
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:
        raise GraiaError("ONNX export needs the onnx extra: pip install onnx onnxruntime") from exc
    return onnx, TensorProto, helper, numpy_helper


@dataclass
class Emitted:
    """One layer's nodes and initializers; ``output`` names its u8 result."""

    nodes: list
    initializers: list
    output: str


def fixed_weights(layer: DensePlan) -> np.ndarray:
    """The layer's codes as the fixed-point integers ``W = sign * 2^(kmax - k)`` of §2 (int16:
    ``|W| <= 2^14``), ``(rows, n_out)``: the bias row last, if any."""
    codes = layer.codes.astype(np.int32)
    magnitude = np.where(codes != 0, np.left_shift(1, layer.kmax + 1 - np.abs(codes)), 0)
    return (np.sign(codes) * magnitude).astype(np.int16)


def _emit_dense(layer: DensePlan, index: int, source: str) -> Emitted:
    _onnx, TensorProto, helper, numpy_helper = _modules()
    p = f"layer{index}_"
    upper = min((256 << layer.shift) - 1, I32_MAX)
    weights = fixed_weights(layer)
    initializers = [
        numpy_helper.from_array(weights[: layer.n_in], p + "weights_i16"),
        numpy_helper.from_array(np.array(0, np.int32), p + "low"),
        numpy_helper.from_array(np.array(upper, np.int32), p + "high"),
        numpy_helper.from_array(np.array(layer.shift, np.uint32), p + "shift"),
    ]
    products = p + ("products" if layer.bias else "z")
    nodes = [
        helper.make_node("Cast", [p + "weights_i16"], [p + "weights"], to=TensorProto.INT32),
        helper.make_node("Cast", [source], [p + "x"], to=TensorProto.INT32),
        helper.make_node("MatMul", [p + "x", p + "weights"], [products]),
    ]
    if layer.bias:  # the bias input's terms, BIAS_INPUT * W of the last row
        biases = BIAS_INPUT * weights[layer.n_in].astype(np.int32)
        initializers.append(numpy_helper.from_array(biases, p + "biases"))
        nodes.append(helper.make_node("Add", [products, p + "biases"], [p + "z"]))
    nodes += [
        helper.make_node("Clip", [p + "z", p + "low", p + "high"], [p + "clipped"]),
        helper.make_node("Cast", [p + "clipped"], [p + "unsigned"], to=TensorProto.UINT32),
        helper.make_node(
            "BitShift", [p + "unsigned", p + "shift"], [p + "shifted"], direction="RIGHT"
        ),
        helper.make_node("Cast", [p + "shifted"], [p + "a"], to=TensorProto.UINT8),
    ]
    return Emitted(nodes, initializers, p + "a")


def _emit_preprocess(pre: PreprocessPlan, source: str) -> Emitted:
    """§8 on a double input: the exact ``Mul`` by ``2^16``, ``Clip`` to ``±2^46`` and ``Round``
    (half to even, as ONNX defines it), ``Cast`` to int64; then ``q * m + b`` (exact in int64 by
    §8's bounds), clamped with ``Max``/``Min`` to ``[0, 256 * 2^s - 1]`` before the ``BitShift``
    of its unsigned value (as for a dense layer), ``Cast`` to u8."""
    _onnx, TensorProto, helper, numpy_helper = _modules()
    p = "preprocess_"
    limit = float(PRE_Q_MAX)
    upper = (np.int64(256) << pre.shift) - 1
    initializers = [
        numpy_helper.from_array(np.array(65536.0), p + "scale"),
        numpy_helper.from_array(np.array(-limit), p + "low"),
        numpy_helper.from_array(np.array(limit), p + "high"),
        numpy_helper.from_array(pre.multiplier.astype(np.int64), p + "multiplier"),
        numpy_helper.from_array(pre.bias.astype(np.int64), p + "bias"),
        numpy_helper.from_array(np.array(0, np.int64), p + "zero"),
        numpy_helper.from_array(upper.astype(np.int64), p + "upper"),
        numpy_helper.from_array(pre.shift.astype(np.uint64), p + "shift"),
    ]
    nodes = [
        helper.make_node("Mul", [source, p + "scale"], [p + "scaled"]),
        helper.make_node("Clip", [p + "scaled", p + "low", p + "high"], [p + "clipped"]),
        helper.make_node("Round", [p + "clipped"], [p + "rounded"]),
        helper.make_node("Cast", [p + "rounded"], [p + "q"], to=TensorProto.INT64),
        helper.make_node("Mul", [p + "q", p + "multiplier"], [p + "product"]),
        helper.make_node("Add", [p + "product", p + "bias"], [p + "v"]),
        helper.make_node("Max", [p + "v", p + "zero"], [p + "positive"]),
        helper.make_node("Min", [p + "positive", p + "upper"], [p + "bounded"]),
        helper.make_node("Cast", [p + "bounded"], [p + "unsigned"], to=TensorProto.UINT64),
        helper.make_node(
            "BitShift", [p + "unsigned", p + "shift"], [p + "shifted"], direction="RIGHT"
        ),
        helper.make_node("Cast", [p + "shifted"], [p + "a"], to=TensorProto.UINT8),
    ]
    return Emitted(nodes, initializers, p + "a")


#: The emitter of each layer kind (``LayerPlan.kind``): ``(layer, index, source) -> Emitted``.
EMITTERS: dict[str, Callable[..., Emitted]] = {"dense": _emit_dense}


def build(plan: DeploymentPlan, title: str):
    """The ``onnx.ModelProto`` of ``plan``, checked by ``onnx.checker``."""
    onnx, TensorProto, helper, _ = _modules()
    nodes, initializers = [], []
    source = "input"
    if plan.preprocess is not None:
        part = _emit_preprocess(plan.preprocess, source)
        nodes, initializers, source = part.nodes, part.initializers, part.output
    for i, layer in enumerate(plan.layers):
        part = EMITTERS[layer.kind](layer, i, source)
        nodes += part.nodes
        initializers += part.initializers
        source = part.output
    # A model with a preprocessing layer takes its raw features, as doubles (§8).
    input_type = TensorProto.UINT8 if plan.preprocess is None else TensorProto.DOUBLE
    nodes.append(helper.make_node("Identity", [source], ["activations"]))
    nodes.append(helper.make_node("ArgMax", [source], ["class"], axis=1, keepdims=0))
    graph = helper.make_graph(
        nodes,
        "graia_model",
        [helper.make_tensor_value_info("input", input_type, ["n", plan.inputs])],
        [
            helper.make_tensor_value_info("activations", TensorProto.UINT8, ["n", plan.outputs]),
            helper.make_tensor_value_info("class", TensorProto.INT64, ["n"]),
        ],
        initializers,
        doc_string=title,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="graia"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def write(plan: DeploymentPlan, directory: str | os.PathLike, title: str) -> str:
    """Write ``graia_model.onnx`` into ``directory`` (created if needed); return its path."""
    data = build(plan, title).SerializeToString()
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(os.fspath(directory), FILENAME)
    with atomic_write(path) as f:
        f.write(data)
    return path
