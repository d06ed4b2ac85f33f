"""aios_export_model to ONNX; the exported file runs with the kernel's ONNX Runtime predictor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch

from aios_core import Dataset, ModelArtifact


@dataclass
class Exported:
    stack: Any
    model: torch.nn.Module
    artifact: ModelArtifact


@pytest.fixture(scope="module")
def cnn_export(tmp_path_factory: pytest.TempPathFactory, digits_dataset: Dataset, make_torch_stack) -> Exported:
    """A digits CNN trained for one epoch and exported to ``<export dir>/model.onnx``."""
    stack = make_torch_stack(tmp_path_factory.mktemp("run"), model={"architecture": "cnn"}, trainer={"epochs": 1})
    model = stack.build_and_train(digits_dataset).model
    path = tmp_path_factory.mktemp("export") / "model.onnx"
    artifact = stack.pm.hook.aios_export_model(model=model, fmt="onnx", path=path, dataset=digits_dataset)
    return Exported(stack, model, artifact)


def _torch_probabilities(model: torch.nn.Module, rows: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model.eval()(torch.from_numpy(rows)), dim=1).numpy()


def test_export_returns_an_onnx_artifact_with_its_parity(cnn_export: Exported) -> None:
    artifact = cnn_export.artifact
    assert (artifact.name, artifact.format, artifact.producer) == ("onnx", "onnx", "torch")
    assert artifact.path.name == "model.onnx" and artifact.size_bytes > 0
    assert 0.0 <= artifact.metrics["max_abs_diff"] <= 1e-4
    assert artifact.metrics["parity_batch_sizes"] == [1, 256]


def test_export_writes_one_self_contained_file_that_passes_the_checker(cnn_export: Exported) -> None:
    path = cnn_export.artifact.path
    assert [p.name for p in path.parent.iterdir()] == ["model.onnx"]  # no .data file, no temporary file
    onnx.checker.check_model(str(path), full_check=True)
    graph = onnx.load(str(path), load_external_data=False).graph
    assert not any(onnx.external_data_helper.uses_external_data(tensor) for tensor in graph.initializer)


def test_exported_graph_takes_input_and_returns_probabilities_for_any_batch(cnn_export: Exported) -> None:
    graph = onnx.load(str(cnn_export.artifact.path)).graph
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["probabilities"]
    batch, features = graph.input[0].type.tensor_type.shape.dim
    assert batch.dim_param and not batch.dim_value  # symbolic batch dimension
    assert features.dim_value == 64


@pytest.mark.parametrize("batch_size", [1, 256])
def test_onnx_predictor_matches_torch_softmax(cnn_export: Exported, digits_dataset: Dataset, batch_size: int) -> None:
    rows = digits_dataset.x_test[:batch_size]
    assert len(rows) == batch_size
    predict = cnn_export.stack.pm.hook.aios_load_predictor(artifact=cnn_export.artifact, threads=1)
    probabilities = predict(rows)
    assert probabilities.shape == (batch_size, 10) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities, _torch_probabilities(cnn_export.model, rows), atol=1e-4, rtol=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_the_framework_leaves_onnx_files_to_the_kernel(cnn_export: Exported) -> None:
    assert cnn_export.stack.framework.aios_load_predictor(artifact=cnn_export.artifact, threads=1) is None


def test_export_accepts_mlp_and_keeps_the_model_training_mode(make_torch_stack, digits_dataset: Dataset,
                                                               tmp_path: Path) -> None:
    stack = make_torch_stack(tmp_path / "run", model={"architecture": "mlp", "dropout": 0.5})
    model = stack.build(digits_dataset).train()
    artifact = stack.pm.hook.aios_export_model(model=model, fmt="onnx", path=tmp_path / "mlp.onnx", dataset=digits_dataset)
    assert model.training
    predict = stack.pm.hook.aios_load_predictor(artifact=artifact, threads=2)
    # Dropout is off in the export: the ONNX model equals the torch model in eval mode.
    np.testing.assert_allclose(predict(digits_dataset.x_val), _torch_probabilities(model, digits_dataset.x_val), atol=1e-4, rtol=0)


def test_unknown_export_format_is_a_clear_error(make_torch_stack, digits_dataset: Dataset, tmp_path: Path) -> None:
    stack = make_torch_stack(tmp_path)
    with pytest.raises(ValueError, match=r"exports \['onnx'\], not 'tflite'"):
        stack.pm.hook.aios_export_model(model=stack.build(digits_dataset), fmt="tflite", path=tmp_path / "m.tflite",
                                        dataset=digits_dataset)
    assert not (tmp_path / "m.tflite").exists()
