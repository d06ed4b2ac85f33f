"""The server's Prometheus metrics, in a registry of its own (one per server, so tests can run several).

The request path only adds to plain integers and lists (everything runs in the event
loop's thread, so no locks); a custom collector turns them into Prometheus families
when ``/metrics`` is scraped. prometheus-client's own metric objects take a lock per
update, which cost more than the rest of the bookkeeping of a request together.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
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

    def cumulative(self) -> list[tuple[str, float]]:
        total, out = 0, []
        for bound, count in zip((*self.buckets, float("inf")), self.counts, strict=True):
            total += count
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), total))
        return out


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
    """Every metric the server exports at ``/metrics``."""

    def __init__(self) -> None:
        self.models: dict[tuple[str, str], ModelMetrics] = {}
        self.errors: dict[tuple[str, str], int] = {}
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

    def set_loaded(self, name: str, version: str, loaded: bool) -> None:
        self.model(name, version).loaded = int(loaded)


class _Collector:
    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        labels = ["model", "version"]
        requests = CounterMetricFamily("aios_serve_requests", "Inference requests received.", labels=labels)
        errors = CounterMetricFamily("aios_serve_request_errors", "Requests answered with an error, by HTTP status.",
                                     labels=["model", "status"])
        latency = HistogramMetricFamily("aios_serve_request_duration_seconds",
                                        "Inference request latency in the server, from routing to response.",
                                        labels=labels)
        batch = HistogramMetricFamily("aios_serve_batch_size", "Rows per ONNX Runtime call.", labels=labels)
        queue = GaugeMetricFamily("aios_serve_queue_depth", "Requests waiting for the batcher.", labels=labels)
        loaded = GaugeMetricFamily("aios_serve_model_loaded", "1 while the model version is loaded.", labels=labels)
        for (name, version), model in sorted(self.metrics.models.items()):
            values = [name, version]
            requests.add_metric(values, model.requests)
            latency.add_metric(values, model.latency.cumulative(), model.latency.sum)
            batch.add_metric(values, model.batch_size.cumulative(), model.batch_size.sum)
            queue.add_metric(values, model.queue_depth.value)
            loaded.add_metric(values, model.loaded)
        for (name, status), count in sorted(self.metrics.errors.items()):
            errors.add_metric([name, status], count)
        yield from (requests, errors, latency, batch, queue, loaded)
