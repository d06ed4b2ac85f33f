"""Several worker processes on one port: load spread over them, metrics added up, a killed worker replaced,
SIGTERM draining all of them."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from aios_serve_test_helpers import FEATURES, MODEL, ServerProcess


def metric(text: str, family: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(family))


def worker_pids(parent: int) -> set[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return {int(pid) for pid in children}


@pytest.fixture(scope="module")
def workers(run_dir: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(str(run_dir), "--workers", "2", "--grpc-port", "0")
    yield process
    process.terminate()


def body(rows: np.ndarray) -> dict:
    return {"inputs": [{"name": "input", "shape": list(rows.shape), "datatype": "FP32", "data": rows.ravel().tolist()}]}


def test_two_workers_share_the_port_and_the_load(workers: ServerProcess, rows: np.ndarray, reference) -> None:
    assert len(worker_pids(workers.process.pid)) == 2
    before = int(metric(httpx.get(workers.url + "/metrics").text, "aios_serve_requests_total{"))
    seen: set[int] = set()
    for index in range(40):  # a new connection each time: the kernel spreads them over the workers
        response = httpx.post(f"{workers.url}/v2/models/{MODEL}/infer", json=body(rows[index % 8:index % 8 + 1]),
                              headers={"Connection": "close"})
        assert response.status_code == 200
        np.testing.assert_allclose(response.json()["outputs"][0]["data"], reference(rows[index % 8:index % 8 + 1])[0],
                                   atol=1e-6)
    deadline = time.monotonic() + 20  # each worker shares its numbers every second
    while time.monotonic() < deadline:
        seen = set()
        for _ in range(10):  # new connections: both workers answer some of the scrapes
            text = httpx.get(workers.url + "/metrics", headers={"Connection": "close"}).text
            seen.add(int(metric(text, "aios_serve_requests_total{")))
        if seen == {before + 40}:
            break
        time.sleep(0.5)
    assert seen == {before + 40}  # every scrape, whichever worker answers it, counts all 40
    served = {line.split('"')[1]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith("aios_serve_worker_requests_total{")}
    assert {int(pid) for pid in served} == worker_pids(workers.process.pid)
    assert all(count > 0 for count in served.values())  # both workers answered some of the 40


def test_the_repository_api_is_off_with_several_workers(workers: ServerProcess) -> None:
    response = httpx.post(f"{workers.url}/v2/repository/models/{MODEL}/load")
    assert response.status_code == 403 and "workers" in response.json()["error"]


def test_a_killed_worker_is_replaced(workers: ServerProcess) -> None:
    pids = worker_pids(workers.process.pid)
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    for _ in range(300):
        now = worker_pids(workers.process.pid)
        if len(now) == 2 and victim not in now:
            break
        time.sleep(0.05)
    assert len(now) == 2 and victim not in now
    for _ in range(10):
        assert httpx.get(workers.url + "/v2/health/ready", headers={"Connection": "close"}).status_code == 200


def test_sigterm_drains_every_worker_and_exits_0(run_dir: Path, rows: np.ndarray) -> None:
    process = ServerProcess(str(run_dir), "--workers", "2")
    pids = worker_pids(process.process.pid)
    assert httpx.post(f"{process.url}/v2/models/{MODEL}/infer", json=body(rows[:1])).status_code == 200
    assert process.terminate() == 0
    assert not any(Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()
                   for pid in pids)
    assert re.match(r"http://127\.0\.0\.1:\d+$", process.url)
