"""The ``oip`` deploy phase: start the server on a free port, check its answers, stop (or keep serving)."""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aios_serve._repository import ModelSpec, check_name

if TYPE_CHECKING:
    from aios_core import Dataset, ModelArtifact, RunContext
    from aios_serve import OipParams
    from aios_serve._app import ServerSettings

TOLERANCE = 1e-5
"""Largest difference between served and in-process probabilities (batched GEMMs may differ in the last bits)."""
CLIENTS = 4
"""Concurrent clients sending the single-row requests, so the server's micro-batching is exercised."""


def model_spec(artifact: ModelArtifact, dataset: Dataset, run: RunContext) -> ModelSpec:
    """The served model of a run: named for the run's stack, versioned by its run directory."""
    import re

    name = check_name(re.sub(r"[^A-Za-z0-9_.-]", "-", run.name)[:128] or "model")
    folder = Path(run.dir).name
    version = folder.replace(f"-{run.name}", "", 1) if f"-{run.name}" in folder else folder
    version = re.sub(r"[^A-Za-z0-9_.-]", "-", version)[:128] or "1"
    return ModelSpec(name=name, version=version, path=Path(artifact.path), class_names=list(dataset.class_names),
                     preprocessing=dict(dataset.preprocessing), threads=max(1, run.threads), source=str(run.dir),
                     task=dataset.task, target_names=list(dataset.target_names),
                     target_scaling=dict(dataset.target_scaling))


@dataclass(frozen=True)
class Reference:
    """The in-process answers the served model must give: ``rows`` as one batch, and each single row alone."""

    batch: np.ndarray
    """Probabilities for all the rows in one call (what the batch request is compared with)."""
    alone: np.ndarray
    """Probabilities for each of the first ``len(alone)`` rows in a call of its own (the single-row requests)."""

    @property
    def batch_dependence(self) -> float:
        """Largest difference between a row's answer alone and in the batch; above ``TOLERANCE`` the model's
        answers depend on the batch (dynamic int8 quantization computes activation ranges per call)."""
        if not len(self.alone):
            return 0.0
        return float(np.abs(self.batch[:len(self.alone)] - self.alone).max())


def reference_predictions(artifact: ModelArtifact, run: RunContext, rows: np.ndarray, single_rows: int,
                          dataset: Dataset | None = None) -> Reference:
    """The run's predictor (``run.load_predictor``: the kernel's ONNX Runtime session for ``onnx``) on ``rows``
    as one batch, and on each of the first ``single_rows`` rows alone; for a regression ``dataset``, in the
    target's units (``Dataset.unscale_targets``), as the server answers."""
    predict = run.load_predictor(artifact)
    if predict is None:
        raise RuntimeError(f"no component of the run returns a predictor for {artifact.path} (format "
                           f"{artifact.format!r}), so the smoke test has nothing to compare the server with")
    alone = [np.asarray(predict(rows[index:index + 1]), dtype=np.float32)
             for index in range(min(single_rows, len(rows)))]
    batch = np.asarray(predict(rows), dtype=np.float32)
    alone_rows = np.concatenate(alone) if alone else batch[:0]
    if dataset is not None and dataset.task == "regression":
        batch, alone_rows = (dataset.unscale_targets(batch).astype(np.float32),
                             dataset.unscale_targets(alone_rows).astype(np.float32))
    return Reference(batch=batch, alone=alone_rows)


def _server_latency(before: tuple[int, float], after: tuple[int, float]) -> dict[str, float] | None:
    """The server's own mean time per single-row request (its latency histogram's count and sum), in ms."""
    count, seconds = after[0] - before[0], after[1] - before[1]
    return {"mean": round(seconds / count * 1000, 3), "requests": count} if count > 0 else None


def smoke_test(url: str, spec: ModelSpec, rows: np.ndarray, reference: Reference,
               settings: ServerSettings, server_timing: Any = lambda: (0, 0.0)) -> dict[str, Any]:
    """Send the rows as one request, and ``len(reference.alone)`` rows as single-row requests; compare each
    answer with the in-process answer to the same call (the batch, or the row alone).

    The latency reported is the server's own (``server_timing()``: its latency histogram's count and
    sum, read before and after the single-row requests) in a process of its own (``ChildServer``):
    a client in this process, sharing its interpreter with the run, would measure itself more than
    the server, and so would a server in a thread of it. The server times each request from its whole
    body on: httpx writes a request's headers and body separately, and a pause of this process between
    the two (a full garbage collection of the run's heap took 0.35 s here) is the client's, not the server's.

    The single-row requests come from ``CLIENTS`` threads, so the server batches them, unless
    the model's answers depend on the batch and the server batches (``max_batch_size`` > 1):
    then they are sent one at a time, each runs alone as its reference did, and the report
    warns that micro-batching makes this model's answers depend on concurrent requests.
    """
    import httpx

    headers = {"Authorization": f"Bearer {settings.token}"} if settings.token else {}
    infer_url = f"{url}/v2/models/{spec.name}/versions/{spec.version}/infer"
    problems: list[str] = []
    regression = spec.task == "regression"
    labels = np.asarray(spec.class_names, dtype=object) if spec.class_names and not regression else None
    # regression answers are in the target's units: the float32 tolerance scales with their size
    tolerance = TOLERANCE * max(1.0, float(np.abs(reference.batch).max(initial=0.0))) if regression else TOLERANCE
    batch_dependent = reference.batch_dependence > tolerance
    clients = 1 if batch_dependent and settings.max_batch_size > 1 else CLIENTS
    warnings = [_batch_dependence_warning(reference, settings.max_batch_size)] if batch_dependent else []

    def body(batch: np.ndarray) -> dict[str, Any]:
        return {"inputs": [{"name": "input", "shape": list(batch.shape), "datatype": "FP32",
                            "data": batch.ravel().tolist()}]}

    def check(answer: dict[str, Any], want: np.ndarray, what: str) -> tuple[float, np.ndarray]:
        """The largest probability difference, and which rows got another label than ``want`` gives."""
        outputs = {o["name"]: o for o in answer["outputs"]}
        probabilities = next(o for name, o in outputs.items() if name != "label")
        got = np.asarray(probabilities["data"], dtype=np.float32).reshape(probabilities["shape"])
        if got.shape != want.shape:
            problems.append(f"{what}: shape {got.shape}, expected {want.shape}")
            return float("inf"), np.zeros(0, dtype=int)
        if labels is None:
            return float(np.abs(got - want).max()), np.zeros(0, dtype=int)
        if "label" not in outputs:
            problems.append("no label output although the run recorded class names")
            return float(np.abs(got - want).max()), np.zeros(0, dtype=int)
        differ = np.asarray(outputs["label"]["data"], dtype=object) != labels[want.argmax(axis=1)]
        return float(np.abs(got - want).max()), np.flatnonzero(differ)

    with httpx.Client(headers=headers, timeout=30.0) as client:
        ready = client.get(f"{url}/v2/models/{spec.name}/versions/{spec.version}/ready")
        metadata = client.get(f"{url}/v2/models/{spec.name}")
        if ready.status_code != 200 or metadata.status_code != 200:
            problems.append(f"model not ready: ready {ready.status_code}, metadata {metadata.status_code}")
        response = client.post(infer_url, json=body(rows))
        if response.status_code == 200:
            batch_diff, batch_mislabelled = check(response.json(), reference.batch, "batch request")
        else:
            batch_diff, batch_mislabelled = float("inf"), np.zeros(0, dtype=int)
            problems.append(f"batch request: HTTP {response.status_code}: {response.text[:200]}")

        def one(index: int) -> tuple[float, bool]:
            answer = client.post(infer_url, json=body(rows[index:index + 1]))
            if answer.status_code != 200:
                problems.append(f"row {index}: HTTP {answer.status_code}: {answer.text[:200]}")
                return float("inf"), False
            diff, mislabelled = check(answer.json(), reference.alone[index:index + 1], f"row {index}")
            return diff, bool(len(mislabelled))

        before = server_timing()
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(one, range(len(reference.alone))))
        after = server_timing()
    max_diff = max([batch_diff, *(r[0] for r in results)])
    single_mislabelled = [index for index, result in enumerate(results) if result[1]]
    if len(batch_mislabelled) or single_mislabelled:
        first = sorted({*map(int, batch_mislabelled[:5]), *single_mislabelled[:5]})[:5]
        problems.append(f"labels differ from the in-process predictions for {len(batch_mislabelled)} of {len(rows)} "
                        f"rows of the batch request and {len(single_mislabelled)} of {len(results)} single-row "
                        f"requests (first rows: {', '.join(map(str, first))})")
    if np.isfinite(max_diff) and max_diff > tolerance:
        problems.append(f"{'predictions' if regression else 'probabilities'} differ from the in-process "
                        f"predictions by up to {max_diff:.3g} (tolerance {tolerance:.3g})")
    return {
        "passed": not problems,
        "problems": problems[:5],
        "warnings": warnings,
        "requests": 1 + len(results),
        "rows": len(rows) + len(results),
        "concurrent_clients": clients,
        "batch_dependent": batch_dependent,
        "max_abs_diff": max_diff if np.isfinite(max_diff) else None,
        "tolerance": tolerance,
        "task": spec.task,
        "server_latency_ms": _server_latency(before, after),
        "reference": "run.load_predictor",
    }


def _batch_dependence_warning(reference: Reference, max_batch_size: int) -> str:
    flips = int(np.count_nonzero(reference.batch[:len(reference.alone)].argmax(axis=1)
                                 != reference.alone.argmax(axis=1)))
    warning = (f"the model answers a row differently alone and in a batch (probabilities up to "
               f"{reference.batch_dependence:.3g} apart, {flips} of {len(reference.alone)} labels; dynamic int8 "
               "does this)")
    if max_batch_size > 1:
        warning += (f": with micro-batching (max_batch_size {max_batch_size}) a row's answer depends on the "
                    "requests batched with it; the single-row requests were sent one at a time. Set "
                    "max_batch_size: 1, or quantize with onnx-quant mode: static or auto")
    return warning


def log_smoke_test(run: RunContext, where: str, smoke: dict[str, Any]) -> None:
    """The smoke test's outcome, problems and warnings in run.log."""
    latency = smoke.get("server_latency_ms") or {}
    run.log.info("%s smoke test: %s, %d requests, max |diff| %s, server-side mean %s ms per single-row request",
                 where, "passed" if smoke["passed"] else "FAILED", smoke["requests"], smoke["max_abs_diff"],
                 latency.get("mean", "n/a"))
    for problem in smoke["problems"]:
        run.log.error("%s smoke test: %s", where, problem)
    for warning in smoke["warnings"]:
        run.log.warning("%s smoke test: %s", where, warning)


def deploy_oip(artifact: ModelArtifact, dataset: Dataset, run: RunContext, params: OipParams) -> dict[str, Any]:
    from dataclasses import replace

    from aios_serve.server import ChildServer, serve

    spec = model_spec(artifact, dataset, run)
    settings = params.settings(run.threads)
    rows = np.ascontiguousarray(dataset.x_test, dtype=np.float32)
    reference = reference_predictions(artifact, run, rows, params.smoke_requests, dataset)
    # the server in a process of its own: in a thread of this one, it would share the interpreter (and the GIL)
    # with the smoke test's clients, and the latency it measures would be theirs as much as its own
    with ChildServer(spec, replace(settings, grpc_port=None, workers=1)) as server:
        smoke = smoke_test(server.url, spec, rows, reference, settings, server.timing(spec.name, spec.version))
        log_smoke_test(run, f"oip on {server.url}", smoke)
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

        def started(address: str, grpc: str | None = None) -> None:
            served["url"] = address
            if grpc:
                served["grpc"] = grpc
            # stdout: during a run, stderr goes to run.log, and this line is for the person at the console
            print(f"  serving {spec.name} (version {spec.version}) on {address}/v2/models/{spec.name}"
                  + (f" and gRPC {grpc}" if grpc else "") + " (Ctrl-C stops)", file=sys.stdout, flush=True)
            run.log.info("serving %s on %s", spec.name, address)

        serve([spec], params.host, params.port, settings=settings, on_started=started, log_level="warning")
        report["served"] = {**served, "until": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return report
