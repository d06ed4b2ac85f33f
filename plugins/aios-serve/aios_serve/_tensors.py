"""Inference requests and responses of the Open Inference Protocol, decoded to numpy and encoded back.

One request model (``InferenceRequest``) for both of the protocol's forms: the REST body
(JSON tensors, or the binary tensor data extension: a JSON header of
``Inference-Header-Content-Length`` bytes followed by the tensors' raw little-endian
bytes) and gRPC's ``ModelInferRequest`` (``contents`` or ``raw_input_contents``).
Tensor data becomes a numpy array without a Python list in between where the bytes
are raw (``np.frombuffer``); JSON arrays go through orjson and one ``np.array`` call.
The common small JSON request (``inputs`` of FP32 or FP16 tensors with flat ``data``, and
perhaps an ``id``) is decoded and checked by a typed msgspec decoder in C, its numbers
packed straight into float32; anything else, valid or not, takes the general path,
which words every error (``_typed_json``).

What a model takes is checked afterwards (``_inference.model_rows``); here only what
the protocol itself requires: known datatypes, shapes of non-negative integers, as
many elements as the shape says, binary sizes that add up to the body.
"""

from __future__ import annotations

import array
import math
import struct
import threading
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import orjson

__all__ = ["DATATYPES", "InferenceRequest", "InputTensor", "OutputTensor", "ProtocolError", "RequestedOutput",
           "decode_http", "encode_http", "serialize_bytes"]


class ProtocolError(Exception):
    """A request the protocol answers with ``{"error": message}`` and ``status``."""

    def __init__(self, message: str, status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"), "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"), "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
}
"""The protocol's fixed-size datatypes and their little-endian numpy types (``BYTES`` is handled apart)."""
ALL_DATATYPES = (*DATATYPES, "BYTES")
_KNOWN = frozenset(ALL_DATATYPES)
_AS_FLOAT32 = frozenset(("FP16", "FP32"))
"""JSON data of these datatypes is read as float32 at once (what the models take, exactly as a later cast)."""
HEADER_LENGTH = "inference-header-content-length"
MAX_DIMENSIONS = 8


# msgspec Structs rather than dataclasses: the same fields and positional construction, built in C (a
# request builds four of them; dataclass __init__s were about 60 of the request path's Python bytecodes)
class InputTensor(msgspec.Struct):
    name: str
    datatype: str
    shape: list[int]
    array: np.ndarray
    """The elements, flat, in the datatype's numpy type (``object`` of bytes for BYTES)."""
    finite: bool = False
    """True when the elements are known to be finite float32 (the typed JSON path): not checked again."""


class RequestedOutput(msgspec.Struct):
    name: str
    binary: bool | None = None
    """``parameters.binary_data`` of the request's output entry; None: the request's default."""


class InferenceRequest(msgspec.Struct):
    inputs: list[InputTensor]
    outputs: list[RequestedOutput] | None = None
    id: str | None = None
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    """Never mutated (a request without parameters shares one empty dict)."""

    def flag(self, key: str) -> bool:
        """A boolean request parameter (false when absent)."""
        value = self.parameters.get(key, False)
        if not isinstance(value, bool):
            raise ProtocolError(f"parameter {key!r} must be true or false, found {value!r}"[:200])
        return value


class OutputTensor(msgspec.Struct):
    name: str
    datatype: str
    shape: list[int]
    array: np.ndarray
    """float32 probabilities, or an ``object`` array of ``str`` labels (BYTES)."""


# ---------------------------------------------------------------- shapes and elements
def _shape(value: Any, name: str) -> list[int]:
    if type(value) is list and len(value) <= MAX_DIMENSIONS:
        for d in value:
            if type(d) is not int or d < 0:
                break
        else:
            return value
    raise ProtocolError(f"input {name!r} has shape {value!r}"[:200] + "; a shape is a list of at most "
                        f"{MAX_DIMENSIONS} non-negative integers")


def _elements(shape: list[int]) -> int:
    return math.prod(shape)


def deserialize_bytes(raw: bytes | memoryview, count: int, name: str) -> np.ndarray:
    """BYTES elements in binary form: each a 4-byte little-endian length, then that many bytes."""
    view = memoryview(raw)
    values, offset = [], 0
    while offset < len(view):
        if offset + 4 > len(view) or len(values) >= count:
            break
        (length,) = struct.unpack_from("<I", view, offset)
        offset += 4
        if offset + length > len(view):
            raise ProtocolError(f"input {name!r}: a BYTES element of {length} bytes runs past the tensor's data")
        values.append(bytes(view[offset:offset + length]))
        offset += length
    if len(values) != count or offset != len(view):
        raise ProtocolError(f"input {name!r}: the binary BYTES data does not hold exactly {count} elements "
                            "(each a 4-byte little-endian length and its bytes)")
    array = np.empty(count, dtype=object)
    array[:] = values
    return array


def serialize_bytes(values: np.ndarray) -> bytes:
    """BYTES elements (str or bytes) in binary form: each a 4-byte little-endian length, then the bytes."""
    parts = []
    for value in values.ravel():
        data = value.encode() if isinstance(value, str) else bytes(value)
        parts.append(struct.pack("<I", len(data)))
        parts.append(data)
    return b"".join(parts)


def from_raw(raw: bytes | memoryview, datatype: str, shape: list[int], name: str) -> np.ndarray:
    """A tensor's raw little-endian bytes as a flat array, checked against its shape (no copy)."""
    count = _elements(shape)
    if datatype == "BYTES":
        return deserialize_bytes(raw, count, name)
    dtype = DATATYPES[datatype]
    if len(raw) != count * dtype.itemsize:
        raise ProtocolError(f"input {name!r}: {len(raw)} bytes of binary data, but shape {shape} of {datatype} "
                            f"needs {count * dtype.itemsize}")
    if datatype == "BOOL":
        values = np.frombuffer(raw, dtype=np.uint8)
        if values.size and values.max() > 1:
            raise ProtocolError(f"input {name!r}: BOOL elements must be bytes 0 or 1")
        return values.view(np.bool_)
    return np.frombuffer(raw, dtype=dtype)


def _integral(values: np.ndarray, datatype: str, name: str) -> np.ndarray:
    info = np.iinfo(DATATYPES[datatype])
    if values.size and (not np.all(np.isfinite(values)) or np.any(values != np.round(values))
                        or values.min() < info.min or values.max() > info.max):
        raise ProtocolError(f"input {name!r}: {datatype} data must be integers in [{info.min}, {info.max}]")
    return values


def from_json(data: Any, datatype: str, shape: list[int], name: str) -> np.ndarray:
    """A tensor's JSON ``data`` (flat or nested, row-major) as a flat array of its datatype's kind."""
    count = _elements(shape)
    if type(data) is np.ndarray:  # flat JSON numbers, parsed as float64 by simdjson (_large_json)
        if datatype in _AS_FLOAT32:
            with np.errstate(over="ignore"):
                array = data.astype(np.float32)  # as array.array("f") would (beyond float32's range: inf)
        elif datatype in ("FP64", "BYTES", "BOOL"):
            array = data if datatype == "FP64" else from_json(data.tolist(), datatype, shape, name)
        else:
            array = _integral(data, datatype, name)
        if array.size != count:
            raise ProtocolError(f"input {name!r}: \"data\" holds {array.size} values, shape {shape} needs {count}")
        return array
    if not isinstance(data, list):
        raise ProtocolError(f"input {name!r} needs \"data\": a JSON array in row-major order (or binary data)")
    if datatype == "BYTES":
        flat = _flatten(data)
        if flat is None or not all(isinstance(v, str) for v in flat):
            raise ProtocolError(f"input {name!r}: BYTES data must be JSON strings")
        array = np.empty(len(flat), dtype=object)
        array[:] = [v.encode() for v in flat]
    elif datatype == "BOOL":
        flat = _flatten(data)
        if flat is None or not all(type(v) is bool for v in flat):
            raise ProtocolError(f"input {name!r}: BOOL data must be true or false")
        array = np.array(flat, dtype=np.bool_)
    elif datatype in _AS_FLOAT32:
        array = _numbers(data, name, "f")  # straight to the float32 the model takes (beyond its range: inf)
    else:
        array = _numbers(data, name, "d")
        if datatype != "FP64":
            array = _integral(array, datatype, name)
    if array.size != count:
        raise ProtocolError(f"input {name!r}: \"data\" holds {array.size} values, shape {shape} needs {count}")
    return array


def _flatten(data: list[Any]) -> list[Any] | None:
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                if len(stack) > MAX_DIMENSIONS:
                    return None
                stack.append(iter(value))
                break
            flat.append(value)
        else:
            stack.pop()
    return flat


def _numbers(data: list[Any], name: str, kind: str = "d") -> np.ndarray:
    """JSON numbers (flat, or nested in a regular array) as float64 (``kind`` "d") or float32 ("f").

    The flat case goes through ``array.array``: one C loop that refuses anything but
    numbers (a string like "1" included, which numpy would convert); nested or odd data
    takes the general path, which also words the errors. As float32, numbers beyond its
    range become infinity (which ``model_rows`` refuses), as numpy's conversion does.
    """
    try:
        return np.frombuffer(array.array(kind, data), dtype=np.float32 if kind == "f" else np.float64)
    except (TypeError, OverflowError):
        pass
    try:
        values = np.asarray(data)
    except (ValueError, TypeError, RecursionError, OverflowError):
        raise ProtocolError(f"input {name!r}: \"data\" is not a regular array of numbers") from None
    if values.dtype.kind not in "iuf" or values.dtype == np.bool_:
        raise ProtocolError(f"input {name!r}: \"data\" must hold numbers only"
                            if values.size else f"input {name!r}: \"data\" is empty")
    try:
        if kind == "f":
            with np.errstate(over="ignore", invalid="ignore"):
                return values.astype(np.float32).ravel()
        return values.astype(np.float64).ravel()
    except OverflowError:
        raise ProtocolError(f"input {name!r}: \"data\" holds numbers too large") from None


# ---------------------------------------------------------------- the REST form
_NO_PARAMETERS: dict[str, Any] = {}
_NO_BINARY = memoryview(b"")


def _parameters(value: Any, where: str, name: str = "") -> dict[str, Any]:
    if value is None:
        return _NO_PARAMETERS
    if type(value) is not dict:
        raise ProtocolError(f"\"parameters\" of {where} {name!r} must be a JSON object" if name else
                            f"\"parameters\" of {where} must be a JSON object")
    return value


def decode_http(body: bytes, header_length: str | None) -> InferenceRequest:
    """An inference request body: JSON, or a JSON header of ``header_length`` bytes followed by binary tensors."""
    if header_length is None:
        if TYPED_JSON and len(body) < SIMDJSON_BYTES and (request := _typed_json(body)) is not None:
            return request
        header, binary = body, _NO_BINARY
    else:
        if not header_length.isdigit() or not 0 < int(header_length) <= len(body):
            raise ProtocolError(f"Inference-Header-Content-Length is {header_length[:20]!r}; it must be the JSON "
                                f"header's size in bytes, between 1 and the body's {len(body)}")
        size = int(header_length)
        header, binary = body[:size], memoryview(body)[size:]
    if not header or header.isspace():
        raise ProtocolError("request body is empty; send a JSON object with \"inputs\"")
    document = _large_json(header) if len(header) >= SIMDJSON_BYTES else None
    if document is None:
        try:
            document = orjson.loads(header)
        except (ValueError, RecursionError) as error:
            raise ProtocolError(f"request body is not valid JSON ({error})"[:300]) from None
    return request_from_json(document, binary, header_length is not None)


# ---------------------------------------------------------------- the common small request, typed
_Dimension = Annotated[int, msgspec.Meta(ge=0, le=2**53)]


class _TypedInput(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    name: str
    datatype: Literal["FP32", "FP16"]
    shape: Annotated[list[_Dimension], msgspec.Meta(max_length=MAX_DIMENSIONS)]
    data: list[float]


class _TypedRequest(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    inputs: Annotated[list[_TypedInput], msgspec.Meta(min_length=1)]
    id: str | None = None


_TYPED = msgspec.json.Decoder(_TypedRequest)
_FLOAT32 = np.dtype("<f4")
_frombuffer = np.frombuffer
_packers: dict[int, struct.Struct] = {}
TYPED_JSON = True
"""Whether small JSON bodies try the typed decoder first (the tests turn it off to compare both paths)."""


def _typed_json(body: bytes) -> InferenceRequest | None:
    """The request, when ``body`` has the common shape: an object of ``inputs`` (and at most an ``id``), each
    input exactly ``name``, ``datatype`` FP32 or FP16, ``shape`` and flat numeric ``data`` of as many
    numbers as the shape says, each within float32's range. None for anything else (unknown or other
    fields, other datatypes, nested data, invalid JSON ...): the general path decodes it, and words the error.

    msgspec checks the document against these types in C (the general path's checks, for this shape),
    and ``struct`` packs the numbers into float32 bytes, refusing any beyond float32's range (which the
    general path turns into infinity and refuses later). Duplicate keys: the last wins, as with orjson.
    """
    try:
        document = _TYPED.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    tensors = []
    for tensor in document.inputs:
        data = tensor.data
        count = len(data)
        if count != math.prod(tensor.shape):
            return None
        packer = _packers.get(count) or _packer(count)
        if packer is None:
            return None
        try:
            values = _frombuffer(packer.pack(*data), _FLOAT32)
        except OverflowError:
            return None
        tensors.append(InputTensor(tensor.name, tensor.datatype, tensor.shape, values, True))
    return InferenceRequest(tensors, None, document.id, _NO_PARAMETERS)


def _packer(count: int) -> struct.Struct | None:
    """A ``struct.Struct`` packing ``count`` numbers as little-endian float32 (kept for the next request)."""
    if count > 4096:
        return None
    packer = struct.Struct(f"<{count}f")
    if len(_packers) < 256:
        _packers[count] = packer
    return packer


SIMDJSON_BYTES = 8 * 1024
"""JSON bodies from this size on are parsed with simdjson, the inputs' flat ``data`` arrays straight into
float64 buffers (no Python float per element: about half the time and memory of orjson and a list);
smaller ones with orjson, quicker to start."""
_parsers = threading.local()


def _large_json(body: bytes) -> Any:
    """The document as Python values, each input's flat numeric ``data`` as a float64 array; None when
    simdjson refuses the body or is not installed (orjson then parses it, and words any error)."""
    try:
        import simdjson
    except ImportError:
        return None
    parser = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = simdjson.Parser()
    try:
        document = parser.parse(body)
    except (ValueError, RecursionError):
        return None
    try:
        if not isinstance(document, simdjson.Object):
            return document.as_list() if isinstance(document, simdjson.Array) else document
        plain = {key: document[key] for key in document.keys() if key != "inputs"}
        plain = {key: v.as_list() if isinstance(v, simdjson.Array) else v.as_dict()
                 if isinstance(v, simdjson.Object) else v for key, v in plain.items()}
        if "inputs" in document:
            inputs = document["inputs"]
            plain["inputs"] = [_large_input(tensor, simdjson) for tensor in inputs] \
                if isinstance(inputs, simdjson.Array) else _plain(inputs, simdjson)
        return plain
    finally:
        del document  # the parser may parse again only once nothing refers to its document


def _plain(value: Any, simdjson: Any) -> Any:
    if isinstance(value, simdjson.Array):
        return value.as_list()
    if isinstance(value, simdjson.Object):
        return value.as_dict()
    return value


def _large_input(tensor: Any, simdjson: Any) -> Any:
    if not isinstance(tensor, simdjson.Object):
        return _plain(tensor, simdjson)
    plain = {}
    for key in tensor.keys():
        value = tensor[key]
        if key == "data" and isinstance(value, simdjson.Array) and (len(value) == 0 or not isinstance(
                value[0], simdjson.Array)):
            try:  # flat and all numbers: one C loop into a buffer
                plain[key] = np.frombuffer(value.as_buffer(of_type="d"), dtype=np.float64)
                continue
            except (TypeError, ValueError):
                pass
        plain[key] = _plain(value, simdjson)
    return plain


def request_from_json(document: Any, binary: memoryview, has_header: bool) -> InferenceRequest:
    if type(document) is not dict:
        raise ProtocolError("request body must be a JSON object with \"inputs\"")
    inputs = document.get("inputs")
    if type(inputs) is not list or not inputs:
        raise ProtocolError("missing input: the request needs \"inputs\": [{\"name\": ..., \"shape\": [n, features], "
                            "\"datatype\": \"FP32\", \"data\": [...]}]")
    tensors, offset = [], 0
    for tensor in inputs:
        if type(tensor) is not dict or type(name := tensor.get("name")) is not str:
            raise ProtocolError("each input must be an object with a string \"name\"")
        datatype = tensor.get("datatype")
        if type(datatype) is not str or datatype not in _KNOWN:
            raise ProtocolError(f"input {name!r} has datatype {datatype!r}"[:200] + "; the protocol's datatypes are "
                                + ", ".join(ALL_DATATYPES))
        shape = _shape(tensor.get("shape"), name)
        parameters = tensor.get("parameters")
        size = None if parameters is None else _parameters(parameters, "input", name).get("binary_data_size")
        if size is None:
            array = from_json(tensor.get("data"), datatype, shape, name)
        else:
            if type(size) is not int or size < 0:
                raise ProtocolError(f"input {name!r}: binary_data_size must be a non-negative integer")
            if not has_header:
                raise ProtocolError(f"input {name!r} declares binary_data_size, but the request has no "
                                    "Inference-Header-Content-Length header telling where the JSON ends")
            if offset + size > len(binary):
                raise ProtocolError(f"input {name!r}: binary_data_size {size} runs past the body's binary data "
                                    f"({len(binary) - offset} bytes left)")
            array = from_raw(binary[offset:offset + size], datatype, shape, name)
            offset += size
        tensors.append(InputTensor(name, datatype, shape, array))
    if offset != len(binary):
        raise ProtocolError(f"the body holds {len(binary)} bytes of binary data after the JSON header, but the "
                            f"inputs' binary_data_size add up to {offset}")
    outputs = None
    wanted = document.get("outputs")
    if wanted is not None:
        if not isinstance(wanted, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                   for o in wanted):
            raise ProtocolError("\"outputs\" must be a list of {\"name\": ...} objects")
        outputs = []
        for output in wanted:
            binary_flag = _parameters(output.get("parameters"), "output", output["name"]).get("binary_data")
            if binary_flag is not None and not isinstance(binary_flag, bool):
                raise ProtocolError(f"output {output['name']!r}: binary_data must be true or false")
            outputs.append(RequestedOutput(output["name"], binary_flag))
    request_id = document.get("id")
    if request_id is not None and type(request_id) is not str:
        raise ProtocolError("\"id\" must be a string")
    parameters = document.get("parameters")
    return InferenceRequest(tensors, outputs, request_id,
                            _NO_PARAMETERS if parameters is None else _parameters(parameters, "the request"))


def encode_http(model_name: str, model_version: str, request: InferenceRequest,
                outputs: list[OutputTensor]) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when some output goes as binary data (else None)."""
    if request.outputs is None and not request.parameters:  # the common answer: every output as JSON
        tensors = [{"name": o.name, "datatype": o.datatype, "shape": o.shape,
                    "data": o.array.tolist() if o.datatype == "BYTES" else o.array.ravel()} for o in outputs]
        return orjson.dumps({"model_name": model_name, "model_version": model_version, "outputs": tensors}
                            if request.id is None else {"model_name": model_name, "model_version": model_version,
                                                        "id": request.id, "outputs": tensors},
                            option=orjson.OPT_SERIALIZE_NUMPY), None
    default = request.flag("binary_data_output") if request.parameters else False
    wanted = request.outputs
    binary = {o.name: (default if o.binary is None else o.binary) for o in wanted} if wanted else None
    header: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request.id is not None:
        header["id"] = request.id
    header["outputs"] = tensors = []
    raw = None
    for output in outputs:
        if default if binary is None else binary.get(output.name, default):
            data = serialize_bytes(output.array) if output.datatype == "BYTES" else output.array.tobytes()
            tensors.append({"name": output.name, "datatype": output.datatype, "shape": output.shape,
                            "parameters": {"binary_data_size": len(data)}})
            raw = [data] if raw is None else [*raw, data]
        else:
            tensors.append({"name": output.name, "datatype": output.datatype, "shape": output.shape,
                            "data": output.array.tolist() if output.datatype == "BYTES" else output.array.ravel()})
    content = orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY)
    if raw is None:
        return content, None
    return b"".join([content, *raw]), len(content)
