"""``aios_load_predictor``: ONNX artifacts get an ONNX Runtime predictor, other formats ``None``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from aios_core import Dataset, ModelArtifact
from aios_core.plugins import new_plugin_manager
from aios_onnx_quant import OnnxQuantCompressor


@pytest.fixture
def pm():
    manager = new_plugin_manager()
    manager.register(OnnxQuantCompressor(), name="onnx-quant")
    return manager


@pytest.mark.parametrize("which", ["fp32", "static", "dynamic"])
def test_predictor_maps_a_float_batch_to_probabilities(which: str, pm, fp32_artifact: ModelArtifact,
                                                       compressed: Callable[[str], ModelArtifact],
                                                       digits: Dataset) -> None:
    artifact = fp32_artifact if which == "fp32" else compressed(which)
    predict = pm.hook.aios_load_predictor(artifact=artifact, threads=1)
    probabilities = predict(digits.x_test)
    assert probabilities.shape == (len(digits.x_test), digits.num_classes)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert np.mean(probabilities.argmax(axis=1) == digits.y_test) > 0.9
    assert predict(digits.x_test[:1].astype(np.float64)).shape == (1, digits.num_classes)


def test_predictor_is_none_for_other_formats(pm, tmp_path: Path) -> None:
    native = ModelArtifact(name="native", path=tmp_path / "model.pt", format="torch", producer="torch")
    assert pm.hook.aios_load_predictor(artifact=native, threads=1) is None
