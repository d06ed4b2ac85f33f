"""A 30-second load test: 32 concurrent clients, single-row requests, a server in its own process.

Passes when every answer is correct (equal to in-process ONNX Runtime), no request
errors, and the server's memory after the run is within a bound of its memory after
warm-up. Marked ``load`` (30 s): ``pytest -m "not load"`` skips it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from aios_serve_test_helpers import MODEL, ServerProcess

CLIENTS = 32
SECONDS = 30.0
WARMUP_SECONDS = 5.0
RSS_GROWTH_LIMIT = 40 * 1024 * 1024


async def client_loop(url: str, rows: np.ndarray, expected: np.ndarray, until: float, seed: int,
                      tally: dict) -> None:
    rng = np.random.default_rng(seed)
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
        while time.monotonic() < until:
            index = int(rng.integers(len(rows)))
            row = rows[index:index + 1]
            try:
                response = await client.post(f"/v2/models/{MODEL}/infer", json={"inputs": [
                    {"name": "input", "shape": [1, row.shape[1]], "datatype": "FP32", "data": row.ravel().tolist()}]})
            except httpx.HTTPError as error:
                tally["errors"].append(repr(error))
                continue
            if response.status_code != 200:
                tally["errors"].append(f"HTTP {response.status_code}: {response.text[:200]}")
                continue
            got = np.asarray(response.json()["outputs"][0]["data"], dtype=np.float32)
            if not np.allclose(got, expected[index], atol=1e-5):
                tally["wrong"] += 1
            tally["requests"] += 1


async def load(url: str, rows: np.ndarray, expected: np.ndarray, process: ServerProcess) -> dict:
    tally: dict = {"requests": 0, "wrong": 0, "errors": []}
    until = time.monotonic() + SECONDS

    async def sample_memory() -> None:
        await asyncio.sleep(WARMUP_SECONDS)
        tally["rss_warm"] = process.rss_bytes()

    await asyncio.gather(sample_memory(), *(client_loop(url, rows, expected, until, seed, tally)
                                            for seed in range(CLIENTS)))
    tally["rss_end"] = process.rss_bytes()
    return tally


@pytest.mark.load
def test_30_seconds_at_32_clients_no_errors_correct_answers_stable_memory(run_dir: Path, rows: np.ndarray,
                                                                           reference) -> None:
    process = ServerProcess(str(run_dir))
    try:
        tally = asyncio.run(load(process.url, rows, reference(rows), process))
    finally:
        exit_code = process.terminate()
    assert tally["errors"] == []
    assert tally["wrong"] == 0
    assert tally["requests"] > CLIENTS
    assert tally["rss_end"] - tally["rss_warm"] < RSS_GROWTH_LIMIT, tally
    assert exit_code == 0
