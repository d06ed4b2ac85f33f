"""Large JSON bodies are parsed by simdjson (each input's flat numeric ``data`` straight into a float64 buffer),
small ones by orjson: both must decode every body to the same tensors, or refuse it with the same error."""

from __future__ import annotations

import json

import numpy as np
import pytest

ROW = np.random.default_rng(3).normal(0, 1, 784)


def _body(data: object, datatype: str = "FP32", shape: list[int] | None = None, **extra: object) -> bytes:
    return json.dumps({"inputs": [{"name": "input", "shape": shape or [1, 784], "datatype": datatype,
                                   "data": data, **extra}], "id": "x" * 9000}).encode()


BODIES = {
    "flat floats": _body(ROW.tolist()),
    "flat floats as FP16": _body(ROW.tolist(), "FP16"),
    "flat floats as FP64": _body(ROW.tolist(), "FP64"),
    "nested rows": _body([ROW[:392].tolist(), ROW[392:].tolist()], shape=[2, 392]),
    "irregular nesting": _body([ROW[:392].tolist(), ROW[392:].tolist() + [1.0]], shape=[2, 392]),
    "integers as INT32": _body(list(range(784))),
    "fractions as INT32": _body([0.5] * 784, "INT32"),
    "integers too large for INT8": _body([300] * 784, "INT8"),
    "beyond float32": _body([1e39] * 784),
    "too many values": _body(ROW.tolist() + [1.0]),
    "strings as FP32": _body(["1.0"] * 784),
    "booleans as BOOL": _body([True, False] * 392, "BOOL"),
    "numbers as BOOL": _body([1.0] * 784, "BOOL"),
    "strings as BYTES": _body(["a"] * 784, "BYTES"),
    "numbers as BYTES": _body([1.0] * 784, "BYTES"),
    "empty data": _body([]),
    "data not an array": _body({"a": ROW.tolist()}),
    "a number past float64": _body(ROW.tolist()).replace(b"[" + str(ROW[0]).encode(), b"[1e400", 1),
    "invalid JSON": _body(ROW.tolist())[:-2],
    "inputs not an array": json.dumps({"inputs": {"data": ROW.tolist()}, "id": "x" * 9000}).encode(),
    "document an array": json.dumps([ROW.tolist()]).encode(),
}


def _decode(body: bytes, threshold: int):  # type: ignore[no-untyped-def]
    from aios_serve import _tensors

    saved = _tensors.SIMDJSON_BYTES
    _tensors.SIMDJSON_BYTES = threshold
    try:
        request = _tensors.decode_http(body, None)
    except _tensors.ProtocolError as error:
        return ("error", str(error), error.status)
    finally:
        _tensors.SIMDJSON_BYTES = saved
    return [(t.name, t.datatype, t.shape, t.array.dtype.str, t.array.tolist()) for t in request.inputs], request.id


@pytest.mark.parametrize("case", sorted(BODIES))
def test_simdjson_and_orjson_decode_alike(case: str) -> None:
    pytest.importorskip("simdjson")
    body = BODIES[case]
    assert len(body) > 8 * 1024
    assert _decode(body, 0) == _decode(body, 1 << 40)


def test_flat_numbers_skip_python_floats() -> None:
    """The simdjson path hands the data over as one float64 buffer, not a list of Python floats."""
    pytest.importorskip("simdjson")
    from aios_serve._tensors import _large_json

    document = _large_json(BODIES["flat floats"])
    data = document["inputs"][0]["data"]
    assert isinstance(data, np.ndarray) and data.dtype == np.float64
    np.testing.assert_array_equal(data, ROW)
