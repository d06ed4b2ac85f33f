"""The protocol's gRPC form: ``inference.GRPCInferenceService`` on a port of its own, in the HTTP server's event loop.

The calls arrive through ``aios_serve._grpc_server`` (gRPC's transport over HTTP/2); this
module decodes the messages, answers them and encodes the answers.

ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata and ModelInfer
(``contents`` or ``raw_input_contents``; outputs always as ``raw_output_contents``), from
the protocol's published .proto (``proto/open_inference_grpc.proto``, compiled into
``_oip_descriptor``), and the model repository extension's RepositoryIndex (its messages
from ``proto/model_repository_grpc.proto``) with RepositoryModelLoad and
RepositoryModelUnload (``aios_serve._repository_api``: the HTTP routes' rules, parameters
``run_dir`` and ``version`` as ``string_param``). The messages live in a descriptor pool of
their own, so a client registering the same ``inference.*`` names (tritonclient) can
share the process.

It shares everything with the REST form: the repository, the batchers, the bearer
token (``authorization`` metadata), the metrics and the inference path
(``ServerState.infer_now`` and ``ServerState.infer``), and the admission limit: a ModelInfer request's bytes count in
``state.inflight_bytes`` with the HTTP bodies being read until it is answered, and one that
does not fit gets RESOURCE_EXHAUSTED with the retry hint in its trailing metadata
(``grpc-retry-pushback-ms``, which gRPC's retry policy honours, and ``retry-after``, as
HTTP's header). Other errors map to gRPC status codes: 400 INVALID_ARGUMENT,
401 UNAUTHENTICATED, 404 NOT_FOUND, 413 RESOURCE_EXHAUSTED, 503 UNAVAILABLE, 500 INTERNAL.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from functools import cache
from typing import Any

import numpy as np

from aios_serve import _repository_api as repository_api
from aios_serve._batching import LATER
from aios_serve._grpc_server import (DEADLINE_EXCEEDED, INTERNAL, INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED,
                                     RESOURCE_EXHAUSTED, UNAUTHENTICATED, UNAVAILABLE, UNIMPLEMENTED, GrpcError,
                                     GrpcServer, Headers, Reply)
from aios_serve._inference import ServerState, server_metadata
from aios_serve._repository import RepositoryError
from aios_serve._tensors import (ALL_DATATYPES, DATATYPES, InferenceRequest, InputTensor, ProtocolError,
                                 RequestedOutput, _shape, from_raw, serialize_bytes)

log = logging.getLogger("aios.serve")

SERVICE = "inference.GRPCInferenceService"
_CODES = {400: INVALID_ARGUMENT, 401: UNAUTHENTICATED, 403: PERMISSION_DENIED, 404: NOT_FOUND, 408: DEADLINE_EXCEEDED,
          413: RESOURCE_EXHAUSTED, 503: UNAVAILABLE}
_CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
             "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
             "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents"}
"""Where ``InferTensorContents`` holds each datatype (FP16 has no field: it goes as raw contents)."""
RETRY_HINT = (("grpc-retry-pushback-ms", "1000"), ("retry-after", "1"))
"""Trailing metadata of a request refused by the admission limit: retry in a second."""


@cache
def messages() -> dict[str, Any]:
    """The protocol's message classes, from the compiled .proto, in a descriptor pool of this module's own."""
    from google.protobuf import descriptor_pool, message_factory

    from aios_serve._oip_descriptor import FILE_DESCRIPTOR, REPOSITORY_DESCRIPTOR

    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(FILE_DESCRIPTOR)
    pool.AddSerializedFile(REPOSITORY_DESCRIPTOR)
    service = pool.FindServiceByName(SERVICE)
    classes = {}
    for method in service.methods:
        classes[method.input_type.name] = message_factory.GetMessageClass(method.input_type)
        classes[method.output_type.name] = message_factory.GetMessageClass(method.output_type)
    for name in ("RepositoryIndexRequest", "RepositoryIndexResponse", "RepositoryModelLoadRequest",
                 "RepositoryModelLoadResponse", "RepositoryModelUnloadRequest", "RepositoryModelUnloadResponse"):
        classes[name] = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"inference.{name}"))
    return classes


_NO_PARAMETERS: dict[str, Any] = {}


def _parameters(mapping: Any) -> dict[str, Any]:
    if not mapping:
        return _NO_PARAMETERS
    return {key: getattr(value, value.WhichOneof("parameter_choice")) for key, value in mapping.items()
            if value.WhichOneof("parameter_choice")}


def request_from_proto(message: Any) -> InferenceRequest:
    """A ``ModelInferRequest`` as the inference path's request (the tensors' bytes read without a copy).

    Repeated fields are read by slicing (``field[:]``), which protobuf's upb runtime answers
    several times faster than iterating them.
    """
    raw = message.raw_input_contents[:]
    tensors = message.inputs
    if raw and len(raw) != len(tensors):
        raise ProtocolError(f"the request has {len(tensors)} inputs but {len(raw)} raw_input_contents; "
                            "send one raw content per input, or none")
    inputs = []
    for index, tensor in enumerate(tensors):
        name, datatype = tensor.name, tensor.datatype
        if datatype not in ALL_DATATYPES:
            raise ProtocolError(f"input {name!r} has datatype {datatype!r}; the protocol's datatypes are "
                                + ", ".join(ALL_DATATYPES))
        shape = _shape(tensor.shape[:], name)
        if raw:
            array = from_raw(raw[index], datatype, shape, name)
        else:
            field = _CONTENTS.get(datatype)
            if field is None:
                raise ProtocolError(f"input {name!r}: {datatype} goes in raw_input_contents (contents has no field for it)")
            values = getattr(tensor.contents, field)
            if datatype == "BYTES":
                array = np.empty(len(values), dtype=object)
                array[:] = values[:]
            else:
                array = np.array(values[:], dtype=DATATYPES[datatype])
            count = int(np.prod(shape))
            if array.size != count:
                raise ProtocolError(f"input {name!r}: contents hold {array.size} values, shape {shape} needs {count}")
        inputs.append(InputTensor(name, datatype, shape, array))
    if not inputs:
        raise ProtocolError("missing input: the request needs inputs")
    outputs = [RequestedOutput(o.name) for o in message.outputs] or None
    return InferenceRequest(inputs, outputs, message.id or None, _parameters(message.parameters))


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_ID, _RAW_OUTPUT = b"\x1a", b"\x32"
"""Tags of ``ModelInferResponse.id`` (field 3) and ``raw_output_contents`` (field 6), length-delimited."""
_TEMPLATES_KEPT = 256


class ResponseEncoder:
    """``ModelInferResponse`` bytes, built from a cached serialized head plus the outputs' raw bytes.

    Protobuf's encoding lets fields come in any order and appends repeated fields met
    later, so the head (model name, version and the output tensors' metadata: the same for
    every answer of one model with the same rows and outputs) is serialized once by the
    message class and each answer appends ``id`` and its ``raw_output_contents`` to it.
    The result parses to the same message as building it field by field (a test checks),
    at a fifth of the cost.
    """

    def __init__(self, message_class: Any) -> None:
        self.message_class = message_class
        self.heads: dict[tuple[Any, ...], bytes] = {}

    def head(self, model: Any, outputs: list[Any]) -> bytes:
        key = (model.name, model.version, *((o.name, o.datatype, *o.shape) for o in outputs))
        head = self.heads.get(key)
        if head is None:
            if len(self.heads) >= _TEMPLATES_KEPT:
                self.heads.clear()
            tensor = self.message_class.InferOutputTensor
            head = self.heads[key] = self.message_class(
                model_name=model.name, model_version=model.version,
                outputs=[tensor(name=o.name, datatype=o.datatype, shape=o.shape) for o in outputs]).SerializeToString()
        return head

    def encode(self, model: Any, request_id: str | None, outputs: list[Any]) -> bytes:
        parts = [self.head(model, outputs)]
        if request_id:
            data = request_id.encode()
            parts += (_ID, _varint(len(data)), data)
        for output in outputs:
            data = serialize_bytes(output.array) if output.datatype == "BYTES" else output.array.tobytes()
            parts += (_RAW_OUTPUT, _varint(len(data)), data)
        return b"".join(parts)


class InferenceService:
    """The RPCs: ``service(path, message, headers, reply)`` is the transport's handler.

    Each RPC method takes the decoded request and the call's headers and returns the answer
    message (``RepositoryModelLoad`` is a coroutine, run as a task) or raises ``GrpcError``.
    ModelInfer is answered as HTTP's inference is: at once when its model is quick and idle
    (``ServerState.infer_now``), with the others of this turn of the event loop when several
    clients are sending, else through the batcher in a task (``ServerState.infer``).
    """

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.m = messages()
        self.encoder = ResponseEncoder(self.m["ModelInferResponse"])
        self.rpcs = {f"/{SERVICE}/{name}": (self.m[f"{name}Request"].FromString, getattr(self, name))
                     for name in ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata",
                                  "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload")}
        self.infer_path = f"/{SERVICE}/ModelInfer"
        self.infer_request = self.m["ModelInferRequest"].FromString
        self.tasks: set[asyncio.Task[Any]] = set()

    def __call__(self, path: str, message: bytes, headers: Headers, reply: Reply, together: bool) -> bytes | None:
        if path == self.infer_path:
            return self.ModelInfer(self._decode(self.infer_request, message, path), len(message), headers, reply,
                                   together)
        rpc = self.rpcs.get(path)
        if rpc is None:
            raise GrpcError(UNIMPLEMENTED, f"no method {path}; this server serves {SERVICE}")
        decode, method = rpc
        answer = method(self._decode(decode, message, path), headers)
        if inspect.isawaitable(answer):
            self._later(answer, reply)
            return None
        return answer.SerializeToString()

    @staticmethod
    def _decode(decode: Any, message: bytes, path: str) -> Any:
        try:
            return decode(message)
        except Exception:  # protobuf's DecodeError
            raise GrpcError(INVALID_ARGUMENT, f"the request is not a valid {path.rsplit('/', 1)[-1]}Request message") from None

    def _later(self, answer: Any, reply: Reply) -> None:
        async def call() -> None:
            try:
                message = await answer
            except GrpcError as error:
                reply(None, error)
            except Exception:
                log.exception("unexpected error answering a gRPC call")
                reply(None, self._error(500, "internal error"))
            else:
                reply(message if isinstance(message, bytes) else message.SerializeToString(), None)

        task = asyncio.get_running_loop().create_task(call())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _error(self, status: int, message: str, code: int | None = None,
               trailing: tuple[tuple[str, str], ...] = ()) -> GrpcError:
        """The call's error for an HTTP-style status, counted in the metrics as HTTP's are."""
        self.state.metrics.http_error(status)
        return GrpcError(code if code is not None else _CODES.get(status, INTERNAL), message, trailing)

    def _authorize(self, headers: Headers) -> None:
        if not self.state.settings.token:
            return
        if not self.state.authorized([value.decode("latin-1") for key, value in headers if key == b"authorization"]):
            raise self._error(401, "missing or wrong bearer token (metadata authorization: Bearer <token>)")

    def ServerLive(self, request: Any, headers: Headers) -> Any:
        return self.m["ServerLiveResponse"](live=True)

    def ServerReady(self, request: Any, headers: Headers) -> Any:
        return self.m["ServerReadyResponse"](ready=self.state.ready())

    def ModelReady(self, request: Any, headers: Headers) -> Any:
        self._authorize(headers)
        try:
            self.state.repository.get(request.name, request.version or None)
        except RepositoryError as error:
            if error.status == 404:
                raise self._error(404, str(error)) from None
            return self.m["ModelReadyResponse"](ready=False)
        return self.m["ModelReadyResponse"](ready=True)

    def ServerMetadata(self, request: Any, headers: Headers) -> Any:
        self._authorize(headers)
        return self.m["ServerMetadataResponse"](**server_metadata(self.state))

    def ModelMetadata(self, request: Any, headers: Headers) -> Any:
        self._authorize(headers)
        try:
            model = self.state.repository.get(request.name, request.version or None)
        except RepositoryError as error:
            raise self._error(error.status, str(error)) from None
        metadata = model.metadata(self.state.repository.versions(request.name))
        response = self.m["ModelMetadataResponse"]
        tensor = response.TensorMetadata
        return response(name=metadata["name"], versions=metadata["versions"], platform=metadata["platform"],
                        inputs=[tensor(**t) for t in metadata["inputs"]],
                        outputs=[tensor(**t) for t in metadata["outputs"]])

    def RepositoryIndex(self, request: Any, headers: Headers) -> Any:
        """Every known model version and its state (``ready``: the loaded ones only); one repository, so
        ``repository_name`` selects nothing."""
        self._authorize(headers)
        response = self.m["RepositoryIndexResponse"]
        entry = response.ModelIndex
        return response(models=[entry(name=row["name"], version=row["version"], state=row["state"],
                                      reason=row.get("reason", ""))
                                for row in self.state.repository.index()
                                if not request.ready or row["state"] == "READY"])

    def RepositoryModelLoad(self, request: Any, headers: Headers) -> Any:
        """Load a known model, or add the run directory of parameter ``run_dir`` as ``model_name``, as
        ``POST /v2/repository/models/{name}/load`` does; other parameters (tritonclient's ``config``, files)
        are not read, as over HTTP."""
        self._authorize(headers)
        try:
            repository_api.check_enabled(self.state)
            run_dir, version = repository_api.string_parameters(_parameters(request.parameters), "run_dir", "version")
        except (ProtocolError, RepositoryError) as error:
            raise self._error(error.status, str(error)) from None

        async def load() -> Any:
            try:
                await repository_api.load(self.state, request.model_name, run_dir, version)
            except (ProtocolError, RepositoryError) as error:
                raise self._error(error.status, str(error)) from None
            return self.m["RepositoryModelLoadResponse"]()

        return load()

    def RepositoryModelUnload(self, request: Any, headers: Headers) -> Any:
        """Unload every version of ``model_name`` (or parameter ``version`` only), as
        ``POST /v2/repository/models/{name}/unload`` does."""
        self._authorize(headers)
        try:
            repository_api.check_enabled(self.state)
            (version,) = repository_api.string_parameters(_parameters(request.parameters), "version")
            repository_api.unload(self.state, request.model_name, version)
        except (ProtocolError, RepositoryError) as error:
            raise self._error(error.status, str(error)) from None
        return self.m["RepositoryModelUnloadResponse"]()

    def ModelInfer(self, request: Any, size: int, headers: Headers, reply: Reply, together: bool) -> bytes | None:
        """The answer, serialized (``ResponseEncoder``), or None when ``reply`` will carry it (``together``: it may
        share a model call with the others of this turn)."""
        self._authorize(headers)
        state = self.state
        try:
            state.admit(size)
        except ProtocolError as error:
            raise self._error(error.status, str(error), RESOURCE_EXHAUSTED, RETRY_HINT) from None
        name, version = request.model_name, request.model_version or None
        try:
            try:
                parsed = request_from_proto(request)
            except ProtocolError as error:
                state.lookup(name, version)  # an unknown model is the error to report
                state.count_error(name, error)
                raise
            started = time.perf_counter()

            def later(model: Any, outputs: Any, error: BaseException | None) -> None:
                state.inflight_bytes -= size
                reply(*self._outcome(name, model, parsed, outputs, error))

            done = state.infer_now(name, version, parsed, started, later if together else None)
        except Exception as error:
            state.inflight_bytes -= size
            raise self._outcome(name, None, None, None, error)[1] from None
        if done is LATER:
            return None
        if done is not None:
            state.inflight_bytes -= size
            model, outputs = done  # type: ignore[misc]
            return self.encoder.encode(model, parsed.id, outputs)

        async def infer() -> bytes:
            async def decode() -> tuple[InferenceRequest, float]:
                return parsed, started
            try:
                model, _, outputs = await state.infer(name, version, decode)
            except Exception as error:
                raise self._outcome(name, None, None, None, error)[1] from None
            finally:
                state.inflight_bytes -= size
            return self.encoder.encode(model, parsed.id, outputs)

        self._later(infer(), reply)
        return None

    def _outcome(self, name: str, model: Any, parsed: Any, outputs: Any,
                 error: BaseException | None) -> tuple[bytes | None, GrpcError | None]:
        """An inference's answer, or its error as the call's."""
        if error is None:
            return self.encoder.encode(model, parsed.id, outputs), None
        if isinstance(error, GrpcError):
            return None, error
        if isinstance(error, (ProtocolError, RepositoryError)):
            return None, self._error(error.status, str(error))
        log.error("unexpected error answering ModelInfer for %s: %r", name, error)
        return None, self._error(500, "internal error")


async def start_grpc(state: ServerState, host: str, port: int, reuse_port: bool = False) -> GrpcServer:
    """Start the service on ``host:port`` (0: a free port, recorded in ``state.grpc_port``) in the running loop."""
    settings = state.settings
    server = GrpcServer(InferenceService(state), max_message=settings.max_body_bytes,
                        max_connections=settings.max_connections, header_timeout=settings.header_timeout,
                        body_timeout=settings.body_timeout)
    try:
        state.grpc_port = await server.start(host, port, reuse_port)
    except OSError as error:
        raise RepositoryError(f"cannot listen for gRPC on {host}:{port} ({error.strerror or error}); "
                              "pick another grpc_port") from None
    return server
