"""The gRPC form: the shipped descriptor is the published .proto compiled, and the service shares auth and metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from aios_serve_test_helpers import FEATURES, MODEL

grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

TOKEN = "s3cret-token"


def test_the_shipped_descriptors_are_the_proto_files_compiled() -> None:
    pytest.importorskip("grpc_tools")
    from aios_serve import _oip_descriptor
    from aios_serve.proto.generate import PROTOS, compile_descriptor
    from google.protobuf import descriptor_pb2

    for name, proto in PROTOS.items():
        shipped = descriptor_pb2.FileDescriptorProto.FromString(getattr(_oip_descriptor, name))
        assert shipped == descriptor_pb2.FileDescriptorProto.FromString(compile_descriptor(proto)), name
    published = descriptor_pb2.FileDescriptorProto.FromString(_oip_descriptor.FILE_DESCRIPTOR)
    assert [m.name for m in published.service[0].method] == ["ServerLive", "ServerReady", "ModelReady",
                                                             "ServerMetadata", "ModelMetadata", "ModelInfer"]


@pytest.fixture(scope="module")
def running(run_dir: Path) -> Iterator:  # type: ignore[type-arg]
    from aios_serve.server import BackgroundServer, ServerSettings

    with BackgroundServer([run_dir], settings=ServerSettings(token=TOKEN, grpc_port=0)) as server:
        assert server.grpc_target is not None
        yield server


@pytest.fixture(scope="module")
def secured(running) -> str:  # type: ignore[no-untyped-def]
    return running.grpc_target


def test_grpc_needs_the_token_except_for_health(secured: str, rows: np.ndarray, reference) -> None:
    client = grpcclient.InferenceServerClient(secured)
    tensor = grpcclient.InferInput("input", [2, FEATURES], "FP32")
    tensor.set_data_from_numpy(rows[:2])
    assert client.is_server_live() and client.is_server_ready()
    with pytest.raises(InferenceServerException) as refused:
        client.infer(MODEL, [tensor])
    assert refused.value.status() == "StatusCode.UNAUTHENTICATED"
    with pytest.raises(InferenceServerException):
        client.get_model_metadata(MODEL)
    headers = {"authorization": f"Bearer {TOKEN}"}
    result = client.infer(MODEL, [tensor], headers=headers)
    np.testing.assert_allclose(result.as_numpy("probabilities"), reference(rows[:2]), atol=1e-6)
    assert client.get_model_metadata(MODEL, headers=headers).name == MODEL
    client.close()


def test_grpc_contents_are_accepted_as_well_as_raw_contents(rows: np.ndarray) -> None:
    """``contents.fp32_contents`` instead of raw bytes (what a client without the raw form sends)."""
    from aios_serve._grpc import messages, request_from_proto

    m = messages()
    request = m["ModelInferRequest"](model_name=MODEL)
    tensor = request.inputs.add(name="input", datatype="FP32", shape=[1, FEATURES])
    tensor.contents.fp32_contents.extend(rows[0].tolist())
    parsed = request_from_proto(request)
    np.testing.assert_array_equal(parsed.inputs[0].array, rows[0])


def test_the_encoded_answer_is_the_message_built_field_by_field() -> None:
    """``ResponseEncoder`` appends ``id`` and raw contents to a cached head: the same message as building it."""
    from types import SimpleNamespace

    from aios_serve._grpc import ResponseEncoder, messages
    from aios_serve._tensors import OutputTensor, serialize_bytes

    response = messages()["ModelInferResponse"]
    model = SimpleNamespace(name=MODEL, version="3")
    probabilities = np.arange(6, dtype=np.float32).reshape(2, 3)
    labels = np.array(["a", "\u00e9" * 100], dtype=object)  # 200 bytes: a two-byte length
    outputs = [OutputTensor("probabilities", "FP32", [2, 3], probabilities), OutputTensor("label", "BYTES", [2], labels)]
    encoder = ResponseEncoder(response)
    for request_id in (None, "request-7", "r" * 300):
        tensor = response.InferOutputTensor
        expected = response(model_name=MODEL, model_version="3", id=request_id or "",
                            outputs=[tensor(name="probabilities", datatype="FP32", shape=[2, 3]),
                                     tensor(name="label", datatype="BYTES", shape=[2])],
                            raw_output_contents=[probabilities.tobytes(), serialize_bytes(labels)])
        assert response.FromString(encoder.encode(model, request_id, outputs)) == expected
    assert len(encoder.heads) == 1


def test_grpc_errors_are_counted_in_the_same_metrics(running) -> None:  # type: ignore[no-untyped-def]
    import httpx

    client = grpcclient.InferenceServerClient(running.grpc_target)
    with pytest.raises(InferenceServerException):
        client.get_server_metadata()
    with pytest.raises(InferenceServerException) as missing:
        client.get_model_metadata("no-such-model", headers={"authorization": f"Bearer {TOKEN}"})
    assert missing.value.status() == "StatusCode.NOT_FOUND"
    client.close()
    text = httpx.get(running.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    assert 'aios_serve_http_errors_total{status="401"}' in text
    assert 'aios_serve_http_errors_total{status="404"}' in text


def test_grpc_repository_index_lists_the_served_versions(running) -> None:  # type: ignore[no-untyped-def]
    client = grpcclient.InferenceServerClient(running.grpc_target)
    headers = {"authorization": f"Bearer {TOKEN}"}
    with pytest.raises(InferenceServerException) as refused:
        client.get_model_repository_index()
    assert refused.value.status() == "StatusCode.UNAUTHENTICATED"
    index = client.get_model_repository_index(headers=headers, as_json=True)
    assert [(m["name"], m["state"]) for m in index["models"]] == [(MODEL, "READY")]
    assert index["models"][0]["version"] == running.state.repository.index()[0]["version"]
    client.close()


def test_grpc_load_and_unload_are_off_without_a_token_unless_enabled(run_dir: Path) -> None:
    from aios_serve.server import BackgroundServer, ServerSettings

    for enabled in (None, True):
        with BackgroundServer([run_dir], settings=ServerSettings(grpc_port=0, repository_api=enabled)) as server:
            client = grpcclient.InferenceServerClient(server.grpc_target)
            if enabled:
                client.unload_model(MODEL)
                assert not client.is_model_ready(MODEL)
                client.load_model(MODEL)
            else:
                with pytest.raises(InferenceServerException) as refused:
                    client.unload_model(MODEL)
                assert refused.value.status() == "StatusCode.PERMISSION_DENIED"
                assert "repository_api: true" in refused.value.message()
            assert client.is_model_ready(MODEL)
            client.close()


def test_grpc_requests_share_the_admission_limit_and_get_a_retry_hint(run_dir: Path, rows: np.ndarray) -> None:
    """A stalled HTTP upload holds bytes in flight; a gRPC request that does not fit beside it is refused."""
    import socket
    import time

    import grpc
    from aios_serve._grpc import messages
    from aios_serve.server import BackgroundServer, ServerSettings

    m = messages()
    request = m["ModelInferRequest"](model_name=MODEL)
    request.inputs.add(name="input", datatype="FP32", shape=[16, FEATURES])
    request.raw_input_contents.append(np.ascontiguousarray(rows[:16], dtype="<f4").tobytes())  # 4 KiB
    settings = ServerSettings(max_inflight_bytes=4096, body_timeout=5.0, grpc_port=0)
    with BackgroundServer([run_dir], settings=settings) as running, \
            grpc.insecure_channel(running.grpc_target) as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                    request_serializer=m["ModelInferRequest"].SerializeToString,
                                    response_deserializer=m["ModelInferResponse"].FromString)
        assert len(infer(request).outputs) == 2  # alone, a request larger than the limit is admitted
        host, port = running.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as upload:
            upload.sendall(f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 6000\r\n\r\n"
                           .encode() + b"[" + b" " * 2999)
            for _ in range(250):
                if running.state.inflight_bytes:
                    break
                time.sleep(0.02)
            with pytest.raises(grpc.RpcError) as refused:
                infer(request)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "retry shortly" in refused.value.details()
            assert dict(refused.value.trailing_metadata())["grpc-retry-pushback-ms"] == "1000"
            client = grpcclient.InferenceServerClient(running.grpc_target)  # what tritonclient users see
            tensor = grpcclient.InferInput("input", [16, FEATURES], "FP32")
            tensor.set_data_from_numpy(rows[:16])
            with pytest.raises(InferenceServerException) as seen:
                client.infer(MODEL, [tensor])
            assert seen.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
            client.close()
        for _ in range(250):  # the upload's connection closed: its bytes leave the count
            if not running.state.inflight_bytes:
                break
            time.sleep(0.02)
        assert len(infer(request).outputs) == 2
        assert running.state.inflight_bytes == 0
