"""The evaluate phase: size, latency and quality of every model artifact on the test split.

Quality is accuracy, per-class recall and the confusion matrix for classification;
RMSE, MAE and R^2 in the target's units for regression (and per target when there are
several), over every test row read through ``Dataset.batches``, whether the split is held
in memory or streamed (``Dataset.streaming``); latency and the regression plots use the
rows the ``Dataset`` holds (a sample when streamed). Writes ``report/evaluation.json``
and PNGs (``aios_core.evaluation_plots``) of the training curves and of the final model:
the confusion matrix, or predicted-vs-true and residuals; checks the gates of the
stack's ``evaluate`` section. One path for both tasks and both forms of data: only ``_quality``
and the gates' metric differ.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aios_core.atomic import write_json
from aios_core.evaluation_plots import plot_confusion, plot_regression, plot_training
from aios_core.records import Dataset, ModelArtifact, Predictor
from aios_core.rundir import final_artifact

if TYPE_CHECKING:
    import numpy as np

    from aios_core.stack import EvaluateSettings


def _latency_ms(predict: Predictor, x: np.ndarray, batch_size: int, runs: int) -> dict[str, float]:
    import numpy as np

    batch = np.resize(x, (batch_size, x.shape[1])).astype(np.float32)
    runs = max(5, runs if batch_size == 1 else runs // 10)
    for _ in range(3):
        predict(batch)
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        predict(batch)
        timings.append((time.perf_counter() - start) * 1000)
    return {"p50": round(float(np.percentile(timings, 50)), 4), "p90": round(float(np.percentile(timings, 90)), 4),
            "runs": runs}


def _confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> np.ndarray:
    import numpy as np

    return np.bincount(y_true * classes + y_pred, minlength=classes * classes).reshape(classes, classes)


def regression_metrics(true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R^2 of ``predicted`` against ``true``, both (n, targets): RMSE and MAE over every value (all
    targets pooled), R^2 averaged over targets."""
    import numpy as np

    true, predicted = np.asarray(true, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    true, predicted = true.reshape(len(true), -1), predicted.reshape(len(predicted), -1)
    tally = _RegressionTally(true.shape[1])
    tally.add(true, predicted)
    return tally.metrics()


def metric_drop(result: dict[str, Any], baseline: dict[str, Any], prefix: str = "") -> float:
    """How much worse ``result`` is than ``baseline``: the accuracy drop (points, as a fraction) for
    classification, the relative RMSE increase ((rmse - baseline) / baseline) for regression.

    The figures are ``accuracy`` or ``rmse`` keys, after ``prefix`` (``val_`` for validation figures);
    compressors budget the same number (``max_metric_drop``), so one budget reads the same everywhere."""
    rmse, accuracy = f"{prefix}rmse", f"{prefix}accuracy"
    if rmse in result:
        return round((result[rmse] - baseline[rmse]) / max(baseline[rmse], 1e-12), 6)
    return round(baseline[accuracy] - result[accuracy], 6)


_QUALITY_BATCH = 8192
"""Test rows predicted at a time: the test split is read through ``Dataset.batches``, held or streamed."""


class _RegressionTally:
    """Per target: rows, mean and squared deviations of the true values (merged batch by batch, Chan et al.), and
    the sums of squared and absolute errors: ``regression_metrics`` is one batch of it, the evaluation many."""

    def __init__(self, targets: int) -> None:
        import numpy as np

        self.rows, self.mean, self.spread = 0, np.zeros(targets), np.zeros(targets)
        self.squared, self.absolute = np.zeros(targets), np.zeros(targets)

    def add(self, true: np.ndarray, predicted: np.ndarray) -> None:
        error = predicted - true
        rows, mean = len(true), true.mean(axis=0)
        total = self.rows + rows
        delta = mean - self.mean
        self.spread = self.spread + ((true - mean) ** 2).sum(axis=0) + delta**2 * self.rows * rows / total
        self.mean, self.rows = self.mean + delta * rows / total, total
        self.squared, self.absolute = self.squared + (error**2).sum(axis=0), self.absolute + abs(error).sum(axis=0)

    def metrics(self, target: int | None = None) -> dict[str, float]:
        """``regression_metrics`` of every target pooled, or of the one at index ``target``."""
        import numpy as np

        pick = slice(None) if target is None else slice(target, target + 1)
        squared, absolute, values = self.squared[pick], self.absolute[pick], max(self.rows, 1) * len(self.squared[pick])
        r2 = 1.0 - squared / np.maximum(self.spread[pick], 1e-12)
        return {"rmse": round(float(np.sqrt(squared.sum() / values)), 6),
                "mae": round(float(absolute.sum() / values), 6), "r2": round(float(r2.mean()), 6)}


def _quality(predict: Predictor, dataset: Dataset) -> dict[str, Any]:
    """Accuracy, per-class recall and confusion matrix, or RMSE, MAE and R^2 (with ``per_target`` figures when
    there are several targets) over every test row, held or streamed, a batch at a time: tallies, not the
    outputs, are kept."""
    import numpy as np

    regression, classes = dataset.task == "regression", dataset.num_classes
    confusion = np.zeros((classes, classes), dtype=np.int64)
    tally = _RegressionTally(max(1, dataset.num_targets))
    for x, y in dataset.batches("test", _QUALITY_BATCH):
        outputs = np.asarray(predict(np.ascontiguousarray(x, dtype=np.float32)))
        if regression:
            tally.add(dataset.unscale_targets(y.reshape(len(y), -1)),
                      dataset.unscale_targets(outputs.reshape(len(outputs), -1)))
        else:
            confusion += _confusion(y, outputs.argmax(axis=1), classes)
    if regression:
        quality: dict[str, Any] = tally.metrics()
        if len(tally.mean) > 1:  # several targets: the figures above pool them; each target's own, in its units
            names = dataset.target_names or [f"target-{index}" for index in range(len(tally.mean))]
            quality["per_target"] = {name: tally.metrics(index) for index, name in enumerate(names)}
        return quality
    recall = np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)
    return {"accuracy": round(float(np.trace(confusion) / max(int(confusion.sum()), 1)), 6),
            "per_class_recall": {name: round(float(r), 4) for name, r in zip(dataset.class_names, recall)},
            "confusion_matrix": confusion.tolist()}


def _measure(artifact: ModelArtifact, predict: Predictor, dataset: Dataset, settings: EvaluateSettings) -> dict[str, Any]:
    return {
        **artifact.to_json(),
        "size_bytes": artifact.size_bytes,
        **_quality(predict, dataset),  # every test row; latency below is measured on the rows the Dataset holds
        "latency_ms": {str(b): _latency_ms(predict, dataset.x_test, b, settings.latency_runs)
                       for b in settings.batch_sizes},
    }


def _compare(result: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    drop = metric_drop(result, baseline)
    return {
        "artifact": result["name"], "baseline": baseline["name"],
        "size_ratio": round(result["size_bytes"] / baseline["size_bytes"], 4),
        **({"rmse_increase": drop} if "rmse" in result else {"accuracy_drop": drop}),
        "metric_drop": drop,
        "speedup": {b: round(baseline["latency_ms"][b]["p50"] / max(result["latency_ms"][b]["p50"], 1e-9), 3)
                    for b in result["latency_ms"]},
    }


def _gates(settings: EvaluateSettings, final: dict[str, Any], comparison: dict[str, Any] | None) -> list[dict[str, Any]]:
    gates = []
    for gate, key, at_least in (("min_accuracy", "accuracy", True), ("min_r2", "r2", True), ("max_rmse", "rmse", False)):
        limit = getattr(settings, gate)
        if limit is not None and key in final:
            value = final[key]
            passed = value >= limit if at_least else value <= limit
            sign = (">=" if passed else "<") if at_least else ("<=" if passed else ">")
            gates.append({"gate": gate, "value": value, "limit": limit, "passed": passed,
                          "message": f"{final['name']} test {key} {value:.4f} {sign} {gate} {limit}"})
    for gate, key, worse in (("max_accuracy_drop", "accuracy_drop", "accuracy drop"),
                             ("max_metric_drop", "metric_drop", "metric drop"),
                             ("max_size_ratio", "size_ratio", "size ratio")):
        limit = getattr(settings, gate)
        if limit is not None and comparison is not None and key in comparison:
            value = comparison[key]
            passed = value <= limit
            gates.append({"gate": gate, "value": value, "limit": limit, "passed": passed,
                          "message": f"{comparison['artifact']} {worse} {value:.4f} vs {comparison['baseline']} "
                                     f"{'<=' if passed else '>'} {gate} {limit}"})
    return gates


def evaluate(artifacts: list[ModelArtifact], dataset: Dataset, predictor_for: Callable[[ModelArtifact], Predictor | None],
             settings: EvaluateSettings, history: list[dict[str, float]], report_dir: Path,
             progress: Callable[[str, int, int | None, str], None] | None = None) -> dict[str, Any]:
    """Measure every artifact on the test split, compare compressed models with the first
    exported one, check the gates and write the report; returns the report. ``progress``
    (``RunContext.report_progress``) hears each model measured."""
    results: dict[int, dict[str, Any]] = {}  # by id() of the artifact: names need not be unique
    skipped: list[dict[str, str]] = []
    for artifact in artifacts:
        predict = predictor_for(artifact)
        if predict is None:
            skipped.append({"artifact": artifact.name, "reason": f"no selected component runs format '{artifact.format}'"})
            if progress is not None:
                progress("evaluating", len(results) + len(skipped), len(artifacts), "models")
            continue
        results[id(artifact)] = _measure(artifact, predict, dataset, settings)
        if progress is not None:
            progress("evaluating", len(results) + len(skipped), len(artifacts), "models")
    evaluated = final_artifact(a for a in artifacts if id(a) in results)
    if evaluated is None:
        raise ValueError("no model artifact could be evaluated: no selected component provides aios_load_predictor")
    final = results[id(evaluated)]
    results_list = list(results.values())
    first = results_list[0]
    exported = [r for r in results_list if r["producer"] == first["producer"] and r is not first]
    baseline = exported[0] if exported else first
    comparison = _compare(final, baseline) if final is not baseline else None
    headline = ({f"test_{key}": final[key] for key in ("rmse", "mae", "r2")} if dataset.task == "regression"
                else {"test_accuracy": final["accuracy"]})
    report = {
        "final": final["name"], "task": dataset.task, **headline, "test_rows": dataset.rows("test"),
        "artifacts": results_list, "skipped": skipped, "comparison": comparison,
        "gates": _gates(settings, final, comparison),
    }
    report_dir.mkdir(parents=True, exist_ok=True)
    if history:
        plot_training(history, report_dir / "training_curves.png")
    if dataset.task == "regression":
        import numpy as np

        predicted = dataset.unscale_targets(np.asarray(predictor_for(evaluated)(dataset.x_test.astype(np.float32))))
        true = dataset.unscale_targets(dataset.y_test.reshape(len(dataset.y_test), -1))
        plot_regression(true, predicted, final["name"], report_dir / "predicted_vs_true.png",
                        report_dir / "residuals.png")
    else:
        plot_confusion(final["confusion_matrix"], dataset.class_names, f"Confusion matrix ({final['name']}, test)",
                       report_dir / "confusion_matrix.png")
    write_json(report_dir / "evaluation.json", report)
    return report
