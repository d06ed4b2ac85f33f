"""The {{ cookiecutter.plugin_name }} framework: models are probability functions, and survive a save and a load unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from aios_core import ModelArtifact

from {{ cookiecutter.package }} import NATIVE_FORMAT, {{ cookiecutter.__class_prefix }}Framework, {{ cookiecutter.__class_prefix }}ModelParams


def test_a_model_gives_one_probability_row_per_input_row(toy_dataset, run_with):
    framework = {{ cookiecutter.__class_prefix }}Framework()
    run = run_with(framework)
    model = framework.aios_build_model(dataset=toy_dataset, run=run, overrides={})
    probabilities = model.predict_proba(toy_dataset.x_test)
    assert probabilities.shape == (len(toy_dataset.y_test), toy_dataset.num_classes)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_a_saved_model_loads_and_predicts_the_same(toy_dataset, run_with, tmp_path: Path):
    framework = {{ cookiecutter.__class_prefix }}Framework({{ cookiecutter.__class_prefix }}ModelParams(hidden_units=[8, 4], activation="tanh"))
    run = run_with(framework)
    model = framework.aios_build_model(dataset=toy_dataset, run=run, overrides={})
    artifact = framework.aios_save_model(model=model, path=tmp_path / f"model.{NATIVE_FORMAT}")
    assert artifact.format == NATIVE_FORMAT and artifact.path.is_file()
    loaded = framework.aios_load_model(artifact=artifact)
    predict = run.load_predictor(artifact)
    np.testing.assert_array_equal(loaded.predict_proba(toy_dataset.x_test), model.predict_proba(toy_dataset.x_test))
    np.testing.assert_array_equal(predict(toy_dataset.x_test), model.predict_proba(toy_dataset.x_test))


def test_overrides_from_a_tuner_change_the_model(toy_dataset, run_with):
    framework = {{ cookiecutter.__class_prefix }}Framework()
    model = framework.aios_build_model(dataset=toy_dataset, run=run_with(framework), overrides={"hidden_units": [5]})
    assert [w.shape for w in model.weights] == [(toy_dataset.num_features, 5), (5, toy_dataset.num_classes)]


def test_loading_refuses_a_file_of_another_format(tmp_path: Path, run_with):
    path = tmp_path / f"model.{NATIVE_FORMAT}"
    with open(path, "wb") as handle:
        np.savez(handle, weights=np.zeros(3))
    artifact = ModelArtifact(name="native", path=path, format=NATIVE_FORMAT, producer="x")
    with pytest.raises(ValueError, match="not a"):
        {{ cookiecutter.__class_prefix }}Framework().aios_load_model(artifact=artifact)


def test_other_formats_are_left_to_other_components(tmp_path: Path):
    """The framework answers for its own format only; ONNX files are run by the kernel."""
    other = ModelArtifact(name="onnx", path=tmp_path / "model.onnx", format="onnx", producer="x")
    assert {{ cookiecutter.__class_prefix }}Framework().aios_load_predictor(artifact=other, threads=1) is None
