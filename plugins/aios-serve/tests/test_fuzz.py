"""Property-based fuzzing of the HTTP API: no 5xx, no hang, every error the protocol's error object.

schemathesis generates requests from the server's OpenAPI description (every
operation, valid and invalid data); hypothesis then mutates valid inference requests
for the served model, which random path names rarely reach. Both are bounded in
examples, and every request has a client timeout (a hang fails the test).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import schemathesis
from aios_serve._openapi import openapi_document
from aios_serve_test_helpers import FEATURES, MODEL
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TIMEOUT = 20.0
schema = schemathesis.openapi.from_dict(openapi_document())


def check(response_status: int, text: str) -> None:
    assert response_status < 500, text[:500]
    if response_status >= 400:
        body = json.loads(text)
        assert isinstance(body["error"], str)
        assert "Traceback" not in text


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_openapi_operations_never_fail_with_5xx(case: schemathesis.Case, server: str) -> None:
    response = case.call(base_url=server, timeout=TIMEOUT)
    check(response.status_code, response.text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12)


@st.composite
def mutated_requests(draw: st.DrawFn) -> Any:
    rows = draw(st.integers(min_value=-1, max_value=3))
    tensor: dict[str, Any] = {
        "name": draw(st.sampled_from(["input", "input", "x", ""])),
        "shape": draw(st.sampled_from([[rows, FEATURES], [rows, FEATURES - 1], [FEATURES], [], [rows, FEATURES, 1]])),
        "datatype": draw(st.sampled_from(["FP32", "FP32", "FP64", "INT32", "BYTES", "fp32"])),
        "data": draw(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64) | st.integers(),
                              min_size=0, max_size=max(0, rows) * FEATURES + 2)),
    }
    for key in draw(st.lists(st.sampled_from(sorted(tensor)), max_size=2)):
        tensor[key] = draw(json_values)
    body: dict[str, Any] = {"inputs": [tensor]}
    if draw(st.booleans()):
        body["parameters"] = draw(st.sampled_from([{"raw": True}, {"raw": "yes"}, [], {"other": 1}]))
    if draw(st.booleans()):
        body["outputs"] = draw(st.sampled_from([[{"name": "label"}], [{"name": "nope"}], "all", [1]]))
    if draw(st.booleans()):
        body["id"] = draw(json_values)
    return body


@pytest.fixture(scope="module")
def http(server: str):  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=server, timeout=TIMEOUT) as client:
        yield client


@given(body=mutated_requests())
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_mutated_inference_requests_get_200_or_4xx(http: httpx.Client, body: Any) -> None:
    response = http.post(f"/v2/models/{MODEL}/infer", content=json.dumps(body, allow_nan=True))
    check(response.status_code, response.text)
    if response.status_code == 200:
        outputs = response.json()["outputs"]
        assert all(len(o["data"]) == int(__import__("numpy").prod(o["shape"])) for o in outputs)


@given(content=st.binary(max_size=256))
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_arbitrary_bytes_get_4xx(http: httpx.Client, content: bytes) -> None:
    response = http.post(f"/v2/models/{MODEL}/infer", content=content)
    assert 400 <= response.status_code < 500
    check(response.status_code, response.text)


@st.composite
def binary_requests(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    """The binary tensor data extension, bent: header lengths, binary sizes, datatypes and shapes that disagree."""
    rows = draw(st.integers(min_value=-1, max_value=3))
    datatype = draw(st.sampled_from(["FP32", "FP32", "FP16", "UINT8", "BOOL", "BYTES", "FP64", "INT64", "NOPE"]))
    payload = draw(st.binary(max_size=max(0, rows) * FEATURES * 4 + 16))
    size = draw(st.sampled_from([len(payload), len(payload), len(payload) - 1, len(payload) + 1, 0, -1, 2**63])
                | st.integers(min_value=-10, max_value=10**6))
    tensor: dict[str, Any] = {"name": "input", "shape": draw(st.sampled_from([[rows, FEATURES], [rows], [FEATURES, rows]])),
                              "datatype": datatype, "parameters": {"binary_data_size": size}}
    body: dict[str, Any] = {"inputs": [tensor]}
    if draw(st.booleans()):
        body["parameters"] = {"binary_data_output": draw(st.sampled_from([True, False, "yes", 1]))}
    if draw(st.booleans()):
        body["outputs"] = [{"name": "label", "parameters": {"binary_data": draw(st.sampled_from([True, None, 3]))}}]
    header = json.dumps(body).encode()
    length = draw(st.sampled_from([str(len(header))] * 3 + [str(len(header) - 1), str(len(header) + len(payload) + 1),
                                                           "-1", "0", "x", str(2**64)]))
    return header + payload, {"Inference-Header-Content-Length": length}


@given(request=binary_requests())
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_malformed_binary_requests_get_200_or_4xx(http: httpx.Client, request: tuple[bytes, dict[str, str]]) -> None:
    content, headers = request
    response = http.post(f"/v2/models/{MODEL}/infer", content=content, headers=headers)
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400:
        check(response.status_code, response.text)
    assert http.get("/v2/health/live").status_code == 200
