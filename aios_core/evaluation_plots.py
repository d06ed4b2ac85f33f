"""The evaluate phase's pictures: training curves, a confusion matrix (classification), predicted against
true values and a residual histogram (regression). matplotlib is imported when a picture is drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aios_core.atomic import atomic_path

__all__ = ["plot_confusion", "plot_regression", "plot_training"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: Path) -> None:
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    _pyplot().close(figure)


def plot_training(history: list[dict[str, float]], path: Path) -> None:
    """Loss and the second metric (accuracy, or RMSE for regression) per epoch, train and validation."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    second = "accuracy" if "val_accuracy" in history[0] else "rmse"
    figure, (loss_axes, metric_axes) = plt.subplots(1, 2, figsize=(10, 4))
    for axes, key, title in ((loss_axes, "loss", "Loss"), (metric_axes, second, second.upper() if second == "rmse" else "Accuracy")):
        axes.plot(epochs, [h.get(key) for h in history], marker="o", label="train")
        axes.plot(epochs, [h.get(f"val_{key}") for h in history], marker="o", label="validation")
        axes.set(title=title, xlabel="epoch")
        axes.grid(alpha=0.3)
        axes.legend()
    _save(figure, path)


def plot_confusion(confusion: list[list[int]], class_names: list[str], title: str, path: Path) -> None:
    plt = _pyplot()
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
    _save(figure, path)


def plot_regression(true: Any, predicted: Any, name: str, scatter_path: Path, residual_path: Path) -> None:
    """Predicted against true values (with the identity line), and a histogram of the residuals (predicted - true),
    all targets together, in the target's units."""
    import numpy as np

    plt = _pyplot()
    true, predicted = np.ravel(true), np.ravel(predicted)
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.scatter(true, predicted, s=10, alpha=0.6)
    low, high = float(min(true.min(), predicted.min())), float(max(true.max(), predicted.max()))
    axes.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1)
    axes.set(title=f"Predicted vs true ({name}, test)", xlabel="true", ylabel="predicted")
    axes.grid(alpha=0.3)
    _save(figure, scatter_path)
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.hist(predicted - true, bins=30)
    axes.set(title=f"Residuals ({name}, test)", xlabel="predicted - true", ylabel="rows")
    axes.grid(alpha=0.3)
    _save(figure, residual_path)
