"""The nearest-centroid model and trainer: unfitted means uniform, fitting is exact, files and exports agree."""

from __future__ import annotations

import numpy as np
import pytest
from aios_core import hookimpl

from aios_nearest_centroid import (
    NearestCentroidFramework,
    NearestCentroidParams,
    NearestCentroidTrainer,
    NearestCentroidTrainerParams,
)


def test_an_unfitted_model_predicts_the_uniform_distribution(dataset, run_with):
    framework = NearestCentroidFramework()
    model = framework.aios_build_model(dataset=dataset, overrides={})
    probabilities = model.predict_proba(dataset.x_test)
    np.testing.assert_allclose(probabilities, 1.0 / dataset.num_classes)


def test_one_pass_gives_the_class_means_of_the_training_rows(dataset, run_with):
    framework, trainer = NearestCentroidFramework(), NearestCentroidTrainer()
    run = run_with(framework, trainer)
    model = framework.aios_build_model(dataset=dataset, overrides={})
    result = trainer.aios_train(model=model, dataset=dataset, run=run, overrides={})
    for label in range(dataset.num_classes):
        expected = dataset.x_train[dataset.y_train == label].mean(axis=0)
        np.testing.assert_allclose(result.model.sums[label] / result.model.counts[label], expected, atol=1e-5)
    assert len(result.history) == 1


def test_the_predicted_class_is_the_nearest_centroid(dataset, run_with):
    framework, trainer = NearestCentroidFramework(), NearestCentroidTrainer()
    model = framework.aios_build_model(dataset=dataset, overrides={})
    model = trainer.aios_train(model=model, dataset=dataset, run=run_with(framework, trainer), overrides={}).model
    centroids = model.sums / model.counts[:, None]
    distances = ((dataset.x_test[:, None, :] - centroids[None]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(model.predict_proba(dataset.x_test).argmax(axis=1), distances.argmin(axis=1))


def test_the_onnx_export_of_a_trained_model_answers_as_its_native_file(dataset, run_with, tmp_path):
    pytest.importorskip("onnxruntime")
    framework, trainer = NearestCentroidFramework(NearestCentroidParams(priors="frequency")), NearestCentroidTrainer()
    run = run_with(framework, trainer)
    model = framework.aios_build_model(dataset=dataset, overrides={})
    model = trainer.aios_train(model=model, dataset=dataset, run=run, overrides={}).model
    native = framework.aios_save_model(model=model, path=tmp_path / "model.centroids-npz")
    exported = framework.aios_export_model(model=model, fmt="onnx", path=tmp_path / "model.onnx")
    np.testing.assert_allclose(run.load_predictor(exported)(dataset.x_test), run.load_predictor(native)(dataset.x_test),
                               atol=1e-5)


class Interrupter:
    """A monitor that stops the run like Ctrl-C after the given epoch."""

    def __init__(self, after: int) -> None:
        self.after = after

    @hookimpl
    def aios_on_epoch_end(self, epoch: int) -> None:
        if epoch == self.after:
            raise KeyboardInterrupt


def test_a_resumed_run_ends_as_an_uninterrupted_one(dataset, run_with, tmp_path):
    def train(run_dir, *monitors, resume=False):
        framework = NearestCentroidFramework()
        trainer = NearestCentroidTrainer(NearestCentroidTrainerParams(epochs=3, batch_size=16))
        run = run_with(framework, trainer, *monitors, resume=resume, run_dir=run_dir)
        model = framework.aios_build_model(dataset=dataset, overrides={})
        return trainer.aios_train(model=model, dataset=dataset, run=run, overrides={})

    whole = train(tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "cut", Interrupter(after=2))
    resumed = train(tmp_path / "cut", resume=True)
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in whole.history]
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in resumed.history] == strip
    np.testing.assert_array_equal(resumed.model.sums, whole.model.sums)
