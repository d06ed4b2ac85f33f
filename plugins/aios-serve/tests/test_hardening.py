"""Hostile or careless clients: deadlines, the connection cap, malformed HTTP, the admission limit, auth edges.

Each test starts its own small server (a thread of this process) with tight limits, so
the deadlines are short; what is checked is the answer (a JSON error, the status) and
that the server keeps answering, never how long anything took.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from aios_serve_test_helpers import FEATURES, MODEL, ServerProcess

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def strict(run_dir: Path) -> Iterator[str]:
    from aios_serve.server import BackgroundServer, ServerSettings

    settings = ServerSettings(header_timeout=0.5, body_timeout=0.5, max_connections=8, token=TOKEN)
    with BackgroundServer([run_dir], settings=settings) as running:
        yield running.url


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def raw_exchange(url: str, data: bytes, wait: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it."""
    with socket.create_connection(address(url), timeout=wait) as connection:
        if data:
            connection.sendall(data)
        chunks = []
        while True:
            try:
                chunk = connection.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def status_and_json(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def healthy(url: str) -> bool:
    return httpx.get(url + "/v2/health/live").status_code == 200


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def test_a_connection_sending_nothing_is_closed_with_a_json_408(strict: str) -> None:
    status, body = status_and_json(raw_exchange(strict, b""))
    assert status == 408 and "headers" in body["error"]
    assert healthy(strict)


def test_slow_headers_are_cut_off(strict: str) -> None:
    status, _ = status_and_json(raw_exchange(strict, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n"))
    assert status == 408


def test_a_body_shorter_than_its_content_length_gets_a_json_408(strict: str) -> None:
    request = (f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
               "Content-Length: 1000\r\n\r\n{\"inputs\": [").encode()
    status, body = status_and_json(raw_exchange(strict, request))
    assert status == 408 and "body" in body["error"]
    assert healthy(strict)


@pytest.mark.parametrize("request_bytes", [
    b"POST /v2/health/live HTTP/1.1\r\nHost: x\r\nContent-Length: banana\r\n\r\n",
    b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (40 * 1024),  # headers past 16 KiB
    b"NOT HTTP AT ALL\r\n\r\n",
])
def test_malformed_http_gets_the_protocols_json_error(strict: str, request_bytes: bytes) -> None:
    status, body = status_and_json(raw_exchange(strict, request_bytes))
    assert status == 400 and isinstance(body["error"], str)
    assert healthy(strict)


def test_connections_beyond_the_cap_get_503_with_retry_after(strict: str) -> None:
    held = [socket.create_connection(address(strict)) for _ in range(8)]
    try:
        answer = raw_exchange(strict, b"")  # the answer comes at once, before any request
        status, body = status_and_json(answer)
        assert status == 503 and b"retry-after: 1" in answer.lower() and "connections" in body["error"]
    finally:
        for connection in held:
            connection.close()


def test_the_trailing_slash_is_served_as_the_canonical_path_not_redirected(strict: str) -> None:
    response = httpx.get(strict + "/v2/health/live/", headers={"Host": "evil.example"})
    assert response.status_code == 200 and "location" not in response.headers
    assert httpx.get(strict + f"/v2/models/{MODEL}/", headers=auth()).json()["name"] == MODEL


def test_with_a_token_openapi_and_the_repository_api_need_it(strict: str) -> None:
    assert httpx.get(strict + "/v2/openapi.json").status_code == 401
    assert httpx.get(strict + "/v2/openapi.json", headers=auth()).status_code == 200
    for path in (f"/v2/repository/models/{MODEL}/load", f"/v2/repository/models/{MODEL}/unload", "/v2/repository/index"):
        assert httpx.post(strict + path).status_code == 401
    assert httpx.post(strict + f"/v2/repository/models/{MODEL}/load", headers=auth()).status_code == 200


def test_two_authorization_headers_are_refused_by_every_route(strict: str) -> None:
    doubled = [("Authorization", f"Bearer {TOKEN}"), ("Authorization", "Bearer wrong")]
    body = {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": [0.0] * FEATURES}]}
    with httpx.Client(base_url=strict) as client:
        for swapped in (doubled, doubled[::-1]):
            assert client.post(f"/v2/models/{MODEL}/infer", json=body, headers=swapped).status_code == 401
            assert client.get(f"/v2/models/{MODEL}", headers=swapped).status_code == 401
            assert client.get("/metrics", headers=swapped).status_code == 401


def test_401_405_and_unknown_routes_are_counted_in_metrics(strict: str) -> None:
    httpx.get(strict + "/v2/nothing/here", headers=auth())
    httpx.get(strict + f"/v2/models/{MODEL}/infer", headers=auth())
    httpx.get(strict + "/v2")
    text = httpx.get(strict + "/metrics", headers=auth()).text
    for status in ("401", "404", "405"):
        assert f'aios_serve_http_errors_total{{status="{status}"}}' in text, status


def test_without_a_token_the_repository_api_is_off_unless_enabled(server: str, run_dir: Path) -> None:
    from aios_serve.server import BackgroundServer

    with BackgroundServer([run_dir]) as running:
        response = httpx.post(running.url + f"/v2/repository/models/{MODEL}/load")
        assert response.status_code == 403 and "repository_api" in response.json()["error"]
        assert httpx.post(running.url + "/v2/repository/index").status_code == 200


def test_the_admission_limit_answers_503_with_retry_after(run_dir: Path) -> None:
    from aios_serve.server import BackgroundServer, ServerSettings

    settings = ServerSettings(max_inflight_bytes=4096, body_timeout=5.0)
    with BackgroundServer([run_dir], settings=settings) as running:
        # one request holds 3000 bytes of its 6000-byte body in flight; a second one does not fit beside it
        with socket.create_connection(address(running.url)) as first:
            first.sendall(f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 6000\r\n\r\n".encode()
                          + b"[" + b" " * 2999)
            for _ in range(250):
                if running.state.inflight_bytes:
                    break
                time.sleep(0.02)
            rows = np.zeros((4, FEATURES), dtype=np.float32).tolist()
            response = httpx.post(running.url + f"/v2/models/{MODEL}/infer", json={"inputs": [
                {"name": "input", "shape": [4, FEATURES], "datatype": "FP32", "data": rows}]})
            assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert httpx.get(running.url + "/v2/health/live").status_code == 200


def test_sigterm_cuts_a_stalled_upload_short_with_a_json_503_and_exits_0(run_dir: Path) -> None:
    process = ServerProcess(str(run_dir))
    try:
        connection = socket.create_connection(address(process.url))
        connection.sendall(f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{{".encode())
        # the headers and a byte of the body are on the wire: the request is in flight once the server has read
        # them (the requests counter cannot tell: it shows every loaded model from the start)
        time.sleep(0.5)
        process.process.send_signal(signal.SIGTERM)
        connection.settimeout(30)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
        connection.close()
        status, body = status_and_json(answer)
        assert status == 503 and "shutting down" in body["error"]
        assert process.process.wait(30) == 0
    finally:
        process.terminate()


def test_the_limits_are_deployer_parameters() -> None:
    from aios_serve import OipDeployer

    params = OipDeployer.Params(header_timeout_s=2, body_timeout_s=3, max_connections=5, max_inflight_bytes=1000,
                                workers=1, grpc_port=None)
    settings = params.settings()
    assert (settings.header_timeout, settings.body_timeout, settings.max_connections, settings.max_inflight_bytes,
            settings.workers, settings.grpc_port) == (2, 3, 5, 1000, 1, None)
    assert settings.repository_api_on is False  # no token: the repository API stays off unless asked
