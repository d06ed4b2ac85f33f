"""The server process: micro-batching, SIGTERM draining, the aios_serve hook and the aios-serve command."""

from __future__ import annotations

import asyncio
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from aios_serve_test_helpers import MODEL, ServerProcess, make_run_dir

from aios_core import onnx_predictor


def body(rows: np.ndarray) -> dict:
    return {"inputs": [{"name": "input", "shape": list(rows.shape), "datatype": "FP32", "data": rows.ravel().tolist()}]}


def metric_sum(text: str, family: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(family + "{"))


async def concurrent_single_rows(url: str, rows: np.ndarray) -> list[np.ndarray]:
    async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=httpx.Limits(max_connections=64)) as client:
        responses = await asyncio.gather(*(client.post(f"/v2/models/{MODEL}/infer", json=body(rows[i:i + 1]))
                                           for i in range(len(rows))))
    assert all(r.status_code == 200 for r in responses)
    return [np.asarray(r.json()["outputs"][0]["data"], dtype=np.float32) for r in responses]


def test_concurrent_requests_are_batched_and_answered_correctly(tmp_path: Path, rows: np.ndarray) -> None:
    """Requests that arrive while a batch runs wait for the next one. The model is wide (64-65536-10), so
    that one ONNX Runtime call outlasts reading a request: with the 64-32-10 MLP a call ends before the
    next request is parsed, and whether any two share a call is down to the machine's load."""
    run_dir = make_run_dir(tmp_path, hidden=65536)
    process = ServerProcess(str(run_dir), "--max-batch-size", "32", "--max-delay-ms", "20")
    try:
        answers = asyncio.run(concurrent_single_rows(process.url, rows))
        metrics = httpx.get(process.url + "/metrics").text
    finally:
        assert process.terminate() == 0
    np.testing.assert_allclose(np.stack(answers), onnx_predictor(run_dir / "artifacts" / "model.onnx")(rows), atol=1e-5)
    batches = metric_sum(metrics, "aios_serve_batch_size_count")
    assert metric_sum(metrics, "aios_serve_batch_size_sum") == len(rows)
    assert batches < len(rows)  # some requests shared an ONNX Runtime call


def test_max_batch_size_1_runs_every_request_alone(run_dir: Path, rows: np.ndarray, reference) -> None:
    process = ServerProcess(str(run_dir), "--max-batch-size", "1")
    try:
        answers = asyncio.run(concurrent_single_rows(process.url, rows[:16]))
        metrics = httpx.get(process.url + "/metrics").text
    finally:
        process.terminate()
    np.testing.assert_allclose(np.stack(answers), reference(rows[:16]), atol=1e-6)
    assert metric_sum(metrics, "aios_serve_batch_size_count") == 16


def test_sigterm_drains_the_request_in_flight_then_exits_0(run_dir: Path, rows: np.ndarray, reference) -> None:
    process = ServerProcess(str(run_dir))
    payload = httpx.Request("POST", "/", json=body(rows[:4])).content
    half = len(payload) // 2
    signalled, half_sent = threading.Event(), threading.Event()

    def slow_body() -> Iterator[bytes]:
        yield payload[:half]
        half_sent.set()  # httpx asks for the next piece once it has written this one
        signalled.wait(30)
        yield payload[half:]

    result: dict = {}

    def send() -> None:
        with httpx.Client(base_url=process.url, timeout=30.0) as client:
            result["response"] = client.post(f"/v2/models/{MODEL}/infer", content=slow_body(),
                                             headers={"Content-Length": str(len(payload))})

    sender = threading.Thread(target=send)
    sender.start()
    try:
        # the request is in flight once its headers and half its body are on the wire (the requests counter
        # cannot tell: it shows every loaded model from the start)
        assert half_sent.wait(30), "the client did not send the first half of the body"
        threading.Event().wait(0.5)  # for the server to read them
        process.process.send_signal(signal.SIGTERM)
        threading.Event().wait(0.3)
        signalled.set()
        sender.join(30)
        code = process.process.wait(30)
    finally:
        signalled.set()
        process.terminate()
    assert result["response"].status_code == 200
    got = np.asarray(result["response"].json()["outputs"][0]["data"], dtype=np.float32).reshape(4, 10)
    np.testing.assert_allclose(got, reference(rows[:4]), atol=1e-6)
    assert code == 0


def test_the_command_refuses_a_directory_that_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from aios_serve.server import main

    assert main([str(tmp_path), "--port", "0"]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_the_command_reads_the_token_from_the_named_variable(run_dir: Path) -> None:
    process = ServerProcess(str(run_dir), "--token-env", "AIOS_TEST_TOKEN", env={"AIOS_TEST_TOKEN": "t0ken"})
    try:
        assert httpx.get(process.url + f"/v2/models/{MODEL}").status_code == 401
        ok = httpx.get(process.url + f"/v2/models/{MODEL}", headers={"Authorization": "Bearer t0ken"})
        assert ok.status_code == 200
    finally:
        process.terminate()


def test_binds_127_0_0_1_by_default(server_process: ServerProcess) -> None:
    assert re.match(r"http://127\.0\.0\.1:\d+$", server_process.url)


def test_aios_serve_hook_serves_run_directories(run_dir: Path, rows: np.ndarray,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``aios serve`` calls the deployer's ``aios_serve`` hook; here in a thread, stopped like SIGTERM does."""
    import aios_serve.server as server_module
    from aios_serve import OipDeployer

    from aios_core.testing import plugin_manager

    started: dict = {}
    original = server_module._Server

    class Recorded(original):  # type: ignore[misc, valid-type]
        def __init__(self, config, state):  # type: ignore[no-untyped-def]
            super().__init__(config, state)
            started["server"] = self

    monkeypatch.setattr(server_module, "_Server", Recorded)
    pm = plugin_manager(OipDeployer(OipDeployer.Params(workers=1)))
    thread = threading.Thread(target=pm.hook.aios_serve, kwargs={"run_dirs": [run_dir], "host": "127.0.0.1", "port": 0})
    thread.start()
    try:
        for _ in range(600):
            if "server" in started and started["server"].started:
                break
            threading.Event().wait(0.05)
        url = server_module._url(started["server"])
        answer = httpx.post(f"{url}/v2/models/{MODEL}/infer", json=body(rows[:1]))
        assert answer.status_code == 200
        assert answer.json()["outputs"][0]["shape"] == [1, 10]
        assert server_module.grpc_target(started["server"]) is not None  # port 0: gRPC on a free port too
    finally:
        started["server"].should_exit = True
        thread.join(30)
    assert not thread.is_alive()

