"""A regression model served: the one output ``predictions``, in the target's units (the run's target scaling
inverted), equal to the in-process predictions un-scaled; metadata that says the task; drift without classes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

FEATURES = 8
TARGET = {"scaling": "standardize", "mean": [150.0], "std": [75.0]}  # e.g. diabetes' disease progression


def _write_regressor(path: Path) -> Path:
    """A float32 8-16-1 MLP (no softmax); input "input" (n, 8), output "predictions" (n, 1)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    weights = {"w1": rng.normal(0, 0.5, (FEATURES, 16)), "b1": rng.normal(0, 0.1, 16),
               "w2": rng.normal(0, 0.5, (16, 1)), "b2": np.array([0.2])}
    nodes = [helper.make_node("MatMul", ["input", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["a"]), helper.make_node("MatMul", ["a", "w2"], ["z"]),
             helper.make_node("Add", ["z", "b2"], ["predictions"])]
    graph = helper.make_graph(
        nodes, "regressor", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", FEATURES])],
        [helper.make_tensor_value_info("predictions", TensorProto.FLOAT, ["batch", 1])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished regression run directory as aios run leaves it, written through ``aios_core.RunDirectory``."""
    from aios_core import ModelArtifact, RunDirectory, RunState
    from aios_core.drift import drift_reference

    run = RunDirectory(tmp_path_factory.mktemp("runs") / "20261201-120000-dose")
    run.artifacts_dir.mkdir(parents=True)
    model = _write_regressor(run.artifacts_dir / "model.onnx")
    run.write_lock({"name": "dose", "seed": 0, "threads": 1})
    artifact = ModelArtifact(name="onnx", path=model, format="onnx", producer="test")
    run.write_state(RunState(status="completed", phases={"export": {"artifacts": [run.artifact_to_json(artifact)]}}))
    train = np.random.default_rng(4).normal(0, 1, (200, FEATURES))
    run.write_data_summary({
        "name": "dose", "task": "regression", "class_names": [], "num_features": FEATURES, "num_classes": 0,
        "target_names": ["dose"], "target_scaling": TARGET,
        "preprocessing": {"scaling": "none", "drift_reference": drift_reference(train, np.empty(0, np.int64), [])}})
    return run.path


@pytest.fixture(scope="module")
def url(regression_run: Path) -> Iterator[str]:
    from aios_serve.server import BackgroundServer

    with BackgroundServer([regression_run]) as running:
        yield running.url


def _rows() -> np.ndarray:
    return np.random.default_rng(5).normal(0, 1, (32, FEATURES)).astype(np.float32)


def test_served_predictions_are_in_the_targets_units_and_equal_the_in_process_ones(regression_run: Path,
                                                                                   url: str) -> None:
    from aios_core import onnx_predictor, unscale_targets

    rows = _rows()
    answer = httpx.post(f"{url}/v2/models/dose/infer", timeout=30, json={
        "inputs": [{"name": "input", "shape": list(rows.shape), "datatype": "FP32", "data": rows.ravel().tolist()}]})
    assert answer.status_code == 200, answer.text
    (output,) = answer.json()["outputs"]  # no label output for a regression model
    assert output["name"] == "predictions" and output["shape"] == [32, 1] and output["datatype"] == "FP32"
    served = np.asarray(output["data"], dtype=np.float64).reshape(32, 1)
    scaled = onnx_predictor(regression_run / "artifacts" / "model.onnx")(rows)
    in_process = unscale_targets(scaled, TARGET)
    assert np.allclose(served, in_process, rtol=1e-6, atol=1e-4)
    assert not np.allclose(served, scaled, atol=1.0)  # the model's own (standardized) units are not what is served


def test_the_metadata_says_the_task_and_the_target(url: str) -> None:
    metadata = httpx.get(f"{url}/v2/models/dose", timeout=30).json()
    assert metadata["outputs"] == [{"name": "predictions", "datatype": "FP32", "shape": [-1, 1]}]
    parameters = metadata["parameters"]
    assert parameters["task"] == "regression" and parameters["target_names"] == ["dose"]
    assert parameters["target_scaling"] == TARGET


def test_asking_for_a_label_of_a_regression_model_is_a_clear_400(url: str) -> None:
    rows = _rows()[:1]
    answer = httpx.post(f"{url}/v2/models/dose/infer", timeout=30, json={
        "inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": rows.ravel().tolist()}],
        "outputs": [{"name": "label"}]})
    assert answer.status_code == 400 and "has outputs ['predictions']" in answer.text


def test_drift_of_a_regression_model_scores_features_and_no_classes(url: str) -> None:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    assert 'aios_serve_drift_psi_max{model="dose"' in text
    assert 'aios_serve_prediction_class_ratio{model="dose"' not in text
