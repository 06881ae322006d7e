"""Plots of training runs and models: learning curves, receptive fields, activations.

Figures are built with matplotlib's object API on an Agg canvas: nothing here imports
``matplotlib.pyplot`` or changes the global backend, so it works headless and leaves an
interactive session's settings alone. Every function returns the
:class:`matplotlib.figure.Figure` (Jupyter displays it) and, given ``path``, also writes a PNG
atomically (temporary file in the same directory, then rename).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from graia._validation import integer
from graia.errors import GraiaValueError
from graia.files import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["activations", "history", "save_figure", "weights"]


def _new_figure(width: float, height: float) -> Figure:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("graia.plot needs matplotlib: pip install matplotlib") from exc
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 100) -> None:
    """Write ``fig`` as a PNG to ``path`` atomically (temporary file, fsync, rename)."""
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=dpi)


def _finish(fig: Figure, path: str | os.PathLike[str] | None) -> Figure:
    if path is not None:
        save_figure(fig, path)
    return fig


# --------------------------------------------------------------------------- learning curves

_ACCURACY_KEYS = (("accuracy", "acc"), ("val_accuracy", "val_acc"))
_LOSS_KEYS = (("loss",), ("val_loss",))


def _series(hist: Mapping[str, Any], names: Sequence[str]) -> tuple[str, np.ndarray] | None:
    for name in names:
        if name in hist:
            values = hist[name]
            try:
                arr = np.asarray(values, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError) as exc:
                raise GraiaValueError(
                    f"h: history[{name!r}] must be a list of numbers, got {values!r:.80}"
                ) from exc
            return name, arr
    return None


def history(h: Any, path: str | os.PathLike[str] | None = None) -> Figure:
    """Plot learning curves: accuracy (left) and loss (right), training and validation.

    Args:
        h: A :class:`graia.callbacks.History` (what ``model.fit`` returns) or a plain dict of
            per-epoch lists with keys among ``accuracy``, ``val_accuracy``, ``loss``,
            ``val_loss`` (``acc``/``val_acc`` also accepted). Missing series are left out.
        path: Also save the figure as a PNG here.

    Returns:
        The figure.

    Raises:
        GraiaValueError: ``h`` is neither, or holds none of those series, or a series is not
            numeric.
    """
    hist = getattr(h, "history", h)
    if not isinstance(hist, Mapping):
        raise GraiaValueError(
            f"h: expected a History or a dict of per-epoch lists, got {type(h).__name__}"
        )
    epochs = getattr(h, "epoch", None)
    panels = [("accuracy", _ACCURACY_KEYS), ("loss", _LOSS_KEYS)]
    found = [[_series(hist, keys) for keys in pair] for _, pair in panels]
    if not any(s is not None for pair in found for s in pair):
        raise GraiaValueError(
            "h: no 'accuracy', 'val_accuracy', 'loss' or 'val_loss' series to plot "
            f"(keys: {', '.join(map(str, hist)) or 'none'})"
        )
    fig = _new_figure(10, 4)
    axes = fig.subplots(1, 2)
    for ax, (title, _), pair in zip(axes, panels, found, strict=True):
        plotted = False
        for series, label, style in zip(pair, ("train", "validation"), ("-o", "--s"), strict=True):
            if series is None or series[1].size == 0:
                continue
            name, values = series
            if epochs is not None and len(epochs) == values.size:
                x = np.asarray(epochs, dtype=np.float64) + 1
            else:
                x = np.arange(1, values.size + 1)
            ax.plot(x, values, style, markersize=3, label=f"{label} ({name})")
            plotted = True
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        if plotted:
            ax.legend()
            ax.xaxis.get_major_locator().set_params(integer=True)
        else:
            ax.text(
                0.5,
                0.5,
                f"no {title} recorded",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
    return _finish(fig, path)


# --------------------------------------------------------------------------- receptive fields


def _input_image_shape(model: Any) -> tuple[int, ...] | None:
    shape = getattr(model, "input_shape", None)
    if shape is None:
        return None
    try:
        dims = tuple(int(d) for d in shape if d is not None)
    except (TypeError, ValueError):
        return None
    return dims or None


def _as_image_shape(shape: Sequence[int] | None, n_in: int) -> tuple[int, int] | None:
    """Reduce a shape to (height, width) if it describes ``n_in`` pixels as an image."""
    if shape is None:
        return None
    dims = [int(d) for d in shape]
    if math.prod(dims) != n_in:
        return None
    while len(dims) > 2 and dims[-1] == 1:  # (h, w, 1) channels-last
        dims.pop()
    while len(dims) > 2 and dims[0] == 1:  # (1, h, w) channels-first
        dims.pop(0)
    if len(dims) == 2:
        return dims[0], dims[1]
    return None


def _tile(w: np.ndarray, h: int, wd: int) -> np.ndarray:
    """Tile each column of ``w`` (n_in, n_out) as an h x wd image into one mosaic (NaN gaps)."""
    n_out = w.shape[1]
    cols = max(1, math.ceil(math.sqrt(n_out * h / wd)))
    cols = min(cols, n_out)
    rows = math.ceil(n_out / cols)
    mosaic = np.full((rows * (h + 1) - 1, cols * (wd + 1) - 1), np.nan)
    for unit in range(n_out):
        r, c = divmod(unit, cols)
        mosaic[r * (h + 1) : r * (h + 1) + h, c * (wd + 1) : c * (wd + 1) + wd] = w[
            :, unit
        ].reshape(h, wd)
    return mosaic


def weights(
    model_or_arrays: Any,
    layer: int = 0,
    path: str | os.PathLike[str] | None = None,
    image_shape: Sequence[int] | None = None,
) -> Figure:
    """Show each unit's incoming weights as an image: the layer's receptive fields.

    The colormap is diverging and symmetric around 0 (blue negative, red positive).

    Args:
        model_or_arrays: A model (its ``get_weights()[layer]``, an ``(n_in, n_out)`` array, is
            plotted, without the bias row of a layer that has one), a list of such arrays
            (``[layer]`` is taken), or one 2-D array.
        layer: Which layer's weights, for a model or a list.
        path: Also save the figure as a PNG here.
        image_shape: Shape of one receptive field, e.g. ``(28, 28)``; its product must be
            ``n_in``. Default: the model's ``input_shape`` for layer 0, else a square when
            ``n_in`` is a perfect square; otherwise the whole matrix is shown as one heat map
            (units x inputs).

    Returns:
        The figure.

    Raises:
        GraiaValueError: No such layer, the weights are not a 2-D numeric array, or
            ``image_shape`` does not match ``n_in``.
    """
    source = model_or_arrays
    auto_shape = None
    if hasattr(source, "get_weights"):
        if layer == 0:
            auto_shape = _input_image_shape(source)
        # A unit's receptive field: its weights on the inputs, not its bias (the last row).
        source = [
            w[: len(w) - int(weighted.use_bias)]
            for w, weighted in zip(source.get_weights(), source.weighted_layers)
        ]
    if isinstance(source, (list, tuple)):
        source = source[integer(layer, "layer", -len(source), len(source) - 1)]
    w = np.asarray(source)
    if w.ndim != 2 or w.dtype.kind not in "biuf" or w.size == 0:
        raise GraiaValueError(
            f"model_or_arrays: expected a non-empty 2-D numeric weight array (n_in, n_out), "
            f"got {w.dtype} {w.shape}"
        )
    n_in, n_out = w.shape
    w = w.astype(np.float64)
    if image_shape is not None:
        shape = _as_image_shape(image_shape, n_in)
        if shape is None:
            raise GraiaValueError(
                f"image_shape: {tuple(image_shape)} does not describe the {n_in} inputs of "
                f"layer {layer} as a 2-D image"
            )
    else:
        shape = _as_image_shape(auto_shape, n_in)
        side = math.isqrt(n_in)
        if shape is None and side * side == n_in and n_in > 1:
            shape = (side, side)
    m = float(np.max(np.abs(w))) or 1.0
    import matplotlib

    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="white")
    if shape is not None:
        mosaic = _tile(w, *shape)
        aspect = mosaic.shape[1] / mosaic.shape[0]
        fig = _new_figure(min(12.0, max(4.0, 7 * aspect)) + 1, 7 if aspect < 2 else 4)
        ax = fig.add_subplot()
        im = ax.imshow(mosaic, cmap=cmap, vmin=-m, vmax=m, interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(f"layer {layer}: incoming weights of {n_out} units ({shape[0]}x{shape[1]})")
    else:
        fig = _new_figure(10, 5)
        ax = fig.add_subplot()
        im = ax.imshow(w.T, cmap=cmap, vmin=-m, vmax=m, interpolation="nearest", aspect="auto")
        ax.set_xlabel("input")
        ax.set_ylabel("unit")
        ax.set_title(f"layer {layer}: weights ({n_in} inputs x {n_out} units)")
    fig.colorbar(im, ax=ax, shrink=0.8, label="weight")
    return _finish(fig, path)


# --------------------------------------------------------------------------- activations


def activations(
    model: Any,
    x: Any,
    path: str | os.PathLike[str] | None = None,
    class_names: Sequence[str] | None = None,
) -> Figure:
    """Show one sample flowing through the model: the input, each layer's activations, the class.

    Uses ``model.activations(x)``, a list of per-layer uint8 activation arrays for the sample
    (hidden layers, then the output layer; a leading entry equal to the input, or the
    quantised input of a float sample, is taken as the input). Hidden layers are drawn as heat rows, the output
    layer as bars with the chosen class (the largest output) highlighted.

    Args:
        model: A model with ``activations(x)`` (and optionally ``input_shape``).
        x: One sample, in the model's input shape (a leading batch axis of 1 is accepted).
        path: Also save the figure as a PNG here.
        class_names: Labels for the output bars.

    Returns:
        The figure.

    Raises:
        GraiaValueError: ``model`` has no ``activations`` method, or returns nothing to plot.
    """
    if not callable(getattr(model, "activations", None)):
        raise GraiaValueError("model: expected a model with an activations(x) method")
    acts = [np.asarray(a).reshape(-1) for a in model.activations(x)]
    if not acts or any(a.size == 0 for a in acts):
        raise GraiaValueError("model: activations(x) returned no activations to plot")
    sample = np.asarray(x)
    if sample.ndim >= 1 and sample.shape[0] == 1 and sample.ndim > 1:
        sample = sample[0]
    if (
        len(acts) >= 2
        and acts[0].size == sample.size
        and (sample.dtype.kind == "f" or np.array_equal(acts[0], sample.reshape(-1)))
    ):
        # The model listed its (quantised) input first: show it as the input, not as a layer.
        sample = acts.pop(0).reshape(sample.shape)
    img = _as_image_shape(_input_image_shape(model) or sample.shape, sample.size)
    if img is None and sample.ndim == 1:
        side = math.isqrt(sample.size)
        img = (side, side) if side * side == sample.size and side > 1 else None

    output = acts[-1].astype(np.int64)
    chosen = int(np.argmax(output))
    n_hidden = len(acts) - 1
    n_rows = n_hidden + 1
    fig = _new_figure(10, 2.2 + 1.1 * n_rows)
    grid = fig.add_gridspec(n_rows, 2, width_ratios=(1, 3))
    ax_in = fig.add_subplot(grid[:, 0])
    if img is not None:
        ax_in.imshow(
            sample.reshape(img).astype(np.float64),
            cmap="gray_r",
            interpolation="nearest",
        )
        ax_in.set_axis_off()
    else:
        flat = sample.reshape(1, -1).astype(np.float64)
        ax_in.imshow(flat, cmap="gray_r", aspect="auto", interpolation="nearest")
        ax_in.set_yticks([])
    ax_in.set_title("input")

    for i in range(n_hidden):
        ax = fig.add_subplot(grid[i, 1])
        a = acts[i].astype(np.float64)
        ax.imshow(
            a.reshape(1, -1),
            cmap="viridis",
            vmin=0,
            vmax=255,
            aspect="auto",
            interpolation="nearest",
        )
        ax.set_yticks([])
        ax.set_title(f"layer {i} ({a.size} units, {int(np.count_nonzero(a))} active)", fontsize=9)
    ax = fig.add_subplot(grid[n_rows - 1, 1])
    colors = ["tab:gray"] * output.size
    colors[chosen] = "tab:red"
    ax.bar(np.arange(output.size), output, color=colors)
    names = list(class_names) if class_names is not None else [str(i) for i in range(output.size)]
    if len(names) == output.size:
        ax.set_xticks(
            np.arange(output.size),
            names,
            fontsize=8,
            rotation=45 if max(map(len, names)) > 3 else 0,
        )
    label = names[chosen] if len(names) == output.size else str(chosen)
    ax.set_title(
        f"output layer: class {chosen} ({label})"
        if label != str(chosen)
        else f"output layer: class {chosen}",
        fontsize=9,
    )
    return _finish(fig, path)
