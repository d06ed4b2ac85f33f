"""The server's Prometheus metrics, in a registry of its own (one per server, so tests can run several)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

UNKNOWN_MODEL = "_unknown"
"""The ``model`` label of requests naming no known model (keeps label values bounded)."""

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024)


@dataclass
class ModelMetrics:
    """The metric children of one model version, bound once so the request path stays cheap."""

    requests: Counter
    latency: Histogram
    inference: Histogram
    batch_size: Histogram
    queue_depth: Gauge


class ServerMetrics:
    """Every metric the server exports at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("model", "version")
        self.requests = Counter("aios_serve_requests", "Inference requests received.", labels,
                                registry=self.registry)
        self.errors = Counter("aios_serve_request_errors", "Requests answered with an error, by HTTP status.",
                              ("model", "status"), registry=self.registry)
        self.latency = Histogram("aios_serve_request_duration_seconds",
                                 "Inference request latency in the server, from body read to response.",
                                 labels, buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.inference = Histogram("aios_serve_inference_duration_seconds",
                                   "Time from queueing a request to having its probabilities (queue + ONNX Runtime).",
                                   labels, buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("aios_serve_batch_size", "Rows per ONNX Runtime call.", labels,
                                    buckets=_BATCH_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("aios_serve_queue_depth", "Requests waiting for the batcher.", labels,
                                 registry=self.registry)
        self.loaded = Gauge("aios_serve_model_loaded", "1 while the model version is loaded.", labels,
                            registry=self.registry)

    def model(self, name: str, version: str) -> ModelMetrics:
        return ModelMetrics(requests=self.requests.labels(name, version), latency=self.latency.labels(name, version),
                            inference=self.inference.labels(name, version),
                            batch_size=self.batch_size.labels(name, version),
                            queue_depth=self.queue_depth.labels(name, version))
