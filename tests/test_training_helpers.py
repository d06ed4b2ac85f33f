"""The kernel's training helpers: epoch bookkeeping, progress steps, the resume check, the checkpoint policy."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import pytest

from aios_core import RunContext, TrainResult, hookimpl
from aios_core.testing import plugin_manager
from aios_core.training import (
    CheckpointWriter,
    EpochProgress,
    TrainingDiverged,
    check_resume_params,
    report_steps,
    wait_for_checkpoints,
)


def _epoch(number: int, loss: float, val_loss: float) -> dict[str, float]:
    return {"epoch": number, "loss": loss, "val_loss": val_loss}


# ---------------------------------------------------------------- EpochProgress
def test_the_best_epoch_is_the_lowest_validation_loss() -> None:
    progress = EpochProgress()
    improved = [progress.record(_epoch(n, 1.0, v), patience=None) for n, v in enumerate([0.9, 0.5, 0.7, 0.4], 1)]
    assert improved == [True, True, False, True]
    assert (progress.epoch, progress.best_epoch, progress.best_val_loss) == (4, 4, 0.4)


def test_early_stopping_after_patience_epochs_without_improvement() -> None:
    progress = EpochProgress()
    for number, val_loss in enumerate([0.5, 0.6, 0.7], 1):
        progress.record(_epoch(number, 1.0, val_loss), patience=2)
    assert progress.stopped_early and progress.done(epochs=20)


def test_an_improvement_smaller_than_min_delta_does_not_count() -> None:
    progress = EpochProgress()
    progress.record(_epoch(1, 1.0, 0.5), patience=None, min_delta=0.1)
    assert progress.record(_epoch(2, 1.0, 0.45), patience=None, min_delta=0.1) is False


@pytest.mark.parametrize(("key", "value"), [("loss", math.nan), ("loss", math.inf), ("val_loss", -math.inf)])
def test_a_non_finite_loss_is_refused_before_it_is_recorded(key: str, value: float) -> None:
    progress = EpochProgress()
    progress.record(_epoch(1, 1.0, 0.5), patience=None)
    with pytest.raises(TrainingDiverged, match=f"epoch 2 ended with {key} = {value}; lower trainer.learning_rate"):
        progress.record({**_epoch(2, 1.0, 0.5), key: value}, patience=None)
    assert progress.epoch == 1 and len(progress.history) == 1


def test_progress_survives_a_json_round_trip() -> None:
    progress = EpochProgress()
    for number, val_loss in enumerate([0.5, 0.6], 1):
        progress.record(_epoch(number, 1.0, val_loss), patience=5)
    restored = EpochProgress.from_state(json.loads(json.dumps(progress.state())))
    assert restored == progress
    assert EpochProgress.from_state(EpochProgress().state()).best_val_loss == math.inf  # stored as null


# ---------------------------------------------------------------- report_steps and the resume check
@pytest.mark.parametrize(("steps", "updates", "expected"), [
    (17, 4, {5, 9, 13, 17}), (3, 4, {1, 2, 3}), (10, 0, set()), (10, 1, {10})])
def test_report_steps_are_spread_evenly_and_include_the_last(steps: int, updates: int, expected: set[int]) -> None:
    assert report_steps(steps, updates) == frozenset(expected)


def test_resuming_with_a_changed_parameter_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"cannot resume.*trainer.learning_rate: 0.001 -> 0.01"):
        check_resume_params({"learning_rate": 0.001, "epochs": 5}, {"learning_rate": 0.01, "epochs": 5}, "last.pt")


def test_reporting_and_checkpoint_parameters_may_change_on_resume() -> None:
    check_resume_params({"progress_updates": 4, "checkpoint_interval_s": 10.0},
                        {"progress_updates": 0, "checkpoint_interval_s": 0.0}, "last.pt")


def test_a_parameter_newer_than_the_checkpoint_counts_as_its_default() -> None:
    check_resume_params({"epochs": 5}, {"epochs": 5, "warmup": 0}, "last.pt", defaults={"warmup": 0})
    with pytest.raises(ValueError, match="trainer.warmup: 0 -> 3"):
        check_resume_params({"epochs": 5}, {"epochs": 5, "warmup": 3}, "last.pt", defaults={"warmup": 0})


# ---------------------------------------------------------------- the checkpoint writer and its policy
class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _save_json(path: Path, payload: dict[str, int]) -> None:
    path.write_text(json.dumps(payload))


def _epochs(writer: CheckpointWriter, clock: _Clock, seconds_each: float, count: int) -> list[int]:
    """Run ``count`` epochs of ``seconds_each``; the epochs whose snapshot was on disk after each."""
    on_disk = []
    for epoch in range(1, count + 1):
        clock.now += seconds_each
        writer.epoch_end({"epoch": epoch})
        writer.wait()
        on_disk.append(json.loads(writer.path.read_text())["epoch"] if writer.path.exists() else 0)
    return on_disk


def test_interval_zero_writes_every_epoch(tmp_path: Path) -> None:
    clock = _Clock()
    writer = CheckpointWriter(tmp_path / "last.json", _save_json, interval_s=0.0, clock=clock)
    assert _epochs(writer, clock, 1.0, 4) == [1, 2, 3, 4]
    writer.close()


def test_the_interval_writes_when_that_many_seconds_have_passed_and_always_at_the_end(tmp_path: Path) -> None:
    clock = _Clock()
    writer = CheckpointWriter(tmp_path / "last.json", _save_json, interval_s=10.0, clock=clock)
    assert _epochs(writer, clock, 4.0, 7) == [0, 0, 3, 3, 3, 6, 6]
    writer.close()
    wait_for_checkpoints()
    assert json.loads(writer.path.read_text()) == {"epoch": 7}
    assert writer.written == 3


def test_an_interrupt_writes_the_newest_snapshot_before_close_returns(tmp_path: Path) -> None:
    clock = _Clock()
    writer = CheckpointWriter(tmp_path / "last.json", _save_json, interval_s=3600.0, clock=clock)
    _epochs(writer, clock, 1.0, 3)
    assert not writer.path.exists()
    writer.close(interrupted=True)
    assert json.loads(writer.path.read_text()) == {"epoch": 3}


def test_a_failed_write_is_raised_on_the_training_thread(tmp_path: Path) -> None:
    def failing(path: Path, payload: object) -> None:
        raise OSError("disk full")

    writer = CheckpointWriter(tmp_path / "last.json", failing, interval_s=0.0)
    writer.epoch_end({"epoch": 1})
    with pytest.raises(OSError, match="disk full"):
        writer.epoch_end({"epoch": 2})
    writer.close(interrupted=True)  # logged, not raised: the interrupt being handled wins


def test_a_failed_final_write_is_raised_by_wait_for_checkpoints(tmp_path: Path) -> None:
    def failing(path: Path, payload: object) -> None:
        raise OSError("disk full")

    writer = CheckpointWriter(tmp_path / "last.json", failing, interval_s=3600.0)
    writer.epoch_end({"epoch": 1})
    writer.close()
    with pytest.raises(OSError, match="disk full"):
        wait_for_checkpoints()
    wait_for_checkpoints()  # reported once


def test_the_final_write_goes_on_after_close_and_leaves_no_partial_file(tmp_path: Path) -> None:
    release = threading.Event()

    def slow(path: Path, payload: dict[str, int]) -> None:
        release.wait(10)
        _save_json(path, payload)

    writer = CheckpointWriter(tmp_path / "last.json", slow, interval_s=3600.0)
    writer.epoch_end({"epoch": 1})
    writer.close()  # returns while the write waits
    assert not writer.path.exists()
    release.set()
    wait_for_checkpoints()
    assert json.loads(writer.path.read_text()) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.json"]  # no temporary file left


# ---------------------------------------------------------------- the learning-rate schedule
@pytest.mark.parametrize(("schedule", "expected"), [
    ("none", [0.1, 0.1, 0.1, 0.1]),
    ("step", [0.1, 0.1, 0.05, 0.05]),
    ("cosine", [0.1, 0.1 * (1 + math.cos(math.pi / 4)) / 2, 0.05, 0.1 * (1 + math.cos(3 * math.pi / 4)) / 2]),
])
def test_the_scheduled_learning_rate_of_each_epoch(schedule: str, expected: list[float]) -> None:
    from aios_core import TrainingParams

    params = TrainingParams(epochs=4, learning_rate=0.1, lr_schedule=schedule, lr_step_size=2, lr_gamma=0.5)
    assert [params.scheduled_learning_rate(epoch) for epoch in range(1, 5)] == pytest.approx(expected)


def test_the_schedule_is_torchs() -> None:
    torch = pytest.importorskip("torch")
    from aios_core import TrainingParams

    for schedule, make in (("step", lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.3)),
                           ("cosine", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=7))):
        params = TrainingParams(epochs=7, learning_rate=0.2, lr_schedule=schedule, lr_step_size=3, lr_gamma=0.3)
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.2)
        scheduler, rates = make(optimizer), []
        for _ in range(7):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        assert [params.scheduled_learning_rate(epoch) for epoch in range(1, 8)] == pytest.approx(rates)


# ---------------------------------------------------------------- RunContext.train: a compressor fine-tunes
class _RecordingTrainer:
    """A trainer that records the context it was called with and returns its model as trained."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    @hookimpl
    def aios_train(self, model: object, run: RunContext, overrides: dict) -> TrainResult:
        self.calls.append((run.phase, run.checkpoint_dir, run.resume, overrides))
        return TrainResult(model=model, history=[], best_epoch=0, stopped_early=False)


def test_run_train_calls_the_stacks_trainer_in_the_compressors_folder_and_phase(tmp_path: Path) -> None:
    trainer = _RecordingTrainer()
    run = RunContext(name="t", seed=0, threads=1, dir=tmp_path, stack={}, hook=plugin_manager(trainer).hook,
                     resume=True)
    run.phase = "compress-native"
    result = run.train("model", "dataset", checkpoint_dir=tmp_path / "checkpoints" / "mine", overrides={"epochs": 2})
    assert result.model == "model"
    assert trainer.calls == [("compress-native", tmp_path / "checkpoints" / "mine", True, {"epochs": 2})]


def test_run_train_without_a_trainer_says_to_add_one(tmp_path: Path) -> None:
    run = RunContext(name="t", seed=0, threads=1, dir=tmp_path, stack={}, hook=plugin_manager().hook)
    with pytest.raises(ValueError, match=r"the stack has none; add a trainer: section"):
        run.train("model", "dataset", checkpoint_dir=tmp_path / "c")
