"""Zero-delay coalescing: the inference requests read in one turn of the server's event loop share one model call.

To make several requests arrive in one turn without relying on timing, the test holds the
server's loop (a callback that waits on an event, run in the loop's thread), sends every
request on its own keep-alive connection while it is held (the bytes wait in the sockets'
buffers), then lets it go: the next poll reports every socket at once. The model calls are
read from the server's own ``/metrics`` (``aios_serve_batch_size``: one observation per ONNX
Runtime call, its rows summed). The shared server runs once on uvloop and once on asyncio's own loop.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from aios_serve_test_helpers import CLASS_NAMES, FEATURES, MODEL


@pytest.fixture(scope="module", params=["uvloop", "asyncio"])
def running(run_dir: Path, request: pytest.FixtureRequest) -> Iterator[object]:
    """The server on uvloop (what uvicorn picks when it is installed) and on asyncio's own loop: both must run
    ``call_soon`` callbacks only after every read of the turn."""
    from aios_serve.server import BackgroundServer, ServerSettings

    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    server = BackgroundServer([run_dir], settings=ServerSettings(max_batch_size=32))
    server._server.config.loop = request.param  # uvicorn's loop setting, read when the server starts
    with server:
        assert type(server.state.loop).__module__.startswith(request.param)
        yield server


def _body(rows: np.ndarray, **extra: object) -> bytes:
    return json.dumps({"inputs": [{"name": "input", "shape": list(rows.shape), "datatype": "FP32",
                                   "data": rows.ravel().tolist()}], **extra}).encode()


def _request(body: bytes) -> bytes:
    return (f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class _Client:
    """One keep-alive connection, sending a request in one packet and reading its answer."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.socket = socket.create_connection((host, int(port)), timeout=30)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.socket.makefile("rb")

    def send(self, body: bytes) -> None:
        self.socket.sendall(_request(body))

    def answer(self) -> tuple[int, dict]:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = self.file.readline()
            assert line, "the server closed the connection"
            head += line
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        return int(head.split()[1]), json.loads(self.file.read(length))

    def close(self) -> None:
        self.file.close()
        self.socket.close()


@contextmanager
def _clients(url: str, count: int, rows: np.ndarray) -> Iterator[list[_Client]]:
    """``count`` connections, each answered once (so the server has accepted every one of them)."""
    clients = [_Client(url) for _ in range(count)]
    try:
        for client in clients:
            client.send(_body(rows[:1]))
            assert client.answer()[0] == 200
        yield clients
    finally:
        for client in clients:
            client.close()


@contextmanager
def _loop_held(server) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """The server's event loop blocked in one of its callbacks until the block ends."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        held.set()
        release.wait(30)

    server.state.loop.call_soon_threadsafe(hold)
    assert held.wait(30), "the server's loop did not run the holding callback"
    try:
        yield
    finally:
        release.set()


def _no_connections(server) -> None:  # type: ignore[no-untyped-def]
    """Wait until the server has closed the connections of earlier tests (it learns of a close in its loop)."""
    connections = server._server.server_state.connections
    deadline = time.monotonic() + 30
    while connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not connections, f"{len(connections)} connections still open"


def _model_calls(url: str) -> tuple[int, float]:
    """(ONNX Runtime calls, rows in them) of the test model, from ``/metrics``."""
    with urllib.request.urlopen(url + "/metrics", timeout=30) as response:
        text = response.read().decode()

    def value(name: str) -> float:
        found = re.search(rf'^aios_serve_batch_size_{name}{{model="{MODEL}",[^}}]*}} (\S+)$', text, re.MULTILINE)
        assert found, f"aios_serve_batch_size_{name} for {MODEL} missing from /metrics"
        return float(found.group(1))

    return int(value("count")), value("sum")


def _in_one_turn(server, clients: list[_Client], bodies: list[bytes]) -> tuple[list[tuple[int, dict]], int, float]:  # type: ignore[no-untyped-def]
    """Send ``bodies`` (one per client) while the server's loop is held; the answers, and the model calls and
    rows they took."""
    calls, rows = _model_calls(server.url)
    with _loop_held(server):
        for client, body in zip(clients, bodies, strict=True):
            client.send(body)
    answers = [client.answer() for client in clients]
    after_calls, after_rows = _model_calls(server.url)
    return answers, after_calls - calls, after_rows - rows


def _probabilities(answer: dict) -> np.ndarray:
    (output,) = [o for o in answer["outputs"] if o["name"] == "probabilities"]
    return np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])


def test_requests_read_in_one_turn_share_one_model_call(running, rows: np.ndarray, reference) -> None:  # type: ignore[no-untyped-def]
    sizes = [1, 2, 3, 1, 4, 1]
    parts, start = [], 0
    for size in sizes:
        parts.append(rows[start:start + size])
        start += size
    bodies = [_body(part, id=f"request-{index}") for index, part in enumerate(parts)]
    bodies[2] = _body(parts[2], id="request-2", outputs=[{"name": "label"}])
    with _clients(running.url, len(sizes), rows) as clients:
        answers, calls, batched = _in_one_turn(running, clients, bodies)
    assert (calls, batched) == (1, sum(sizes))  # one ONNX Runtime call for all 12 rows
    for index, ((status, answer), part) in enumerate(zip(answers, parts, strict=True)):
        assert status == 200, answer
        assert answer["id"] == f"request-{index}"
        expected = reference(part)
        if index == 2:  # asked for the labels only
            assert [o["name"] for o in answer["outputs"]] == ["label"]
            assert answer["outputs"][0]["data"] == [CLASS_NAMES[c] for c in expected.argmax(axis=1)]
        else:
            np.testing.assert_allclose(_probabilities(answer), expected, atol=1e-5)


def test_a_bad_request_among_good_ones_fails_alone(running, rows: np.ndarray, reference) -> None:  # type: ignore[no-untyped-def]
    bodies = [_body(rows[:2]), b"{not json", _body(rows[2:3, :10]), _body(np.full((1, FEATURES), 1e39)),
              _body(rows[3:4])]
    with _clients(running.url, len(bodies), rows) as clients:
        answers, calls, batched = _in_one_turn(running, clients, bodies)
    assert (calls, batched) == (1, 3)  # the good requests' rows, in one call
    assert [status for status, _ in answers] == [200, 400, 400, 400, 200]
    assert "not valid JSON" in answers[1][1]["error"]
    assert "shape" in answers[2][1]["error"]
    assert "infinity" in answers[3][1]["error"]
    np.testing.assert_allclose(_probabilities(answers[0][1]), reference(rows[:2]), atol=1e-5)
    np.testing.assert_allclose(_probabilities(answers[4][1]), reference(rows[3:4]), atol=1e-5)


def test_a_call_holds_at_most_max_batch_size_rows(run_dir: Path, rows: np.ndarray, reference) -> None:  # type: ignore[no-untyped-def]
    from aios_serve.server import BackgroundServer, ServerSettings

    with BackgroundServer([run_dir], settings=ServerSettings(max_batch_size=4)) as server, \
            _clients(server.url, 5, rows) as clients:
        parts = [rows[i * 2:i * 2 + 2] for i in range(5)]
        answers, calls, batched = _in_one_turn(server, clients, [_body(part) for part in parts])
        assert (calls, batched) == (3, 10)  # 2+2, 2+2, 2
        for (status, answer), part in zip(answers, parts, strict=True):
            assert status == 200
            np.testing.assert_allclose(_probabilities(answer), reference(part), atol=1e-5)


def test_batching_off_runs_each_request_alone(run_dir: Path, rows: np.ndarray) -> None:
    from aios_serve.server import BackgroundServer, ServerSettings

    with BackgroundServer([run_dir], settings=ServerSettings(max_batch_size=1)) as server, \
            _clients(server.url, 4, rows) as clients:
        answers, calls, batched = _in_one_turn(server, clients, [_body(rows[i:i + 1]) for i in range(4)])
        assert [status for status, _ in answers] == [200] * 4
        assert (calls, batched) == (4, 4)


def test_one_connection_is_answered_at_once(running, rows: np.ndarray, reference) -> None:  # type: ignore[no-untyped-def]
    """With one connection open, nothing could share the call: the answer is written in the read's own callback
    (no ``reply`` is offered, so ``answer_now`` returns the answer itself), as before coalescing."""
    state = running.state
    original = state.answer_now
    seen: list[tuple[bool, bool]] = []

    def spy(scope, body, reply=None):  # type: ignore[no-untyped-def]
        answer = original(scope, body, reply)
        seen.append((reply is not None, isinstance(answer, tuple)))
        return answer

    _no_connections(running)
    state.answer_now = spy
    try:
        with _clients(running.url, 1, rows) as (client,):
            for index in range(3):
                client.send(_body(rows[index:index + 1]))
                status, answer = client.answer()
                assert status == 200
                np.testing.assert_allclose(_probabilities(answer), reference(rows[index:index + 1]), atol=1e-5)
    finally:
        state.answer_now = original
    assert seen == [(False, True)] * 4  # the warm-up request and the three


def test_a_client_gone_before_its_answer_leaves_the_others_answered(running, rows: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    with _clients(running.url, 3, rows) as clients:
        calls, _ = _model_calls(running.url)
        with _loop_held(running):
            for index, client in enumerate(clients):
                client.send(_body(rows[index:index + 1]))
            clients[1].socket.shutdown(socket.SHUT_RDWR)  # gone before the server reads its request
        assert clients[0].answer()[0] == 200
        assert clients[2].answer()[0] == 200
        assert _model_calls(running.url)[0] > calls


def test_one_busy_client_among_idle_connections_is_answered_at_once(running, rows: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """Coalescing is offered (``reply``) only when the previous inference request came from another connection:
    one client sending request after request is answered in its read's callback, even with others connected."""
    state = running.state
    original = state.answer_now
    offered: list[bool] = []

    def spy(scope, body, reply=None):  # type: ignore[no-untyped-def]
        offered.append(reply is not None)
        return original(scope, body, reply)

    with _clients(running.url, 2, rows) as (busy, idle):
        state.answer_now = spy
        try:
            for index in range(3):
                busy.send(_body(rows[index:index + 1]))
                assert busy.answer()[0] == 200
            idle.send(_body(rows[:1]))
            assert idle.answer()[0] == 200
            busy.send(_body(rows[:1]))
            assert busy.answer()[0] == 200
        finally:
            state.answer_now = original
    # the busy client's first request follows the idle one's warm-up; the idle one's request, and the busy one's
    # after it, follow another connection's
    assert offered == [True, False, False, True, True]
