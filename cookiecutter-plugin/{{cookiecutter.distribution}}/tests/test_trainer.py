{%- set P = cookiecutter.__class_prefix -%}
"""The {{ cookiecutter.plugin_name }} trainer: it learns, reports every epoch, and resumes exactly where it stopped."""

from __future__ import annotations

import numpy as np
import pytest
from aios_core import hookimpl

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


def train(run_with, dataset, *, epochs: int = 5, monitor=None, resume: bool = False, run_dir=None):
    framework, trainer = {{ P }}Framework(), {{ P }}Trainer({{ P }}TrainerParams(epochs=epochs))
    run = run_with(framework, trainer, *([monitor] if monitor else []), resume=resume, run_dir=run_dir)
    model = framework.aios_build_model(dataset=dataset, run=run, overrides={})
    return trainer.aios_train(model=model, dataset=dataset, run=run, overrides={})


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


def test_a_resumed_run_ends_as_an_uninterrupted_one(run_with, toy_dataset, tmp_path):
    whole = train(run_with, toy_dataset, epochs=5, run_dir=tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        train(run_with, toy_dataset, epochs=5, monitor=EpochRecorder(interrupt_after=2), run_dir=tmp_path / "cut")
    resumed = train(run_with, toy_dataset, epochs=5, resume=True, run_dir=tmp_path / "cut")
    assert [m["val_loss"] for m in resumed.history] == [m["val_loss"] for m in whole.history]
    for a, b in zip(resumed.model.weights, whole.model.weights):
        np.testing.assert_array_equal(a, b)
