"""Drift of live inputs against the training data, per model, exported on ``/metrics``.

The request path calls ``DriftMonitor.observe(model, rows, probabilities)`` once per answered
request: the rows go into a sliding window (a ring buffer of the last ``window`` rows per model),
the predicted classes into another (in bulk: the request path only
keeps references, folded in every ``window`` rows and when scraped), and rows with a feature outside the training range are
counted. The scores are computed only when ``/metrics`` is scraped, by the collector:

    aios_serve_drift_psi{model,version,feature}            PSI of the feature over the window
    aios_serve_drift_psi_max{model,version}                 the largest of those (alert on this)
    aios_serve_drift_window_rows{model,version}             rows in the window
    aios_serve_drift_out_of_range_rows_total{model,version} rows with a feature outside the training range
    aios_serve_prediction_class_ratio{model,version,class}  share of each predicted class in the window
    aios_serve_training_class_ratio{model,version,class}    share of each class in the training labels
    aios_serve_prediction_drift_psi{model,version}          PSI of the predicted classes vs the training ones

A model without a recorded reference (``preprocessing.drift_reference``, written by aios-data at data
time; ``aios_core.drift``) exports nothing here. PSI above 0.25 (``aios_core.drift.PSI_ALERT``) is
the usual sign of a significant shift; see docs/monitoring.md.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from aios_core import bin_shares, psi

__all__ = ["DEFAULT_WINDOW", "DriftMonitor"]

DEFAULT_WINDOW = 1000


def _nothing() -> None:
    return None


class _ModelDrift:
    """The window and counters of one model version.

    ``observe`` only keeps references to the request's arrays (one list append); they are
    folded into the window (ring buffers) in bulk once ``window`` rows are pending, or when
    the scores are read, so the request path does no numpy work for drift.
    """

    def __init__(self, reference: dict[str, Any], window: int) -> None:
        self.reference = reference
        self.cuts = [np.asarray(c, dtype=np.float64) for c in reference["cuts"]]
        self.low = np.asarray(reference["min"], dtype=np.float64)
        self.high = np.asarray(reference["max"], dtype=np.float64)
        self.rows = np.zeros((window, len(self.cuts)), dtype=np.float32)
        self.classes = np.zeros(window, dtype=np.int64)
        self.filled = 0
        self.next = 0
        self._out_of_range = 0
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_rows = 0
        self._features, self._size = len(self.cuts), window

    def observe(self, rows: np.ndarray, probabilities: np.ndarray) -> None:
        shape = rows.shape
        if len(shape) != 2 or shape[1] != self._features:
            return
        # a view (rows over a binary body) is copied: a reference would keep the whole body alive; rows over a
        # bytes object of their own (the typed JSON decoder's float32 packing) are kept as they are
        base = rows.base
        if base is not None and (type(base) is not np.ndarray or type(base.base) is not bytes):
            rows = rows.copy()
        self._pending.append((rows, probabilities))
        self._pending_rows += shape[0]
        if self._pending_rows >= self._size:
            self.flush()

    def flush(self) -> None:
        """Fold the pending requests into the window and the out-of-range count."""
        pending, self._pending, self._pending_rows = self._pending, [], 0
        if not pending:
            return
        rows = pending[0][0] if len(pending) == 1 else np.concatenate([r for r, _ in pending])
        probabilities = pending[0][1] if len(pending) == 1 else np.concatenate([p for _, p in pending])
        self._out_of_range += int(((rows < self.low) | (rows > self.high)).any(axis=1).sum())
        size = len(self.rows)
        rows, probabilities = rows[-size:], probabilities[-size:]
        positions = (self.next + np.arange(len(rows))) % size
        self.rows[positions] = rows
        self.classes[positions] = probabilities.argmax(axis=1)
        self.next = (self.next + len(rows)) % size
        self.filled = min(size, self.filled + len(rows))

    @property
    def out_of_range(self) -> int:
        self.flush()
        return self._out_of_range

    def feature_psi(self) -> list[float]:
        self.flush()
        window = self.rows[:self.filled].astype(np.float64)
        return [psi(expected, bin_shares(window[:, j], cuts))
                for j, (cuts, expected) in enumerate(zip(self.cuts, self.reference["shares"], strict=True))]

    def class_shares(self) -> np.ndarray:
        self.flush()
        expected = self.reference["class_shares"]
        return np.bincount(self.classes[:self.filled], minlength=len(expected))[:len(expected)] / max(self.filled, 1)


class DriftMonitor:
    """Sliding windows of live rows per model and a Prometheus collector of their drift scores."""

    def __init__(self, registry: CollectorRegistry | None = None, window: int = DEFAULT_WINDOW) -> None:
        self.window = window
        self.models: dict[tuple[str, str], _ModelDrift | None] = {}
        self._last_model: Callable[[], Any] = _nothing
        self._last_drift: _ModelDrift | None = None
        if registry is not None:
            registry.register(self)

    def observe(self, model: Any, rows: np.ndarray, probabilities: np.ndarray) -> None:
        """Add a request's rows (as fed to the model) and its class probabilities to ``model``'s window."""
        if self._last_model() is model:  # the model of the previous request (most servers serve one)
            drift = self._last_drift
            if drift is not None:
                drift.observe(rows, probabilities)
            return
        key = (model.name, model.version)
        drift = self.models.get(key, False)
        if drift is False:
            reference = (model.spec.preprocessing or {}).get("drift_reference")
            drift = self.models[key] = _ModelDrift(reference, self.window) if reference else None
        try:
            self._last_model, self._last_drift = weakref.ref(model), drift  # weak: an unloaded model is freed
        except TypeError:  # an object without weak references: not remembered
            self._last_model = _nothing
        if drift is not None:
            drift.observe(rows, probabilities)

    def collect(self) -> Iterator[Metric]:
        labels = ["model", "version"]
        feature_psi = GaugeMetricFamily("aios_serve_drift_psi", "Population stability index of a feature over the "
                                        "sliding window of live rows, against the training split.",
                                        labels=[*labels, "feature"])
        psi_max = GaugeMetricFamily("aios_serve_drift_psi_max", "The largest per-feature PSI of the model.",
                                    labels=labels)
        window_rows = GaugeMetricFamily("aios_serve_drift_window_rows", "Live rows in the drift window.",
                                        labels=labels)
        outside = CounterMetricFamily("aios_serve_drift_out_of_range_rows", "Live rows with a feature outside "
                                      "the training range.", labels=labels)
        predicted = GaugeMetricFamily("aios_serve_prediction_class_ratio", "Share of each predicted class in "
                                      "the drift window.", labels=[*labels, "class"])
        trained = GaugeMetricFamily("aios_serve_training_class_ratio", "Share of each class in the training "
                                    "labels.", labels=[*labels, "class"])
        class_psi = GaugeMetricFamily("aios_serve_prediction_drift_psi", "PSI of the predicted classes in the "
                                      "window against the training class distribution.", labels=labels)
        for (name, version), drift in sorted(self.models.items()):
            if drift is None:
                continue
            values = [name, version]
            drift.flush()
            outside.add_metric(values, drift.out_of_range)
            window_rows.add_metric(values, drift.filled)
            if drift.filled == 0:
                continue
            scores = drift.feature_psi()
            for feature, score in zip(drift.reference["features"], scores, strict=True):
                feature_psi.add_metric([*values, feature], score)
            psi_max.add_metric(values, max(scores))
            if not drift.reference["classes"]:  # a regression model: no classes to compare
                continue
            shares = drift.class_shares()
            for label, live, train in zip(drift.reference["classes"], shares, drift.reference["class_shares"],
                                          strict=True):
                predicted.add_metric([*values, label], float(live))
                trained.add_metric([*values, label], float(train))
            class_psi.add_metric(values, psi(drift.reference["class_shares"], shares))
        yield from (feature_psi, psi_max, window_rows, outside, predicted, trained, class_psi)
