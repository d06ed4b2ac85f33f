"""Large JSON bodies are parsed by simdjson (each input's flat numeric ``data`` straight into a float64 buffer),
small ones by orjson: both must decode every body to the same tensors, or refuse it with the same error."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def _decode(body: bytes, setting: str, value: object):  # type: ignore[no-untyped-def]
    """``decode_http(body)`` with ``aios_serve._tensors.<setting>`` set to ``value``: its tensors and other fields,
    or its error."""
    from aios_serve import _tensors

    saved = getattr(_tensors, setting)
    setattr(_tensors, setting, value)
    try:
        request = _tensors.decode_http(body, None)
    except _tensors.ProtocolError as error:
        return ("error", str(error), error.status)
    finally:
        setattr(_tensors, setting, saved)
    return ([(t.name, t.datatype, t.shape, t.array.dtype.str, t.array.tolist()) for t in request.inputs],
            request.id, request.outputs, request.parameters)


@pytest.mark.parametrize("case", sorted(BODIES))
def test_simdjson_and_orjson_decode_alike(case: str) -> None:
    pytest.importorskip("simdjson")
    body = BODIES[case]
    assert len(body) > 8 * 1024
    assert _decode(body, "SIMDJSON_BYTES", 0) == _decode(body, "SIMDJSON_BYTES", 1 << 40)


def test_flat_numbers_skip_python_floats() -> None:
    """The simdjson path hands the data over as one float64 buffer, not a list of Python floats."""
    pytest.importorskip("simdjson")
    from aios_serve._tensors import _large_json

    document = _large_json(BODIES["flat floats"])
    data = document["inputs"][0]["data"]
    assert isinstance(data, np.ndarray) and data.dtype == np.float64
    np.testing.assert_array_equal(data, ROW)


# ---------------------------------------------------------------- small bodies: the typed decoder and orjson
def _small(data: object = (0.5, -1, 2e-3), datatype: str = "FP32", shape: object = (1, 3), **extra: object) -> bytes:
    tensor = {"name": "input", "shape": list(shape) if isinstance(shape, tuple) else shape, "datatype": datatype,
              "data": list(data) if isinstance(data, tuple) else data}
    return json.dumps({"inputs": [tensor], **extra}).encode()


SMALL = {
    "common": _small(),
    "common with id": _small(id="r1"),
    "id null": _small(id=None),
    "id a number": _small(id=3),
    "FP16": _small(datatype="FP16"),
    "FP64": _small(datatype="FP64"),
    "INT32": _small((1, 2, 3), "INT32"),
    "integers as FP32": _small((1, 2, 3)),
    "beyond float32": _small((1e39, 0, 0)),
    "a number past float64": _small().replace(b"0.5", b"1e400"),
    "booleans as FP32": _small((True, False, True)),
    "strings as FP32": _small(("1", "2", "3")),
    "nested data": _small([[1, 2, 3]]),
    "too many values": _small((1, 2, 3, 4)),
    "too few values": _small((1, 2)),
    "empty shape": _small((1.5,), shape=[]),
    "zero rows": _small((), shape=(0, 3)),
    "negative dimension": _small(shape=(-1, 3)),
    "float dimension": _small(shape=[1.0, 3]),
    "huge dimension": _small(shape=(1, 2**64)),
    "nine dimensions": _small((1.0,), shape=(1,) * 9),
    "shape not a list": _small(shape="1,3"),
    "unknown datatype": _small(datatype="FP8"),
    "no name": json.dumps({"inputs": [{"shape": [1, 1], "datatype": "FP32", "data": [1]}]}).encode(),
    "name a number": json.dumps({"inputs": [{"name": 1, "shape": [1, 1], "datatype": "FP32", "data": [1]}]}).encode(),
    "input parameters": _small(parameters=None).replace(b'"data"', b'"parameters": {}, "data"'),
    "request parameters": _small(parameters={"raw": True}),
    "outputs": _small(outputs=[{"name": "label"}]),
    "unknown field": _small(extra=1),
    "duplicate key": _small().replace(b'"name": "input"', b'"name": "a", "name": "input"'),
    "no inputs": b'{"inputs": []}',
    "two inputs": json.dumps({"inputs": [json.loads(_small())["inputs"][0]] * 2}).encode(),
    "escaped name": _small().replace(b'"input"', b'"\\u0069nput"'),
    "lone surrogate": _small().replace(b'"input"', b'"\\ud800"'),
    "invalid UTF-8": _small().replace(b'"input"', b'"in\xffput"'),
    "trailing garbage": _small() + b"x",
    "whitespace around": b" \n" + _small() + b" \n",
    "byte order mark": b"\xef\xbb\xbf" + _small(),
    "NaN literal": _small().replace(b"0.5", b"NaN"),
    "leading zero": _small().replace(b"0.5", b"05"),
    "not an object": b"[1, 2, 3]",
    "empty": b"",
}


@pytest.mark.parametrize("case", sorted(SMALL))
def test_typed_and_general_decode_alike(case: str) -> None:
    """Every small body decodes to the same tensors (or the same error) whether or not the typed decoder runs."""
    assert _decode(SMALL[case], "TYPED_JSON", True) == _decode(SMALL[case], "TYPED_JSON", False)


def test_typed_decoder_takes_the_common_request() -> None:
    from aios_serve._tensors import _typed_json

    request = _typed_json(SMALL["common with id"])
    assert request is not None and request.id == "r1" and request.inputs[0].finite
    assert request.inputs[0].array.dtype == np.float32
    for case in ("beyond float32", "outputs", "request parameters", "nested data", "too many values", "INT32"):
        assert _typed_json(SMALL[case]) is None, case


_numbers = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-2**70, 2**70))
_values = st.one_of(_numbers, st.booleans(), st.none(), st.text(max_size=3))


@settings(max_examples=300, deadline=None)
@given(data=st.lists(st.one_of(_numbers, _values, st.lists(_numbers, max_size=3)), max_size=6),
       shape=st.lists(st.integers(-1, 6), max_size=3), datatype=st.sampled_from(["FP32", "FP16", "FP64", "INT8"]),
       request_id=st.one_of(st.none(), st.text(max_size=4), st.integers()))
def test_typed_and_general_decode_alike_on_generated_bodies(data, shape, datatype, request_id) -> None:  # type: ignore[no-untyped-def]
    body = _small(data, datatype, shape, **({} if request_id is None else {"id": request_id}))
    assert _decode(body, "TYPED_JSON", True) == _decode(body, "TYPED_JSON", False)


@settings(max_examples=300, deadline=None)
@given(data=st.lists(st.one_of(_numbers, st.floats(-1e39, 1e39), st.floats(-1e-40, 1e-40)), min_size=1, max_size=8),
       datatype=st.sampled_from(["FP32", "FP16"]))
def test_typed_and_general_decode_numbers_alike(data, datatype) -> None:  # type: ignore[no-untyped-def]
    """Numbers the typed decoder takes (ints, subnormals, float32's edges) become the same float32 values."""
    body = _small(data, datatype, [1, len(data)])
    assert _decode(body, "TYPED_JSON", True) == _decode(body, "TYPED_JSON", False)
