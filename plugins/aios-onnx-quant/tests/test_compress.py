"""``aios_compress`` on a real digits CNN: valid, smaller int8 models that keep their accuracy."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from aios_core import Dataset, ModelArtifact

MODES = ("static", "dynamic", "auto")


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _test_accuracy(path: Path, dataset: Dataset) -> float:
    sess = _session(path)
    probabilities = sess.run(None, {sess.get_inputs()[0].name: dataset.x_test})[0]
    return float(np.mean(probabilities.argmax(axis=1) == dataset.y_test))


@pytest.mark.parametrize("mode", MODES)
def test_output_is_an_int8_onnx_artifact_in_the_run_directory(mode: str, compressed: Callable[[str], ModelArtifact]) -> None:
    out = compressed(mode)
    assert (out.name, out.format, out.producer) == ("int8", "onnx", "onnx-quant")
    assert out.path.name == "model.int8.onnx" and out.path.parent.name == "artifacts"
    onnx.checker.check_model(str(out.path))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch", [1, 256])
def test_output_runs_in_onnxruntime(mode: str, batch: int, compressed: Callable[[str], ModelArtifact],
                                    digits: Dataset) -> None:
    sess = _session(compressed(mode).path)
    (probabilities,) = sess.run(None, {sess.get_inputs()[0].name: digits.x_test[:batch]})
    assert probabilities.shape == (batch, digits.num_classes)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)


@pytest.mark.parametrize("mode", MODES)
def test_int8_test_accuracy_is_within_one_point_of_fp32(mode: str, compressed: Callable[[str], ModelArtifact],
                                                        fp32_artifact: ModelArtifact, digits: Dataset) -> None:
    fp32 = _test_accuracy(fp32_artifact.path, digits)
    assert fp32 > 0.9, "the fixture CNN should learn digits"
    assert _test_accuracy(compressed(mode).path, digits) >= fp32 - 0.01


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
        assert set(figures) == {"size_bytes", "val_accuracy", "latency_ms_b1"}
        assert 0.0 <= figures["val_accuracy"] <= 1.0 and figures["latency_ms_b1"] > 0


def test_auto_measures_both_variants_and_keeps_the_fastest_within_the_accuracy_limit(
        compressed: Callable[[str], ModelArtifact]) -> None:
    metrics = compressed("auto").metrics
    variants = metrics["variants"]
    assert set(variants) == {"fp32", "static", "dynamic"}
    fp32 = variants["fp32"]["val_accuracy"]
    qualified = [name for name in ("static", "dynamic") if fp32 - variants[name]["val_accuracy"] <= 0.01 + 1e-9]
    if qualified:
        assert metrics["chosen"] == min(qualified, key=lambda name: variants[name]["latency_ms_b1"])
    else:
        assert metrics["chosen"] == max(("static", "dynamic"), key=lambda name: variants[name]["val_accuracy"])


def test_auto_with_no_tolerance_keeps_a_variant_that_loses_no_validation_accuracy(
        compress: Callable, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="aios.run"):
        out, _ = compress(mode="auto", max_accuracy_drop=0.0, latency_runs=20)
    variants = out.metrics["variants"]
    drop = variants["fp32"]["val_accuracy"] - variants[out.metrics["chosen"]]["val_accuracy"]
    warned = any("no int8 model stays within" in record.getMessage() for record in caplog.records)
    assert drop <= 1e-9 or warned


@pytest.mark.parametrize("options", [
    {"calibration_method": "entropy", "calibration_samples": 100},  # not a multiple of the calibration batch
    {"calibration_method": "percentile", "per_channel": True, "calibration_samples": 97},  # prime: batches of 1
])
def test_static_calibration_options_produce_valid_models(options: dict, compress: Callable,
                                                         fp32_artifact: ModelArtifact, digits: Dataset) -> None:
    out, _ = compress(mode="static", latency_runs=5, **options)
    onnx.checker.check_model(str(out.path))
    assert _test_accuracy(out.path, digits) >= _test_accuracy(fp32_artifact.path, digits) - 0.01


def test_static_quantization_is_reproducible_for_a_seed(fp32_artifact: ModelArtifact, digits: Dataset,
                                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    from aios_core import RunContext
    from aios_core.plugins import new_plugin_manager
    from aios_onnx_quant import OnnxQuantCompressor

    outputs = []
    for attempt in range(2):
        pm = new_plugin_manager()
        pm.register(OnnxQuantCompressor(OnnxQuantCompressor.Params(mode="static", latency_runs=5)), name="onnx-quant")
        run = RunContext(name="t", seed=7, threads=1, dir=tmp_path_factory.mktemp(f"seed{attempt}"), stack={},
                         hook=pm.hook)
        outputs.append(pm.hook.aios_compress(artifact=fp32_artifact, dataset=digits, run=run).path.read_bytes())
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


def test_a_non_onnx_artifact_is_refused_with_its_format(compress: Callable, fp32_artifact: ModelArtifact,
                                                        digits: Dataset, tmp_path: Path) -> None:
    from aios_core import RunContext
    from aios_core.plugins import new_plugin_manager
    from aios_onnx_quant import OnnxQuantCompressor

    pm = new_plugin_manager()
    pm.register(OnnxQuantCompressor(), name="onnx-quant")
    run = RunContext(name="t", seed=0, threads=1, dir=tmp_path, stack={}, hook=pm.hook)
    native = ModelArtifact(name="native", path=tmp_path / "model.pt", format="torch", producer="torch")
    with pytest.raises(ValueError, match="has format 'torch'"):
        pm.hook.aios_compress(artifact=native, dataset=digits, run=run)
    assert not run.artifacts_dir.exists()
