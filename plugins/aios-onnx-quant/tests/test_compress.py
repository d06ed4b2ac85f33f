"""``aios_compress`` on a real digits CNN: valid, smaller int8 models that keep their accuracy."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from aios_onnx_quant_test_helpers import accuracy, compress_with, onnx_artifact, write_unquantizable

from aios_core import Dataset, ModelArtifact, onnx_predictor

MODES = ("static", "dynamic", "auto")


def _test_accuracy(path: Path, dataset: Dataset) -> float:
    return accuracy(onnx_predictor(path)(dataset.x_test), dataset.y_test)


@pytest.mark.parametrize("mode", MODES)
def test_output_is_an_int8_onnx_artifact_in_the_run_directory(mode: str, compressed: Callable[[str], ModelArtifact]) -> None:
    out = compressed(mode)
    assert (out.name, out.format, out.producer) == ("int8", "onnx", "onnx-quant")
    assert out.path.name == "model.int8.onnx" and out.path.parent.name == "artifacts"
    onnx.checker.check_model(str(out.path))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch", [1, 256])
def test_output_runs_in_onnxruntime(mode: str, batch: int, compressed: Callable[[str], ModelArtifact],
                                    digits_dataset: Dataset) -> None:
    probabilities = onnx_predictor(compressed(mode).path)(digits_dataset.x_test[:batch])
    assert probabilities.shape == (batch, digits_dataset.num_classes)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)


@pytest.mark.parametrize("mode", MODES)
def test_int8_test_accuracy_is_within_one_point_of_fp32(mode: str, compressed: Callable[[str], ModelArtifact],
                                                        fp32_artifact: ModelArtifact, digits_dataset: Dataset) -> None:
    fp32 = _test_accuracy(fp32_artifact.path, digits_dataset)
    assert fp32 > 0.9, "the fixture CNN should learn digits"
    assert _test_accuracy(compressed(mode).path, digits_dataset) >= fp32 - 0.01


def test_static_int8_is_at_most_35_percent_of_fp32(compressed: Callable[[str], ModelArtifact],
                                                   fp32_artifact: ModelArtifact) -> None:
    out = compressed("static")
    assert out.size_bytes <= 0.35 * fp32_artifact.size_bytes
    assert out.metrics["size_ratio"] == pytest.approx(out.size_bytes / fp32_artifact.size_bytes)


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_single_mode_builds_and_measures_only_that_variant(mode: str, compressed: Callable[[str], ModelArtifact],
                                                           fp32_artifact: ModelArtifact) -> None:
    metrics = compressed(mode).metrics
    assert metrics["chosen"] == mode
    assert set(metrics["variants"]) == {"fp32", mode}
    assert metrics["variants"]["fp32"]["size_bytes"] == fp32_artifact.size_bytes
    for figures in metrics["variants"].values():
        assert {"size_bytes", "val_accuracy", "latency_ms_b1", "latency_ms"} <= set(figures)
        assert 0.0 <= figures["val_accuracy"] <= 1.0 and figures["latency_ms_b1"] > 0
        assert set(figures["latency_ms"]) == {"1", "256"}  # the default evaluation batch sizes
    assert set(metrics["variants"][mode]["speed"]) == {"1", "256"}


def test_auto_measures_fp32_and_the_static_variant_and_keeps_static(compressed: Callable[[str], ModelArtifact]) -> None:
    """The CNN's static int8 is under a third of fp32's size: it pays for its size whatever the timings say."""
    metrics = compressed("auto").metrics
    assert set(metrics["variants"]) == {"fp32", "static"}
    assert metrics["chosen"] == "static" and metrics["batch_independent"] is True
    assert re.search(r"^static is .* 0\.[23]\d of its size", metrics["reason"]), metrics["reason"]


def test_auto_with_no_tolerance_keeps_static_and_says_when_it_loses_accuracy(compress: Callable) -> None:
    out, _ = compress(mode="auto", max_accuracy_drop=0.0, latency_runs=20)
    variants = out.metrics["variants"]
    drop = variants["fp32"]["val_accuracy"] - variants["static"]["val_accuracy"]
    warned = [warning for warning in out.metrics["warnings"] if "no int8 model stays within" in warning]
    assert out.metrics["chosen"] == "static"
    assert bool(warned) == (drop > 1e-9)


def test_a_model_within_the_limit_carries_no_warning(compressed: Callable[[str], ModelArtifact]) -> None:
    metrics = compressed("static").metrics
    assert metrics["pre_processing"] == "applied"
    assert metrics["warnings"] == []


def test_dynamic_when_asked_is_kept_and_flagged_as_batch_dependent(compressed: Callable[[str], ModelArtifact]) -> None:
    metrics = compressed("dynamic").metrics
    assert metrics["chosen"] == "dynamic" and metrics["batch_independent"] is False
    assert any("depend on the batch" in warning for warning in metrics["warnings"])


@pytest.mark.parametrize("options", [
    {"calibration_method": "entropy", "calibration_samples": 100},  # not a multiple of the calibration batch
    {"calibration_method": "percentile", "per_channel": True, "calibration_samples": 97},  # prime: batches of 1
])
def test_static_calibration_options_produce_valid_models(options: dict, compress: Callable,
                                                         fp32_artifact: ModelArtifact, digits_dataset: Dataset) -> None:
    out, _ = compress(mode="static", latency_runs=5, **options)
    onnx.checker.check_model(str(out.path))
    assert _test_accuracy(out.path, digits_dataset) >= _test_accuracy(fp32_artifact.path, digits_dataset) - 0.01


def test_static_quantization_is_reproducible_for_a_seed(fp32_artifact: ModelArtifact, digits_dataset: Dataset,
                                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    outputs = [compress_with(fp32_artifact, digits_dataset, tmp_path_factory.mktemp(f"seed{attempt}"), seed=7,
                             mode="static", latency_runs=5)[0].path.read_bytes() for attempt in range(2)]
    assert outputs[0] == outputs[1]


def test_no_temporary_files_are_left_in_the_artifacts_directory(compress: Callable) -> None:
    out, run = compress(mode="auto", latency_runs=5)
    assert sorted(path.name for path in run.artifacts_dir.iterdir()) == ["model.int8.onnx"]
    assert out.path == run.artifacts_dir / "model.int8.onnx"


def test_compressing_again_replaces_the_previous_output(compress: Callable) -> None:
    first, _ = compress(mode="dynamic", latency_runs=5)
    second, run = compress(mode="static", latency_runs=5)
    assert first.path == second.path
    assert second.metrics["chosen"] == "static"
    assert sorted(path.name for path in run.artifacts_dir.iterdir()) == ["model.int8.onnx"]


def test_a_non_onnx_artifact_is_refused_with_its_format(digits_dataset: Dataset, tmp_path: Path) -> None:
    native = ModelArtifact(name="native", path=tmp_path / "model.pt", format="torch", producer="torch")
    with pytest.raises(ValueError, match="has format 'torch'"):
        compress_with(native, digits_dataset, tmp_path)
    assert not (tmp_path / "artifacts").exists()


def test_auto_keeps_fp32_when_nothing_was_quantized_and_says_why(digits_dataset: Dataset, tmp_path: Path) -> None:
    """A model of operators the quantizer leaves alone: auto writes fp32 under that name, never calls it int8."""
    model = write_unquantizable(tmp_path / "model.onnx", digits_dataset.num_features, digits_dataset.num_classes)
    out, run = compress_with(onnx_artifact(model), digits_dataset, tmp_path / "run", mode="auto", latency_runs=10)
    assert (out.name, out.metrics["chosen"]) == ("fp32", "fp32")
    assert out.path == run.artifacts_dir / "model.fp32.onnx" and out.path.read_bytes() == model.read_bytes()
    assert "nothing to quantize" in out.metrics["reason"] and out.metrics["size_ratio"] == 1.0
    assert set(out.metrics["variants"]) == {"fp32"}


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_an_explicit_mode_refuses_to_report_int8_when_nothing_was_quantized(mode: str, digits_dataset: Dataset,
                                                                            tmp_path: Path) -> None:
    model = write_unquantizable(tmp_path / "model.onnx", digits_dataset.num_features, digits_dataset.num_classes)
    with pytest.raises(ValueError, match=r"nothing was quantized.*\(Abs, Gather, Softmax\).*use mode: auto"):
        compress_with(onnx_artifact(model), digits_dataset, tmp_path / "run", mode=mode, latency_runs=5)
    assert not (tmp_path / "run" / "artifacts" / "model.int8.onnx").exists()
