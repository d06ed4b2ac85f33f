"""Drift on the live server (aios_serve.drift): the digits test split scores below the alert threshold, shifted
rows above it, on ``/metrics``.

The reference is the one aios-data records at data time (``preprocessing.drift_reference``); the model is a
nearest-class-mean classifier of the training split written as ONNX, so its predicted classes mean something.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from aios_core import Dataset, ModelArtifact, RunContext, RunDirectory, RunState
from aios_core.drift import PSI_ALERT

CLEAN, SHIFTED = "digits-clean", "digits-shifted"


@pytest.fixture(scope="module")
def digits() -> Dataset:
    from aios_data import SklearnDatastore

    from aios_core.testing import plugin_manager

    datastore = SklearnDatastore(SklearnDatastore.Params.model_validate(
        {"dataset": "digits", "preprocess": {"scaling": "standardize"}, "split": {"validation": 0.15, "test": 0.15}}))
    pm = plugin_manager(datastore)
    run = RunContext(name="drift", seed=42, threads=1, dir=Path("."), stack={}, hook=pm.hook)
    return pm.hook.aios_load_dataset(run=run)


def _nearest_mean_onnx(path: Path, dataset: Dataset) -> Path:
    """softmax(x . means^T - |means|^2 / 2): the class whose training mean is nearest wins."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    means = np.stack([dataset.x_train[dataset.y_train == c].mean(axis=0) for c in range(dataset.num_classes)])
    weights = {"w": means.T.astype(np.float32), "b": (-0.5 * (means ** 2).sum(axis=1)).astype(np.float32)}
    nodes = [helper.make_node("MatMul", ["input", "w"], ["z"]), helper.make_node("Add", ["z", "b"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    graph = helper.make_graph(
        nodes, "nearest_mean", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _run_dir(root: Path, name: str, dataset: Dataset) -> Path:
    run = RunDirectory(root / f"20260101-000000-{name}")
    run.artifacts_dir.mkdir(parents=True)
    model = _nearest_mean_onnx(run.artifacts_dir / "model.onnx", dataset)
    run.write_lock({"name": name, "seed": 42, "threads": 1})
    artifact = ModelArtifact(name="onnx", path=model, format="onnx", producer="test")
    run.write_state(RunState(status="completed", phases={"export": {"artifacts": [run.artifact_to_json(artifact)]}}))
    run.write_data_summary(dataset.summary())
    return run.path


@pytest.fixture(scope="module")
def drift_server(digits: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from aios_serve.server import BackgroundServer

    root = tmp_path_factory.mktemp("drift-runs")
    with BackgroundServer([_run_dir(root, CLEAN, digits), _run_dir(root, SHIFTED, digits)]) as running:
        yield running.url


def _infer(url: str, model: str, rows: np.ndarray) -> None:
    for batch in np.array_split(rows, 9):  # several requests, as live traffic comes
        body = {"inputs": [{"name": "input", "shape": list(batch.shape), "datatype": "FP32",
                            "data": batch.ravel().tolist()}]}
        response = httpx.post(f"{url}/v2/models/{model}/infer", json=body, timeout=30)
        assert response.status_code == 200, response.text


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _value(samples: dict[Any, float], name: str, model: str, **labels: str) -> float:
    wanted = tuple(sorted({"model": model, "version": "20260101-000000", **labels}.items()))
    return samples[(name, wanted)]


def test_the_datastore_records_the_training_splits_bins_and_classes(digits: Dataset) -> None:
    reference = digits.preprocessing["drift_reference"]
    assert len(reference["cuts"]) == len(reference["shares"]) == digits.num_features
    for cuts, shares in zip(reference["cuts"], reference["shares"], strict=True):
        assert len(shares) == len(cuts) + 1 and sum(shares) == pytest.approx(1, abs=1e-5)
    assert reference["rows"] == len(digits.y_train)
    expected = np.bincount(digits.y_train, minlength=10) / len(digits.y_train)
    np.testing.assert_allclose(reference["class_shares"], expected, atol=1e-6)
    assert reference["classes"] == digits.class_names


def test_test_rows_stay_below_the_threshold_and_shifted_rows_pass_it(drift_server: str, digits: Dataset) -> None:
    _infer(drift_server, CLEAN, digits.x_test)
    _infer(drift_server, SHIFTED, digits.x_test + 1.0)  # every feature one training standard deviation up
    samples = _scrape(drift_server)
    rows = len(digits.x_test)

    assert _value(samples, "aios_serve_drift_window_rows", CLEAN) == rows
    assert _value(samples, "aios_serve_drift_psi_max", CLEAN) < PSI_ALERT
    assert _value(samples, "aios_serve_prediction_drift_psi", CLEAN) < PSI_ALERT
    assert _value(samples, "aios_serve_drift_psi_max", SHIFTED) > PSI_ALERT
    assert _value(samples, "aios_serve_drift_psi", SHIFTED, feature="pixel_2_3") > PSI_ALERT

    clean_outside = _value(samples, "aios_serve_drift_out_of_range_rows_total", CLEAN)
    assert _value(samples, "aios_serve_drift_out_of_range_rows_total", SHIFTED) == rows > clean_outside

    train_share = _value(samples, "aios_serve_training_class_ratio", CLEAN, **{"class": digits.class_names[3]})
    assert train_share == pytest.approx(float(np.mean(digits.y_train == 3)), abs=1e-6)
    predicted = sum(_value(samples, "aios_serve_prediction_class_ratio", CLEAN, **{"class": name})
                    for name in digits.class_names)
    assert predicted == pytest.approx(1.0)


def test_the_window_slides(digits: Dataset) -> None:
    from types import SimpleNamespace

    from aios_serve.drift import DriftMonitor

    monitor = DriftMonitor(window=100)
    model = SimpleNamespace(name="m", version="1", spec=SimpleNamespace(preprocessing=digits.preprocessing))
    probabilities = np.eye(10, dtype=np.float32)[digits.y_test]
    monitor.observe(model, digits.x_test + 3.0, probabilities)
    monitor.observe(model, digits.x_test[:150], probabilities[:150])  # the last 100 of these replace the shifted rows
    drift = monitor.models[("m", "1")]
    assert drift is not None and drift.filled == 100
    assert max(drift.feature_psi()) < 1.0 < _psi_max_of(digits, digits.x_test + 3.0)


def _psi_max_of(digits: Dataset, rows: np.ndarray) -> float:
    from aios_core import bin_shares, psi

    reference = digits.preprocessing["drift_reference"]
    return max(psi(shares, bin_shares(rows[:, j], cuts))
               for j, (cuts, shares) in enumerate(zip(reference["cuts"], reference["shares"], strict=True)))


def test_alternating_models_keep_their_own_windows_and_an_unloaded_model_is_freed(digits: Dataset) -> None:
    """The monitor keeps the last model's window at hand: alternating models still land in their own
    windows, a reloaded version (a new object) shares its window, and the remembered model is only
    weakly held (an unloaded model's session is freed)."""
    import gc
    import weakref

    from aios_serve.drift import DriftMonitor

    class Model:  # a LoadedModel's attributes that drift reads
        def __init__(self, name: str) -> None:
            self.name, self.version = name, "1"
            self.spec = type("Spec", (), {"preprocessing": digits.preprocessing})()

    monitor = DriftMonitor(window=1000)
    a, b = Model("a"), Model("b")
    rows, probabilities = digits.x_test[:10], np.eye(10, dtype=np.float32)[digits.y_test[:10]]
    for model in (a, b, a, a, b, a):
        monitor.observe(model, rows, probabilities)
    monitor.observe(Model("a"), rows, probabilities)  # the same name and version, reloaded
    windows = {name: monitor.models[(name, "1")] for name in "ab"}
    for window in windows.values():
        window.flush()  # type: ignore[union-attr]
    assert windows["a"].filled == 50 and windows["b"].filled == 20  # type: ignore[union-attr]
    gone = weakref.ref(b)
    monitor.observe(b, rows, probabilities)
    del b
    gc.collect()
    assert gone() is None


def test_rows_over_a_request_body_are_copied_and_packed_rows_kept() -> None:
    """A window must not keep a whole request body alive through a view of it; rows over a bytes object of
    their own (the typed JSON decoder's float32) are kept as they are, and any other base is copied."""
    from aios_serve.drift import _ModelDrift

    reference = {"cuts": [[0.0]] * 2, "min": [0.0] * 2, "max": [1.0] * 2, "shares": [[0.5, 0.5]] * 2,
                 "class_shares": [0.5, 0.5]}
    drift = _ModelDrift(reference, window=10)
    probabilities = np.array([[0.2, 0.8]], dtype=np.float32)
    body = memoryview(b"\0" * 4096 + np.ones(2, dtype=np.float32).tobytes())
    over_body = np.frombuffer(body[4096:], dtype=np.float32).reshape(1, 2)
    packed = np.frombuffer(np.ones(2, dtype=np.float32).tobytes(), dtype=np.float32).reshape(1, 2)
    bare_view = np.frombuffer(np.ones(2, dtype=np.float32).tobytes(), dtype=np.float32)[None, :]
    for rows in (over_body, packed, bare_view):
        drift.observe(rows, probabilities)
    kept = [rows for rows, _ in drift._pending]
    assert kept[0] is not over_body and kept[0].base is None
    assert kept[1] is packed
    assert kept[2] is bare_view or kept[2].base is None
    assert drift.out_of_range == 0 and drift.filled == 3  # folded into the window alike
