{%- set P = cookiecutter.__class_prefix -%}
"""The {{ cookiecutter.plugin_name }} trainer: it learns, reports epochs, stops early or on divergence, resumes exactly."""

from __future__ import annotations

import numpy as np
import pytest
from aios_core import TrainingDiverged, hookimpl

from {{ cookiecutter.package }} import {{ P }}Framework, {{ P }}Trainer, {{ P }}TrainerParams


class EpochRecorder:
    """A monitor that records epoch reports and can stop the run like Ctrl-C after a given epoch."""

    def __init__(self, interrupt_after: int | None = None) -> None:
        self.epochs: list[dict[str, float]] = []
        self.interrupt_after = interrupt_after

    @hookimpl
    def aios_on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.epochs.append(metrics)
        if epoch == self.interrupt_after:
            raise KeyboardInterrupt


def train(run_with, dataset, *, monitor=None, resume: bool = False, run_dir=None, **params):
    framework, trainer = {{ P }}Framework(), {{ P }}Trainer({{ P }}TrainerParams(**{"epochs": 5, **params}))
    run = run_with(framework, trainer, *([monitor] if monitor else []), resume=resume, run_dir=run_dir)
    model = framework.aios_build_model(dataset=dataset, run=run, overrides={})
    return trainer.aios_train(model=model, dataset=dataset, run=run, overrides={})


def without_seconds(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{key: value for key, value in row.items() if key != "seconds"} for row in history]


def test_training_lowers_the_loss_and_learns_the_blobs(run_with, toy_dataset):
    result = train(run_with, toy_dataset, epochs=8)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.final_metrics["val_accuracy"] > 0.9


def test_every_epoch_is_reported_with_the_standard_metrics(run_with, toy_dataset):
    recorder = EpochRecorder()
    train(run_with, toy_dataset, epochs=3, monitor=recorder)
    assert [m["epoch"] for m in recorder.epochs] == [1, 2, 3]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"} <= set(recorder.epochs[0])


def test_the_returned_model_holds_the_best_epoch(run_with, toy_dataset):
    result = train(run_with, toy_dataset, epochs=6)
    best = min(result.history, key=lambda m: m["val_loss"])
    assert result.best_epoch == best["epoch"]


def test_a_step_schedule_decays_the_learning_rate(run_with, toy_dataset):
    result = train(run_with, toy_dataset, learning_rate=0.04, lr_schedule="step", lr_step_size=2, lr_gamma=0.5)
    assert [m["lr"] for m in result.history] == pytest.approx([0.04, 0.04, 0.02, 0.02, 0.01])


def test_early_stopping_ends_training_when_val_loss_stops_improving(run_with, toy_dataset):
    # no decrease of 10 counts as an improvement, so every epoch after the first is a bad one
    result = train(run_with, toy_dataset, epochs=8, early_stopping_patience=2, early_stopping_min_delta=10.0)
    assert result.stopped_early
    assert [m["epoch"] for m in result.history] == [1, 2, 3]
    assert result.best_epoch == 1


def test_a_diverging_run_stops_with_training_diverged(run_with, toy_dataset):
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged, match="training diverged"):
        train(run_with, toy_dataset, epochs=5, learning_rate=1e30)


def test_a_resumed_run_ends_as_an_uninterrupted_one(run_with, toy_dataset, tmp_path):
    whole = train(run_with, toy_dataset, epochs=5, run_dir=tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        train(run_with, toy_dataset, epochs=5, monitor=EpochRecorder(interrupt_after=3), run_dir=tmp_path / "cut")
    recorder = EpochRecorder()
    resumed = train(run_with, toy_dataset, epochs=5, monitor=recorder, resume=True, run_dir=tmp_path / "cut")
    assert [m["epoch"] for m in recorder.epochs] == [3, 4, 5]  # the interrupted epoch's report is redone
    assert without_seconds(resumed.history) == without_seconds(whole.history)
    assert resumed.best_epoch == whole.best_epoch
    for a, b in zip(resumed.model.weights + resumed.model.biases, whole.model.weights + whole.model.biases,
                    strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_run_resumes_only_with_the_parameters_it_started_with(run_with, toy_dataset, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        train(run_with, toy_dataset, monitor=EpochRecorder(interrupt_after=2), run_dir=tmp_path)
    with pytest.raises(ValueError, match=r"trainer\.learning_rate: 0\.05 -> 0\.1"):
        train(run_with, toy_dataset, learning_rate=0.1, resume=True, run_dir=tmp_path)
    resumed = train(run_with, toy_dataset, checkpoint_interval_s=0.0, resume=True, run_dir=tmp_path)  # how it saves
    assert len(resumed.history) == 5
