"""The ASGI application: the Open Inference Protocol's REST endpoints over a model repository.

Starlette (routing, requests, responses) served by uvicorn. Every error is the
protocol's ``{"error": "..."}`` with a 4xx status; an unexpected exception is logged
and answered with a bare 500 ``{"error": "internal error"}``, never a traceback.
Inference (``POST .../infer``) skips Starlette: it reads the body itself (with a
deadline and the admission limit), decodes JSON or the binary tensor data extension
(large bodies in a thread, off the event loop) and answers in the form asked for.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aios_serve import _repository_api as repository_api
from aios_serve._batching import LATER
from aios_serve._inference import ServerSettings, ServerState, server_metadata
from aios_serve._openapi import openapi_document
from aios_serve._repository import ModelRepository, RepositoryError
from aios_serve._tensors import HEADER_LENGTH, InferenceRequest, ProtocolError, decode_http, encode_http

__all__ = ["ProtocolError", "ServerSettings", "create_app"]

log = logging.getLogger("aios.serve")

OFF_LOOP_BYTES = 64 * 1024
"""Bodies larger than this are decoded in a thread, so the event loop keeps answering meanwhile."""
_HEADER_LENGTH = HEADER_LENGTH.encode()
_MAX_TARGETS = 1024
_clock = time.perf_counter
_UNAUTHORIZED = "missing or wrong bearer token (one header: Authorization: Bearer <token>)"


def _authorization(scope: dict[str, Any]) -> list[str]:
    return [value.decode("latin-1") for key, value in scope["headers"] if key == b"authorization"]


def _inference_headers(scope: dict[str, Any]) -> tuple[list[str], str | None, str | None]:
    """``Authorization`` values, ``Content-Length`` and ``Inference-Header-Content-Length``, in one pass."""
    headers = scope["headers"]
    named = dict(headers)  # one C call; when a name repeats, the loop below finds every value
    if len(named) == len(headers):
        authorization, length, header_length = named.get(b"authorization"), named.get(b"content-length"), \
            named.get(_HEADER_LENGTH)
        return ([] if authorization is None else [authorization.decode("latin-1")],
                None if length is None else length.decode("latin-1"),
                None if header_length is None else header_length.decode("latin-1"))
    authorization, length, header_length = [], None, None
    for key, value in headers:
        if key == b"content-length":
            length = value.decode("latin-1")
        elif key == b"authorization":
            authorization.append(value.decode("latin-1"))
        elif key == _HEADER_LENGTH:
            header_length = value.decode("latin-1")
    return authorization, length, header_length


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def read_body(state: ServerState, declared: str | None, receive: Callable[[], Awaitable[dict[str, Any]]]) -> bytes:
    """The request body: at most ``max_body_bytes`` (413), within ``body_timeout`` (408), within the admission
    limit (503); the caller releases ``len(body)`` from ``state.inflight_bytes``."""
    settings = state.settings
    limit = settings.max_body_bytes
    if declared is not None:
        if not declared.isdigit():
            raise ProtocolError("invalid Content-Length header")
        if int(declared) > limit:
            raise ProtocolError(f"request body of {declared} bytes exceeds the limit of {limit} bytes "
                                "(max_body_bytes); send fewer rows per request", 413)
    chunks: list[bytes] = []
    size = 0
    task = state.begin_reading(settings.body_timeout)
    try:
        message = await receive()
        if message["type"] == "http.request" and not message.get("more_body", False):  # the whole body at once
            body = message.get("body", b"")
            if len(body) > limit:
                raise ProtocolError(f"request body exceeds the limit of {limit} bytes (max_body_bytes); "
                                    "send fewer rows per request", 413)
            state.admit(len(body))
            return body
        while True:
            if chunks:
                message = await receive()
            if message["type"] == "http.disconnect":
                raise ProtocolError("client disconnected while sending the body")
            chunk = message.get("body", b"")
            if size + len(chunk) > limit:
                raise ProtocolError(f"request body exceeds the limit of {limit} bytes (max_body_bytes); "
                                    "send fewer rows per request", 413)
            state.admit(len(chunk))
            size += len(chunk)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
    except asyncio.CancelledError:
        state.inflight_bytes -= size
        if not state.overdue(task):
            raise
        if state.stopping:
            raise ProtocolError("the server is shutting down; retry on another replica", 503,
                                {"Retry-After": "1"}) from None
        raise ProtocolError(f"the request body did not arrive within {settings.body_timeout:g} s", 408) from None
    except BaseException:
        state.inflight_bytes -= size
        raise
    finally:
        state.end_reading(task)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def decode_body(state: ServerState, body: bytes, header_length: str | None) -> InferenceRequest:
    """Decode, in a thread when the body is large; the body's bytes leave the admission count after."""
    try:
        if len(body) > OFF_LOOP_BYTES:
            return await asyncio.get_running_loop().run_in_executor(state.parser, decode_http, body, header_length)
        return decode_http(body, header_length)
    finally:
        state.inflight_bytes -= len(body)


def _infer_target(path: str) -> tuple[str, str | None] | None:
    """``(name, version)`` of ``/v2/models/{name}[/versions/{version}]/infer``, else None."""
    parts = path.split("/")
    if len(parts) == 5 and parts[1] == "v2" and parts[2] == "models" and parts[3]:
        return parts[3], None
    if len(parts) == 7 and parts[1] == "v2" and parts[2] == "models" and parts[4] == "versions" and parts[3] and parts[5]:
        return parts[3], parts[5]
    return None


async def send_json(send: Any, status: int, answer: Any, headers: dict[str, str] | None = None) -> None:
    content = orjson.dumps(answer)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode()),
                            *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())]})
    await send({"type": "http.response.body", "body": content})


class _InferenceFirst:
    """The ASGI entry: ``POST .../infer`` straight to the inference path, everything else to Starlette.

    Inference is the one hot path; skipping Starlette's request objects, middleware and
    router for it removes a measurable share of the server's own cost per request. Its behaviour (auth, limits,
    errors as ``{"error": ...}``) is the same as every other endpoint's. A path ending in ``/`` is answered
    as the same path without it (never a redirect built from the ``Host`` header).
    """

    def __init__(self, state: ServerState, app: Starlette) -> None:
        self.server = state
        self.app = app
        self.state = app.state
        self._targets: dict[str, tuple[str, str | None]] = {}
        """Inference paths seen, and their (model, version): parsed once each (at most ``_MAX_TARGETS``)."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if scope["method"] == "POST":
                target = self._targets.get(path)
                if target is not None:
                    await self._infer(scope, receive, send, *target)
                    return
            if len(path) > 1 and path.endswith("/"):
                scope = {**scope, "path": path.rstrip("/") or "/", "raw_path": None}
            if scope["method"] == "POST" and scope["path"].endswith("/infer"):
                target = _infer_target(scope["path"])
                if target is not None:
                    if len(self._targets) < _MAX_TARGETS and scope["path"] == path:
                        self._targets[path] = target
                    await self._infer(scope, receive, send, *target)
                    return
        await self.app(scope, receive, send)

    def answer_now(self, scope: dict[str, Any], body: bytes, reply: Callable[[tuple[int, bytes, bytes]], None]
                   | None = None) -> tuple[int, bytes, bytes] | None | object:
        """The answer (status, header lines, body) to an inference request whose body has arrived whole, computed
        without a task when its model runs it at once in the event loop (``ServerState.infer_now``); None:
        serve it through the ASGI app (``__call__``) instead. The same checks, errors and metrics as ``_infer``.

        uvicorn starts a task per request; for a quick model that task, the ASGI messages and the
        middleware cost more than the model call. The connection (``_connections``) asks here first.

        With ``reply``, the request may run at the end of this turn of the event loop in one model call with
        the others read in the turn (``Batcher.soon``): then ``LATER`` is returned and ``reply(answer)``
        follows within the turn.
        """
        target = self._targets.get(scope["path"])
        size = len(body)
        if target is None or size > OFF_LOOP_BYTES:
            return None
        state = self.server
        started = _clock()
        authorization, length, header_length = _inference_headers(scope)
        try:
            settings = state.settings
            if settings.token and not state.authorized(authorization):
                state.metrics.http_error(401)
                return _error(401, _UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})
            name, version = target
            try:
                if length is not None and not length.isdigit():
                    raise ProtocolError("invalid Content-Length header")
                if size > settings.max_body_bytes:
                    raise ProtocolError(f"request body exceeds the limit of {settings.max_body_bytes} bytes "
                                        "(max_body_bytes); send fewer rows per request", 413)
                state.admit(size)  # as read_body does (503 while others' bodies fill the admission limit)
                try:
                    request = decode_http(body, header_length)
                finally:
                    state.inflight_bytes -= size
            except ProtocolError as error:
                state.lookup(name, version)[1].metrics.requests += 1  # counted as ``infer`` counts it
                state.metrics.error(name, error.status)
                raise
            answered = state.infer_now(name, version, request, started, None if reply is None else (
                lambda model, outputs, error: reply(self._answer(scope, request, model, outputs, error))))
            if answered is None or answered is LATER:
                return answered
            model, outputs = answered  # type: ignore[misc]
        except (ProtocolError, RepositoryError) as error:
            state.metrics.http_error(error.status)
            return _error(error.status, str(error), getattr(error, "headers", None))
        except Exception:
            log.exception("unexpected error answering POST %s", scope["path"])
            state.metrics.http_error(500)
            return _error(500, "internal error")
        return self._answer(scope, request, model, outputs, None)

    def _answer(self, scope: dict[str, Any], request: InferenceRequest, model: Any, outputs: Any,
                error: BaseException | None) -> tuple[int, bytes, bytes]:
        """``answer_now``'s answer once its model ran (at once or later in the turn): the outputs encoded, or the
        error."""
        try:
            if error is None:
                content, header_length = encode_http(model.name, model.version, request, outputs)
                return 200, _answer_lines(content, header_length), content
        except Exception as failure:  # noqa: BLE001 - answered below, as answer_now would
            error = failure
        if isinstance(error, (ProtocolError, RepositoryError)):
            self.server.metrics.http_error(error.status)
            return _error(error.status, str(error), getattr(error, "headers", None))
        log.error("unexpected error answering POST %s", scope["path"], exc_info=error)
        self.server.metrics.http_error(500)
        return _error(500, "internal error")

    async def _infer(self, scope: dict[str, Any], receive: Any, send: Any, name: str, version: str | None) -> None:
        state = self.server
        authorization, length, header_length = _inference_headers(scope)
        if state.settings.token and not state.authorized(authorization):
            state.metrics.http_error(401)
            await send_json(send, 401, {"error": _UNAUTHORIZED}, {"WWW-Authenticate": "Bearer"})
            return

        async def decode() -> tuple[InferenceRequest, float]:
            body = await read_body(state, length, receive)
            received = _clock()  # timed from here, as answer_now times a request whose body arrived whole
            return await decode_body(state, body, header_length), received

        try:
            model, request, outputs = await state.infer(name, version, decode)
            content, header_length = encode_http(model.name, model.version, request, outputs)
        except (ProtocolError, RepositoryError) as error:
            state.metrics.http_error(error.status)
            await send_json(send, error.status, {"error": str(error)}, getattr(error, "headers", None))
            return
        except Exception:
            log.exception("unexpected error answering POST %s", scope["path"])
            state.metrics.http_error(500)
            await send_json(send, 500, {"error": "internal error"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": _answer_headers(content, header_length)})
        await send({"type": "http.response.body", "body": content})


def _answer_lines(content: bytes, header_length: int | None) -> bytes:
    """``_answer_headers`` as raw header lines (for ``answer_now``)."""
    if header_length is None:
        return b"content-length: %d\r\ncontent-type: application/json\r\n" % len(content)
    return b"content-length: %d\r\ncontent-type: application/octet-stream\r\n%s: %d\r\n" % (
        len(content), _HEADER_LENGTH, header_length)


def _answer_headers(content: bytes, header_length: int | None) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-length", str(len(content)).encode())]
    if header_length is None:
        headers.append((b"content-type", b"application/json"))
    else:
        headers += [(b"content-type", b"application/octet-stream"), (_HEADER_LENGTH, str(header_length).encode())]
    return headers


def _error(status: int, message: str, extra: dict[str, str] | None = None) -> tuple[int, bytes, bytes]:
    """An error answer for ``answer_now``: status, header lines, ``{"error": message}``."""
    content = orjson.dumps({"error": message})
    lines = [b"content-type: application/json\r\ncontent-length: %d\r\n" % len(content),
             *(b"%s: %s\r\n" % (k.lower().encode(), v.encode()) for k, v in (extra or {}).items())]
    return status, b"".join(lines), content


def _route(state: ServerState, auth: bool = True) -> Callable[[Callable[..., Awaitable[Response]]], Callable[[Request], Awaitable[Response]]]:
    """Wrap an endpoint: bearer-token check, protocol errors as JSON, no tracebacks out."""

    def wrap(endpoint: Callable[..., Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            if auth and not state.authorized(_authorization(request.scope)):
                state.metrics.http_error(401)
                return JSONResponse({"error": _UNAUTHORIZED}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
            try:
                return await endpoint(state, request, **request.path_params)
            except (ProtocolError, RepositoryError) as error:
                state.metrics.http_error(error.status)
                return JSONResponse({"error": str(error)}, status_code=error.status,
                                    headers=getattr(error, "headers", None))
            except Exception:
                log.exception("unexpected error answering %s %s", request.method, request.url.path)
                state.metrics.http_error(500)
                return JSONResponse({"error": "internal error"}, status_code=500)

        return handle

    return wrap


async def _json_body(state: ServerState, request: Request) -> Any:
    """A small JSON body of the repository endpoints (``{}`` when empty)."""
    body = await read_body(state, _header(request.scope, b"content-length"), request.receive)
    state.inflight_bytes -= len(body)
    if not body.strip():
        return {}
    try:
        return orjson.loads(body)
    except (ValueError, RecursionError) as error:
        raise ProtocolError(f"request body is not valid JSON ({error})"[:300]) from None


async def _method_not_allowed(state: ServerState, request: Request, name: str, version: str | None = None) -> Response:
    raise ProtocolError(f"method {request.method} not allowed on {request.url.path}; use POST", 405)


# ---------------------------------------------------------------- health and metadata
async def server_live(state: ServerState, request: Request) -> Response:
    return JSONResponse({"live": True})


async def server_ready(state: ServerState, request: Request) -> Response:
    """Ready (200) while not shutting down and every model version not unloaded on purpose is loaded, else 503."""
    ready = state.ready()
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


async def server_metadata_endpoint(state: ServerState, request: Request) -> Response:
    return JSONResponse(server_metadata(state))


async def model_metadata(state: ServerState, request: Request, name: str, version: str | None = None) -> Response:
    model = state.repository.get(name, version)
    return JSONResponse(model.metadata(state.repository.versions(name)))


async def model_ready(state: ServerState, request: Request, name: str, version: str | None = None) -> Response:
    try:
        state.repository.get(name, version)
    except RepositoryError as error:
        if error.status == 404:
            raise
        return JSONResponse({"name": name, "ready": False, "error": str(error)}, status_code=400)
    return JSONResponse({"name": name, "ready": True})


async def metrics(state: ServerState, request: Request) -> Response:
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


async def openapi(state: ServerState, request: Request) -> Response:
    return JSONResponse(openapi_document(state.version))


# ---------------------------------------------------------------- repository extension
async def repository_index(state: ServerState, request: Request) -> Response:
    """Every known model version and its state; ``{"ready": true}`` lists the loaded ones only."""
    body = await _json_body(state, request)
    ready = body.get("ready", False) if isinstance(body, dict) else False
    if not isinstance(ready, bool):
        raise ProtocolError("\"ready\" must be true or false")
    rows = state.repository.index()
    return JSONResponse([row for row in rows if row["state"] == "READY"] if ready else rows)


async def repository_load(state: ServerState, request: Request, name: str) -> Response:
    """Load a known model, or add one from ``{"parameters": {"run_dir": PATH}}`` (named ``name``)."""
    repository_api.check_enabled(state)
    body = await _json_body(state, request)
    parameters = body.get("parameters") if isinstance(body, dict) else None
    if parameters is not None and not isinstance(parameters, dict):
        raise ProtocolError("\"parameters\" must be a JSON object")
    run_dir, version = repository_api.string_parameters(parameters or {}, "run_dir", "version")
    model = await repository_api.load(state, name, run_dir, version)
    return JSONResponse({"name": model.name, "version": model.version, "state": "READY"})


async def repository_unload(state: ServerState, request: Request, name: str) -> Response:
    repository_api.check_enabled(state)
    body = await _json_body(state, request)
    parameters = body.get("parameters") if isinstance(body, dict) else None
    (version,) = repository_api.string_parameters(parameters if isinstance(parameters, dict) else {}, "version")
    return JSONResponse({"name": name, "unloaded": repository_api.unload(state, name, version)})


# ---------------------------------------------------------------- the app
async def _share_metrics(state: ServerState) -> None:
    """With several workers: write this one's metrics for the others every second."""
    while True:
        await asyncio.sleep(1.0)
        await asyncio.get_running_loop().run_in_executor(state.parser, state.metrics.share)


def create_app(repository: ModelRepository, settings: ServerSettings | None = None, version: str = "",
               state: ServerState | None = None) -> Any:
    """The ASGI app serving ``repository``'s loaded models with ``settings`` (and gRPC beside, when configured)."""
    settings = settings or ServerSettings()
    state = state or ServerState(repository, settings, version)
    r = lambda endpoint, auth=True: _route(state, auth)(endpoint)
    model = "/v2/models/{name}"
    versioned = "/v2/models/{name}/versions/{version}"
    routes = [
        Route(model + "/infer", r(_method_not_allowed)),  # POST is served by _InferenceFirst
        Route(versioned + "/infer", r(_method_not_allowed)),
        Route("/v2/health/live", r(server_live, auth=False), methods=["GET"]),
        Route("/v2/health/ready", r(server_ready, auth=False), methods=["GET"]),
        Route("/v2", r(server_metadata_endpoint), methods=["GET"]),
        Route("/v2/openapi.json", r(openapi), methods=["GET"]),
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
        state.start()
        sharing = None
        try:
            if settings.grpc_port is not None:
                from aios_serve._grpc import start_grpc

                state.grpc_server = await start_grpc(state, state.grpc_host, settings.grpc_port, state.reuse_port)
            sharing = asyncio.create_task(_share_metrics(state)) if state.metrics.share_dir else None
            yield
        finally:
            await state.stop_grpc()
            if sharing is not None:
                sharing.cancel()
                state.metrics.share()
            state.stop()

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        message = {404: f"no such endpoint: {request.method} {request.url.path}",
                   405: f"method {request.method} not allowed on {request.url.path}"}.get(error.status_code, error.detail)
        state.metrics.http_error(error.status_code)
        return JSONResponse({"error": message}, status_code=error.status_code, headers=error.headers)

    async def internal_error(request: Request, error: Exception) -> Response:
        log.error("unexpected error answering %s %s: %s", request.method, request.url.path, error)
        state.metrics.http_error(500)
        return JSONResponse({"error": "internal error"}, status_code=500)

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: http_error, Exception: internal_error})
    app.router.redirect_slashes = False  # a redirect's Location would be built from the Host header
    app.state.server = state
    first = _InferenceFirst(state, app)
    state.answer_now = first.answer_now
    return first
