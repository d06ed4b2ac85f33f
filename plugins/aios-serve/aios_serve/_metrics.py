"""The server's Prometheus metrics, in a registry of its own (one per server, so tests can run several).

The request path only adds to plain integers and lists (everything runs in the event
loop's thread, so no locks); a custom collector turns them into Prometheus families
when ``/metrics`` is scraped. prometheus-client's own metric objects take a lock per
update, which cost more than the rest of the bookkeeping of a request together.
"""

from __future__ import annotations

import json
import os
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

UNKNOWN_MODEL = "_unknown"
"""The ``model`` label of requests naming no known model (keeps label values bounded)."""

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024)


class Histogram:
    """Counts per bucket and a sum; ``observe`` is one bisect and two additions."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value


class Gauge:
    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount

    def dec(self, amount: int = 1) -> None:
        self.value -= amount


class ModelMetrics:
    """The metrics of one model version."""

    def __init__(self) -> None:
        self.requests = 0
        self.latency = Histogram(LATENCY_BUCKETS)
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.queue_depth = Gauge()
        self.loaded = 0


class ServerMetrics:
    """Every metric the server exports at ``/metrics``.

    With several workers (``workers: N``) each process writes its ``snapshot()`` to a
    shared folder (``share_dir``) now and then and whenever it is scraped; ``/metrics`` on
    any worker adds up its own live numbers and the other workers' latest snapshots. A
    worker that exited leaves its last snapshot, so counters never go down.
    """

    def __init__(self, share_dir: str | None = None) -> None:
        self.models: dict[tuple[str, str], ModelMetrics] = {}
        self.errors: dict[tuple[str, str], int] = {}
        self.http_errors: dict[str, int] = {}
        self.share_dir = share_dir
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    def model(self, name: str, version: str) -> ModelMetrics:
        metrics = self.models.get((name, version))
        if metrics is None:
            metrics = self.models[(name, version)] = ModelMetrics()
        return metrics

    def error(self, model: str, status: int) -> None:
        key = (model, str(status))
        self.errors[key] = self.errors.get(key, 0) + 1

    def http_error(self, status: int) -> None:
        """Any error response of any endpoint (401, 404 of unknown routes, 405, 408, 413, 503 ...), by status."""
        key = str(status)
        self.http_errors[key] = self.http_errors.get(key, 0) + 1

    def set_loaded(self, name: str, version: str, loaded: bool) -> None:
        self.model(name, version).loaded = int(loaded)

    def snapshot(self) -> dict[str, Any]:
        """Every number, as JSON-able data."""
        return {
            "models": {f"{n}\n{v}": {"requests": m.requests, "latency": m.latency.counts, "latency_sum": m.latency.sum,
                                      "batch": m.batch_size.counts, "batch_sum": m.batch_size.sum,
                                      "queue": m.queue_depth.value, "loaded": m.loaded}
                       for (n, v), m in self.models.items()},
            "errors": {f"{n}\n{s}": c for (n, s), c in self.errors.items()},
            "http_errors": dict(self.http_errors),
            "workers": {str(os.getpid()): sum(m.requests for m in self.models.values())},
        }

    def share(self) -> None:
        """Write this worker's snapshot into ``share_dir`` (atomically: other workers read it any time)."""
        if self.share_dir is None:
            return
        path = os.path.join(self.share_dir, f"worker-{os.getpid()}.json")
        with open(path + ".tmp", "w", encoding="utf-8") as file:
            json.dump(self.snapshot(), file)
        os.replace(path + ".tmp", path)

    def combined(self) -> dict[str, Any]:
        """This worker's snapshot plus the other workers' latest ones."""
        total = self.snapshot()
        if self.share_dir is None:
            return total
        self.share()
        own = f"worker-{os.getpid()}.json"
        for name in sorted(os.listdir(self.share_dir)):
            if not name.endswith(".json") or name == own:
                continue
            try:
                with open(os.path.join(self.share_dir, name), encoding="utf-8") as file:
                    other = json.load(file)
            except (OSError, ValueError):
                continue
            _add(total, other)
        return total

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _add(total: dict[str, Any], other: dict[str, Any]) -> None:
    for key, model in other.get("models", {}).items():
        mine = total["models"].get(key)
        if mine is None:
            total["models"][key] = model
            continue
        for field in ("requests", "latency_sum", "batch_sum", "queue"):
            mine[field] += model[field]
        mine["loaded"] = max(mine["loaded"], model["loaded"])
        for field in ("latency", "batch"):
            mine[field] = [a + b for a, b in zip(mine[field], model[field], strict=True)]
    for section in ("errors", "http_errors", "workers"):
        for key, count in other.get(section, {}).items():
            total[section][key] = total[section].get(key, 0) + count


def _cumulative(buckets: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    total, out = 0, []
    for bound, count in zip((*buckets, float("inf")), counts, strict=True):
        total += count
        out.append(("+Inf" if bound == float("inf") else repr(float(bound)), total))
    return out


class _Collector:
    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        labels = ["model", "version"]
        requests = CounterMetricFamily("aios_serve_requests", "Inference requests received.", labels=labels)
        errors = CounterMetricFamily("aios_serve_request_errors", "Inference requests answered with an error, "
                                     "by status.", labels=["model", "status"])
        http_errors = CounterMetricFamily("aios_serve_http_errors", "Error responses of every endpoint and form "
                                          "(401, 404, 405, 408, 413, 503, ...), by HTTP status.", labels=["status"])
        latency = HistogramMetricFamily("aios_serve_request_duration_seconds",
                                        "Inference request latency in the server, from the whole "
                                        "request received to its answer ready (the client's upload not counted).",
                                        labels=labels)
        batch = HistogramMetricFamily("aios_serve_batch_size", "Rows per ONNX Runtime call.", labels=labels)
        queue = GaugeMetricFamily("aios_serve_queue_depth", "Requests waiting for the batcher.", labels=labels)
        loaded = GaugeMetricFamily("aios_serve_model_loaded", "1 while the model version is loaded.", labels=labels)
        workers = CounterMetricFamily("aios_serve_worker_requests", "Inference requests by server process (pid).",
                                      labels=["worker"])
        snapshot = self.metrics.combined()
        for key, model in sorted(snapshot["models"].items()):
            values = key.split("\n")
            requests.add_metric(values, model["requests"])
            latency.add_metric(values, _cumulative(LATENCY_BUCKETS, model["latency"]), model["latency_sum"])
            batch.add_metric(values, _cumulative(BATCH_BUCKETS, model["batch"]), model["batch_sum"])
            queue.add_metric(values, model["queue"])
            loaded.add_metric(values, model["loaded"])
        for key, count in sorted(snapshot["errors"].items()):
            errors.add_metric(key.split("\n"), count)
        for status, count in sorted(snapshot["http_errors"].items()):
            http_errors.add_metric([status], count)
        for pid, count in sorted(snapshot["workers"].items()):
            workers.add_metric([pid], count)
        yield from (requests, errors, http_errors, latency, batch, queue, loaded, workers)
