"""The ``oip`` deploy phase: start the server on a free port, check its answers, stop (or keep serving)."""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aios_serve._repository import LoadedModel, ModelSpec, check_name

if TYPE_CHECKING:
    from aios_core import Dataset, ModelArtifact, RunContext
    from aios_serve import OipParams

TOLERANCE = 1e-5
"""Largest difference between served and in-process probabilities (batched GEMMs may differ in the last bits)."""


def model_spec(artifact: ModelArtifact, dataset: Dataset, run: RunContext) -> ModelSpec:
    """The served model of a run: named for the run's stack, versioned by its run directory."""
    import re

    name = check_name(re.sub(r"[^A-Za-z0-9_.-]", "-", run.name)[:128] or "model")
    folder = Path(run.dir).name
    version = folder.replace(f"-{run.name}", "", 1) if f"-{run.name}" in folder else folder
    version = re.sub(r"[^A-Za-z0-9_.-]", "-", version)[:128] or "1"
    return ModelSpec(name=name, version=version, path=Path(artifact.path), class_names=list(dataset.class_names),
                     preprocessing=dict(dataset.preprocessing), threads=max(1, run.threads), source=str(run.dir))


def reference_predictions(artifact: ModelArtifact, spec: ModelSpec, run: RunContext, rows: np.ndarray) -> tuple[np.ndarray, str]:
    """In-process probabilities: the run's predictor for the artifact, else a plain ONNX Runtime session."""
    predictor = run.load_predictor(artifact)
    if predictor is not None:
        return np.asarray(predictor(rows), dtype=np.float32), "run.load_predictor"
    return LoadedModel(spec).predict(rows), "onnxruntime"


def smoke_test(url: str, spec: ModelSpec, rows: np.ndarray, expected: np.ndarray, single_requests: int,
               token: str | None = None, clients: int = 4) -> dict[str, Any]:
    """Send the test rows as one request and as single-row requests from ``clients`` threads; compare answers."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    infer_url = f"{url}/v2/models/{spec.name}/versions/{spec.version}/infer"
    problems: list[str] = []
    labels = np.asarray(spec.class_names, dtype=object) if spec.class_names else None

    def body(batch: np.ndarray) -> dict[str, Any]:
        return {"inputs": [{"name": "input", "shape": list(batch.shape), "datatype": "FP32",
                            "data": batch.ravel().tolist()}]}

    def check(answer: dict[str, Any], start: int, count: int) -> float:
        outputs = {o["name"]: o for o in answer["outputs"]}
        probabilities = next(o for name, o in outputs.items() if name != "label")
        got = np.asarray(probabilities["data"], dtype=np.float32).reshape(probabilities["shape"])
        want = expected[start:start + count]
        if got.shape != want.shape:
            problems.append(f"rows {start}..{start + count}: shape {got.shape}, expected {want.shape}")
            return float("inf")
        if labels is not None:
            if "label" not in outputs:
                problems.append("no label output although the run recorded class names")
            elif list(outputs["label"]["data"]) != labels[want.argmax(axis=1)].tolist():
                problems.append(f"rows {start}..{start + count}: labels differ from the in-process predictions")
        return float(np.abs(got - want).max())

    with httpx.Client(headers=headers, timeout=30.0) as client:
        ready = client.get(f"{url}/v2/models/{spec.name}/versions/{spec.version}/ready")
        metadata = client.get(f"{url}/v2/models/{spec.name}")
        if ready.status_code != 200 or metadata.status_code != 200:
            problems.append(f"model not ready: ready {ready.status_code}, metadata {metadata.status_code}")
        started = time.perf_counter()
        response = client.post(infer_url, json=body(rows))
        batch_ms = (time.perf_counter() - started) * 1000
        diffs = [check(response.json(), 0, len(rows))] if response.status_code == 200 else [float("inf")]
        if response.status_code != 200:
            problems.append(f"batch request: HTTP {response.status_code}: {response.text[:200]}")

        count = min(single_requests, len(rows))

        def one(index: int) -> tuple[float, float]:
            sent = time.perf_counter()
            answer = client.post(infer_url, json=body(rows[index:index + 1]))
            latency = (time.perf_counter() - sent) * 1000
            if answer.status_code != 200:
                problems.append(f"row {index}: HTTP {answer.status_code}: {answer.text[:200]}")
                return latency, float("inf")
            return latency, check(answer.json(), index, 1)

        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(one, range(count)))
    latencies = np.asarray([r[0] for r in results]) if results else np.zeros(1)
    diffs += [r[1] for r in results]
    max_diff = max(diffs)
    if max_diff > TOLERANCE and not problems:
        problems.append(f"probabilities differ from the in-process predictions by up to {max_diff:.3g} "
                        f"(tolerance {TOLERANCE})")
    return {
        "passed": not problems,
        "problems": problems[:5],
        "requests": 1 + count,
        "rows": len(rows) + count,
        "concurrent_clients": clients,
        "max_abs_diff": max_diff if np.isfinite(max_diff) else None,
        "batch_request_ms": round(batch_ms, 3),
        "single_row_latency_ms": {"p50": round(float(np.percentile(latencies, 50)), 3),
                                  "p99": round(float(np.percentile(latencies, 99)), 3),
                                  "mean": round(float(latencies.mean()), 3)},
    }


def deploy_oip(artifact: ModelArtifact, dataset: Dataset, run: RunContext, params: OipParams) -> dict[str, Any]:
    from aios_serve.server import BackgroundServer, serve

    spec = model_spec(artifact, dataset, run)
    settings = params.settings(run.threads)
    rows = np.ascontiguousarray(dataset.x_test, dtype=np.float32)
    expected, reference = reference_predictions(artifact, spec, run, rows)
    with BackgroundServer([spec], host="127.0.0.1", port=0, settings=settings) as server:
        url = server.url
        smoke = smoke_test(url, spec, rows, expected, params.smoke_requests, token=settings.token)
    smoke["reference"] = reference
    run.log.info("oip smoke test on %s: %s, %d requests, max |diff| %s, p50 %.2f ms", url,
                 "passed" if smoke["passed"] else "FAILED", smoke["requests"], smoke["max_abs_diff"],
                 smoke["single_row_latency_ms"]["p50"])
    report: dict[str, Any] = {
        "protocol": "Open Inference Protocol v2 (REST)",
        "model": {"name": spec.name, "version": spec.version, "path": str(spec.path)},
        "smoke_test": smoke,
        "settings": {"max_batch_size": settings.max_batch_size, "max_delay_ms": settings.max_delay_ms,
                     "max_body_bytes": settings.max_body_bytes, "auth": bool(settings.token)},
    }
    if run.options.serve:
        if not smoke["passed"]:
            raise RuntimeError(f"the oip smoke test failed, not serving: {smoke['problems']}")
        served: dict[str, Any] = {}

        def started(address: str) -> None:
            served["url"] = address
            # stdout: during a run, stderr goes to run.log, and this line is for the person at the console
            print(f"  serving {spec.name} (version {spec.version}) on {address}/v2/models/{spec.name}"
                  " (Ctrl-C stops)", file=sys.stdout, flush=True)
            run.log.info("serving %s on %s", spec.name, address)

        serve([spec], params.host, params.port, settings=settings, on_started=started, log_level="warning")
        report["served"] = {**served, "until": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return report
