"""The evaluate phase: accuracy, confusion matrix, size and latency of every model artifact.

Writes ``report/evaluation.json`` and PNGs of the training curves and the final
model's confusion matrix, and checks the gates of the stack's ``evaluate`` section.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aios_core.atomic import atomic_path, write_json
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


def _measure(artifact: ModelArtifact, predict: Predictor, dataset: Dataset, settings: EvaluateSettings) -> dict[str, Any]:
    import numpy as np

    probabilities = np.asarray(predict(dataset.x_test.astype(np.float32)))
    predicted = probabilities.argmax(axis=1)
    confusion = _confusion(dataset.y_test, predicted, dataset.num_classes)
    recall = np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)
    return {
        **artifact.to_json(),
        "size_bytes": artifact.size_bytes,
        "accuracy": round(float((predicted == dataset.y_test).mean()), 6),
        "per_class_recall": {name: round(float(r), 4) for name, r in zip(dataset.class_names, recall)},
        "confusion_matrix": confusion.tolist(),
        "latency_ms": {str(b): _latency_ms(predict, dataset.x_test, b, settings.latency_runs)
                       for b in settings.batch_sizes},
    }


def _compare(result: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    return {
        "artifact": result["name"], "baseline": baseline["name"],
        "size_ratio": round(result["size_bytes"] / baseline["size_bytes"], 4),
        "accuracy_drop": round(baseline["accuracy"] - result["accuracy"], 6),
        "speedup": {b: round(baseline["latency_ms"][b]["p50"] / max(result["latency_ms"][b]["p50"], 1e-9), 3)
                    for b in result["latency_ms"]},
    }


def _gates(settings: EvaluateSettings, final: dict[str, Any], comparison: dict[str, Any] | None) -> list[dict[str, Any]]:
    gates = []
    if settings.min_accuracy is not None:
        value = final["accuracy"]
        gates.append({"gate": "min_accuracy", "value": value, "limit": settings.min_accuracy,
                      "passed": value >= settings.min_accuracy,
                      "message": f"{final['name']} test accuracy {value:.4f} < min_accuracy {settings.min_accuracy}"})
    for gate, key, worse in (("max_accuracy_drop", "accuracy_drop", "accuracy drop"),
                             ("max_size_ratio", "size_ratio", "size ratio")):
        limit = getattr(settings, gate)
        if limit is not None and comparison is not None:
            value = comparison[key]
            gates.append({"gate": gate, "value": value, "limit": limit, "passed": value <= limit,
                          "message": f"{comparison['artifact']} {worse} {value:.4f} vs {comparison['baseline']} "
                                     f"> {gate} {limit}"})
    return gates


def _plot_training(history: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    for axes, key, title in ((loss_axes, "loss", "Loss"), (accuracy_axes, "accuracy", "Accuracy")):
        axes.plot(epochs, [h.get(key) for h in history], marker="o", label="train")
        axes.plot(epochs, [h.get(f"val_{key}") for h in history], marker="o", label="validation")
        axes.set(title=title, xlabel="epoch")
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


def _plot_confusion(confusion: list[list[int]], class_names: list[str], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(4.0, 0.5 * len(class_names) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    image = axes.imshow(confusion, cmap="Blues")
    axes.set(title=title, xlabel="predicted", ylabel="true", xticks=range(len(class_names)),
             yticks=range(len(class_names)), xticklabels=class_names, yticklabels=class_names)
    peak = max(max(row) for row in confusion) or 1
    for i, row in enumerate(confusion):
        for j, count in enumerate(row):
            if count:
                axes.text(j, i, str(count), ha="center", va="center", fontsize=8,
                          color="white" if count > peak / 2 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


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
    report = {
        "final": final["name"], "test_accuracy": final["accuracy"], "test_rows": len(dataset.y_test),
        "artifacts": results_list, "skipped": skipped, "comparison": comparison,
        "gates": _gates(settings, final, comparison),
    }
    report_dir.mkdir(parents=True, exist_ok=True)
    if history:
        _plot_training(history, report_dir / "training_curves.png")
    _plot_confusion(final["confusion_matrix"], dataset.class_names, f"Confusion matrix ({final['name']}, test)",
                    report_dir / "confusion_matrix.png")
    write_json(report_dir / "evaluation.json", report)
    return report
