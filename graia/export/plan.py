"""What a trained model becomes when deployed: per-layer packed weight tables and a memory plan.

The exporters (:mod:`graia.export.c`, :mod:`graia.export.onnx`) and ``model.summary()`` read the
same plan, so the sizes the summary prints are the sizes the exported C declares.

Packing (the C tables): each weight code of docs/arithmetic.md §2 (0 or ``±(k+1)``) is stored as a
sign-magnitude bit field of ``bits`` bits: the low ``bits - 1`` bits hold ``|code|`` (0: no
connection), the top bit is set for negative codes. Fields follow each other least significant bit
first; each input's row of ``n_out`` fields starts on a byte boundary, so a row whose input is 0 is
skipped by adding the row's byte count to a pointer. A layer with a bias has one more row, the
last: the weights of the constant input ``spec.BIAS_INPUT`` (docs/arithmetic.md §3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graia import layers as layers_mod
from graia.errors import GraiaValueError
from graia.state import Model

#: Bytes of a float32 weight, for the comparisons the summary prints.
FLOAT32_BYTES = 4
#: Bytes of one i32 accumulator of the forward pass (§3).
SUM_BYTES = 4


def code_bits(kmax: int) -> int:
    """Bits of one packed code: ``|code| <= kmax + 1`` plus a sign bit."""
    return (kmax + 1).bit_length() + 1


@dataclass(frozen=True)
class DensePlan:
    """One Dense layer as deployed: ``n_in`` inputs, then ``bias`` (0 or 1) rows of the constant
    input ``spec.BIAS_INPUT``."""

    name: str
    n_in: int
    n_out: int
    kmax: int
    shift: int
    codes: np.ndarray  # i8 (rows, n_out), the model's weight codes, the bias row last
    bias: int

    kind = "dense"

    @property
    def rows(self) -> int:
        """Rows of the code table: one per input, then the bias row if any."""
        return self.n_in + self.bias

    @property
    def bits(self) -> int:
        return code_bits(self.kmax)

    @property
    def row_bytes(self) -> int:
        return (self.n_out * self.bits + 7) // 8

    @property
    def params(self) -> int:
        """Weights, the biases included (as Keras counts them)."""
        return self.rows * self.n_out

    @property
    def macs(self) -> int:
        """Multiply-accumulates per sample of a float layer of the same shape (its biases are
        adds)."""
        return self.n_in * self.n_out

    @property
    def table_bytes(self) -> int:
        """Bytes of the packed code table."""
        return self.rows * self.row_bytes

    @property
    def shift_adds(self) -> int:
        """Shift-and-add operations per sample: one per non-zero weight, the biases' included (at
        most; the C skips inputs that are 0)."""
        return int(np.count_nonzero(self.codes))

    def packed(self) -> np.ndarray:
        """The code table packed as the module docstring says, u8 ``(rows, row_bytes)``."""
        codes = self.codes.astype(np.int64)
        fields = np.abs(codes) | np.where(codes < 0, 1 << (self.bits - 1), 0)
        # One bit per column, least significant first, then eight bits to a byte.
        bit_planes = (fields[:, :, None] >> np.arange(self.bits)) & 1
        bits = bit_planes.reshape(self.rows, self.n_out * self.bits).astype(np.uint8)
        return np.packbits(bits, axis=1, bitorder="little")


LayerPlan = DensePlan


@dataclass(frozen=True)
class PreprocessPlan:
    """The model's ``Normalization``/``Rescaling`` as deployed: §8's integers expanded to one
    per input feature (i64 ``multiplier``, ``bias``, ``shift``)."""

    name: str
    features: int
    multiplier: np.ndarray
    bias: np.ndarray
    shift: np.ndarray

    @property
    def table_bytes(self) -> int:
        """Bytes of the C tables: an i32 multiplier, an i64 bias and a u8 shift per feature."""
        return self.features * (4 + 8 + 1)


def _preprocess_plan(model: Model) -> PreprocessPlan | None:
    layer = model.preprocessing_layer
    if layer is None or layer.channels is None:  # export refuses the latter (summary shows it)
        return None
    features = model.sizes[0]
    per_channel = layer.integers()
    m, b, s = (np.tile(a, features // len(a)) for a in per_channel)
    return PreprocessPlan(layer.name, features, m, b, s)


@dataclass(frozen=True)
class MemoryPlan:
    """Static RAM of the exported C: i32 sums of the widest layer, the i32 term of every code
    value for one input (``2**bits`` of the widest codes), two u8 activation buffers used in turn
    by the hidden layers (the input and output arrays belong to the caller) and classify's
    output."""

    sums: int
    terms: int
    buffers: tuple[int, int]
    outputs: int

    @property
    def ram_bytes(self) -> int:
        """Every static byte the exported C needs."""
        return SUM_BYTES * (self.sums + self.terms) + sum(self.buffers) + self.outputs


@dataclass(frozen=True)
class DeploymentPlan:
    """A model's layers as deployed, and their memory."""

    inputs: int
    layers: tuple[LayerPlan, ...]
    memory: MemoryPlan
    preprocess: PreprocessPlan | None = None

    @property
    def outputs(self) -> int:
        return self.layers[-1].n_out

    @property
    def weight_bytes(self) -> int:
        return sum(layer.table_bytes for layer in self.layers)

    @property
    def float32_bytes(self) -> int:
        return FLOAT32_BYTES * sum(layer.params for layer in self.layers)

    @property
    def shift_adds(self) -> int:
        return sum(layer.shift_adds for layer in self.layers)

    @property
    def macs(self) -> int:
        """Multiply-accumulates per sample of a float model of the same shape."""
        return sum(layer.macs for layer in self.layers)

    @property
    def float32_activation_bytes(self) -> int:
        """Peak activation memory of a float32 model of the same shape (one layer's input and
        output live at once)."""
        return FLOAT32_BYTES * max(layer.n_in + layer.n_out for layer in self.layers)


def _layer_plan(layer: layers_mod.Layer, n_in: int, codes: np.ndarray) -> LayerPlan:
    """The deployment plan of one layer; a new layer kind adds its case here."""
    if isinstance(layer, layers_mod.Dense):
        bias = int(layer.use_bias)
        return DensePlan(layer.name, n_in, layer.units, layer.kmax, layer.shift, codes, bias)
    raise GraiaValueError(
        f"export supports Dense layers only so far; layer {layer.name!r} is a "
        f"{type(layer).__name__} (docs/deploy.md)"
    )


def plan(model: Model) -> DeploymentPlan:
    """The deployment plan of a built model (its current weight codes)."""
    sizes = model.sizes  # a one-line error first if the model has no weighted layer
    if not model.is_dense:
        first = next(  # augmentation layers are the identity once deployed
            la
            for la in model.layers[1:]
            if not isinstance(la, layers_mod.Dense) and not la.augmentation and not la.preprocessing
        )
        _layer_plan(first, 0, np.zeros(0))  # raises: a one-line error naming the layer
    codes = model.get_codes()
    plans = tuple(
        _layer_plan(layer, sizes[i], codes[i]) for i, layer in enumerate(model.weighted_layers)
    )
    hidden = [layer.n_out for layer in plans[:-1]]
    buffers = (max(hidden[0::2], default=0), max(hidden[1::2], default=0))
    memory = MemoryPlan(
        sums=max(layer.n_out for layer in plans),
        terms=max(1 << layer.bits for layer in plans),
        buffers=buffers,
        outputs=plans[-1].n_out,
    )
    return DeploymentPlan(sizes[0], plans, memory, _preprocess_plan(model))
