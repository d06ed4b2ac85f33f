"""Evaluation's quality figures: one batch-by-batch path for held and streamed test splits.

The test split is read through ``Dataset.batches`` whether it is held in memory or streamed,
and predicted a batch at a time; the figures must equal those of the whole split at once
(``regression_metrics`` on every row, the confusion matrix of every prediction), also when the
split spans several batches, and regression with several targets gets its ``per_target``
figures either way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aios_core import Dataset, ModelArtifact
from aios_core.batches import ArraySplit
from aios_core.evaluation import _QUALITY_BATCH, evaluate, regression_metrics
from aios_core.stack import EvaluateSettings

ROWS = 2 * _QUALITY_BATCH + 1234  # three batches, the last one short


def _dataset(task: str, *, streamed: bool) -> Dataset:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(ROWS, 4)).astype(np.float32)
    if task == "regression":
        y = np.stack([x[:, 0] + 0.3 * rng.normal(size=ROWS), 5 + x[:, 1] - x[:, 2]], axis=1).astype(np.float32)
        names: dict = {"class_names": [], "target_names": ["near", "far"],
                       "target_scaling": {"scaling": "standardize", "mean": [1.0, 40.0], "std": [2.0, 10.0]}}
    else:
        y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1).astype(np.int64)
        names = {"class_names": ["a", "b", "c"]}
    sample = slice(0, 50)
    streams = {split: ArraySplit(x, y) for split in ("train", "val", "test")} if streamed else {}
    for stream in streams.values():
        stream.window_rows = 1000  # read a window at a time, as a streaming datastore does
    held = slice(None) if not streamed else sample
    return Dataset(name="q", x_train=x[held], y_train=y[held], x_val=x[held], y_val=y[held], x_test=x[held],
                   y_test=y[held], content_hash="h", task=task, streams=streams, **names)


def _predict(x: np.ndarray) -> np.ndarray:
    """A fixed linear model: three class scores, or two (scaled) regression outputs."""
    weights = np.array([[1.0, 0.2, -0.5], [0.1, 1.0, 0.3], [0.0, -0.4, 0.2], [0.3, 0.0, 0.1]], dtype=np.float32)
    return x @ weights


def _report(dataset: Dataset, tmp_path: Path) -> dict:
    model = tmp_path / "model.bin"
    model.write_bytes(b"0" * 10)
    artifact = ModelArtifact(name="linear", path=model, format="onnx", producer="test")
    predict = (lambda x: _predict(x)[:, :2]) if dataset.task == "regression" else _predict
    return evaluate([artifact], dataset, lambda _: predict, EvaluateSettings(batch_sizes=[1], latency_runs=5), [],
                    tmp_path / ("streamed" if dataset.streaming else "held"))


def test_regression_figures_over_several_batches_equal_the_whole_splits(tmp_path: Path) -> None:
    held = _dataset("regression", streamed=False)
    final = _report(held, tmp_path)["artifacts"][0]
    true = held.unscale_targets(held.y_test)
    predicted = held.unscale_targets(_predict(held.x_test)[:, :2])
    whole = regression_metrics(true, predicted)
    for key in ("rmse", "mae", "r2"):
        assert final[key] == pytest.approx(whole[key], abs=2e-6), key
    assert set(final["per_target"]) == {"near", "far"}
    for index, name in enumerate(("near", "far")):
        alone = regression_metrics(true[:, [index]], predicted[:, [index]])
        for key in ("rmse", "mae", "r2"):
            assert final["per_target"][name][key] == pytest.approx(alone[key], abs=2e-6), (name, key)
    assert final["per_target"]["far"]["rmse"] > 5 * final["per_target"]["near"]["rmse"]  # each in its own units


def test_streamed_regression_has_the_held_figures_and_per_target(tmp_path: Path) -> None:
    held = _report(_dataset("regression", streamed=False), tmp_path)
    streamed = _report(_dataset("regression", streamed=True), tmp_path)
    assert streamed["test_rows"] == held["test_rows"] == ROWS
    for key in ("rmse", "mae", "r2", "per_target"):
        assert streamed["artifacts"][0][key] == held["artifacts"][0][key], key


def test_classification_figures_count_every_test_row_held_or_streamed(tmp_path: Path) -> None:
    held = _dataset("classification", streamed=False)
    report = _report(held, tmp_path)
    predicted = _predict(held.x_test).argmax(axis=1)
    assert report["test_accuracy"] == round(float((predicted == held.y_test).mean()), 6)
    confusion = np.asarray(report["artifacts"][0]["confusion_matrix"])
    assert confusion.sum() == ROWS and np.trace(confusion) == (predicted == held.y_test).sum()
    streamed = _report(_dataset("classification", streamed=True), tmp_path)
    for key in ("accuracy", "per_class_recall", "confusion_matrix"):
        assert streamed["artifacts"][0][key] == report["artifacts"][0][key], key
