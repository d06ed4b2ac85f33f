"""The server as a client of the Open Inference Protocol sees it.

``ProtocolClient`` is written from the protocol's REST specification (the KServe "V2
inference protocol" / Open Inference Protocol document: health, metadata, inference
JSON tensors, error object), not from this server's code: it knows endpoint paths,
the request and response objects and the rule that errors are ``{"error": <string>}``
with a non-2xx status.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from aios_serve_test_helpers import CLASS_NAMES, FEATURES, MODEL, VERSION, make_run_dir

DATATYPES = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64",
             "BYTES"}


class ProtocolClient:
    """A minimal Open Inference Protocol REST client, from the specification."""

    def __init__(self, url: str, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=30.0)

    def server_live(self) -> httpx.Response:
        return self.http.get("/v2/health/live")

    def server_ready(self) -> httpx.Response:
        return self.http.get("/v2/health/ready")

    def server_metadata(self) -> httpx.Response:
        return self.http.get("/v2")

    def model_metadata(self, name: str, version: str | None = None) -> httpx.Response:
        return self.http.get(f"/v2/models/{name}" + (f"/versions/{version}" if version else ""))

    def model_ready(self, name: str, version: str | None = None) -> httpx.Response:
        return self.http.get(f"/v2/models/{name}" + (f"/versions/{version}" if version else "") + "/ready")

    def infer(self, name: str, body: Any = None, version: str | None = None, content: bytes | None = None,
              headers: dict[str, str] | None = None) -> httpx.Response:
        path = f"/v2/models/{name}" + (f"/versions/{version}" if version else "") + "/infer"
        if content is None:
            content = json.dumps(body).encode()
        return self.http.post(path, content=content, headers={"Content-Type": "application/json", **(headers or {})})

    @staticmethod
    def tensor(name: str, array: np.ndarray, datatype: str = "FP32") -> dict[str, Any]:
        """A JSON tensor: name, shape, datatype and the data flattened in row-major order."""
        return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": array.ravel().tolist()}


def assert_error(response: httpx.Response, status: int) -> None:
    """The specification's error response: a JSON object with one string "error", and a 4xx status here."""
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"]
    assert "Traceback" not in response.text and "File \"" not in response.text


def assert_output_tensor(tensor: dict[str, Any]) -> None:
    assert set(tensor) >= {"name", "shape", "datatype", "data"}
    assert tensor["datatype"] in DATATYPES
    assert len(tensor["data"]) == int(np.prod(tensor["shape"]))


@pytest.fixture(scope="module")
def client(server: str) -> Iterator[ProtocolClient]:
    client = ProtocolClient(server)
    yield client
    client.http.close()


def input_tensor(rows: np.ndarray) -> dict[str, Any]:
    return {"inputs": [ProtocolClient.tensor("input", rows)]}


# ---------------------------------------------------------------- health and metadata
def test_server_is_live_and_ready(client: ProtocolClient) -> None:
    assert client.server_live().status_code == 200
    assert client.server_ready().status_code == 200


def test_server_metadata_names_the_server_its_version_and_extensions(client: ProtocolClient) -> None:
    body = client.server_metadata().json()
    assert isinstance(body["name"], str) and isinstance(body["version"], str)
    assert isinstance(body["extensions"], list)


def test_model_metadata_describes_inputs_and_outputs(client: ProtocolClient) -> None:
    response = client.model_metadata(MODEL)
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == MODEL and VERSION in body["versions"] and isinstance(body["platform"], str)
    assert body["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, FEATURES]}]
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["probabilities"] == {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}
    assert outputs["label"]["datatype"] == "BYTES"


def test_model_version_metadata_and_ready(client: ProtocolClient) -> None:
    assert client.model_metadata(MODEL, VERSION).json()["name"] == MODEL
    assert client.model_ready(MODEL).status_code == 200
    assert client.model_ready(MODEL, VERSION).status_code == 200


# ---------------------------------------------------------------- inference
def test_infer_one_row_returns_probabilities_and_label(client: ProtocolClient, rows: np.ndarray, reference) -> None:
    response = client.infer(MODEL, {"id": "req-1", **input_tensor(rows[:1])})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == MODEL and body["id"] == "req-1"
    outputs = {o["name"]: o for o in body["outputs"]}
    for tensor in outputs.values():
        assert_output_tensor(tensor)
    probabilities = np.asarray(outputs["probabilities"]["data"], dtype=np.float32).reshape(outputs["probabilities"]["shape"])
    np.testing.assert_allclose(probabilities, reference(rows[:1]), atol=1e-6)
    assert outputs["label"]["data"] == [CLASS_NAMES[int(probabilities.argmax())]]


def test_infer_many_rows_in_one_request(client: ProtocolClient, rows: np.ndarray, reference) -> None:
    response = client.infer(MODEL, input_tensor(rows), version=VERSION)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["probabilities"]["shape"] == [len(rows), 10]
    got = np.asarray(outputs["probabilities"]["data"], dtype=np.float32).reshape(len(rows), 10)
    np.testing.assert_allclose(got, reference(rows), atol=1e-6)
    assert outputs["label"]["data"] == [CLASS_NAMES[i] for i in reference(rows).argmax(axis=1)]


def test_requested_outputs_only(client: ProtocolClient, rows: np.ndarray) -> None:
    body = {**input_tensor(rows[:2]), "outputs": [{"name": "label"}]}
    outputs = client.infer(MODEL, body).json()["outputs"]
    assert [o["name"] for o in outputs] == ["label"]


def test_nested_row_major_data_is_accepted(client: ProtocolClient, rows: np.ndarray, reference) -> None:
    body = {"inputs": [{"name": "input", "shape": [2, FEATURES], "datatype": "FP32", "data": rows[:2].tolist()}]}
    response = client.infer(MODEL, body)
    got = np.asarray(response.json()["outputs"][0]["data"], dtype=np.float32).reshape(2, 10)
    np.testing.assert_allclose(got, reference(rows[:2]), atol=1e-6)


def test_raw_rows_are_preprocessed_as_the_run_recorded(client: ProtocolClient, run_dir: Path, reference) -> None:
    preprocessing = json.loads((run_dir / "data.json").read_text())["preprocessing"]
    raw = np.random.default_rng(5).uniform(0, 16, (3, FEATURES)).astype(np.float32)
    scaled = ((raw.astype(np.float64) - preprocessing["mean"]) / preprocessing["std"]).astype(np.float32)
    response = client.infer(MODEL, {**input_tensor(raw), "parameters": {"raw": True}})
    got = np.asarray(response.json()["outputs"][0]["data"], dtype=np.float32).reshape(3, 10)
    np.testing.assert_allclose(got, reference(scaled), atol=1e-5)


# ---------------------------------------------------------------- bad input: 4xx and the error object
BAD_BODIES = {
    "wrong shape": {"inputs": [{"name": "input", "shape": [1, 63], "datatype": "FP32", "data": [0.0] * 63}]},
    "shape and data disagree": {"inputs": [{"name": "input", "shape": [2, FEATURES], "datatype": "FP32",
                                            "data": [0.0] * FEATURES}]},
    "one-dimensional shape": {"inputs": [{"name": "input", "shape": [FEATURES], "datatype": "FP32",
                                          "data": [0.0] * FEATURES}]},
    "zero rows": {"inputs": [{"name": "input", "shape": [0, FEATURES], "datatype": "FP32", "data": []}]},
    "wrong datatype": {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "INT64", "data": [0] * FEATURES}]},
    "unknown datatype": {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FLOAT", "data": [0.0] * FEATURES}]},
    "datatype not a string": {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": ["FP32"],
                                          "data": [0.0] * FEATURES}]},
    "strings as data": {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": ["1"] * FEATURES}]},
    "ragged data": {"inputs": [{"name": "input", "shape": [2, 2], "datatype": "FP32", "data": [[1.0, 2.0], [3.0]]}]},
    "missing input": {"inputs": []},
    "no inputs field": {"id": "x"},
    "wrong input name": {"inputs": [{"name": "pixels", "shape": [1, FEATURES], "datatype": "FP32",
                                     "data": [0.0] * FEATURES}]},
    "two inputs": {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": [0.0] * FEATURES}] * 2},
    "unknown output": {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": [0.0] * FEATURES}],
                       "outputs": [{"name": "logits"}]},
    "overflowing float32": {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32",
                                        "data": [1e39] * FEATURES}]},
    "body is a list": [1, 2, 3],
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_request_gets_400_and_an_error_object(client: ProtocolClient, case: str) -> None:
    assert_error(client.infer(MODEL, BAD_BODIES[case]), 400)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(client: ProtocolClient, value: str) -> None:
    data = ", ".join(["0.5"] * (FEATURES - 1) + [value])
    content = f'{{"inputs": [{{"name": "input", "shape": [1, {FEATURES}], "datatype": "FP32", "data": [{data}]}}]}}'
    assert_error(client.infer(MODEL, content=content.encode()), 400)


@pytest.mark.parametrize("content", [b"not json", b"{\"inputs\": [", b"", b"\xff\xfe\x00", b"[" * 100000])
def test_non_json_body_is_refused(client: ProtocolClient, content: bytes) -> None:
    assert_error(client.infer(MODEL, content=content), 400)


def test_unknown_model_and_version_get_404(client: ProtocolClient, rows: np.ndarray) -> None:
    assert_error(client.infer("no-such-model", input_tensor(rows[:1])), 404)
    assert_error(client.infer(MODEL, input_tensor(rows[:1]), version="999"), 404)
    assert_error(client.model_metadata("no-such-model"), 404)
    assert_error(client.model_ready("no-such-model"), 404)


def test_oversized_body_gets_413(client: ProtocolClient) -> None:
    big = np.zeros((1200, FEATURES), dtype=np.float32)  # about 300 KB of JSON; the fixture's limit is 256 KiB
    assert_error(client.infer(MODEL, input_tensor(big)), 413)


def test_oversized_body_without_content_length_gets_413(client: ProtocolClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": ['
        for _ in range(40):
            yield b"0.0, " * 2000

    response = client.http.post(f"/v2/models/{MODEL}/infer", content=chunks())
    assert_error(response, 413)


def test_unknown_endpoint_and_method_get_json_errors(client: ProtocolClient) -> None:
    assert_error(client.http.get("/v2/nothing/here"), 404)
    assert_error(client.http.get(f"/v2/models/{MODEL}/infer"), 405)


def test_server_still_answers_after_bad_requests(client: ProtocolClient, rows: np.ndarray) -> None:
    for body in BAD_BODIES.values():
        client.infer(MODEL, body)
    assert client.infer(MODEL, input_tensor(rows[:1])).status_code == 200


# ---------------------------------------------------------------- authentication
@pytest.fixture(scope="module")
def secured(run_dir: Path) -> Iterator[str]:
    from aios_serve.server import BackgroundServer, ServerSettings

    with BackgroundServer([run_dir], settings=ServerSettings(token="s3cret-token")) as running:
        yield running.url


def test_auth_off_needs_no_token(client: ProtocolClient, rows: np.ndarray) -> None:
    assert client.infer(MODEL, input_tensor(rows[:1])).status_code == 200


def test_auth_on_refuses_missing_or_wrong_token(secured: str, rows: np.ndarray) -> None:
    anonymous, wrong = ProtocolClient(secured), ProtocolClient(secured, token="guess")
    for client in (anonymous, wrong):
        assert_error(client.infer(MODEL, input_tensor(rows[:1])), 401)
        assert_error(client.model_metadata(MODEL), 401)
        assert_error(client.http.get("/metrics"), 401)
    assert anonymous.infer(MODEL, input_tensor(rows[:1])).headers["www-authenticate"] == "Bearer"


def test_auth_on_accepts_the_token_and_leaves_health_checks_open(secured: str, rows: np.ndarray) -> None:
    client = ProtocolClient(secured, token="s3cret-token")
    assert client.infer(MODEL, input_tensor(rows[:1])).status_code == 200
    assert client.model_metadata(MODEL).status_code == 200
    assert ProtocolClient(secured).server_live().status_code == 200
    assert ProtocolClient(secured).server_ready().status_code == 200


# ---------------------------------------------------------------- model repository extension
def test_repository_loads_and_unloads_without_restart(tmp_path: Path, run_dir: Path, rows: np.ndarray) -> None:
    from aios_serve.server import BackgroundServer, ServerSettings

    second = make_run_dir(tmp_path, name=MODEL, stamp="20270101-000000", seed=3)
    with BackgroundServer([run_dir], settings=ServerSettings(repository_api=True)) as running:
        client = ProtocolClient(running.url)
        index = client.http.post("/v2/repository/index").json()
        assert index == [{"name": MODEL, "version": VERSION, "state": "READY"}]

        loaded = client.http.post(f"/v2/repository/models/{MODEL}/load", json={"parameters": {"run_dir": str(second)}})
        assert loaded.status_code == 200, loaded.text
        assert client.model_metadata(MODEL).json()["versions"] == [VERSION, "20270101-000000"]
        assert client.infer(MODEL, input_tensor(rows[:1])).json()["model_version"] == "20270101-000000"

        assert client.http.post(f"/v2/repository/models/{MODEL}/unload",
                                json={"parameters": {"version": "20270101-000000"}}).status_code == 200
        assert client.infer(MODEL, input_tensor(rows[:1])).json()["model_version"] == VERSION
        assert client.http.post(f"/v2/repository/models/{MODEL}/unload").status_code == 200
        assert_error(client.infer(MODEL, input_tensor(rows[:1])), 400)
        assert client.model_ready(MODEL).status_code == 400
        states = {row["version"]: row["state"] for row in client.http.post("/v2/repository/index").json()}
        assert states == {VERSION: "UNAVAILABLE", "20270101-000000": "UNAVAILABLE"}

        assert client.http.post(f"/v2/repository/models/{MODEL}/load").status_code == 200
        assert client.infer(MODEL, input_tensor(rows[:1])).status_code == 200


def test_repository_refuses_what_is_not_a_run(client: ProtocolClient, tmp_path: Path) -> None:
    assert_error(client.http.post("/v2/repository/models/x/load", json={"parameters": {"run_dir": str(tmp_path)}}), 400)
    assert_error(client.http.post("/v2/repository/models/no-such-model/load"), 404)
    assert_error(client.http.post("/v2/repository/models/no-such-model/unload"), 404)


# ---------------------------------------------------------------- metrics
def test_metrics_in_prometheus_format(client: ProtocolClient, rows: np.ndarray) -> None:
    client.infer(MODEL, input_tensor(rows[:1]))
    client.infer(MODEL, BAD_BODIES["wrong shape"])
    response = client.http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    label = f'model="{MODEL}",version="{VERSION}"'
    for family in ("aios_serve_requests_total", "aios_serve_request_duration_seconds_bucket",
                   "aios_serve_batch_size_bucket", "aios_serve_queue_depth", "aios_serve_model_loaded"):
        assert any(line.startswith(family + "{") and label in line for line in text.splitlines()), family
    assert f'aios_serve_request_errors_total{{model="{MODEL}",status="400"}}' in text
