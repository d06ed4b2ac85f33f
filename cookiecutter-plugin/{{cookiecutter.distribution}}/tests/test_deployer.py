{%- set P = cookiecutter.__class_prefix -%}
"""The {{ cookiecutter.plugin_name }} deployer: a real HTTP server that answers as the run's own predictor does."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from aios_core import ModelArtifact, hookimpl

from {{ cookiecutter.package }} import {{ P }}Deployer
from {{ cookiecutter.package }}._server import ModelServer, post_rows


class CentroidRunner:
    """Runs any ``onnx`` artifact as a nearest-centroid classifier (stands in for a framework here)."""

    def __init__(self, dataset) -> None:
        self.centroids = np.stack([dataset.x_train[dataset.y_train == k].mean(axis=0)
                                   for k in range(dataset.num_classes)])

    def predict(self, rows: np.ndarray) -> np.ndarray:
        logits = -((rows[:, None, :] - self.centroids[None]) ** 2).sum(axis=2)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)

    @hookimpl(tryfirst=True)  # before the kernel's own ONNX Runtime predictor: there is no real ONNX file here
    def aios_load_predictor(self, artifact: ModelArtifact, threads: int):
        return self.predict if artifact.format == "onnx" else None


def test_deploying_smoke_tests_the_server_and_stops_it(run_with, toy_dataset, tmp_path):
    deployer = {{ P }}Deployer()
    run = run_with(deployer, CentroidRunner(toy_dataset))
    artifact = ModelArtifact(name="onnx", path=tmp_path / "model.onnx", format="onnx", producer="test")
    report = deployer.aios_deploy(artifact=artifact, dataset=toy_dataset, run=run)
    json.dumps(report)
    assert report["smoke_test"]["passed"] is True
    assert report["smoke_test"]["rows"] == len(toy_dataset.y_test)
    assert report["smoke_test"]["accuracy"] > 0.9
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(report["url"] + "/health", timeout=2)


def test_the_server_answers_rows_and_refuses_bad_requests(toy_dataset):
    runner = CentroidRunner(toy_dataset)
    server = ModelServer(runner.predict, toy_dataset.class_names, "127.0.0.1", 0, "onnx").start()
    try:
        reply = post_rows(server.url, toy_dataset.x_test[:3])
        np.testing.assert_allclose(reply["probabilities"], runner.predict(toy_dataset.x_test[:3]), rtol=1e-6)
        assert reply["labels"] == [toy_dataset.class_names[k] for k in toy_dataset.y_test[:3]]
        request = urllib.request.Request(server.url + "/predict", data=b'{"rows": "nonsense"}', method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 400
    finally:
        server.stop()
