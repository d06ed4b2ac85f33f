"""The inference request answered without an ASGI task (``_connections._Guarded._answer_now``) and through the
ASGI app (``_app._InferenceFirst._infer``) must be indistinguishable to a client: same bytes for the same
request, same errors, same metrics; requests pipelined in one packet answered in order.

A request sent in a single packet takes the task-free path. One whose small body arrives in a later packet
than its headers waits for it without a task for up to ``_connections.HOLD_SECONDS`` (httpx writes headers
and body separately), then takes the same path; a body later than that takes the ASGI path. The tests set
the hold to 0 (the ASGI path) or to 5 s (held) to choose the path.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from aios_serve_test_helpers import FEATURES, MODEL

TOKEN = "fast-path-token"


@pytest.fixture(scope="module")
def running(run_dir: Path) -> Iterator[object]:
    from aios_serve.server import BackgroundServer, ServerSettings

    with BackgroundServer([run_dir], settings=ServerSettings(max_body_bytes=64 * 1024, token=TOKEN)) as server:
        yield server


def _request(body: bytes, token: str = TOKEN, extra: str = "", path: str = f"/v2/models/{MODEL}/infer") -> tuple[bytes, bytes]:
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n{extra}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    return head, body


def _read_answer(file) -> tuple[bytes, bytes]:  # type: ignore[no-untyped-def]
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = file.readline()
        assert line, "the server closed the connection"
        head += line
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    return head, file.read(length)


def _exchange(url: str, parts: list[bytes], answers: int = 1, pause: float = 0.05) -> list[tuple[bytes, bytes]]:
    """Send ``parts`` as separate packets (``pause`` seconds between them), read ``answers`` answers."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for index, part in enumerate(parts):
            if index:
                time.sleep(pause)
            connection.sendall(part)
        file = connection.makefile("rb")
        return [_read_answer(file) for _ in range(answers)]


def _body(rows: np.ndarray, **extra: object) -> bytes:
    return json.dumps({"inputs": [{"name": "input", "shape": list(rows.shape), "datatype": "FP32",
                                   "data": rows.ravel().tolist()}], **extra}).encode()


CASES = {
    "one row": lambda rows: _body(rows[:1]),
    "eight rows, binary output": lambda rows: _body(rows[:8], parameters={"binary_data_output": True}),
    "labels only, with an id": lambda rows: _body(rows[:2], id="r-1", outputs=[{"name": "label"}]),
    "wrong width": lambda rows: _body(rows[:1, :10]),
    "not JSON": lambda rows: b"{not json",
    "beyond float32": lambda rows: _body(np.full((1, FEATURES), 1e39)),
    "unknown output": lambda rows: _body(rows[:1], outputs=[{"name": "nope"}]),
}


def _hold(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """How long the server waits without a task for a body that follows its headers (0: the ASGI path)."""
    from aios_serve import _connections

    monkeypatch.setattr(_connections, "HOLD_SECONDS", seconds)


@pytest.mark.parametrize("hold", [0.0, 5.0], ids=["asgi", "held"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_both_paths_answer_alike(running, rows: np.ndarray, case: str, hold: float,  # type: ignore[no-untyped-def]
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _hold(monkeypatch, hold)
    body = CASES[case](rows)
    head, body = _request(body)
    (fast_head, fast_body), = _exchange(running.url, [head + body])
    (asgi_head, asgi_body), = _exchange(running.url, [head, body])
    assert fast_head == asgi_head
    assert fast_body == asgi_body
    if fast_head.startswith(b"HTTP/1.1 200"):
        assert json.loads(fast_body if b"inference-header" not in fast_head.lower()
                          else fast_body[:int(fast_head.lower().split(b"inference-header-content-length: ")[1]
                                                  .split(b"\r\n")[0])])["model_name"] == MODEL
    else:
        assert "error" in json.loads(fast_body)


def test_both_paths_count_alike(running, rows: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    _hold(monkeypatch, 0.0)
    metrics = running.state.metrics
    model = metrics.models[next(k for k in metrics.models if k[0] == MODEL)]
    head, body = _request(_body(rows[:1]))
    bad_head, bad_body = _request(b"{not json")
    counts, answered_now = [], []
    original = running.state.answer_now

    def spy(scope, body, reply=None):  # type: ignore[no-untyped-def]
        answer = original(scope, body, reply)
        answered_now.append(answer is not None)
        return answer

    running.state.answer_now = spy
    try:
        for parts in ([head + body], [head, body], [bad_head + bad_body], [bad_head, bad_body]):
            counts.append(_counted(running, model, parts))
    finally:
        running.state.answer_now = original
    assert answered_now == [True, True]  # asked (and answered) for the one-packet requests only
    assert counts[0] == counts[1] == (1, 1, {}, {})
    assert counts[2] == counts[3] == (1, 0, {(MODEL, "400"): 1}, {"400": 1})


def _counted(running, model, parts: list[bytes]) -> tuple:  # type: ignore[no-untyped-def]
    metrics = running.state.metrics
    before = (model.requests, sum(model.latency.counts), dict(metrics.errors), dict(metrics.http_errors))
    _exchange(running.url, parts)
    after = (model.requests, sum(model.latency.counts), dict(metrics.errors), dict(metrics.http_errors))
    return (after[0] - before[0], after[1] - before[1],
            {k: v - before[2].get(k, 0) for k, v in after[2].items() if v != before[2].get(k, 0)},
            {k: v - before[3].get(k, 0) for k, v in after[3].items() if v != before[3].get(k, 0)})


def test_wrong_token_and_unknown_model_on_the_fast_path(running, rows: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    head, body = _request(_body(rows[:1]), token="wrong")
    (answer, content), = _exchange(running.url, [head + body])
    assert answer.startswith(b"HTTP/1.1 401") and b"www-authenticate: Bearer" in answer
    assert "bearer token" in json.loads(content)["error"]
    head, body = _request(_body(rows[:1]), path="/v2/models/nope/infer")
    (answer, content), = _exchange(running.url, [head + body])
    assert answer.startswith(b"HTTP/1.1 404") and "nope" in json.loads(content)["error"]


def test_pipelined_requests_are_answered_in_order(running, rows: np.ndarray, reference) -> None:  # type: ignore[no-untyped-def]
    packet = b"".join(b"".join(_request(_body(rows[i:i + 1], id=f"request-{i}"))) for i in range(6))
    answers = _exchange(running.url, [packet], answers=6)
    for i, (head, body) in enumerate(answers):
        assert head.startswith(b"HTTP/1.1 200")
        answer = json.loads(body)
        assert answer["id"] == f"request-{i}"
        probabilities = np.asarray(answer["outputs"][0]["data"], dtype=np.float32)
        np.testing.assert_allclose(probabilities, reference(rows[i:i + 1])[0].ravel(), atol=1e-5)


def test_connection_close_is_honoured(running, rows: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    head, body = _request(_body(rows[:1]), extra="Connection: close\r\n")
    host, port = running.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(head + body)
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and b"connection: close" in data.lower()


@pytest.mark.parametrize("hold", [0.0, 5.0], ids=["asgi", "held"])
def test_a_body_sent_after_its_headers_is_timed_from_its_arrival(running, rows: np.ndarray, reference,  # type: ignore[no-untyped-def]
                                                                 hold: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """The latency histogram counts the server's time from the whole request on: the client's pause between
    headers and body (its upload, its scheduling) is not the server's."""
    _hold(monkeypatch, hold)
    metrics = running.state.metrics
    model = metrics.models[next(k for k in metrics.models if k[0] == MODEL)]
    head, body = _request(_body(rows[:1]))
    pause = 1.0
    count, seconds = sum(model.latency.counts), model.latency.sum
    (answer, content), = _exchange(running.url, [head, body], pause=pause)
    assert answer.startswith(b"HTTP/1.1 200")
    got = json.loads(content)["outputs"][0]
    np.testing.assert_allclose(np.asarray(got["data"], dtype=np.float32).reshape(got["shape"]),
                               reference(rows[:1]), atol=1e-5)
    assert sum(model.latency.counts) == count + 1
    assert model.latency.sum - seconds < pause


def test_a_body_that_follows_its_headers_within_the_hold_is_answered_without_a_task(  # type: ignore[no-untyped-def]
        running, rows: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    _hold(monkeypatch, 5.0)
    original, asked = running.state.answer_now, []

    def spy(scope, body, reply=None):  # type: ignore[no-untyped-def]
        answer = original(scope, body, reply)
        asked.append(answer is not None)
        return answer

    head, body = _request(_body(rows[:1], id="held"))
    running.state.answer_now = spy
    try:
        (held_head, held_body), = _exchange(running.url, [head, body[:10], body[10:]], pause=0.2)
    finally:
        running.state.answer_now = original
    (one_head, one_body), = _exchange(running.url, [head + body])
    assert asked == [True]
    assert held_head.startswith(b"HTTP/1.1 200") and held_body == one_body


def test_a_client_gone_while_its_body_is_held_is_counted_and_the_server_goes_on(  # type: ignore[no-untyped-def]
        running, rows: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """The held request's task starts when its connection is lost, and answers it as before the hold (a 400,
    counted for the model)."""
    _hold(monkeypatch, 5.0)
    metrics = running.state.metrics
    key = (MODEL, "400")
    before = metrics.errors.get(key, 0)
    head, body = _request(_body(rows[:1]))
    host, port = running.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(head + body[:10])
        time.sleep(0.2)
    for _ in range(100):
        if metrics.errors.get(key, 0) > before:
            break
        time.sleep(0.05)
    assert metrics.errors.get(key, 0) == before + 1
    (answer, _), = _exchange(running.url, [head + body])
    assert answer.startswith(b"HTTP/1.1 200")


def test_a_client_that_expects_100_continue_is_not_held(running, rows: np.ndarray,  # type: ignore[no-untyped-def]
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Its body comes only after the task's ``100 Continue``, so waiting for it without a task would stall it."""
    _hold(monkeypatch, 30.0)
    head, body = _request(_body(rows[:1]), extra="Expect: 100-continue\r\n")
    host, port = running.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(head)
        file = connection.makefile("rb")
        assert file.readline().startswith(b"HTTP/1.1 100")
        assert file.readline() == b"\r\n"
        connection.sendall(body)
        answer, _ = _read_answer(file)
    assert answer.startswith(b"HTTP/1.1 200")
