"""The web demo's server: Python's standard ``http.server``, one static page, JSON endpoints.

No web framework: nothing to install beyond graia, a prediction is one short request (a few
milliseconds), and the page is plain HTML and JavaScript that any browser (and Playwright) drives.
State (the model being queried, the training run) is shared by every visitor of one server.

Endpoints (JSON unless noted):

``GET /``                       the page (``static/``)
``GET /api/state``              models, backend, rules, datasets, the current model, training status
``POST /api/predict``           ``{"width", "height", "ink"}`` (base64 u8 ink) -> analysis
``GET /api/sample?dataset=&index=``  a test image (random without ``index``) -> analysis
``POST /api/model/select``      ``{"name": "digits" | "fashion-mnist" | a trained model's label
                                | "trained" (the latest)}``
``POST /api/model/upload``      the raw bytes of a ``.graia`` file
``GET /api/model/download``     the current model as a ``.graia`` file
``POST /api/train``             ``{"dataset", "rule", "width", "epochs"}`` starts a run
``GET /api/train/status``       its progress and learning curve
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import sys
import tempfile
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

import numpy as np

import graia
from graia.demo import core
from graia.errors import GraiaError

STATIC = Path(__file__).resolve().parent / "static"
_CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
#: The largest drawing accepted, in pixels a side.
MAX_INK_SIDE = 512
MAX_JSON_BYTES = 4 << 20


class BadRequest(Exception):
    """A request the page should not have sent; answered 400 with the message."""


def content_disposition(name: str) -> str:
    """``Content-Disposition`` of a download named ``name`` (user text: a model's name): an ASCII
    ``filename`` made of safe characters only, and the exact name in RFC 5987's ``filename*``
    (UTF-8, percent-encoded), so no name can end the header, add a parameter or break Latin-1."""
    name = name[:200]
    plain = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


def _integer(body: dict[str, Any], key: str, low: int, high: int) -> int:
    """``body[key]``, a JSON integer from ``low`` to ``high`` (not a float, bool or string)."""
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"{key}: expected an integer from {low} to {high}")
    return value


def _text(body: dict[str, Any], key: str) -> str:
    """``body[key]``, a JSON string of at most 100 characters."""
    value = body.get(key)
    if not isinstance(value, str) or len(value) > 100:
        raise BadRequest(f"{key}: expected a short string")
    return value


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


class DemoState:
    """Everything the server holds: the models and the training run, behind one lock."""

    def __init__(self, model_path: str | None = None) -> None:
        self.lock = threading.Lock()
        self.pretrained: dict[str, core.DemoModel] = {}
        #: Models trained here, oldest first: each run adds one beside the pretrained ones (the
        #: latest ``core.MAX_TRAINED``), numbered by ``runs``.
        self.trained: list[core.DemoModel] = []
        self.runs = 0
        self.job: core.TrainingJob | None = None
        self.samples: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, path in core.PRETRAINED.items():
            if path.exists():
                self.pretrained[name] = core.DemoModel.load(path, f"pretrained: {name}", name)
        if model_path is not None:
            self.current = core.DemoModel.load(model_path, Path(model_path).name)
        elif "digits" in self.pretrained:
            self.current = self.pretrained["digits"]
        else:
            raise GraiaError(
                "no pretrained digits model in the package; pass --model FILE "
                "(or run scripts/train-demo-models.py)"
            )
        self.backend = graia.backend.name()
        # Compile the Numba functions now, so that the first drawing is answered at once.
        self.current.analyse(np.zeros(self.current.shape, np.uint8))

    def summary(self) -> dict[str, Any]:
        with self.lock:
            return {
                "version": graia.__version__,
                "backend": self.backend,
                "model": self.current.info(),
                "pretrained": sorted(self.pretrained),
                "trained": [m.label for m in self.trained],
                "datasets": list(core.DATASETS),
                "rules": sorted(graia.rules.REGISTRY),
                "default_rule": graia.rules.DEFAULT_RULE,
                "limits": {"width": core.MAX_WIDTH, "epochs": core.MAX_EPOCHS},
                "training": self.job.status() if self.job is not None else None,
            }

    def test_split(self, dataset: str) -> tuple[np.ndarray, np.ndarray]:
        if dataset not in core.DATASETS:
            raise BadRequest(f"dataset: expected one of {', '.join(core.DATASETS)}")
        if dataset not in self.samples:
            _, self.samples[dataset] = graia.datasets.load_data(dataset)
        return self.samples[dataset]

    def model_for(self, dataset: str) -> core.DemoModel:
        """The current model if it reads this dataset's images, else that dataset's pretrained one."""
        with self.lock:
            x_test, _ = self.test_split(dataset)
            if self.current.shape != x_test.shape[1:] and dataset in self.pretrained:
                self.current = self.pretrained[dataset]
            return self.current


def _decode_ink(body: dict[str, Any]) -> np.ndarray:
    width = _integer(body, "width", 1, MAX_INK_SIDE)
    height = _integer(body, "height", 1, MAX_INK_SIDE)
    ink = body.get("ink")
    try:
        if not isinstance(ink, str):
            raise TypeError
        raw = base64.b64decode(ink, validate=True)
    except (TypeError, ValueError, binascii.Error):
        raise BadRequest("ink: expected the drawing's bytes in base64") from None
    if len(raw) != width * height:
        raise BadRequest(f"ink: {len(raw)} bytes do not make a {width}x{height} drawing")
    return np.frombuffer(raw, np.uint8).reshape(height, width)


class Handler(BaseHTTPRequestHandler):
    """Routes requests to the state; errors become JSON ``{"error": ...}`` answers."""

    server_version = "graia-demo"
    state: DemoState  # set on the subclass made by make_server

    def log_message(self, format: str, *args: Any) -> None:
        if os.environ.get("GRAIA_DEMO_LOG"):
            super().log_message(format, *args)

    # ------------------------------------------------------------------ plumbing
    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _body(self, limit: int) -> bytes:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError as exc:
            raise BadRequest("a Content-Length header is required") from exc
        if not 0 <= length <= limit:
            raise BadRequest(f"request body of {length} bytes; at most {limit} accepted")
        return self.rfile.read(length)

    def _json_body(self) -> dict[str, Any]:
        try:
            body = json.loads(self._body(MAX_JSON_BYTES), parse_constant=_refuse_constant)
        except RecursionError:
            raise BadRequest("the body is JSON nested too deeply") from None
        except ValueError:  # invalid UTF-8 or JSON, NaN or Infinity, an integer of 4300+ digits
            raise BadRequest("the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        return body

    def _dispatch(self, routes: dict[str, Any]) -> None:
        url = urlparse(self.path)
        handler = routes.get(url.path)
        try:
            if handler is None:
                if self.command == "GET" and self._static(url.path):
                    return
                self._json({"error": f"no such page: {url.path}"}, HTTPStatus.NOT_FOUND)
                return
            handler(parse_qs(url.query))
        except BadRequest as exc:
            self._json({"error": str(exc)}, HTTPStatus.BAD_REQUEST)
        except GraiaError as exc:
            self._json({"error": str(exc)}, HTTPStatus.UNPROCESSABLE_ENTITY)
        except Exception as exc:  # noqa: BLE001 - one bad request must not stop the server
            # The client learns nothing of the server's internals; its operator gets one line.
            text = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            print(f"graia demo: error answering {self.command} {url.path}: {text}", file=sys.stderr)
            self._json({"error": "internal error"}, HTTPStatus.INTERNAL_SERVER_ERROR)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's answer to a malformed request, without the request's own text (which it
        would put into the status line)."""
        super().send_error(code)

    def _static(self, path: str) -> bool:
        name = "index.html" if path in ("/", "/index.html") else path.removeprefix("/static/")
        target = STATIC / name
        if "/" in name or not target.is_file():  # only files directly in static/
            return False
        self._send(200, target.read_bytes(), _CONTENT_TYPES.get(target.suffix, "text/plain"))
        return True

    def do_GET(self) -> None:
        self._dispatch(
            {
                "/api/state": lambda q: self._json(self.state.summary()),
                "/api/sample": self._sample,
                "/api/model/download": self._download,
                "/api/train/status": self._train_status,
            }
        )

    def do_POST(self) -> None:
        self._dispatch(
            {
                "/api/predict": self._predict,
                "/api/model/select": self._select,
                "/api/model/upload": self._upload,
                "/api/train": self._train,
            }
        )

    # ------------------------------------------------------------------ endpoints
    def _predict(self, _query: dict) -> None:
        ink = _decode_ink(self._json_body())
        with self.state.lock:
            model = self.state.current
        x = core.preprocess(ink, model.shape)
        self._json({"model": model.info(), **model.analyse(x)})

    def _sample(self, query: dict) -> None:
        dataset = query.get("dataset", ["digits"])[0]
        x_test, y_test = self.state.test_split(dataset)
        index_text = query.get("index", [""])[0]
        try:
            index = int(index_text) if index_text else secrets.randbelow(len(x_test))
        except ValueError:
            raise BadRequest(f"index: expected an integer, got {index_text!r:.40}") from None
        if not 0 <= index < len(x_test):
            raise BadRequest(f"index: expected 0..{len(x_test) - 1}, got {index}")
        model = self.state.model_for(dataset)
        x = x_test[index]
        if x.shape != model.shape:
            x = core.preprocess(x, model.shape)
        names = core.class_names(dataset)
        self._json(
            {
                "model": model.info(),
                "sample": {"dataset": dataset, "index": index, "label": names[int(y_test[index])]},
                **model.analyse(x),
            }
        )

    def _select(self, _query: dict) -> None:
        name = _text(self._json_body(), "name")
        with self.state.lock:
            trained = {m.label: m for m in self.state.trained}
            if name == "trained" and self.state.trained:  # the latest
                self.state.current = self.state.trained[-1]
            elif name in trained:
                self.state.current = trained[name]
            elif name in self.state.pretrained:
                self.state.current = self.state.pretrained[name]
            else:
                raise BadRequest(f"no model {name!r} to select")
        self._json(self.state.summary())

    def _upload(self, query: dict) -> None:
        data = self._body(core.MAX_MODEL_BYTES)
        label = Path(query.get("name", ["uploaded.graia"])[0]).name[:100] or "uploaded.graia"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "upload.graia"
            path.write_bytes(data)
            try:
                model = core.DemoModel.load(path, label)
            except GraiaError as exc:
                # Name the file the user chose, not our temporary copy.
                raise GraiaError(str(exc).replace(str(path), label)) from exc
        model.analyse(np.zeros(model.shape, np.uint8))
        with self.state.lock:
            self.state.current = model
        self._json(self.state.summary())

    def _download(self, _query: dict) -> None:
        with self.state.lock:
            model = self.state.current
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.graia"
            model.model.save(path)
            data = path.read_bytes()
        filename = f"{model.model.name or 'model'}.graia"
        self._send(
            200,
            data,
            "application/octet-stream",
            {"Content-Disposition": content_disposition(filename)},
        )

    def _train(self, _query: dict) -> None:
        body = self._json_body()
        with self.state.lock:
            if self.state.job is not None and self.state.job.running:
                raise BadRequest("a training run is in progress")
            try:
                job = core.TrainingJob(
                    dataset=_text(body, "dataset"),
                    rule=_text(body, "rule"),
                    width=body.get("width"),
                    epochs=body.get("epochs"),
                    backend=self.state.backend,
                )
            except GraiaError as exc:
                raise BadRequest(str(exc)) from exc
            self.state.job = job
        job.start()
        self._json(job.status())

    def _train_status(self, _query: dict) -> None:
        with self.state.lock:
            job = self.state.job
            if job is None:
                self._json({"phase": "idle", "running": False})
                return
            # A finished run's model joins the picker and becomes the one queried, once.
            if job.result is not None and all(m is not job.result for m in self.state.trained):
                self.state.runs += 1
                job.result.label += f" #{self.state.runs}"
                self.state.trained.append(job.result)
                del self.state.trained[: -core.MAX_TRAINED]
                self.state.current = job.result
            model = self.state.current.info()
        self._json({**job.status(), "model": model})


def make_server(host: str, port: int, model_path: str | None = None) -> ThreadingHTTPServer:
    """A server bound to ``host:port`` (port 0: a free one), not yet serving."""
    state = DemoState(model_path)
    handler = type("DemoHandler", (Handler,), {"state": state})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve(host: str = "127.0.0.1", port: int = 7860, model_path: str | None = None) -> None:
    """Serve the demo until interrupted, printing its address."""
    server = make_server(host, port, model_path)
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    print(
        f"graia demo on http://{shown}:{server.server_address[1]}/ "
        f"(backend {graia.backend.name()}; Ctrl+C stops it)",
        flush=True,
    )
    if host in ("0.0.0.0", "", "::"):
        print(
            "listening on every network interface: anyone who can reach it can use it", flush=True
        )
    try:
        server.serve_forever()
    finally:
        server.server_close()
        sys.stdout.flush()
