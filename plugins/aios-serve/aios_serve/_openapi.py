"""The server's OpenAPI 3 description (served at ``/v2/openapi.json``): the protocol's REST endpoints.

Written from the Open Inference Protocol's REST specification (KServe's
``rest_predict_v2.yaml``) plus the repository extension this server implements.
"""

from __future__ import annotations

from typing import Any

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
_TENSOR = {
    "type": "object", "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string", "enum": ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16",
                                                "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"]},
        "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer"}}},
        "data": {"type": "array", "description": "absent when the tensor's bytes follow the JSON (binary_data_size)"},
    },
}
_INFER_REQUEST = {
    "type": "object", "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object", "properties": {"raw": {"type": "boolean"},
                                                        "binary_data_output": {"type": "boolean"}}},
        "inputs": {"type": "array", "items": _TENSOR},
        "outputs": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"},
            "parameters": {"type": "object", "properties": {"binary_data": {"type": "boolean"}}}}}},
    },
}
_INFER_RESPONSE = {
    "type": "object", "required": ["model_name", "outputs"],
    "properties": {"model_name": {"type": "string"}, "model_version": {"type": "string"}, "id": {"type": "string"},
                   "outputs": {"type": "array", "items": _TENSOR}},
}
_METADATA = {
    "type": "object", "required": ["name", "platform", "inputs", "outputs"],
    "properties": {"name": {"type": "string"}, "versions": {"type": "array", "items": {"type": "string"}},
                   "platform": {"type": "string"}, "inputs": {"type": "array"}, "outputs": {"type": "array"}},
}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_VERSION = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _json(_ERROR, "error") for code in codes}


def _get(summary: str, ok: dict[str, Any], *errors: int, params: tuple = ()) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": list(params),
                    "responses": {"200": _json(ok, "OK"), **_errors(*errors)}}}


_HEADER_LENGTH = {"name": "Inference-Header-Content-Length", "in": "header", "required": False,
                  "schema": {"type": "integer"}, "description": "binary tensor data extension: the JSON header's "
                  "size in bytes; the tensors' raw bytes follow it"}


def _infer(params: tuple) -> dict[str, Any]:
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {"post": {"summary": "Inference", "parameters": [*params, _HEADER_LENGTH],
                     "requestBody": {"required": True, "content": {"application/json": {"schema": _INFER_REQUEST},
                                                                   "application/octet-stream": binary}},
                     "responses": {"200": {"description": "Class probabilities and labels (JSON, or a JSON header "
                                                          "and binary outputs)",
                                           "content": {"application/json": {"schema": _INFER_RESPONSE},
                                                       "application/octet-stream": binary}},
                                   **_errors(400, 401, 404, 408, 413, 503)}}}


def openapi_document(version: str = "") -> dict[str, Any]:
    """The OpenAPI 3.0 document of every endpoint."""
    live = {"type": "object", "properties": {"live": {"type": "boolean"}}}
    ready = {"type": "object", "properties": {"ready": {"type": "boolean"}}}
    model_ready = {"type": "object", "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}}}
    server = {"type": "object", "required": ["name", "version", "extensions"],
              "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                             "extensions": {"type": "array", "items": {"type": "string"}}}}
    load_body = {"type": "object", "properties": {"parameters": {"type": "object", "properties": {
        "run_dir": {"type": "string"}, "version": {"type": "string"}}}}}
    repo_post = lambda summary, ok: {"post": {
        "summary": summary, "parameters": [_NAME],
        "requestBody": {"required": False, "content": {"application/json": {"schema": load_body}}},
        "responses": {"200": _json(ok, "OK"), **_errors(400, 401, 403, 404)}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "aios-serve: Open Inference Protocol (REST)", "version": version or "0"},
        "paths": {
            "/v2/health/live": _get("Server live", live),
            "/v2/health/ready": _get("Server ready", ready),
            "/v2": _get("Server metadata", server, 401),
            "/v2/models/{name}": _get("Model metadata", _METADATA, 400, 401, 404, params=(_NAME,)),
            "/v2/models/{name}/versions/{version}": _get("Model version metadata", _METADATA, 400, 401, 404,
                                                         params=(_NAME, _VERSION)),
            "/v2/models/{name}/ready": _get("Model ready", model_ready, 400, 401, 404, params=(_NAME,)),
            "/v2/models/{name}/versions/{version}/ready": _get("Model version ready", model_ready, 400, 401, 404,
                                                               params=(_NAME, _VERSION)),
            "/v2/models/{name}/infer": _infer((_NAME,)),
            "/v2/models/{name}/versions/{version}/infer": _infer((_NAME, _VERSION)),
            "/v2/repository/index": {"post": {"summary": "Repository index", "responses": {
                "200": _json({"type": "array", "items": {"type": "object"}}, "Every known model version"),
                **_errors(400, 401)}}},
            "/v2/repository/models/{name}/load": repo_post("Load a model", {"type": "object"}),
            "/v2/repository/models/{name}/unload": repo_post("Unload a model", {"type": "object"}),
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
                "200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}},
                **_errors(401)}}},
        },
    }
