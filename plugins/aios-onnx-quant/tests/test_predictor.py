"""The int8 model is an ordinary ``onnx`` artifact: the kernel runs it, onnx-quant answers no predictor hook."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from aios_onnx_quant import OnnxQuantCompressor

from aios_core import Dataset, ModelArtifact
from aios_core.testing import plugin_manager


def test_the_compressor_implements_no_predictor_hook() -> None:
    pm = plugin_manager(compressor := OnnxQuantCompressor())
    assert "aios_load_predictor" not in [caller.name for caller in pm.get_hookcallers(compressor)]


@pytest.mark.parametrize("which", ["fp32", "static", "dynamic"])
def test_the_runs_predictor_maps_a_float_batch_to_probabilities(which: str, fp32_artifact: ModelArtifact,
                                                               compressed: Callable[[str], ModelArtifact],
                                                               digits_dataset: Dataset) -> None:
    artifact = fp32_artifact if which == "fp32" else compressed(which)
    predict = plugin_manager(OnnxQuantCompressor()).hook.aios_load_predictor(artifact=artifact, threads=1)
    probabilities = predict(digits_dataset.x_test)
    assert probabilities.shape == (len(digits_dataset.x_test), digits_dataset.num_classes)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert np.mean(probabilities.argmax(axis=1) == digits_dataset.y_test) > 0.9
    assert predict(digits_dataset.x_test[:1].astype(np.float64)).shape == (1, digits_dataset.num_classes)
