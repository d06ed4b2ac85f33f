"""Why ``auto`` never picks dynamic int8: its answer for a row depends on the rows batched with it.

Dynamic quantization computes activation ranges per call over the whole batch. On a small
MLP trained on digits, some test rows get one label when sent alone and another inside
the test split; static int8 (ranges calibrated once) answers every row the same either
way. A server batches concurrent requests, so only the static answers are a function of
the request alone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from aios_onnx_quant_test_helpers import compressed_by_mode, onnx_artifact, trained_mlp_layers, write_classifier

from aios_core import Dataset, ModelArtifact, onnx_predictor


@pytest.fixture(scope="module")
def mlp(digits_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> ModelArtifact:
    """A 64-32-32-10 MLP trained on digits with scikit-learn, as fp32 ONNX."""
    pytest.importorskip("sklearn", reason="the MLP is trained with scikit-learn (the test extra)")
    path = tmp_path_factory.mktemp("mlp") / "model.onnx"
    return onnx_artifact(write_classifier(path, trained_mlp_layers(digits_dataset, hidden=(32, 32))))


@pytest.fixture(scope="module")
def mlp_compressed(mlp: ModelArtifact, digits_dataset: Dataset,
                   tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], ModelArtifact]:
    return compressed_by_mode(mlp, digits_dataset, tmp_path_factory, "mlp-", latency_runs=20)


def _alone_and_batched(path: Path, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    predict = onnx_predictor(path)
    return np.concatenate([predict(rows[index:index + 1]) for index in range(len(rows))]), predict(rows)


def test_dynamic_int8_gives_some_rows_another_label_alone_than_in_a_batch(
        mlp_compressed: Callable[[str], ModelArtifact], digits_dataset: Dataset) -> None:
    alone, batched = _alone_and_batched(mlp_compressed("dynamic").path, digits_dataset.x_test)
    assert np.abs(alone - batched).max() > 0.01
    assert np.count_nonzero(alone.argmax(axis=1) != batched.argmax(axis=1)) >= 1


def test_static_int8_answers_each_row_the_same_alone_and_in_a_batch(
        mlp_compressed: Callable[[str], ModelArtifact], digits_dataset: Dataset) -> None:
    alone, batched = _alone_and_batched(mlp_compressed("static").path, digits_dataset.x_test)
    np.testing.assert_allclose(alone, batched, atol=1e-6)


def test_auto_builds_and_keeps_only_the_batch_independent_variant(
        mlp_compressed: Callable[[str], ModelArtifact]) -> None:
    metrics = mlp_compressed("auto").metrics
    assert set(metrics["variants"]) == {"fp32", "static"}
    assert metrics["chosen"] in ("static", "fp32")  # fp32 when static int8 does not pay on this small MLP
    assert metrics["batch_independent"] is True
