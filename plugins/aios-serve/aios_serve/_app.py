"""The ASGI application: the Open Inference Protocol's REST endpoints over a model repository.

Starlette (routing, requests, responses) served by uvicorn. Every error is the
protocol's ``{"error": "..."}`` with a 4xx status; an unexpected exception is logged
and answered with a bare 500 ``{"error": "internal error"}``, never a traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aios_serve._batching import Batcher
from aios_serve._metrics import UNKNOWN_MODEL, ServerMetrics
from aios_serve.drift import DriftMonitor
from aios_serve._openapi import openapi_document
from aios_serve._repository import LoadedModel, ModelRepository, RepositoryError, spec_from_run_dir

log = logging.getLogger("aios.serve")

SERVER_NAME = "aios-serve"
EXTENSIONS = ["model_repository", "metrics", "raw_input"]


@dataclass(frozen=True)
class ServerSettings:
    """How the server batches, limits and authenticates; the same fields as the deployer's parameters."""

    max_batch_size: int = 32
    max_delay_ms: float = 2.0
    max_body_bytes: int = 8 * 1024 * 1024
    token: str | None = None
    inference_threads: int = 2
    repository_api: bool = True


class ProtocolError(Exception):
    """A request the protocol answers with ``{"error": message}`` and ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class _Server:
    """The state behind the routes: repository, batchers, metrics, settings."""

    def __init__(self, repository: ModelRepository, settings: ServerSettings, version: str) -> None:
        self.repository = repository
        self.settings = settings
        self.version = version
        self.metrics = ServerMetrics()
        self.drift = DriftMonitor(self.metrics.registry)
        self.executor: ThreadPoolExecutor | None = None
        self.batchers: dict[tuple[str, str], Batcher] = {}
        for model in repository.loaded():
            self.metrics.set_loaded(model.name, model.version, True)

    def batcher(self, model: LoadedModel) -> Batcher:
        key = (model.name, model.version)
        batcher = self.batchers.get(key)
        if batcher is None or batcher.model is not model:
            assert self.executor is not None
            batcher = Batcher(model, self.executor, self.metrics.model(model.name, model.version),
                              self.settings.max_batch_size, self.settings.max_delay_ms)
            self.batchers[key] = batcher
        return batcher

    # ------------------------------------------------------------ request plumbing
    def authorized(self, header: str) -> bool:
        """Whether an ``Authorization`` header value carries the server's bearer token (or none is needed)."""
        token = self.settings.token
        if not token:
            return True
        scheme, _, given = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())

    async def read_json(self, request: Request, required: bool = True) -> Any:
        """The request body as JSON, refusing bodies over ``max_body_bytes`` before reading them whole."""
        return await self.read_json_from(request.headers.get("content-length"), request.stream(), required)

    async def read_json_from(self, declared: str | None, stream: AsyncIterator[bytes], required: bool = True) -> Any:
        limit = self.settings.max_body_bytes
        if declared is not None:
            if not declared.isdigit():
                raise ProtocolError("invalid Content-Length header")
            if int(declared) > limit:
                raise ProtocolError(f"request body of {declared} bytes exceeds the limit of {limit} bytes "
                                    "(max_body_bytes); send fewer rows per request", 413)
        chunks, size = [], 0
        try:
            async for chunk in stream:
                size += len(chunk)
                if size > limit:
                    raise ProtocolError(f"request body exceeds the limit of {limit} bytes (max_body_bytes); "
                                        "send fewer rows per request", 413)
                chunks.append(chunk)
        except ClientDisconnect:
            raise ProtocolError("client disconnected while sending the body") from None
        body = b"".join(chunks)
        if not body.strip():
            if required:
                raise ProtocolError("request body is empty; send a JSON object with \"inputs\"")
            return {}
        try:
            return orjson.loads(body)
        except (ValueError, RecursionError) as error:
            raise ProtocolError(f"request body is not valid JSON ({error})"[:300]) from None


def _route(server: _Server, auth: bool = True) -> Callable[[Callable[..., Awaitable[Response]]], Callable[[Request], Awaitable[Response]]]:
    """Wrap an endpoint: bearer-token check, protocol errors as JSON, no tracebacks out."""

    def wrap(endpoint: Callable[..., Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            if auth and not server.authorized(request.headers.get("authorization", "")):
                return JSONResponse({"error": "missing or wrong bearer token (Authorization: Bearer <token>)"},
                                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
            try:
                return await endpoint(server, request, **request.path_params)
            except (ProtocolError, RepositoryError) as error:
                return JSONResponse({"error": str(error)}, status_code=error.status)
            except Exception:
                log.exception("unexpected error answering %s %s", request.method, request.url.path)
                return JSONResponse({"error": "internal error"}, status_code=500)

        return handle

    return wrap


# ---------------------------------------------------------------- inference
def _parse_request(body: Any, model: LoadedModel) -> tuple[np.ndarray, list[str], Any]:
    """The float32 rows, the output names asked for and the request id, or a ProtocolError."""
    if not isinstance(body, dict):
        raise ProtocolError("request body must be a JSON object with \"inputs\"")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ProtocolError(f"missing input: the request needs \"inputs\": [{{\"name\": \"{model.input_name}\", "
                            "\"shape\": [n, features], \"datatype\": \"FP32\", \"data\": [...]}]")
    tensor = inputs[0]
    if len(inputs) != 1 or not isinstance(tensor, dict):
        raise ProtocolError(f"model {model.name!r} takes exactly one input, {model.input_name!r}")
    name = tensor.get("name")
    if name != model.input_name:
        raise ProtocolError(f"unexpected input {name!r}: model {model.name!r} takes {model.input_name!r}")
    datatype = tensor.get("datatype")
    if datatype != "FP32":
        raise ProtocolError(f"input {name!r} has datatype {datatype!r}; the model takes FP32")
    shape = tensor.get("shape")
    width = model.num_features
    if (not isinstance(shape, list) or len(shape) != 2
            or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
            or shape[0] < 1 or (width is not None and shape[1] != width) or shape[1] < 1):
        raise ProtocolError(f"input {name!r} has shape {shape!r}; the model takes [n, {width or 'features'}] "
                            "with n >= 1")
    parameters = tensor.get("parameters") or {}
    if isinstance(parameters, dict) and "binary_data_size" in parameters:
        raise ProtocolError("binary tensor data is not supported; send \"data\" as JSON numbers")
    data = tensor.get("data")
    if not isinstance(data, list):
        raise ProtocolError(f"input {name!r} needs \"data\": a JSON array of numbers in row-major order")
    values = _flat_numbers(data)
    if values is None:
        try:
            values = np.asarray(data)
            if values.dtype.kind in "iu":
                values = values.astype(np.float64)
        except (ValueError, TypeError, RecursionError, OverflowError):
            raise ProtocolError(f"input {name!r}: \"data\" is not a regular array of numbers") from None
    if values.dtype.kind not in "iuf":
        raise ProtocolError(f"input {name!r}: \"data\" must hold numbers only (FP32), found {values.dtype.kind!r} values"
                            if values.size else f"input {name!r}: \"data\" is empty")
    expected = shape[0] * shape[1]
    if values.size != expected:
        raise ProtocolError(f"input {name!r}: \"data\" holds {values.size} values, shape {shape} needs {expected}")
    rows = values.reshape(shape)
    if _flag(body, "raw"):
        if model.scaling is None:
            raise ProtocolError(f"model {model.name!r} has no recorded preprocessing to apply to raw rows")
        shift, divisor = model.scaling
        rows = (rows - shift) / divisor
    if not np.abs(rows).max() <= _FLOAT32_MAX:  # false for NaN too
        raise ProtocolError(f"input {name!r} holds NaN, infinity or values beyond float32's range")
    rows = rows.astype(np.float32)
    known = [model.output_name] + (["label"] if model.labels is not None else [])
    wanted = body.get("outputs")
    if wanted is None:
        outputs = known
    else:
        if not isinstance(wanted, list) or not all(isinstance(o, dict) for o in wanted):
            raise ProtocolError("\"outputs\" must be a list of {\"name\": ...} objects")
        outputs = [o.get("name") for o in wanted]
        unknown = [o for o in outputs if o not in known]
        if unknown:
            raise ProtocolError(f"unknown output {unknown[0]!r}; model {model.name!r} has outputs {known}")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError("\"id\" must be a string")
    return np.ascontiguousarray(rows), outputs, request_id


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _flat_numbers(data: list[Any]) -> np.ndarray | None:
    """``data`` as float64 when it is a flat list of JSON numbers (the common case, checked cheaply), else None."""
    for value in data:
        kind = type(value)
        if kind is not float and kind is not int:
            return None
    try:
        return np.array(data, dtype=np.float64)
    except (OverflowError, ValueError):
        return None


def _flag(body: dict[str, Any], key: str) -> bool:
    parameters = body.get("parameters")
    if parameters is None:
        return False
    if not isinstance(parameters, dict):
        raise ProtocolError("\"parameters\" must be a JSON object")
    value = parameters.get(key, False)
    if not isinstance(value, bool):
        raise ProtocolError(f"parameter {key!r} must be true or false")
    return value


def _response(model: LoadedModel, probabilities: np.ndarray, outputs: list[str], request_id: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {"model_name": model.name, "model_version": model.version, "outputs": []}
    if request_id is not None:
        answer["id"] = request_id
    for name in outputs:
        if name == model.output_name:
            answer["outputs"].append({"name": name, "datatype": "FP32", "shape": list(probabilities.shape),
                                      "data": probabilities.ravel()})
        else:
            labels = model.labels[probabilities.argmax(axis=1)].tolist()
            answer["outputs"].append({"name": "label", "datatype": "BYTES", "shape": [len(labels)], "data": labels})
    return answer


async def _infer(server: _Server, declared_length: str | None, stream: AsyncIterator[bytes], name: str,
                 version: str | None) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        model = server.repository.get(name, version)
    except RepositoryError as error:
        server.metrics.error(UNKNOWN_MODEL if error.status == 404 else name, error.status)
        raise
    batcher = server.batcher(model)
    metrics = batcher.metrics
    metrics.requests += 1
    batcher.arriving()
    queued = False
    try:
        body = await server.read_json_from(declared_length, stream)
        rows, outputs, request_id = _parse_request(body, model)
        queued = True
        probabilities = await batcher.infer(rows)
        if not math.isfinite(float(probabilities.sum())):
            log.error("model %s version %s produced NaN or infinity", model.name, model.version)
            raise ProtocolError("the model produced NaN or infinity for these rows", 500)
    except ProtocolError as error:
        server.metrics.error(name, error.status)
        raise
    except Exception:
        server.metrics.error(name, 500)
        raise
    finally:
        if not queued:
            batcher.abandon()
    answer = _response(model, probabilities, outputs, request_id)
    server.drift.observe(model, rows, probabilities)
    metrics.latency.observe(time.perf_counter() - started)
    return answer


async def _body_chunks(receive: Callable[[], Awaitable[dict[str, Any]]]) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


def _infer_target(path: str) -> tuple[str, str | None] | None:
    """``(name, version)`` of ``/v2/models/{name}[/versions/{version}]/infer``, else None."""
    parts = path.split("/")
    if len(parts) == 5 and parts[1] == "v2" and parts[2] == "models" and parts[3]:
        return parts[3], None
    if len(parts) == 7 and parts[1] == "v2" and parts[2] == "models" and parts[4] == "versions" and parts[3] and parts[5]:
        return parts[3], parts[5]
    return None


class _InferenceFirst:
    """The ASGI entry: ``POST .../infer`` straight to the inference path, everything else to Starlette.

    Inference is the one hot path; skipping Starlette's request objects, middleware and
    router for it removes a measurable share of the server's own cost per request. Its behaviour (auth, limits,
    errors as ``{"error": ...}``) is the same as every other endpoint's.
    """

    def __init__(self, server: _Server, app: Starlette) -> None:
        self.server = server
        self.app = app
        self.state = app.state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].endswith("/infer"):
            target = _infer_target(scope["path"])
            if target is not None:
                await self._infer(scope, receive, send, *target)
                return
        await self.app(scope, receive, send)

    async def _infer(self, scope: dict[str, Any], receive: Any, send: Any, name: str, version: str | None) -> None:
        headers = dict(scope["headers"])
        extra: list[tuple[bytes, bytes]] = []
        status = 200
        if not self.server.authorized(headers.get(b"authorization", b"").decode("latin-1")):
            status, answer = 401, {"error": "missing or wrong bearer token (Authorization: Bearer <token>)"}
            extra.append((b"www-authenticate", b"Bearer"))
        else:
            length = headers.get(b"content-length")
            try:
                answer = await _infer(self.server, length.decode("latin-1") if length is not None else None,
                                      _body_chunks(receive), name, version)
            except (ProtocolError, RepositoryError) as error:
                status, answer = error.status, {"error": str(error)}
            except Exception:
                log.exception("unexpected error answering POST %s", scope["path"])
                status, answer = 500, {"error": "internal error"}
        content = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(content)).encode()), *extra]})
        await send({"type": "http.response.body", "body": content})


async def _method_not_allowed(server: _Server, request: Request, name: str, version: str | None = None) -> Response:
    raise ProtocolError(f"method {request.method} not allowed on {request.url.path}; use POST", 405)


# ---------------------------------------------------------------- health and metadata
async def server_live(server: _Server, request: Request) -> Response:
    return JSONResponse({"live": True})


async def server_ready(server: _Server, request: Request) -> Response:
    return JSONResponse({"ready": True})


async def server_metadata(server: _Server, request: Request) -> Response:
    return JSONResponse({"name": SERVER_NAME, "version": server.version, "extensions": EXTENSIONS})


async def model_metadata(server: _Server, request: Request, name: str, version: str | None = None) -> Response:
    model = server.repository.get(name, version)
    return JSONResponse(model.metadata(server.repository.versions(name)))


async def model_ready(server: _Server, request: Request, name: str, version: str | None = None) -> Response:
    try:
        server.repository.get(name, version)
    except RepositoryError as error:
        if error.status == 404:
            raise
        return JSONResponse({"name": name, "ready": False, "error": str(error)}, status_code=400)
    return JSONResponse({"name": name, "ready": True})


async def metrics(server: _Server, request: Request) -> Response:
    return Response(generate_latest(server.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def openapi(server: _Server, request: Request) -> Response:
    return JSONResponse(openapi_document(server.version))


# ---------------------------------------------------------------- repository extension
async def repository_index(server: _Server, request: Request) -> Response:
    await server.read_json(request, required=False)
    return JSONResponse(server.repository.index())


async def repository_load(server: _Server, request: Request, name: str) -> Response:
    """Load a known model, or add one from ``{"parameters": {"run_dir": PATH}}`` (named ``name``)."""
    if not server.settings.repository_api:
        raise ProtocolError("the repository API is disabled on this server (repository_api: false)", 403)
    body = await server.read_json(request, required=False)
    parameters = body.get("parameters") if isinstance(body, dict) else None
    if parameters is not None and not isinstance(parameters, dict):
        raise ProtocolError("\"parameters\" must be a JSON object")
    run_dir = (parameters or {}).get("run_dir")
    version = (parameters or {}).get("version")
    if run_dir is not None and not isinstance(run_dir, str) or version is not None and not isinstance(version, str):
        raise ProtocolError("parameters run_dir and version must be strings")
    loop = asyncio.get_running_loop()
    if run_dir:
        spec = await loop.run_in_executor(server.executor, lambda: spec_from_run_dir(run_dir, name=name, version=version))
        model = await loop.run_in_executor(server.executor, server.repository.add, spec)
    else:
        model = await loop.run_in_executor(server.executor, server.repository.load, name, version)
    assert model is not None
    server.metrics.set_loaded(model.name, model.version, True)
    log.info("loaded model %s version %s from %s", model.name, model.version, model.spec.source)
    return JSONResponse({"name": model.name, "version": model.version, "state": "READY"})


async def repository_unload(server: _Server, request: Request, name: str) -> Response:
    if not server.settings.repository_api:
        raise ProtocolError("the repository API is disabled on this server (repository_api: false)", 403)
    body = await server.read_json(request, required=False)
    parameters = body.get("parameters") if isinstance(body, dict) else None
    version = parameters.get("version") if isinstance(parameters, dict) else None
    if version is not None and not isinstance(version, str):
        raise ProtocolError("parameter version must be a string")
    versions = server.repository.unload(name, version)
    for unloaded in versions:
        server.metrics.set_loaded(name, unloaded, False)
        server.batchers.pop((name, unloaded), None)
    log.info("unloaded model %s versions %s", name, versions)
    return JSONResponse({"name": name, "unloaded": versions})


# ---------------------------------------------------------------- the app
async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    message = {404: f"no such endpoint: {request.method} {request.url.path}",
               405: f"method {request.method} not allowed on {request.url.path}"}.get(error.status_code, error.detail)
    return JSONResponse({"error": message}, status_code=error.status_code, headers=error.headers)


async def _internal_error(request: Request, error: Exception) -> Response:
    log.error("unexpected error answering %s %s: %s", request.method, request.url.path, error)
    return JSONResponse({"error": "internal error"}, status_code=500)


def create_app(repository: ModelRepository, settings: ServerSettings | None = None, version: str = "") -> Any:
    """The ASGI app serving ``repository``'s loaded models with ``settings``."""
    settings = settings or ServerSettings()
    server = _Server(repository, settings, version)
    r = lambda endpoint, auth=True: _route(server, auth)(endpoint)
    model = "/v2/models/{name}"
    versioned = "/v2/models/{name}/versions/{version}"
    routes = [
        Route(model + "/infer", r(_method_not_allowed)),  # POST is served by _InferenceFirst
        Route(versioned + "/infer", r(_method_not_allowed)),
        Route("/v2/health/live", r(server_live, auth=False), methods=["GET"]),
        Route("/v2/health/ready", r(server_ready, auth=False), methods=["GET"]),
        Route("/v2", r(server_metadata), methods=["GET"]),
        Route("/v2/openapi.json", r(openapi, auth=False), methods=["GET"]),
        Route(model, r(model_metadata), methods=["GET"]),
        Route(versioned, r(model_metadata), methods=["GET"]),
        Route(model + "/ready", r(model_ready), methods=["GET"]),
        Route(versioned + "/ready", r(model_ready), methods=["GET"]),
        Route("/v2/repository/index", r(repository_index), methods=["POST"]),
        Route("/v2/repository/models/{name}/load", r(repository_load), methods=["POST"]),
        Route("/v2/repository/models/{name}/unload", r(repository_unload), methods=["POST"]),
        Route("/metrics", r(metrics), methods=["GET"]),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        server.executor = ThreadPoolExecutor(max(1, settings.inference_threads), thread_name_prefix="aios-serve")
        try:
            yield
        finally:
            server.executor.shutdown(wait=True)

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error, Exception: _internal_error})
    app.state.server = server
    return _InferenceFirst(server, app)
