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


def test_the_shipped_descriptor_is_the_published_proto_compiled() -> None:
    pytest.importorskip("grpc_tools")
    from aios_serve import _oip_descriptor
    from aios_serve.proto.generate import compile_descriptor
    from google.protobuf import descriptor_pb2

    shipped = descriptor_pb2.FileDescriptorProto.FromString(_oip_descriptor.FILE_DESCRIPTOR)
    assert shipped == descriptor_pb2.FileDescriptorProto.FromString(compile_descriptor())
    assert [m.name for m in shipped.service[0].method] == ["ServerLive", "ServerReady", "ModelReady",
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
