"""What both of the protocol's forms (REST and gRPC) share: settings, the server's state, and one inference path.

``ServerState.infer`` is the one place a request meets a model: it finds the model,
turns the request's input into the float32 rows the model takes, runs them through the
model's batcher and builds the outputs (probabilities, and labels as BYTES). The HTTP
app and the gRPC service only decode and encode around it.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from aios_serve._batching import INLINE_ROWS, LATER, Batcher
from aios_serve._metrics import UNKNOWN_MODEL, ServerMetrics
from aios_serve._repository import LoadedModel, ModelRepository, RepositoryError
from aios_serve._tensors import InferenceRequest, OutputTensor, ProtocolError
from aios_serve.drift import DriftMonitor

log = logging.getLogger("aios.serve")

SERVER_NAME = "aios-serve"
EXTENSIONS = ["model_repository", "metrics", "raw_input", "binary_tensor_data"]
INTO_FP32 = ("FP32", "FP16", "BOOL", "INT8", "INT16", "UINT8", "UINT16")
"""Input datatypes every value of which float32 holds exactly; others are refused rather than rounded."""
_INTO_FP32 = frozenset(INTO_FP32)
_FLOAT32 = np.dtype(np.float32)
_add = np.add.reduce
Later = Callable[[LoadedModel | None, list[OutputTensor] | None, BaseException | None], None]
"""How ``infer_now`` hands over a request's outcome when it ran later in the turn (model and outputs, or the error)."""
SWEEP_SECONDS = 0.1
"""How often body deadlines are checked (a deadline is met to within this)."""


@dataclass(frozen=True)
class ServerSettings:
    """How the server batches, limits and authenticates; the same fields as the deployer's parameters."""

    max_batch_size: int = 32
    max_delay_ms: float = 2.0
    max_body_bytes: int = 8 * 1024 * 1024
    token: str | None = None
    inference_threads: int = 2
    repository_api: bool | None = None
    """Loading and unloading over the API; None: on when a token is set, else off."""
    max_inflight_bytes: int = 64 * 1024 * 1024
    """Bodies being read or parsed at once, in bytes; a request beyond it gets 503 and Retry-After."""
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 2048
    grpc_port: int | None = None
    """Port of the gRPC service (0: a free one); None: no gRPC."""
    workers: int = 1
    """Server processes sharing the port (``serve`` only; each loads the models itself)."""

    @property
    def repository_api_on(self) -> bool:
        return bool(self.token) if self.repository_api is None else self.repository_api


class ServerState:
    """The state behind both forms of the protocol: repository, batchers, metrics, settings."""

    def __init__(self, repository: ModelRepository, settings: ServerSettings, version: str) -> None:
        self.repository = repository
        self.settings = settings
        self.version = version
        self.metrics = ServerMetrics()
        self.executor: ThreadPoolExecutor | None = None
        self.parser: ThreadPoolExecutor | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        """The server's event loop, once started."""
        self.batchers: dict[tuple[str, str], Batcher] = {}
        self.inflight_bytes = 0
        self.stopping = False
        self.drain_seconds = 30.0
        self.grpc_host = "127.0.0.1"
        self.grpc_port: int | None = None
        """The gRPC service's port once it listens."""
        self.reuse_port = False
        self.grpc_server: Any = None
        self._grpc_stopping: asyncio.Task[Any] | None = None
        self._readers: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.drift = DriftMonitor(self.metrics.registry)
        self.on_prediction: Callable[[LoadedModel, np.ndarray, np.ndarray], None] | None = self.drift.observe
        """Called after every prediction with (model, rows, probabilities): the place for monitors (drift)."""
        self.answer_now: Callable[..., tuple[int, bytes, bytes] | None | object] | None = None
        """The HTTP app's synchronous answer to an inference request whose body arrived whole (set by
        ``create_app``; the connection calls it before starting an ASGI task): ``answer_now(scope, body,
        reply=None)``; with ``reply``, it may return ``LATER`` and answer through ``reply`` later in the turn."""
        for model in repository.loaded():
            self.metrics.set_loaded(model.name, model.version, True)

    def start(self) -> None:
        """In the server's event loop, before serving."""
        self.loop = asyncio.get_running_loop()
        self.executor = ThreadPoolExecutor(max(1, self.settings.inference_threads), thread_name_prefix="aios-serve")
        self.parser = ThreadPoolExecutor(2, thread_name_prefix="aios-serve-parse")
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for pool in (self.executor, self.parser):
            if pool is not None:
                pool.shutdown(wait=True)

    # ------------------------------------------------------------ body deadlines
    # A deadline per request costs a timer handle and a context manager on the hot path; instead each
    # reading task is noted with its deadline in a dict, and one sweeper task cancels overdue readers.
    def begin_reading(self, seconds: float) -> asyncio.Task[Any] | None:
        """Note the current task as reading a body until ``seconds`` from now (shorter once stopping)."""
        task = asyncio.current_task()
        if task is not None:
            if self.stopping:
                seconds = min(seconds, self.stopping_grace)
            self._readers[task] = asyncio.get_running_loop().time() + seconds
        return task

    def end_reading(self, task: asyncio.Task[Any] | None) -> None:
        self._readers.pop(task, None)  # type: ignore[arg-type]

    def overdue(self, task: asyncio.Task[Any] | None) -> bool:
        """Whether ``task`` was cancelled by the sweeper for missing its deadline (and take that back)."""
        if task is None or task not in self._expired:
            return False
        self._expired.discard(task)
        task.uncancel()
        return True

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            now = loop.time()
            for task, deadline in list(self._readers.items()):
                if deadline <= now and task not in self._expired:
                    self._expired.add(task)
                    task.cancel()

    @property
    def stopping_grace(self) -> float:
        """How long a body still being read may take once shutdown began (within the drain time)."""
        return max(0.1, min(5.0, self.drain_seconds / 2))

    def begin_shutdown(self) -> None:
        """Readiness turns false and bodies still being read get ``stopping_grace`` to arrive (then 503)."""
        self.stopping = True
        loop = asyncio.get_running_loop()
        if self.grpc_server is not None and self._grpc_stopping is None:  # no new RPCs; those in flight finish
            self._grpc_stopping = loop.create_task(self.grpc_server.stop(self.drain_seconds))
        cut = loop.time() + self.stopping_grace
        for task, deadline in list(self._readers.items()):
            self._readers[task] = min(deadline, cut)

    async def stop_grpc(self) -> None:
        if self.grpc_server is not None:
            if self._grpc_stopping is None:
                self._grpc_stopping = asyncio.get_running_loop().create_task(self.grpc_server.stop(self.drain_seconds))
            await self._grpc_stopping

    def ready(self) -> bool:
        """Server ready: not shutting down, and every model version not unloaded on purpose is loaded."""
        return not self.stopping and all(row["state"] == "READY" or row.get("reason") == "unloaded"
                                         for row in self.repository.index())

    def batcher(self, model: LoadedModel) -> Batcher:
        key = (model.name, model.version)
        batcher = self.batchers.get(key)
        if batcher is None or batcher.model is not model:
            assert self.executor is not None
            batcher = Batcher(model, self.executor, self.metrics.model(model.name, model.version),
                              self.settings.max_batch_size, self.settings.max_delay_ms)
            self.batchers[key] = batcher
        return batcher

    def authorized(self, values: list[str]) -> bool:
        """Whether the ``Authorization`` values carry the bearer token (or none is needed).

        Exactly one value must be sent: two headers are refused everywhere, never read as
        the first or the last of them depending on the route.
        """
        token = self.settings.token
        if not token:
            return True
        if len(values) != 1:
            return False
        scheme, _, given = values[0].partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())

    def admit(self, size: int) -> None:
        """Count ``size`` body bytes as in flight, or refuse with 503 when the admission limit is reached."""
        if self.inflight_bytes and self.inflight_bytes + size > self.settings.max_inflight_bytes:
            raise ProtocolError(f"the server is reading {self.inflight_bytes} bytes of requests already (limit "
                                f"{self.settings.max_inflight_bytes}); retry shortly", 503, {"Retry-After": "1"})
        self.inflight_bytes += size

    def lookup(self, name: str, version: str | None) -> tuple[LoadedModel, Batcher]:
        """The model a request names and its batcher; an unknown one is counted and raised (404 / 400)."""
        try:
            model = self.repository.get(name, version)
        except RepositoryError as error:
            self.metrics.error(UNKNOWN_MODEL if error.status == 404 else name, error.status)
            raise
        batcher = self.batchers.get((model.name, model.version))
        if batcher is None or batcher.model is not model:
            batcher = self.batcher(model)
        return model, batcher

    async def infer(self, name: str, version: str | None,
                    decode: Callable[[], Awaitable[tuple[InferenceRequest, float]]]) -> tuple[
                        LoadedModel, InferenceRequest, list[OutputTensor]]:
        """Decode a request for model ``name``, run it through the model's batcher, build its outputs.

        ``decode`` returns the request and the ``time.perf_counter()`` at which its bytes were all received: the
        request is timed from there (``finish``), as ``infer_now``'s are, so a body that follows its headers late
        (the client's upload, its scheduling) is not counted as the server's time."""
        model, batcher = self.lookup(name, version)
        batcher.metrics.requests += 1
        batcher.incoming += 1  # batcher.arriving(), inline: this is the hot path
        queued = False
        try:
            request, started = await decode()
            rows = model_rows(model, request)
            names = output_names(model, request)
            queued = True
            probabilities = await batcher.infer(rows)
            outputs = self.finish(model, batcher, rows, probabilities, names, started)
        except BaseException as error:
            self.count_error(name, error)
            raise
        finally:
            if not queued:
                batcher.abandon()
        return model, request, outputs

    def infer_now(self, name: str, version: str | None, request: InferenceRequest, started: float,
                  later: Later | None = None) -> tuple[LoadedModel, list[OutputTensor]] | None | object:
        """``infer`` without waiting, for a request already decoded: its model runs it at once in this thread
        when the batcher would (a quick model, nothing queued or arriving, few rows); None when it would not
        (nothing counted then: the caller takes the ``infer`` path).

        With ``later``, the request may instead run at the end of this turn of the event loop together with
        the others read in it (``Batcher.soon``): then ``LATER`` is returned and ``later(model, outputs,
        None)`` or ``later(None, None, error)`` is called once its model call is done."""
        model, batcher = self.lookup(name, version)
        inputs = request.inputs
        if not batcher.runs_at_once() or (len(inputs) == 1 and inputs[0].shape and inputs[0].shape[0] > INLINE_ROWS):
            return None
        batcher.metrics.requests += 1
        try:
            rows = model_rows(model, request)
            names = output_names(model, request)
            if later is not None and batcher.max_batch_size > 1:
                batcher.soon(rows, lambda probabilities, error: self._finish_later(
                    name, model, batcher, rows, probabilities, error, names, started, later))
                return LATER
            probabilities = batcher.run_now(rows)
            return model, self.finish(model, batcher, rows, probabilities, names, started)
        except BaseException as error:
            self.count_error(name, error)
            raise

    def _finish_later(self, name: str, model: LoadedModel, batcher: Batcher, rows: np.ndarray,
                      probabilities: np.ndarray | None, error: BaseException | None, names: list[str],
                      started: float, later: Later) -> None:
        """``finish`` for a request that ran in ``Batcher.soon``; the outcome goes to ``later``."""
        try:
            if error is not None:
                raise error
            assert probabilities is not None
            outputs = self.finish(model, batcher, rows, probabilities, names, started)
        except Exception as failure:  # noqa: BLE001 - this request's answer is the error
            self.count_error(name, failure)
            later(None, None, failure)
            return
        later(model, outputs, None)

    def finish(self, model: LoadedModel, batcher: Batcher, rows: np.ndarray, probabilities: np.ndarray,
               names: list[str], started: float) -> list[OutputTensor]:
        """Check the model's answer, tell ``on_prediction``, build the outputs, time the request (from ``started``:
        when its bytes were all received)."""
        if not all_finite(probabilities):
            log.error("model %s version %s produced NaN or infinity", model.name, model.version)
            raise ProtocolError("the model produced NaN or infinity for these rows", 500)
        if self.on_prediction is not None:
            self.on_prediction(model, rows, probabilities)
        outputs = model_outputs(model, probabilities, names)
        batcher.metrics.latency.observe(time.perf_counter() - started)
        return outputs

    def count_error(self, name: str, error: BaseException) -> None:
        """Count an inference that failed with ``error`` under its status: the protocol's 4xx, else 500
        (a cancelled request is not an error)."""
        if isinstance(error, (ProtocolError, RepositoryError)):
            self.metrics.error(name, error.status)
        elif isinstance(error, Exception):
            self.metrics.error(name, 500)


def all_finite(values: np.ndarray) -> bool:
    """Whether a float array holds no NaN or infinity: one float64 sum in the common case (float32 values
    cannot overflow it, so a finite sum means finite values), the exact check otherwise. A small array is
    summed as Python floats (numpy's reduction costs about 1.5 µs to start, several times more)."""
    if values.size <= 64:
        return math.isfinite(sum(values.ravel().tolist())) or bool(np.isfinite(values).all())
    return math.isfinite(_add(values, None, np.float64)) or bool(np.isfinite(values).all())


def model_rows(model: LoadedModel, request: InferenceRequest) -> np.ndarray:
    """The request's one input as the float32 rows (n, features) the model takes, or a ProtocolError."""
    inputs = request.inputs
    if len(inputs) != 1:
        raise ProtocolError(f"model {model.name!r} takes exactly one input, {model.input_name!r}")
    tensor = inputs[0]
    name = tensor.name
    if name != model.input_name:
        raise ProtocolError(f"unexpected input {name!r}: model {model.name!r} takes {model.input_name!r}")
    if tensor.datatype not in _INTO_FP32:
        raise ProtocolError(f"input {name!r} has datatype {tensor.datatype}; the model takes FP32 (also accepted, "
                            f"as they convert to it exactly: {', '.join(INTO_FP32[1:])})")
    shape, width = tensor.shape, model.num_features
    if len(shape) != 2 or shape[0] < 1 or shape[1] < 1 or (width is not None and shape[1] != width):
        raise ProtocolError(f"input {name!r} has shape {shape}; the model takes [n, {width or 'features'}] "
                            "with n >= 1")
    rows = tensor.array.reshape(shape)
    if tensor.finite and not request.parameters:  # float32 the typed JSON decoder checked finite
        return rows
    if request.parameters and request.flag("raw"):
        if model.scaling is None:
            raise ProtocolError(f"model {model.name!r} has no recorded preprocessing to apply to raw rows")
        shift, divisor = model.scaling
        rows = (rows - shift) / divisor
    if rows.dtype != _FLOAT32:
        with np.errstate(over="ignore", invalid="ignore"):
            rows = rows.astype(np.float32)  # exact for the accepted datatypes; beyond float32's range: inf
    if not all_finite(rows):
        raise ProtocolError(f"input {name!r} holds NaN, infinity or values beyond float32's range")
    return rows if rows.flags.c_contiguous else np.ascontiguousarray(rows)


def output_names(model: LoadedModel, request: InferenceRequest) -> list[str]:
    known = model.output_names
    if request.outputs is None:
        return known
    names = [o.name for o in request.outputs]
    unknown = [o for o in names if o not in known]
    if unknown:
        raise ProtocolError(f"unknown output {unknown[0]!r}; model {model.name!r} has outputs {known}")
    return names


def model_outputs(model: LoadedModel, probabilities: np.ndarray, names: list[str]) -> list[OutputTensor]:
    outputs = []
    for name in names:
        if name == model.output_name:
            outputs.append(OutputTensor(name, "FP32", list(probabilities.shape), probabilities))
        else:
            labels = model.labels[probabilities.argmax(axis=1)]
            outputs.append(OutputTensor("label", "BYTES", [len(labels)], labels))
    return outputs


def server_metadata(state: ServerState) -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": state.version, "extensions": EXTENSIONS}
