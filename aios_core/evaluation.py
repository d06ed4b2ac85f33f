"""The evaluate phase: size, latency and quality of every model artifact on the test split.

Quality is accuracy, per-class recall and the confusion matrix for classification;
RMSE, MAE and R^2 in the target's units for regression. When the data is streamed
(``Dataset.streaming``) quality covers every test row, read through ``Dataset.batches``;
latency and the regression plots use the sample the ``Dataset`` holds. Writes ``report/evaluation.json``
and PNGs (``aios_core.evaluation_plots``) of the training curves and of the final model:
the confusion matrix, or predicted-vs-true and residuals; checks the gates of the
stack's ``evaluate`` section. One path for both tasks: only ``_quality`` and the gates'
metric differ.
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
    error = predicted - true
    spread = ((true - true.mean(axis=0)) ** 2).sum(axis=0)
    r2 = 1.0 - (error**2).sum(axis=0) / np.maximum(spread, 1e-12)
    return {"rmse": round(float(np.sqrt((error**2).mean())), 6), "mae": round(float(np.abs(error).mean()), 6),
            "r2": round(float(r2.mean()), 6)}


def metric_drop(result: dict[str, Any], baseline: dict[str, Any], prefix: str = "") -> float:
    """How much worse ``result`` is than ``baseline``: the accuracy drop (points, as a fraction) for
    classification, the relative RMSE increase ((rmse - baseline) / baseline) for regression.

    The figures are ``accuracy`` or ``rmse`` keys, after ``prefix`` (``val_`` for validation figures);
    compressors budget the same number (``max_metric_drop``), so one budget reads the same everywhere."""
    rmse, accuracy = f"{prefix}rmse", f"{prefix}accuracy"
    if rmse in result:
        return round((result[rmse] - baseline[rmse]) / max(baseline[rmse], 1e-12), 6)
    return round(baseline[accuracy] - result[accuracy], 6)


def _quality(outputs: np.ndarray, dataset: Dataset) -> dict[str, Any]:
    import numpy as np

    if dataset.task == "regression":
        predicted = dataset.unscale_targets(outputs.reshape(len(outputs), -1))
        true = dataset.unscale_targets(dataset.y_test.reshape(len(dataset.y_test), -1))
        quality: dict[str, Any] = regression_metrics(true, predicted)
        if true.shape[1] > 1:  # several targets: the figures above pool them; each target's own, in its units
            names = dataset.target_names or [f"target-{index}" for index in range(true.shape[1])]
            quality["per_target"] = {name: regression_metrics(true[:, [index]], predicted[:, [index]])
                                     for index, name in enumerate(names)}
        return quality
    predicted = outputs.argmax(axis=1)
    confusion = _confusion(dataset.y_test, predicted, dataset.num_classes)
    recall = np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)
    return {"accuracy": round(float((predicted == dataset.y_test).mean()), 6),
            "per_class_recall": {name: round(float(r), 4) for name, r in zip(dataset.class_names, recall)},
            "confusion_matrix": confusion.tolist()}


_STREAMED_BATCH = 8192
"""Test rows predicted at a time when the data is streamed."""


def _streamed_quality(predict: Predictor, dataset: Dataset) -> dict[str, Any]:
    """``_quality`` over every test row of a streamed ``Dataset``, batch by batch: sums, not the outputs, are kept."""
    import numpy as np

    regression, classes = dataset.task == "regression", dataset.num_classes
    confusion = np.zeros((classes, classes), dtype=np.int64)
    rows, sums = 0, np.zeros((4, max(1, dataset.num_targets)))  # true, true^2, error^2, |error| per target
    for x, y in dataset.batches("test", _STREAMED_BATCH):
        outputs = np.asarray(predict(np.ascontiguousarray(x, dtype=np.float32)))
        rows += len(y)
        if regression:
            true = dataset.unscale_targets(y.reshape(len(y), -1))
            error = dataset.unscale_targets(outputs.reshape(len(outputs), -1)) - true
            sums += np.stack([true.sum(axis=0), (true**2).sum(axis=0), (error**2).sum(axis=0), np.abs(error).sum(axis=0)])
        else:
            confusion += _confusion(y, outputs.argmax(axis=1), classes)
    if regression:
        spread = sums[1] - sums[0] ** 2 / max(rows, 1)
        r2 = 1.0 - sums[2] / np.maximum(spread, 1e-12)
        return {"rmse": round(float(np.sqrt(sums[2].mean() / max(rows, 1))), 6),
                "mae": round(float(sums[3].mean() / max(rows, 1)), 6), "r2": round(float(r2.mean()), 6)}
    recall = np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)
    return {"accuracy": round(float(np.trace(confusion) / max(rows, 1)), 6),
            "per_class_recall": {name: round(float(r), 4) for name, r in zip(dataset.class_names, recall)},
            "confusion_matrix": confusion.tolist()}


def _measure(artifact: ModelArtifact, predict: Predictor, dataset: Dataset, settings: EvaluateSettings) -> dict[str, Any]:
    import numpy as np

    if dataset.streaming:  # every test row, in batches; latency below is measured on the sample held
        quality = _streamed_quality(predict, dataset)
    else:
        quality = _quality(np.asarray(predict(dataset.x_test.astype(np.float32))), dataset)
    return {
        **artifact.to_json(),
        "size_bytes": artifact.size_bytes,
        **quality,
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
            gates.append({"gate": gate, "value": value, "limit": limit,
                          "passed": value >= limit if at_least else value <= limit,
                          "message": f"{final['name']} test {key} {value:.4f} {'<' if at_least else '>'} {gate} {limit}"})
    for gate, key, worse in (("max_accuracy_drop", "accuracy_drop", "accuracy drop"),
                             ("max_metric_drop", "metric_drop", "metric drop"),
                             ("max_size_ratio", "size_ratio", "size ratio")):
        limit = getattr(settings, gate)
        if limit is not None and comparison is not None and key in comparison:
            value = comparison[key]
            gates.append({"gate": gate, "value": value, "limit": limit, "passed": value <= limit,
                          "message": f"{comparison['artifact']} {worse} {value:.4f} vs {comparison['baseline']} "
                                     f"> {gate} {limit}"})
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
