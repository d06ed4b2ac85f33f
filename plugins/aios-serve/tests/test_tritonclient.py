"""The standard Open Inference Protocol clients, unmodified, against ``aios serve`` of a real run.

tritonclient's HTTP client (binary tensor data on by default, as a user copies it from
Triton's examples) and its gRPC client (``raw_input_contents``) talk to the server that
``aios serve RUN`` starts for the suite's real run of the default stack (``served_run``:
HTTP and gRPC on free ports, in a process of its own).
"""

from __future__ import annotations

import numpy as np
import pytest
from aios_serve_test_helpers import ServerProcess

from aios_core import RunDirectory, onnx_predictor

tritonclient_http = pytest.importorskip("tritonclient.http")
tritonclient_grpc = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

MODEL = "digits-torch"


@pytest.fixture(scope="module")
def digits(finished_run: RunDirectory) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Preprocessed test rows of the run, the in-process probabilities for them, and the class names."""
    from sklearn.datasets import load_digits  # the default stack's data

    summary = finished_run.read_data_summary()
    prep = summary["preprocessing"]
    raw = load_digits().data[:16].astype(np.float64)
    rows = _preprocess(raw, prep).astype(np.float32)
    expected = onnx_predictor(finished_run.final_artifact(["onnx"]).path)(rows)
    return rows, expected, list(summary["class_names"])


def _preprocess(raw: np.ndarray, prep: dict) -> np.ndarray:
    kind = prep.get("scaling")
    if kind == "standardize":
        return (raw - np.asarray(prep["mean"])) / np.asarray(prep["std"])
    if kind == "minmax":
        return (raw - np.asarray(prep["min"])) / np.asarray(prep["range"])
    if kind == "scale":
        return raw / float(prep["factor"])
    return raw


@pytest.fixture(scope="module")
def http(served_run: ServerProcess):  # type: ignore[no-untyped-def]
    client = tritonclient_http.InferenceServerClient(served_run.url.removeprefix("http://"))
    yield client
    client.close()


@pytest.fixture(scope="module")
def grpc(served_run: ServerProcess):  # type: ignore[no-untyped-def]
    assert served_run.grpc, "aios serve announced no gRPC port"
    client = tritonclient_grpc.InferenceServerClient(served_run.grpc)
    yield client
    client.close()


def _inputs(module, rows: np.ndarray, datatype: str = "FP32"):  # type: ignore[no-untyped-def]
    tensor = module.InferInput("input", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows)
    return [tensor]


# ---------------------------------------------------------------- HTTP
def test_http_health_metadata_and_repository_index(http) -> None:  # type: ignore[no-untyped-def]
    assert http.is_server_live() and http.is_server_ready() and http.is_model_ready(MODEL)
    server = http.get_server_metadata()
    assert server["name"] == "aios-serve" and "binary_tensor_data" in server["extensions"]
    metadata = http.get_model_metadata(MODEL)
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
    assert {o["name"]: o["datatype"] for o in metadata["outputs"]} == {"probabilities": "FP32", "label": "BYTES"}
    (entry,) = http.get_model_repository_index()
    assert entry["name"] == MODEL and entry["state"] == "READY" and entry["version"] in metadata["versions"]


def test_http_infer_with_binary_tensors_reads_probabilities_and_bytes_labels(http, digits) -> None:  # type: ignore[no-untyped-def]
    rows, expected, names = digits
    result = http.infer(MODEL, _inputs(tritonclient_http, rows))  # the client's defaults: binary in and out
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, atol=1e-5)
    labels = result.as_numpy("label")
    assert labels.dtype == object and [v.decode() for v in labels] == [names[i] for i in expected.argmax(axis=1)]


def test_http_infer_with_json_tensors_and_requested_outputs(http, digits) -> None:  # type: ignore[no-untyped-def]
    rows, expected, names = digits
    inputs = tritonclient_http.InferInput("input", list(rows.shape), "FP32")
    inputs.set_data_from_numpy(rows, binary_data=False)
    outputs = [tritonclient_http.InferRequestedOutput("label", binary_data=False),
               tritonclient_http.InferRequestedOutput("probabilities", binary_data=True)]
    result = http.infer(MODEL, [inputs], outputs=outputs, request_id="r-1")
    assert result.get_response()["id"] == "r-1"
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, atol=1e-5)
    assert [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label")] == \
        [names[i] for i in expected.argmax(axis=1)]


def test_http_accepts_datatypes_that_convert_exactly(http, digits) -> None:  # type: ignore[no-untyped-def]
    rows, _, _ = digits
    pixels = np.clip(np.round(rows), 0, 3).astype(np.uint8)
    result = http.infer(MODEL, _inputs(tritonclient_http, pixels, "UINT8"))
    float_result = http.infer(MODEL, _inputs(tritonclient_http, pixels.astype(np.float32)))
    np.testing.assert_array_equal(result.as_numpy("probabilities"), float_result.as_numpy("probabilities"))


def test_http_wrong_shape_and_datatype_are_refused_with_the_protocols_error(http, digits) -> None:  # type: ignore[no-untyped-def]
    rows, _, _ = digits
    with pytest.raises(InferenceServerException) as wrong_shape:
        http.infer(MODEL, _inputs(tritonclient_http, rows[:, :60].copy()))
    assert wrong_shape.value.status() == "400" and "shape" in wrong_shape.value.message()
    with pytest.raises(InferenceServerException) as wrong_type:
        http.infer(MODEL, _inputs(tritonclient_http, rows.astype(np.float64), "FP64"))
    assert wrong_type.value.status() == "400" and "FP64" in wrong_type.value.message()


def test_http_missing_model_is_404(http, digits) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InferenceServerException) as missing:
        http.infer("no-such-model", _inputs(tritonclient_http, digits[0][:1]))
    assert missing.value.status() == "404"
    with pytest.raises(InferenceServerException):
        http.get_model_metadata("no-such-model")


# ---------------------------------------------------------------- gRPC
def test_grpc_health_and_metadata(grpc) -> None:  # type: ignore[no-untyped-def]
    assert grpc.is_server_live() and grpc.is_server_ready() and grpc.is_model_ready(MODEL)
    assert "binary_tensor_data" in grpc.get_server_metadata().extensions
    metadata = grpc.get_model_metadata(MODEL, as_json=True)
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": ["-1", "64"]}]
    assert [o["datatype"] for o in metadata["outputs"]] == ["FP32", "BYTES"]


def test_grpc_infer_with_raw_contents_reads_probabilities_and_bytes_labels(grpc, digits) -> None:  # type: ignore[no-untyped-def]
    rows, expected, names = digits
    result = grpc.infer(MODEL, _inputs(tritonclient_grpc, rows), request_id="g-1")
    assert result.get_response().id == "g-1"
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, atol=1e-5)
    assert [v.decode() for v in result.as_numpy("label")] == [names[i] for i in expected.argmax(axis=1)]


def test_grpc_wrong_shape_datatype_and_missing_model(grpc, digits) -> None:  # type: ignore[no-untyped-def]
    rows, _, _ = digits
    with pytest.raises(InferenceServerException) as wrong_shape:
        grpc.infer(MODEL, _inputs(tritonclient_grpc, rows[:, :60].copy()))
    assert wrong_shape.value.status() == "StatusCode.INVALID_ARGUMENT" and "shape" in wrong_shape.value.message()
    with pytest.raises(InferenceServerException) as wrong_type:
        grpc.infer(MODEL, _inputs(tritonclient_grpc, rows.astype(np.int32), "INT32"))
    assert wrong_type.value.status() == "StatusCode.INVALID_ARGUMENT"
    with pytest.raises(InferenceServerException) as missing:
        grpc.infer("no-such-model", _inputs(tritonclient_grpc, rows[:1]))
    assert missing.value.status() == "StatusCode.NOT_FOUND"


# ---------------------------------------------------------------- gRPC model repository extension
REPOSITORY_TOKEN = "repo-s3cret"


@pytest.fixture(scope="module")
def repository_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """``aios serve`` of a small run whose stack's deployer requires a token (so the repository API is on), one
    worker, gRPC on a free port; and a second run directory to load into it."""
    from aios_serve_test_helpers import make_run_dir

    root = tmp_path_factory.mktemp("repository")
    run = RunDirectory(make_run_dir(root / "runs"))
    run.write_lock({**run.read_lock(), "deployer": {"plugin": "oip", "token_env": "AIOS_TEST_REPOSITORY_TOKEN",
                                                    "workers": 1, "grpc_port": 0}})
    other = make_run_dir(root / "other", seed=3)
    process = ServerProcess(str(run.path), aios=True, env={"AIOS_TEST_REPOSITORY_TOKEN": REPOSITORY_TOKEN})
    assert process.grpc, "aios serve announced no gRPC port"
    client = tritonclient_grpc.InferenceServerClient(process.grpc)
    yield client, other
    client.close()
    process.terminate()


def _index(client, headers: dict[str, str]) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    models = client.get_model_repository_index(headers=headers, as_json=True)["models"]
    return [(m["name"], m["version"], m["state"]) for m in models]


def test_grpc_unload_and_load_a_served_model(repository_server) -> None:  # type: ignore[no-untyped-def]
    from aios_serve_test_helpers import FEATURES, MODEL as SMALL, VERSION

    client, _ = repository_server
    headers = {"authorization": f"Bearer {REPOSITORY_TOKEN}"}
    rows = np.zeros((1, FEATURES), dtype=np.float32)
    client.unload_model(SMALL, headers=headers)
    assert _index(client, headers) == [(SMALL, VERSION, "UNAVAILABLE")]
    assert not client.is_model_ready(SMALL, headers=headers)
    with pytest.raises(InferenceServerException) as unloaded:
        client.infer(SMALL, _inputs(tritonclient_grpc, rows), headers=headers)
    assert unloaded.value.status() == "StatusCode.INVALID_ARGUMENT" and "not loaded" in unloaded.value.message()
    client.load_model(SMALL, headers=headers)
    assert _index(client, headers) == [(SMALL, VERSION, "READY")]
    assert client.infer(SMALL, _inputs(tritonclient_grpc, rows), headers=headers).as_numpy("label").shape == (1,)


def test_grpc_load_adds_a_run_directory_given_as_a_parameter(repository_server) -> None:  # type: ignore[no-untyped-def]
    from aios_serve_test_helpers import FEATURES, VERSION
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    client, other = repository_server
    headers = {"authorization": f"Bearer {REPOSITORY_TOKEN}"}
    # tritonclient's load_model sends only `config` and files; its stub sends the `run_dir` parameter
    request = service_pb2.RepositoryModelLoadRequest(model_name="second")
    request.parameters["run_dir"].string_param = str(other)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(client._channel)
    stub.RepositoryModelLoad(request, metadata=tuple(headers.items()))
    assert ("second", VERSION, "READY") in _index(client, headers)
    answer = client.infer("second", _inputs(tritonclient_grpc, np.ones((2, FEATURES), dtype=np.float32)),
                          headers=headers)
    assert answer.as_numpy("probabilities").shape[0] == 2
    client.unload_model("second", headers=headers)
    assert ("second", VERSION, "UNAVAILABLE") in _index(client, headers)


def test_grpc_repository_calls_need_the_token_and_a_known_model(repository_server) -> None:  # type: ignore[no-untyped-def]
    from aios_serve_test_helpers import MODEL as SMALL

    client, _ = repository_server
    headers = {"authorization": f"Bearer {REPOSITORY_TOKEN}"}
    for call in (client.load_model, client.unload_model):
        with pytest.raises(InferenceServerException) as refused:
            call(SMALL)
        assert refused.value.status() == "StatusCode.UNAUTHENTICATED"
        with pytest.raises(InferenceServerException) as missing:
            call("no-such-model", headers=headers)
        assert missing.value.status() == "StatusCode.NOT_FOUND" and "no-such-model" in missing.value.message()
    import grpc as grpcio
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    request = service_pb2.RepositoryModelLoadRequest(model_name="third")
    request.parameters["run_dir"].string_param = "/nonexistent/run"
    with pytest.raises(grpcio.RpcError) as unreadable:
        service_pb2_grpc.GRPCInferenceServiceStub(client._channel).RepositoryModelLoad(
            request, metadata=tuple(headers.items()))
    assert unreadable.value.code() == grpcio.StatusCode.INVALID_ARGUMENT
    assert "not a run directory" in unreadable.value.details()


def test_grpc_load_and_unload_are_off_on_the_default_server(grpc) -> None:  # type: ignore[no-untyped-def]
    # the suite's `aios serve`: no token, and a worker per core (each would hold its own models)
    for call in (grpc.load_model, grpc.unload_model):
        with pytest.raises(InferenceServerException) as refused:
            call(MODEL)
        assert refused.value.status() == "StatusCode.PERMISSION_DENIED"
        assert "the repository API is off" in refused.value.message()
    assert grpc.is_model_ready(MODEL)
