"""The contract kit (aios_core.testing): the onnx-quant compressor passes it in static and dynamic mode.

Its input needs no framework: a nearest-class-mean classifier on the kit's
``tiny_dataset``, written as ONNX with onnx's helper API (MatMul, Add, Relu, MatMul,
Add, Softmax). So the contract exercises quantization wherever aios-onnx-quant is
installed, with or without a framework plugin beside it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aios_onnx_quant_test_helpers import accuracy, compress_with, nearest_mean_layers, onnx_artifact, write_classifier

from aios_core import Dataset, ModelArtifact, onnx_predictor
from aios_core.testing import HEAVY_MODULES, CompressorContract


@pytest.fixture
def classifier(tiny_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> ModelArtifact:
    path = tmp_path_factory.mktemp("contract-input") / "model.onnx"
    return onnx_artifact(write_classifier(path, nearest_mean_layers(tiny_dataset)))


class TestOnnxQuantCompressor(CompressorContract):
    # Listing plugins imports the entry point: it must not pay for onnx or numpy either.
    heavy_modules = (*HEAVY_MODULES, "onnx", "numpy")

    @pytest.fixture
    def component_name(self) -> str:
        return "onnx-quant"

    @pytest.fixture
    def input_artifact(self, classifier: ModelArtifact) -> ModelArtifact:
        return classifier

    @pytest.fixture(params=["static", "dynamic"])
    def component_params(self, request: pytest.FixtureRequest) -> dict:
        return {"mode": request.param, "calibration_samples": 64, "latency_runs": 5}

    @pytest.fixture
    def invalid_params(self) -> list[dict]:
        return [{"not_a_parameter": 1}, {"mode": "fp4"}, {"max_accuracy_drop": 2.0}, {"calibration_samples": 0}]


def test_the_contract_input_is_a_meaningful_classifier(classifier: ModelArtifact, tiny_dataset: Dataset) -> None:
    assert accuracy(onnx_predictor(classifier.path)(tiny_dataset.x_test), tiny_dataset.y_test) >= 0.9


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_int8_keeps_the_contract_inputs_accuracy(mode: str, classifier: ModelArtifact, tiny_dataset: Dataset,
                                                 tmp_path: Path) -> None:
    output, _ = compress_with(classifier, tiny_dataset, tmp_path, mode=mode, latency_runs=5)
    fp32 = accuracy(onnx_predictor(classifier.path)(tiny_dataset.x_test), tiny_dataset.y_test)
    assert accuracy(onnx_predictor(output.path)(tiny_dataset.x_test), tiny_dataset.y_test) >= fp32 - 0.03


def test_quantization_pre_processing_runs_with_only_the_declared_dependencies(classifier: ModelArtifact,
                                                                              tiny_dataset: Dataset,
                                                                              tmp_path: Path) -> None:
    """Pre-processing (symbolic shape inference) needs sympy, which only this plugin's own requirements bring
    when no framework is installed beside it; skipped, it would hide a missing dependency (issue 9)."""
    output, _ = compress_with(classifier, tiny_dataset, tmp_path, mode="static", latency_runs=5)
    assert output.metrics["pre_processing"] == "applied", output.metrics.get("warnings")
