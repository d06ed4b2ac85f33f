"""The keras trainer: documented metrics each epoch, determinism, checkpoints and resume, early stopping, clear errors."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from aios_tf import KerasTrainerParams
from pydantic import ValidationError

from aios_core import Dataset, TrainingDiverged, hookimpl

TESTS_DIR = Path(__file__).parent
FAST = {"epochs": 4, "batch_size": 64, "learning_rate": 0.003, "progress_updates": 0}
METRICS = {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"}


def _same_weights(first, second) -> bool:
    return all(np.array_equal(a, b) for a, b in zip(first.get_weights(), second.get_weights(), strict=True))


def test_each_epoch_is_reported_with_the_documented_metrics(keras_stack, digits, epoch_recorder) -> None:
    recorder = epoch_recorder()
    result = keras_stack(trainer=FAST, monitors=(recorder,)).build_and_train(digits)
    assert [epoch for epoch, _ in recorder.epochs] == [1, 2, 3, 4]
    for (epoch, metrics), row in zip(recorder.epochs, result.history, strict=True):
        assert set(metrics) == METRICS and metrics == row and metrics["epoch"] == epoch
        assert all(isinstance(value, (int, float)) and math.isfinite(value) for value in metrics.values())
        assert 0 <= metrics["accuracy"] <= 1 and 0 <= metrics["val_accuracy"] <= 1 and metrics["seconds"] > 0
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.history[-1]["val_accuracy"] >= 0.9


def test_progress_is_reported_the_requested_number_of_times_per_epoch(keras_stack, digits, epoch_recorder) -> None:
    recorder = epoch_recorder()
    keras_stack(trainer={**FAST, "epochs": 2, "progress_updates": 3}, monitors=(recorder,)).build_and_train(digits)
    steps = math.ceil(len(digits.y_train) / 64)
    assert steps == 17
    assert recorder.steps == [(epoch, step, steps) for epoch in (1, 2) for step in (6, 12, 17)]


def test_the_same_seed_gives_the_same_history_and_weights(keras_stack, digits, tmp_path: Path) -> None:
    model = {"architecture": "cnn", "conv_channels": [4], "hidden_units": [32], "dropout": 0.2}
    first = keras_stack(model=model, trainer=FAST, run_dir=tmp_path / "a").build_and_train(digits)
    second = keras_stack(model=model, trainer=FAST, run_dir=tmp_path / "b").build_and_train(digits)
    other = keras_stack(model=model, trainer=FAST, run_dir=tmp_path / "c", seed=1).build_and_train(digits)
    drop = ("seconds",)
    assert [{k: v for k, v in row.items() if k not in drop} for row in first.history] == \
           [{k: v for k, v in row.items() if k not in drop} for row in second.history]
    assert _same_weights(first.model, second.model)
    assert first.history[-1]["loss"] != other.history[-1]["loss"]


def test_resume_after_an_interrupt_equals_an_uninterrupted_run(keras_stack, digits, epoch_recorder,
                                                               tmp_path: Path) -> None:
    """With the default checkpoint interval (10 s) these epochs are written only when the interrupt comes."""
    assert KerasTrainerParams().checkpoint_interval_s == 10
    model = {"hidden_units": [32], "dropout": 0.2}
    whole = keras_stack(model=model, trainer=FAST, run_dir=tmp_path / "whole").build_and_train(digits)
    with pytest.raises(KeyboardInterrupt):
        keras_stack(model=model, trainer=FAST, run_dir=tmp_path / "cut",
                    monitors=(epoch_recorder(interrupt_at_epoch=2),)).build_and_train(digits)
    recorder = epoch_recorder()
    resumed = keras_stack(model=model, trainer=FAST, run_dir=tmp_path / "cut", resume=True,
                          monitors=(recorder,)).build_and_train(digits)
    # the interrupt came while epoch 2 was reported, before its snapshot went to the checkpoint writer
    assert [epoch for epoch, _ in recorder.epochs] == [2, 3, 4]
    assert [row["val_loss"] for row in resumed.history] == [row["val_loss"] for row in whole.history]
    assert _same_weights(whole.model, resumed.model)


class CheckpointAtInterrupt:
    """A monitor that notes whether a checkpoint is on disk when epoch ``epoch`` is reported, then interrupts."""

    def __init__(self, checkpoint: Path, epoch: int) -> None:
        self.checkpoint, self.epoch, self.existed = checkpoint, epoch, None

    @hookimpl
    def aios_on_epoch_end(self, epoch: int) -> None:
        if epoch == self.epoch:
            self.existed = self.checkpoint.exists()
            raise KeyboardInterrupt


def test_an_interrupt_writes_the_only_checkpoint_and_resume_equals_an_uninterrupted_run(
        keras_stack, digits, tmp_path: Path) -> None:
    model = {"hidden_units": [32], "dropout": 0.2}
    trainer = {**FAST, "checkpoint_interval_s": 3600}  # the policy writes nothing before the end or an interrupt
    whole = keras_stack(model=model, trainer=trainer, run_dir=tmp_path / "whole").build_and_train(digits)
    cut = keras_stack(model=model, trainer=trainer, run_dir=tmp_path / "cut")
    interrupt = CheckpointAtInterrupt(cut.checkpoint, epoch=3)
    cut.pm.register(interrupt, name="interrupt")
    with pytest.raises(KeyboardInterrupt):
        cut.build_and_train(digits)
    assert interrupt.existed is False and cut.checkpoint.exists()
    resumed = keras_stack(model=model, trainer=trainer, run_dir=tmp_path / "cut", resume=True).build_and_train(digits)
    assert [row["val_loss"] for row in resumed.history] == [row["val_loss"] for row in whole.history]
    assert _same_weights(whole.model, resumed.model)


_KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from aios_core import hookimpl
    from aios_core.testing import digits_dataset
    from conftest import KerasStack

    class KillAtEpoch:
        @hookimpl
        def aios_on_epoch_end(self, epoch):
            if epoch == 2:
                os.kill(os.getpid(), signal.SIGKILL)

    KerasStack(Path({run_dir!r}), {model!r}, {trainer!r}, 0, False, (KillAtEpoch(),)).build_and_train(digits_dataset())
""")


def test_resume_after_sigkill_equals_an_uninterrupted_run(keras_stack, digits, tmp_path: Path) -> None:
    """Killed outright, a run keeps what the policy wrote: with interval 0, every epoch before the last reported."""
    model = {"architecture": "cnn", "conv_channels": [4], "hidden_units": [32], "dropout": 0.1}
    every_epoch = {**FAST, "checkpoint_interval_s": 0}
    code = _KILLED_RUN.format(tests=str(TESTS_DIR), run_dir=str(tmp_path / "killed"), model=model, trainer=every_epoch)
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (tmp_path / "killed" / "checkpoints" / "last.npz").exists()
    assert not [p for p in (tmp_path / "killed" / "checkpoints").iterdir() if p.name != "last.npz"]

    # the interval may change on resume: it decides when checkpoints are written, not what is computed
    resumed = keras_stack(model=model, trainer=FAST, run_dir=tmp_path / "killed", resume=True).build_and_train(digits)
    whole = keras_stack(model=model, trainer=FAST, run_dir=tmp_path / "whole").build_and_train(digits)
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]
    assert [row["val_loss"] for row in resumed.history] == [row["val_loss"] for row in whole.history]
    assert _same_weights(whole.model, resumed.model)


def test_a_finished_run_resumes_to_the_same_result(keras_stack, digits) -> None:
    first = keras_stack(trainer=FAST).build_and_train(digits)
    again = keras_stack(trainer=FAST, resume=True).build_and_train(digits)
    assert again.history == first.history and _same_weights(first.model, again.model)


def test_resume_refuses_changed_trainer_params(keras_stack, digits) -> None:
    keras_stack(trainer={**FAST, "epochs": 1}).build_and_train(digits)
    with pytest.raises(ValueError, match=r"cannot resume.*trainer.learning_rate: 0.003 -> 0.01.*start a new run"):
        keras_stack(trainer={**FAST, "epochs": 1, "learning_rate": 0.01}, resume=True).build_and_train(digits)


def test_without_resume_an_old_checkpoint_is_ignored(keras_stack, digits) -> None:
    keras_stack(trainer={**FAST, "epochs": 1}).build_and_train(digits)
    result = keras_stack(trainer={**FAST, "epochs": 2}).build_and_train(digits)
    assert [row["epoch"] for row in result.history] == [1, 2]


def test_a_non_finite_loss_fails_training_with_training_diverged(keras_stack, digits, epoch_recorder) -> None:
    extreme = Dataset(name="extreme", x_train=digits.x_train * np.float32(1e30), y_train=digits.y_train,
                      x_val=digits.x_val, y_val=digits.y_val, x_test=digits.x_test, y_test=digits.y_test,
                      class_names=digits.class_names, content_hash="")
    recorder = epoch_recorder()
    stack = keras_stack(trainer={**FAST, "checkpoint_interval_s": 0}, monitors=(recorder,))
    with pytest.raises(TrainingDiverged, match=r"epoch 1 ended with loss = nan; lower trainer.learning_rate"):
        stack.build_and_train(extreme)
    assert recorder.epochs == [] and not stack.checkpoint.exists()  # nothing worth reporting or resuming from


def test_early_stopping_stops_and_restores_the_best_weights(keras_stack, digits) -> None:
    trainer = {**FAST, "epochs": 30, "learning_rate": 0.05, "early_stopping_patience": 2}
    result = keras_stack(trainer=trainer).build_and_train(digits)
    assert result.stopped_early and len(result.history) < 30
    assert len(result.history) - result.best_epoch == 2
    best = min(row["val_loss"] for row in result.history)
    assert result.final_metrics["val_loss"] == pytest.approx(best)
    probabilities = result.model(digits.x_val, training=False).numpy().astype(np.float64)
    val_loss = -np.log(probabilities[np.arange(len(digits.y_val)), digits.y_val]).mean()
    assert val_loss == pytest.approx(best, rel=1e-4)


def test_step_schedule_decays_the_learning_rate(keras_stack, digits) -> None:
    trainer = {**FAST, "epochs": 5, "lr_schedule": "step", "lr_step_size": 2, "lr_gamma": 0.5}
    result = keras_stack(trainer=trainer).build_and_train(digits)
    assert [row["lr"] for row in result.history] == pytest.approx([0.003, 0.003, 0.0015, 0.0015, 0.00075])


def test_sgd_and_overrides_take_precedence_over_trainer_params(keras_stack, digits) -> None:
    stack = keras_stack(trainer={**FAST, "optimizer": "sgd", "learning_rate": 0.05})
    result = stack.train(stack.build(digits), digits, epochs=2)
    assert len(result.history) == 2 and result.history[0]["lr"] == pytest.approx(0.05)


@pytest.mark.parametrize(("overrides", "field"), [
    ({"epochs": 0}, "epochs"), ({"optimizer": "lion"}, "optimizer"), ({"learning_rate": 0}, "learning_rate"),
    ({"lr_schedule": "exp"}, "lr_schedule"), ({"batch_size": -1}, "batch_size"), ({"patience": 3}, "patience"),
])
def test_bad_trainer_params_are_validation_errors_naming_the_field(keras_stack, digits, overrides, field) -> None:
    with pytest.raises(ValidationError) as caught:
        KerasTrainerParams(**overrides)
    assert {error["loc"][0] for error in caught.value.errors()} == {field}


def test_empty_validation_split_is_a_clear_error(keras_stack, digits) -> None:
    empty = digits.x_val[:0]
    no_val = Dataset(name="d", x_train=digits.x_train, y_train=digits.y_train, x_val=empty, y_val=digits.y_val[:0],
                     x_test=digits.x_test, y_test=digits.y_test, class_names=digits.class_names, content_hash="")
    stack = keras_stack(trainer=FAST)
    with pytest.raises(ValueError, match="empty validation split"):
        stack.train(stack.build(digits), no_val)


def test_a_model_of_another_framework_is_a_clear_error(keras_stack, digits) -> None:
    with pytest.raises(TypeError, match="trains keras.Model models, got dict"):
        keras_stack(trainer=FAST).train({}, digits)
