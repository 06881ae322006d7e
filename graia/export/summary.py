"""``model.summary()``'s text: Keras's table plus what deployment cares about."""

from __future__ import annotations

import numpy as np

from graia import backends
from graia.export.plan import plan
from graia.state import Model


def summary_text(model: Model) -> str:
    """Layers (output shape, parameters with the biases, packed bytes, shift-adds, kmax, shift,
    bias, code histogram), totals, the rule, and the deployed sizes against a float32 model of the
    same shape."""
    lines = [f'Model: "{model.name}"  (seed {model.seed}, backend {backends.name()})']
    lines.append(
        f"{'Layer':<18}{'Output shape':<16}{'Params':>10}{'Bytes':>10}{'Shift-adds':>12}"
        "  kmax shift bias  weight codes (0 / ±1 / ±1/2 / ...)"
    )
    lines.append(f"{model.layers[0].name:<18}{(None, *model.input_shape)!s:<16}{0:>10}")
    for layer in model.layers[1:]:
        if layer.augmentation:  # training-time only: the identity when deployed
            lines.append(f"{layer.name:<18}{(None, *model.input_shape)!s:<16}{0:>10}")
        elif layer.preprocessing:
            lines.append(
                f"{layer.name:<18}{(None, *model.input_shape)!s:<16}{0:>10}  {layer.describe()}"
            )
    if len(model.layers) < 2:
        return "\n".join(lines + ["(no Dense layer yet)"])
    if not model.is_dense:
        return "\n".join(lines[:1] + _image_rows(model) + _pending(model))
    deployment = plan(model)
    for layer in deployment.layers:
        hist = np.bincount(np.abs(layer.codes).ravel().astype(np.int64), minlength=layer.kmax + 2)
        frac = " ".join(f"{100 * h / layer.codes.size:.0f}%" for h in hist)
        lines.append(
            f"{layer.name:<18}{(None, layer.n_out)!s:<16}{layer.params:>10}"
            f"{layer.table_bytes:>10}{layer.shift_adds:>12}  {layer.kmax:>4} {layer.shift:>5} "
            f"{_yes_no(layer.bias):>4}  {frac}"
        )
    lines.append(f"Total params: {model.count_params():,} (latent i32, forward codes i8)")
    lines.append(f"Rule: {model.rule!r}" if model.rule else "Rule: not compiled")
    weights, floats = deployment.weight_bytes, deployment.float32_bytes
    ram = deployment.memory.ram_bytes
    lines.append("Deployed (graia export --format c), against a float32 model of the same shape:")
    lines.append(
        f"  weights:     {weights:,} bytes of packed codes vs {floats:,} bytes float32"
        + (f" ({floats / weights:.1f}x smaller)" if weights else "")
    )
    lines.append(
        f"  operations:  {deployment.shift_adds:,} shift-adds per sample (non-zero weights)"
        f" vs {deployment.macs:,} multiply-accumulates"
    )
    lines.append(
        f"  activations: {ram:,} bytes peak (static: i32 sums and code terms, u8 activations)"
        f" vs {deployment.float32_activation_bytes:,} bytes float32"
    )
    return "\n".join(lines + _pending(model))


def _yes_no(flag: bool | int) -> str:
    """A layer's bias column."""
    return "yes" if flag else "no"


def _pending(model: Model) -> list[str]:
    """A note naming the layers whose shift the first ``fit`` will choose (arithmetic.md §3.3)."""
    names = [layer.name for layer in model.weighted_layers if layer.shift_pending]
    if not names:
        return []
    note = f"Shift of {', '.join(names)}: kmax until chosen from the data by the first fit"
    return [note + " (or model.adapt(x); docs/arithmetic.md §3.3)"]


def _image_rows(model: Model) -> list[str]:
    """The table of a model with image layers (export is Dense-only so far)."""

    header = f"{'Layer':<22}{'Output shape':<20}{'Params':>10}"
    rows = [header + "  kmax shift bias  weight codes (0 / ±1 / ...)"]
    rows.append(f"{model.layers[0].name:<22}{(None, *model.input_shape)!s:<20}{0:>10}")
    codes = iter(model.get_codes())
    shape: tuple = model.input_shape
    planned: list = []
    previous = model.layers[0]
    for layer in model.layers[1:]:
        params, extra = 0, ""
        if layer.preprocessing:  # keeps the input's shape; maps raw values to u8 (§8)
            extra = f"  {layer.describe()}"
        elif not layer.augmentation:  # which keep the input's shape
            # Each layer's output shape, as it computes it (graia.state.plan).
            image = (*shape, 1) if len(shape) == 2 else shape
            shape = layer.plan(image, planned, previous, layer.name)
            previous = layer
        if layer.weighted:
            code = next(codes)
            params = code.size
            hist = np.bincount(np.abs(code).ravel().astype(np.int64), minlength=layer.kmax + 2)
            frac = " ".join(f"{100 * h / code.size:.0f}%" for h in hist)
            extra = f"  {layer.kmax:>4} {layer.shift:>5} {_yes_no(layer.use_bias):>4}  {frac}"
        rows.append(f"{layer.name:<22}{(None, *shape)!s:<20}{params:>10}{extra}")
    rows.append(f"Total params: {model.count_params():,} (latent i32, forward codes i8)")
    rows.append(f"Rule: {model.rule!r}" if model.rule else "Rule: not compiled")
    rows.append("Deployed: graia export supports Dense-only models so far (docs/deploy.md)")
    return rows
