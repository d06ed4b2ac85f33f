"""The binary tensor data extension and the datatypes the server accepts, with hand-built bodies.

A body is a JSON header of ``Inference-Header-Content-Length`` bytes followed by each
binary input's raw little-endian bytes (``parameters.binary_data_size``); outputs come
back binary when asked (``binary_data_output``, or ``binary_data`` per output), BYTES
elements each as a 4-byte little-endian length and the bytes.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import httpx
import numpy as np
import pytest
from aios_serve_test_helpers import CLASS_NAMES, FEATURES, MODEL

HEADER = "Inference-Header-Content-Length"


def binary_body(array: np.ndarray, datatype: str = "FP32", extra: dict[str, Any] | None = None,
                size: int | None = None, raw: bytes | None = None) -> tuple[bytes, dict[str, str]]:
    raw = array.tobytes() if raw is None else raw
    header = {"inputs": [{"name": "input", "shape": list(array.shape), "datatype": datatype,
                          "parameters": {"binary_data_size": len(raw) if size is None else size}}], **(extra or {})}
    text = json.dumps(header).encode()
    return text + raw, {HEADER: str(len(text))}


def split(response: httpx.Response) -> tuple[dict[str, Any], bytes]:
    length = int(response.headers[HEADER])
    return json.loads(response.content[:length]), response.content[length:]


def read_bytes_elements(raw: bytes) -> list[str]:
    values, offset = [], 0
    while offset < len(raw):
        (length,) = struct.unpack_from("<I", raw, offset)
        values.append(raw[offset + 4:offset + 4 + length].decode())
        offset += 4 + length
    return values


@pytest.fixture(scope="module")
def http(server: str):  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=server, timeout=30.0) as client:
        yield client


def infer(http: httpx.Client, content: bytes, headers: dict[str, str]) -> httpx.Response:
    return http.post(f"/v2/models/{MODEL}/infer", content=content, headers=headers)


def test_binary_input_and_binary_outputs(http: httpx.Client, rows: np.ndarray, reference) -> None:
    content, headers = binary_body(rows[:5], extra={"parameters": {"binary_data_output": True}})
    response = infer(http, content, headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    header, raw = split(response)
    outputs = {o["name"]: o for o in header["outputs"]}
    size = outputs["probabilities"]["parameters"]["binary_data_size"]
    assert "data" not in outputs["probabilities"] and size == 5 * 10 * 4
    probabilities = np.frombuffer(raw[:size], dtype="<f4").reshape(5, 10)
    np.testing.assert_allclose(probabilities, reference(rows[:5]), atol=1e-6)
    labels = read_bytes_elements(raw[size:size + outputs["label"]["parameters"]["binary_data_size"]])
    assert labels == [CLASS_NAMES[i] for i in reference(rows[:5]).argmax(axis=1)]


def test_binary_input_with_json_outputs_by_default(http: httpx.Client, rows: np.ndarray, reference) -> None:
    response = infer(http, *binary_body(rows[:2]))
    assert response.status_code == 200 and HEADER.lower() not in response.headers
    got = np.asarray(response.json()["outputs"][0]["data"], dtype=np.float32).reshape(2, 10)
    np.testing.assert_allclose(got, reference(rows[:2]), atol=1e-6)


def test_per_output_binary_flag(http: httpx.Client, rows: np.ndarray) -> None:
    extra = {"outputs": [{"name": "label", "parameters": {"binary_data": True}}, {"name": "probabilities"}]}
    header, raw = split(infer(http, *binary_body(rows[:3], extra=extra)))
    label, probabilities = header["outputs"]
    assert label["parameters"]["binary_data_size"] == len(raw) and len(read_bytes_elements(raw)) == 3
    assert len(probabilities["data"]) == 30


@pytest.mark.parametrize("datatype", ["FP16", "UINT8", "INT8", "INT16", "UINT16", "BOOL"])
def test_datatypes_that_convert_to_fp32_exactly_give_the_fp32_answer(http: httpx.Client, reference,
                                                                     datatype: str) -> None:
    dtypes = {"FP16": "<f2", "UINT8": "u1", "INT8": "i1", "INT16": "<i2", "UINT16": "<u2", "BOOL": "?"}
    values = np.random.default_rng(2).integers(0, 2, (3, FEATURES)).astype(dtypes[datatype])
    response = infer(http, *binary_body(values, datatype))
    assert response.status_code == 200, response.text
    got = np.asarray(response.json()["outputs"][0]["data"], dtype=np.float32).reshape(3, 10)
    np.testing.assert_allclose(got, reference(values.astype(np.float32)), atol=1e-6)
    as_json = http.post(f"/v2/models/{MODEL}/infer", json={"inputs": [{
        "name": "input", "shape": [3, FEATURES], "datatype": datatype, "data": values.ravel().tolist()}]})
    assert as_json.status_code == 200 and as_json.json()["outputs"][0]["data"] == response.json()["outputs"][0]["data"]


@pytest.mark.parametrize("datatype", ["FP64", "INT32", "INT64", "UINT32", "UINT64"])
def test_datatypes_that_would_round_are_refused(http: httpx.Client, datatype: str) -> None:
    dtypes = {"FP64": "<f8", "INT32": "<i4", "INT64": "<i8", "UINT32": "<u4", "UINT64": "<u8"}
    response = infer(http, *binary_body(np.zeros((1, FEATURES), dtype=dtypes[datatype]), datatype))
    assert response.status_code == 400 and datatype in response.json()["error"]


MALFORMED = {
    "header length past the body": lambda body, n: (body, {HEADER: str(len(body) + 10)}),
    "negative header length": lambda body, n: (body, {HEADER: "-5"}),
    "huge header length": lambda body, n: (body, {HEADER: str(2**63)}),
    "header length not a number": lambda body, n: (body, {HEADER: "12abc"}),
    "header length cuts the JSON": lambda body, n: (body, {HEADER: str(n - 3)}),
    "binary without the header": lambda body, n: (body[:n], {}),
    "binary size past the data": lambda body, n: (body[:-8], {HEADER: str(n)}),
    "bytes left over": lambda body, n: (body + b"\x00" * 4, {HEADER: str(n)}),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_binary_bodies_get_400(http: httpx.Client, rows: np.ndarray, case: str) -> None:
    content, headers = binary_body(rows[:1])
    n = int(headers[HEADER])
    content, headers = MALFORMED[case](content, n)
    response = infer(http, content, headers)
    assert response.status_code == 400, response.text
    assert isinstance(response.json()["error"], str)


@pytest.mark.parametrize("size", [-1, 3, 2**40])
def test_binary_sizes_not_matching_the_shape_get_400(http: httpx.Client, rows: np.ndarray, size: int) -> None:
    content, headers = binary_body(rows[:1], size=size)
    assert infer(http, content, headers).status_code == 400


def test_bytes_input_elements_are_checked_and_refused_for_this_model(http: httpx.Client) -> None:
    good = b"".join(struct.pack("<I", 1) + b"a" for _ in range(FEATURES))
    content, headers = binary_body(np.zeros((1, FEATURES), dtype=np.float32), "BYTES", raw=good)
    assert "BYTES" in infer(http, content, headers).json()["error"]
    lying = struct.pack("<I", 1000) + b"abc"
    content, headers = binary_body(np.zeros((1, FEATURES), dtype=np.float32), "BYTES", raw=lying)
    response = infer(http, content, headers)
    assert response.status_code == 400 and "BYTES" in response.json()["error"]
