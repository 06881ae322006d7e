"""What the web demo computes, free of any web code: preprocessing, analysis, training jobs.

* :func:`preprocess` turns a drawing (ink intensities, any size) into the model's input image the
  way MNIST and the 8x8 digits were made: crop to the ink, scale to fit a box keeping the aspect
  ratio, centre (by the centre of mass for 28x28, by the bounding box for 8x8).
* :class:`DemoModel` wraps a model and answers one sample with everything the page draws: the
  outputs, the chosen class, every layer's activations and the receptive fields of the most active
  hidden units.
* :class:`TrainingJob` trains in a background thread and reports progress through a callback.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import graia
from graia.callbacks import Callback
from graia.errors import GraiaError, GraiaValueError, ModelFileError
from graia.saving import load_model_checked

MODELS_DIR = Path(__file__).resolve().parent / "models"
#: Pretrained models shipped with the package (``scripts/train-demo-models.py``).
PRETRAINED: dict[str, Path] = {
    "digits": MODELS_DIR / "digits.graia",
    "fashion-mnist": MODELS_DIR / "fashion-mnist.graia",
}
DATASETS = ("digits", "fashion-mnist")
#: How many receptive fields the page shows.
TOP_UNITS = 8
#: Limits on what the Train tab accepts (the demo must stay responsive on a small CPU).
MAX_WIDTH = 2048
MAX_EPOCHS = 100
#: The picker keeps this many models trained in the demo (the oldest goes first), so a visitor
#: who keeps training cannot grow the server's memory without bound.
MAX_TRAINED = 8
#: An uploaded model file may hold at most this many bytes, compressed or not.
MAX_MODEL_BYTES = 64 << 20
#: The largest input image side the demo draws into (28x28 MNIST-like is the usual).
MAX_INPUT_SIDE = 64


def class_names(dataset: str | None) -> list[str]:
    """Labels of the ten classes of ``dataset`` (digits for anything unknown)."""
    if dataset == "fashion-mnist":
        return list(graia.datasets.fashion_mnist.CLASS_NAMES)
    return list(graia.datasets.digits.CLASS_NAMES)


# ------------------------------------------------------------------------------ preprocessing


#: Widest ink in images under 20 pixels a side, as a fraction of the width (the 8x8 digits' widest
#: classes average 5.8 of 8 columns): wider drawings are narrowed to it.
_SMALL_MAX_WIDTH = 0.75


def _area_matrix(n_in: int, n_out: int, start: float, length: float) -> np.ndarray:
    """``(n_out, n_in)`` weights averaging the input interval ``[start, start + length)`` into
    ``n_out`` equal cells: exact area resampling, up or down."""
    edges = start + length * np.arange(n_out + 1) / n_out
    lo = np.clip(edges[:-1, None], np.arange(n_in)[None, :], np.arange(1, n_in + 1)[None, :])
    hi = np.clip(edges[1:, None], np.arange(n_in)[None, :], np.arange(1, n_in + 1)[None, :])
    return (hi - lo) * (n_out / length)


def preprocess(ink: Any, shape: tuple[int, int]) -> np.ndarray:
    """A drawing as the model's uint8 input image, MNIST-style.

    Args:
        ink: 2-D array of ink intensities (0 = background), any numeric dtype and size.
        shape: The model's image shape ``(height, width)``, e.g. ``(28, 28)`` or ``(8, 8)``.

    Returns:
        uint8 ``shape`` image, 0 background, 255 full ink. Like MNIST for sides of 20 or more: the
        ink's bounding box scaled to fit a box of 20/28 of the image (aspect kept) and its centre
        of mass moved to the centre. Like the 8x8 digits for smaller images: scaled to fill the
        height (aspect kept, at most 3/4 of the width), centred by the bounding box. Intensities are stretched so the darkest stroke is
        255. An empty drawing gives an all-zero image.

    Raises:
        GraiaValueError: ``ink`` is not a finite 2-D numeric array or ``shape`` is not 2 positive
            sides.
    """
    arr = np.asarray(ink)
    if arr.ndim != 2 or arr.size == 0 or arr.dtype.kind not in "biuf":
        raise GraiaValueError(f"ink: expected a 2-D numeric image, got {arr.dtype} {arr.shape}")
    h, w = (int(s) for s in shape)
    if h <= 0 or w <= 0:
        raise GraiaValueError(f"shape: expected two positive sides, got {shape!r}")
    img = arr.astype(np.float64)
    if not np.all(np.isfinite(img)):
        raise GraiaValueError("ink: contains NaN or infinite values")
    img = np.clip(img, 0.0, None)
    peak = img.max()
    if peak <= 0:
        return np.zeros((h, w), np.uint8)
    img /= peak
    rows = np.flatnonzero(img.max(axis=1) > 0.05)
    cols = np.flatnonzero(img.max(axis=0) > 0.05)
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    mnist_like = min(h, w) >= 20
    if mnist_like:
        # One scale for both axes (aspect kept), the larger side filling a 20/28 box.
        scale_y = scale_x = min(h * 20 / 28 / (bottom - top), w * 20 / 28 / (right - left))
    else:
        # The 8x8 digits fill the height; their width is at most about 6/8 of the image.
        scale_y = h / (bottom - top)
        scale_x = min(scale_y, w * _SMALL_MAX_WIDTH / (right - left))
    # The source window that maps onto the whole output image, centred on the ink's box.
    win_h, win_w = h / scale_y, w / scale_x
    cy, cx = (top + bottom) / 2, (left + right) / 2
    if mnist_like:
        ys, xs = np.indices(img.shape)
        mass = img.sum()
        cy, cx = (ys + 0.5).ravel() @ img.ravel() / mass, (xs + 0.5).ravel() @ img.ravel() / mass
    rows_m = _area_matrix(img.shape[0], h, cy - win_h / 2, win_h)
    cols_m = _area_matrix(img.shape[1], w, cx - win_w / 2, win_w)
    out = rows_m @ img @ cols_m.T
    top_value = out.max()
    if top_value > 0:
        out /= top_value
    return np.floor(np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# ------------------------------------------------------------------------------- the model


def _grid(n: int) -> tuple[int, int]:
    """A near-square (rows, cols) grid holding ``n`` cells: how a layer is drawn as an image."""
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def image_shape(model: graia.Sequential) -> tuple[int, int]:
    """The model's input as a 2-D image ``(height, width)``: its own 2-D shape, or a square.

    Raises:
        GraiaValueError: The input cannot be drawn into: not an image of at most
            ``MAX_INPUT_SIDE`` pixels a side, or the model does not have ten classes.
    """
    dims = [int(d) for d in model.input_shape if int(d) != 1] or [1]
    if len(dims) == 1:
        side = math.isqrt(dims[0])
        dims = [side, side] if side * side == dims[0] else dims
    if len(dims) != 2 or max(dims) > MAX_INPUT_SIDE:
        raise GraiaValueError(
            f"the demo draws into square or 2-D images of at most {MAX_INPUT_SIDE} pixels a side; "
            f"this model's input shape is {tuple(model.input_shape)}"
        )
    if model.classes != 10:
        raise GraiaValueError(f"the demo shows 10 classes; this model has {model.classes}")
    return dims[0], dims[1]


def _strengths(codes: np.ndarray, kmax: int) -> np.ndarray:
    """Weight codes (0 or ±(k+1) for ±2^-k) as signed strengths ``±(kmax + 1 - k)``: larger
    magnitude for larger weights, 0 for no synapse; what the receptive-field images show."""
    mag = np.where(codes == 0, 0, kmax + 2 - np.abs(codes.astype(np.int16)))
    return (np.sign(codes) * mag).astype(np.int8)


@dataclass
class DemoModel:
    """A model the page queries, with what it needs to draw the answers."""

    model: graia.Sequential
    label: str
    dataset: str | None = None
    shape: tuple[int, int] = field(init=False)
    _fields: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.shape = image_shape(self.model)
        # Queries run on the Numba reference (as Sequential.activations does). Moving the state
        # there once means a query never waits for a training run that holds a Futhark context.
        with graia.backend.use("numba"):
            self.model.predict(np.zeros((1, *self.model.input_shape), np.uint8))
        first = self.model.weighted_layers[0]
        codes = self.model.get_codes()[0]
        # The receptive fields are the weights on the pixels: a bias's row (the last) is not one.
        self._fields = _strengths(codes[: len(codes) - int(first.use_bias)], first.kmax)
        if self.dataset is None:
            self.dataset = "digits" if self.shape == (8, 8) else "fashion-mnist"

    @classmethod
    def load(cls, path: str | Path, label: str, dataset: str | None = None) -> DemoModel:
        """Load a ``.graia`` file, refusing (with one clear line) what the demo cannot show.

        Raises:
            ModelFileError: Unreadable, corrupt, too large, or not a model the demo can draw into.
        """
        path = Path(path)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise ModelFileError(f"{label}: cannot read the file ({exc.strerror or exc})") from exc
        if size > MAX_MODEL_BYTES:
            raise ModelFileError(f"{label}: {size} bytes, over the demo's limit")

        def drawable(model: graia.Sequential) -> None:
            # From the config alone, before any array is decompressed.
            try:
                image_shape(model)
            except GraiaValueError as exc:
                raise ModelFileError(f"{label}: {exc}") from exc
            unpacked = 8 * model.count_params()  # latent weights and momenta, int32 each
            if unpacked > MAX_MODEL_BYTES * 4:
                raise ModelFileError(
                    f"{label}: its arrays take {unpacked} bytes, over the demo's limit of "
                    f"{MAX_MODEL_BYTES * 4}"
                )

        model = load_model_checked(path, graia.Sequential.from_config, drawable)
        try:
            return cls(model, label, dataset)
        except GraiaValueError as exc:
            raise ModelFileError(f"{label}: {exc}") from exc

    @property
    def names(self) -> list[str]:
        return class_names(self.dataset)

    def info(self) -> dict[str, Any]:
        """What the page shows about the model."""
        return {
            "label": self.label,
            "dataset": self.dataset,
            "sizes": self.model.sizes,
            "rule": self.model.rule.name if self.model.rule is not None else None,
            "input": list(self.shape),
            "class_names": self.names,
        }

    def analyse(self, x: np.ndarray) -> dict[str, Any]:
        """One input image through the model: every layer's activations (u8, drawn as near-square
        images), the outputs, the chosen class and the receptive fields of the ``TOP_UNITS`` most
        active units of the first hidden layer (signed weight strengths, see ``_strengths``)."""
        start = time.perf_counter()
        acts = self.model.activations(np.asarray(x, np.uint8).reshape(self.model.input_shape))
        outputs = acts[-1].astype(int)
        layers = []
        for i, a in enumerate(acts):
            flat = a.reshape(-1)
            last = i == len(acts) - 1
            h, w = self.shape if i == 0 else (1, flat.size) if last else _grid(flat.size)
            cells = np.zeros(h * w, np.uint8)
            cells[: flat.size] = flat
            name = "input" if i == 0 else ("output" if last else f"hidden {i}")
            layers.append({"name": name, "height": h, "width": w, "values": cells.tolist()})
        first = acts[1].reshape(-1)
        top = np.argsort(-first.astype(np.int64), kind="stable")[:TOP_UNITS]
        fields = [
            {
                "unit": int(u),
                "activation": int(first[u]),
                "values": self._fields[:, u].tolist(),
            }
            for u in top
            if first[u] > 0
        ]
        return {
            "outputs": outputs.tolist(),
            "chosen": int(np.argmax(outputs)),
            "class_names": self.names,
            "layers": layers,
            "fields": fields,
            "field_shape": list(self.shape),
            "field_max": self.model.weighted_layers[0].kmax + 1,
            "ms": round((time.perf_counter() - start) * 1000.0, 2),
        }


# ------------------------------------------------------------------------------- training


class ProgressCallback(Callback):
    """Copies each epoch's metrics into a :class:`TrainingJob` as ``fit`` runs, and stops the
    run when the job is cancelled."""

    def __init__(self, job: TrainingJob) -> None:
        super().__init__()
        self.job = job

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        logs = dict(logs or {})
        with self.job.lock:
            self.job.epoch = epoch + 1
            for key in ("accuracy", "val_accuracy", "loss", "val_loss"):
                if key in logs:
                    self.job.history.setdefault(key, []).append(float(logs[key]))
        if self.job.cancelled.is_set():
            self.model.stop_training = True


@dataclass
class TrainingJob:
    """One training run of the Train tab, in a background thread."""

    dataset: str
    rule: str
    width: int
    epochs: int
    seed: int = 0
    epoch: int = 0
    phase: str = "queued"
    error: str | None = None
    backend: str = ""
    history: dict[str, list[float]] = field(default_factory=dict)
    result: DemoModel | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    cancelled: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise GraiaValueError(f"dataset: expected one of {', '.join(DATASETS)}")
        graia.rules.get(self.rule)  # an unknown rule is an error before any thread starts
        for name, value, top in (
            ("width", self.width, MAX_WIDTH),
            ("epochs", self.epochs, MAX_EPOCHS),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise GraiaValueError(f"{name}: expected an integer from 1 to {top}, got {value!r}")

    def build(self, input_shape: tuple[int, ...]) -> graia.Sequential:
        """The model this job trains: one hidden layer of ``width`` units and the rule, all with
        the library's defaults (what a user's first model gets)."""
        model = graia.Sequential(
            [
                graia.layers.Input(input_shape),
                graia.layers.Dense(self.width),
                graia.layers.Dense(10),
            ],
            seed=self.seed,
            name=f"{self.dataset}-{self.rule}-{self.width}",
        )
        model.compile(self.rule)
        return model

    def run(self) -> None:
        """Load the data, train on ``backend`` (default: the one in use), and leave the trained
        model in ``result`` (or the reason it failed in ``error``)."""
        try:
            # Backend choices are per thread: name the one the server runs on explicitly.
            with graia.backend.use(self.backend or graia.backend.name()) as name:
                self.backend = name
                self._train()
        except GraiaError as exc:
            self.error = str(exc)
            self.phase = "failed"
        except Exception as exc:  # noqa: BLE001 - the page shows it; the server keeps running
            self.error = f"{type(exc).__name__}: {exc}"
            self.phase = "failed"

    def _train(self) -> None:
        self.phase = "loading data"
        (x_train, y_train), (x_test, y_test) = graia.datasets.load_data(self.dataset)
        model = self.build(x_train.shape[1:])
        self.phase = "training"
        model.fit(
            x_train,
            y_train,
            epochs=self.epochs,
            validation_data=(x_test, y_test),
            callbacks=[ProgressCallback(self)],
            verbose=0,
        )
        self.result = DemoModel(model, f"trained here: {model.name}", self.dataset)
        self.phase = "cancelled" if self.cancelled.is_set() else "done"

    def start(self) -> threading.Thread:
        """Run in a daemon thread (the server stays responsive)."""
        thread = threading.Thread(target=self.run, name="graia-demo-train", daemon=True)
        thread.start()
        return thread

    @property
    def running(self) -> bool:
        return self.phase in ("queued", "loading data", "training")

    def status(self) -> dict[str, Any]:
        """Progress as the page polls it."""
        with self.lock:
            history = {k: list(v) for k, v in self.history.items()}
            epoch = self.epoch
        return {
            "dataset": self.dataset,
            "rule": self.rule,
            "width": self.width,
            "epochs": self.epochs,
            "epoch": epoch,
            "phase": self.phase,
            "running": self.running,
            "error": self.error,
            "backend": self.backend,
            "history": history,
        }
