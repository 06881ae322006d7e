"""Deployment: export a trained model to dependency-free C or to ONNX, bit-exact with ``predict``.

``export(model, directory, format)`` writes ``graia_model.h``/``graia_model.c`` (``"c"``) or
``graia_model.onnx`` (``"onnx"``). Both exporters walk the same :mod:`graia.export.plan`, one
emitter per layer kind. See docs/deploy.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from graia._version import __version__
from graia.errors import GraiaValueError
from graia.export import c, onnx
from graia.export.plan import DeploymentPlan, plan
from graia.state import Model

__all__ = ["FORMATS", "Exported", "export", "plan"]

FORMATS = ("c", "onnx")
#: Most golden pairs embedded in the C self-test (they cost ROM).
MAX_GOLDEN = 64
#: Seed of the pseudo-random golden inputs (fixed, so an export is reproducible).
_GOLDEN_SEED = 0


@dataclass(frozen=True)
class Exported:
    """What :func:`export` wrote: its files and a one-line description of their size."""

    format: str
    files: tuple[str, ...]
    description: str


def golden_inputs(model: Model, samples: Any = None) -> np.ndarray:
    """The C self-test's inputs, u8 ``(n, inputs)``: ``samples`` when given, else an all-zero,
    an all-255 and two pseudo-random inputs."""
    if samples is not None:
        x = model.quantize(samples, "samples")
        if len(x) > MAX_GOLDEN:
            raise GraiaValueError(
                f"samples: at most {MAX_GOLDEN} golden inputs are embedded, got {len(x)}"
            )
        return x
    n = model.sizes[0]
    rng = np.random.default_rng(_GOLDEN_SEED)
    return np.concatenate(
        [
            np.zeros((1, n), np.uint8),
            np.full((1, n), 255, np.uint8),
            rng.integers(0, 256, (2, n), dtype=np.uint8),
        ]
    )


def _title(model: Model, fmt: str) -> str:
    return f'model "{model.name}" (seed {model.seed}) exported by graia {__version__} as {fmt}'


def export(
    model: Model, directory: str | os.PathLike, format: str = "c", samples: Any = None
) -> Exported:
    """Export ``model`` into ``directory`` (created if needed).

    Args:
        model: a built model (its current weight codes are exported).
        directory: where the files go.
        format: ``"c"`` (``graia_model.h``, ``graia_model.c``) or ``"onnx"`` (``graia_model.onnx``).
        samples: C only: inputs whose ``predict`` outputs the C self-test checks (at most
            :data:`MAX_GOLDEN`); default: four fixed inputs.

    Raises:
        GraiaValueError: an unknown format or invalid samples.
        GraiaError: ONNX export without the ``onnx`` package, or a layer kind not exportable yet.
    """
    if format not in FORMATS:
        raise GraiaValueError(f"export format must be one of {FORMATS}, got {format!r}")
    if samples is not None and format != "c":
        raise GraiaValueError("samples (golden pairs for the self-test) apply to the C export only")
    pre = model.preprocessing_layer
    if pre is not None:
        pre.integers()  # a one-line error if it is not adapted
    deployment: DeploymentPlan = plan(model)
    title = _title(model, format)
    if format == "c":
        inputs = golden_inputs(model, samples)
        report = c.write(deployment, directory, inputs, model.predict(inputs), title)
        return Exported("c", report.files, report.describe())
    path = onnx.write(deployment, directory, title)
    return Exported("onnx", (path,), f"{os.path.getsize(path):,} bytes")
