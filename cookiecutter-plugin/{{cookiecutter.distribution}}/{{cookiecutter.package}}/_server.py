"""The ``{{ cookiecutter.plugin_name }}`` deployer: a small HTTP server (standard library only) and its smoke test.

``POST /predict`` with ``{"rows": [[...], ...]}`` (preprocessed float rows, as the
dataset's splits hold them) answers ``{"probabilities": [[...]], "labels": [...]}``;
``GET /health`` answers ``{"status": "ok", "format": ...}``.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import numpy as np
from aios_core import Dataset, ModelArtifact, Predictor, RunContext

if TYPE_CHECKING:
    from {{ cookiecutter.package }} import {{ cookiecutter.__class_prefix }}DeployerParams

MAX_BODY_BYTES = 16 * 1024 * 1024
log = logging.getLogger(__name__)


class ModelServer:
    """Serves one predictor over HTTP in a background thread: ``start``, ``url``, ``stop``."""

    def __init__(self, predict: Predictor, class_names: list[str], host: str, port: int, fmt: str) -> None:
        self.predict, self.class_names, self.format = predict, class_names, fmt
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, name="model-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ModelServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def answer(self, body: bytes) -> dict[str, Any]:
        """The reply to a ``/predict`` body; ValueError if the body is not rows of numbers."""
        try:
            rows = np.asarray(json.loads(body)["rows"], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f'expected a JSON object whose "rows" is a list of rows of numbers: {error}') from None
        if rows.ndim != 2 or len(rows) == 0:
            raise ValueError(f"expected a non-empty list of rows, got an array of shape {rows.shape}")
        probabilities = np.asarray(self.predict(rows), dtype=np.float64)
        return {"probabilities": probabilities.tolist(),
                "labels": [self.class_names[i] for i in probabilities.argmax(axis=1)]}


def _handler(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/health":
                self._reply(200, {"status": "ok", "format": server.format})
            else:
                self._reply(404, {"error": f"no such path {self.path}; use POST /predict or GET /health"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/predict":
                self._reply(404, {"error": f"no such path {self.path}; use POST /predict"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._reply(413, {"error": f"the body is larger than {MAX_BODY_BYTES} bytes"})
                return
            try:
                self._reply(200, server.answer(self.rfile.read(length)))
            except ValueError as error:
                self._reply(400, {"error": str(error)})

        def log_message(self, format: str, *args: Any) -> None:  # requests go to the run's log, not the console
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


def post_rows(url: str, rows: np.ndarray, timeout: float = 30.0) -> dict[str, Any]:
    """Send ``rows`` to ``url/predict`` and return the decoded reply."""
    request = urllib.request.Request(f"{url}/predict", data=json.dumps({"rows": rows.tolist()}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def smoke_test(url: str, reference: Predictor, rows: np.ndarray, labels: np.ndarray,
               tolerance: float) -> dict[str, Any]:
    """Ask the server about ``rows``, in one batch and one row alone, and compare with ``reference``."""
    expected = np.asarray(reference(rows), dtype=np.float64)
    report: dict[str, Any] = {"passed": False, "requests": 2, "rows": len(rows)}
    try:
        batch = np.asarray(post_rows(url, rows)["probabilities"])
        single = np.asarray(post_rows(url, rows[:1])["probabilities"])
    except (urllib.error.URLError, OSError, KeyError, ValueError) as error:
        return {**report, "problems": [f"the request failed: {type(error).__name__}: {error}"]}
    if batch.shape != expected.shape or single.shape != expected[:1].shape:
        return {**report, "problems": [f"answers of shape {batch.shape} and {single.shape}, "
                                       f"expected {expected.shape} and {expected[:1].shape}"]}
    difference = float(max(np.abs(batch - expected).max(), np.abs(single - expected[:1]).max()))
    report.update(passed=difference <= tolerance, max_abs_diff=difference,
                  accuracy=float((batch.argmax(axis=1) == labels).mean()))
    if not report["passed"]:
        report["problems"] = [f"answers differ from the run's own predictions by {difference:.3g} "
                              f"(tolerance {tolerance:g})"]
    return report


def deploy(artifact: ModelArtifact, dataset: Dataset, run: RunContext,
           params: {{ cookiecutter.__class_prefix }}DeployerParams) -> dict[str, Any]:
    """Start the server, smoke-test it against the run's own predictor, then stop (or serve, with --serve)."""
    predict, reference = run.load_predictor(artifact), run.load_predictor(artifact)
    if predict is None or reference is None:
        raise ValueError(f"no component of the stack runs {artifact.format!r} models ({artifact.path}); "
                         "add one that does (a framework or compressor whose aios_load_predictor handles it)")
    rows, labels = _smoke_rows(dataset, params.smoke_rows)
    server = ModelServer(predict, dataset.class_names, params.host, params.port, artifact.format).start()
    try:
        report = {"url": server.url, "protocol": "http", "endpoint": f"{server.url}/predict", "artifact": artifact.name,
                  "format": artifact.format, "smoke_test": smoke_test(server.url, reference, rows, labels,
                                                                      params.tolerance)}
        run.log.info("deployed %s at %s; smoke test: %s", artifact.path, server.url, report["smoke_test"])
        if not report["smoke_test"]["passed"]:
            raise RuntimeError(f"the server at {server.url} failed its smoke test: {report['smoke_test']}")
        if run.options.serve:
            print(f"serving {artifact.path} at {server.url}/predict; press Ctrl-C to stop", flush=True)
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                report["served"] = True
    finally:
        server.stop()
    return report


def _smoke_rows(dataset: Dataset, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``count`` rows of the first non-empty split of test, validation, train."""
    for x, y in ((dataset.x_test, dataset.y_test), (dataset.x_val, dataset.y_val), (dataset.x_train, dataset.y_train)):
        if len(y):
            return np.ascontiguousarray(x[:count], dtype=np.float32), np.asarray(y[:count])
    raise ValueError("the dataset has no rows to smoke-test the server with")
