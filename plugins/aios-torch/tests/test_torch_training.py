"""aios_train: learning, reporting, determinism, checkpoints and resume, divergence, early stopping, parameters."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest
import torch
from aios_torch import TorchTrainerParams

from aios_core import Dataset, TrainingDiverged, TrainResult, hookimpl

HISTORY_KEYS = {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"}


def _without_seconds(history: list[dict[str, float]]) -> list[dict[str, float]]:
    """Everything in a history except wall time, which no two runs share."""
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


def _test_accuracy(model: torch.nn.Module, dataset: Dataset) -> float:
    with torch.no_grad():
        predictions = model.eval()(torch.from_numpy(dataset.x_test)).argmax(dim=1).numpy()
    return float(np.mean(predictions == dataset.y_test))


def test_mlp_loss_goes_down(torch_stack, digits_dataset) -> None:
    result = torch_stack(model={"architecture": "mlp"}, trainer={"epochs": 4}).build_and_train(digits_dataset)
    losses = [row["loss"] for row in result.history]
    val_losses = [row["val_loss"] for row in result.history]
    assert isinstance(result, TrainResult)
    assert losses == sorted(losses, reverse=True) and losses[-1] < 0.5 * losses[0]
    assert val_losses[-1] < val_losses[0]


def test_cnn_reaches_095_validation_accuracy_in_10_epochs(torch_stack, digits_dataset) -> None:
    result = torch_stack(model={"architecture": "cnn"}, trainer={"epochs": 10}).build_and_train(digits_dataset)
    assert result.final_metrics["val_accuracy"] >= 0.95


def test_default_digits_stack_reaches_097_test_accuracy(torch_stack, digits_dataset) -> None:
    """The settings of the bundled digits stack: cnn [16, 32], hidden [128], adam 1e-3, batch 64, 20 epochs."""
    stack = torch_stack(model={"architecture": "cnn", "conv_channels": [16, 32], "hidden_units": [128],
                               "dropout": 0.1},
                        trainer={"epochs": 20, "batch_size": 64, "optimizer": "adam", "learning_rate": 1e-3,
                                 "early_stopping_patience": 5},
                        seed=42)
    result = stack.build_and_train(digits_dataset)
    assert _test_accuracy(result.model, digits_dataset) >= 0.97


def test_each_epoch_is_reported_with_the_documented_metrics(torch_stack, digits_dataset, epoch_recorder) -> None:
    recorder = epoch_recorder()
    result = torch_stack(trainer={"epochs": 3}, monitors=(recorder,)).build_and_train(digits_dataset)
    assert [epoch for epoch, _ in recorder.epochs] == [1, 2, 3]
    assert [metrics for _, metrics in recorder.epochs] == result.history
    for number, row in enumerate(result.history, start=1):
        assert set(row) == HISTORY_KEYS and row["epoch"] == number
        assert all(isinstance(value, (int, float)) and math.isfinite(value) for value in row.values())
        assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["val_accuracy"] <= 1.0
        assert row["lr"] == 1e-3 and row["seconds"] > 0


@pytest.mark.parametrize("updates", [0, 1, 4])
def test_progress_is_reported_the_requested_number_of_times_per_epoch(torch_stack, digits_dataset, epoch_recorder,
                                                                        updates) -> None:
    recorder = epoch_recorder()
    torch_stack(trainer={"epochs": 2, "progress_updates": updates}, monitors=(recorder,)).build_and_train(digits_dataset)
    total = math.ceil(len(digits_dataset.y_train) / 64)
    assert len(recorder.steps) == 2 * updates
    assert all(total_steps == total and 1 <= step <= total for _, step, total_steps in recorder.steps)
    if updates:
        assert recorder.steps[updates - 1] == (1, total, total)  # the last report of an epoch is its last step


def test_the_same_seed_gives_the_same_history_and_weights(torch_stack, digits_dataset, tmp_path) -> None:
    params = {"model": {"architecture": "mlp", "dropout": 0.2}, "trainer": {"epochs": 3}}
    first = torch_stack(**params, seed=5, run_dir=tmp_path / "a").build_and_train(digits_dataset)
    second = torch_stack(**params, seed=5, run_dir=tmp_path / "b").build_and_train(digits_dataset)
    other = torch_stack(**params, seed=6, run_dir=tmp_path / "c").build_and_train(digits_dataset)
    assert _without_seconds(first.history) == _without_seconds(second.history)
    _assert_same_weights(first.model, second.model)
    assert _without_seconds(first.history) != _without_seconds(other.history)


class _CheckpointReader:
    """A monitor that reads ``last.pt`` whenever an epoch is reported."""

    def __init__(self, checkpoint: Path) -> None:
        self.checkpoint = checkpoint
        self.seen: list[dict[str, Any] | None] = []

    @hookimpl
    def aios_on_epoch_end(self, epoch: int) -> None:
        exists = self.checkpoint.exists()
        self.seen.append(torch.load(self.checkpoint, weights_only=True) if exists else None)


@pytest.mark.parametrize("interval", [None, 0.0], ids=["default-interval", "every-epoch"])
@pytest.mark.parametrize("trainer", [
    {"optimizer": "adam", "lr_schedule": "none"},
    {"optimizer": "sgd", "learning_rate": 0.05, "lr_schedule": "step", "lr_step_size": 2},
    {"optimizer": "adam", "lr_schedule": "cosine", "weight_decay": 1e-4, "early_stopping_patience": 3},
], ids=["adam", "sgd-step", "adam-cosine"])
def test_resume_after_an_interrupt_equals_an_uninterrupted_run(torch_stack, digits_dataset, epoch_recorder, tmp_path,
                                                               trainer, interval) -> None:
    model_params = {"architecture": "mlp", "hidden_units": [32], "dropout": 0.3}  # dropout draws from the RNG
    trainer = {**trainer, "epochs": 4, "batch_size": 128}
    if interval is not None:
        trainer["checkpoint_interval_s"] = interval
    uninterrupted = torch_stack(model=model_params, trainer=trainer,
                                run_dir=tmp_path / "a").build_and_train(digits_dataset)

    checkpoint = tmp_path / "b" / "checkpoints" / "last.pt"
    reader = _CheckpointReader(checkpoint)
    interrupted = torch_stack(model=model_params, trainer=trainer, run_dir=tmp_path / "b",
                              monitors=(epoch_recorder(interrupt_at_epoch=3), reader))
    with pytest.raises(KeyboardInterrupt):
        interrupted.build_and_train(digits_dataset)
    written = [seen and seen["epoch"] for seen in reader.seen]
    # The default interval (10 s) is longer than this run: only the interrupt wrote a checkpoint.
    assert written == ([None, None, None] if interval is None else [None, 1, 2])
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 2

    recorder = epoch_recorder()
    resumed_stack = torch_stack(model=model_params, trainer=trainer, run_dir=tmp_path / "b", resume=True,
                                monitors=(recorder,))
    model = resumed_stack.build(digits_dataset)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()  # everything must come from the checkpoint
    torch.manual_seed(1234)
    resumed = resumed_stack.train(model, digits_dataset)

    assert [epoch for epoch, _ in recorder.epochs] == [3, 4]
    assert _without_seconds(resumed.history) == _without_seconds(uninterrupted.history)
    assert (resumed.best_epoch, resumed.stopped_early) == (uninterrupted.best_epoch, uninterrupted.stopped_early)
    _assert_same_weights(resumed.model, uninterrupted.model)


class _CheckpointCopier:
    """A monitor that copies ``last.pt`` aside when an epoch is reported: the file a kill -9 would leave."""

    def __init__(self, checkpoint: Path, at_epoch: int) -> None:
        self.checkpoint, self.at_epoch = checkpoint, at_epoch
        self.copy = checkpoint.with_name("killed.pt")

    @hookimpl
    def aios_on_epoch_end(self, epoch: int) -> None:
        if epoch == self.at_epoch:
            self.copy.write_bytes(self.checkpoint.read_bytes())


def test_a_run_killed_outright_resumes_from_the_older_checkpoint_to_the_same_result(torch_stack, digits_dataset,
                                                                                      tmp_path) -> None:
    trainer = {"epochs": 4, "checkpoint_interval_s": 0.0}
    uninterrupted = torch_stack(trainer=trainer, run_dir=tmp_path / "a").build_and_train(digits_dataset)
    checkpoint = tmp_path / "b" / "checkpoints" / "last.pt"
    copier = _CheckpointCopier(checkpoint, at_epoch=3)
    torch_stack(trainer=trainer, run_dir=tmp_path / "b", monitors=(copier,)).build_and_train(digits_dataset)
    copier.copy.replace(checkpoint)  # killed during epoch 4: epochs 3 and 4 were never written
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 2
    resumed = torch_stack(trainer=trainer, run_dir=tmp_path / "b", resume=True).build_and_train(digits_dataset)
    assert _without_seconds(resumed.history) == _without_seconds(uninterrupted.history)
    _assert_same_weights(resumed.model, uninterrupted.model)


def test_resume_accepts_changed_reporting_and_checkpoint_interval(torch_stack, digits_dataset, epoch_recorder,
                                                                  tmp_path) -> None:
    trainer = {"epochs": 3}
    uninterrupted = torch_stack(trainer=trainer, run_dir=tmp_path / "a").build_and_train(digits_dataset)
    with pytest.raises(KeyboardInterrupt):
        torch_stack(trainer=trainer, run_dir=tmp_path / "b",
                    monitors=(epoch_recorder(interrupt_at_epoch=2),)).build_and_train(digits_dataset)
    changed = {**trainer, "progress_updates": 0, "checkpoint_interval_s": 0.0}
    resumed = torch_stack(trainer=changed, run_dir=tmp_path / "b", resume=True).build_and_train(digits_dataset)
    assert _without_seconds(resumed.history) == _without_seconds(uninterrupted.history)


def test_a_finished_run_resumes_to_the_same_result(torch_stack, digits_dataset, tmp_path) -> None:
    first = torch_stack(trainer={"epochs": 2}).build_and_train(digits_dataset)
    again = torch_stack(trainer={"epochs": 2}, resume=True)
    model = again.build(digits_dataset)
    result = again.train(model, digits_dataset)
    assert result.history == first.history  # nothing retrained: even the seconds are the recorded ones
    _assert_same_weights(result.model, first.model)


def test_resume_refuses_changed_trainer_params(torch_stack, digits_dataset) -> None:
    torch_stack(trainer={"epochs": 1}).build_and_train(digits_dataset)
    resumed = torch_stack(trainer={"epochs": 1, "learning_rate": 0.01}, resume=True)
    with pytest.raises(ValueError, match=r"cannot resume.*trainer\.learning_rate: 0\.001 -> 0\.01"):
        resumed.build_and_train(digits_dataset)


def test_without_resume_an_old_checkpoint_is_ignored(torch_stack, digits_dataset, tmp_path) -> None:
    first = torch_stack(trainer={"epochs": 2}).build_and_train(digits_dataset)
    again = torch_stack(trainer={"epochs": 2}).build_and_train(digits_dataset)
    assert _without_seconds(again.history) == _without_seconds(first.history)


def test_checkpoint_holds_everything_needed_to_resume(torch_stack, digits_dataset) -> None:
    stack = torch_stack(trainer={"epochs": 2, "lr_schedule": "step"})
    stack.build_and_train(digits_dataset)
    checkpoint = torch.load(stack.run.checkpoint_dir / "last.pt", weights_only=True)
    assert {"epoch", "model", "optimizer", "scheduler", "torch_rng", "history", "best_state",
            "best_epoch", "best_val_loss", "bad_epochs", "stopped_early"} <= checkpoint.keys()
    assert checkpoint["epoch"] == 2 and len(checkpoint["history"]) == 2
    assert [p.name for p in stack.run.checkpoint_dir.iterdir()] == ["last.pt"]  # no temporary file left


def test_with_interval_0_each_reported_epoch_finds_the_previous_checkpoint_on_disk(torch_stack, digits_dataset,
                                                                                  tmp_path) -> None:
    # Checkpoints are written in the background, but the trainer waits for epoch N-1's write
    # before it reports epoch N, so a run killed at any point has lost at most one epoch.
    checkpoint = tmp_path / "a" / "checkpoints" / "last.pt"
    reader = _CheckpointReader(checkpoint)
    trainer = {"epochs": 3, "optimizer": "sgd", "learning_rate": 0.5, "checkpoint_interval_s": 0.0}
    stack = torch_stack(model={"architecture": "mlp"}, trainer=trainer, run_dir=tmp_path / "a", monitors=(reader,))
    stack.build_and_train(digits_dataset)
    assert reader.seen[0] is None and [seen["epoch"] for seen in reader.seen[1:]] == [1, 2]
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 3  # on disk when aios_train returns

    # The snapshot of epoch 2, written while epoch 3 trained, holds epoch 2's weights exactly.
    two = torch_stack(model={"architecture": "mlp"}, trainer={**trainer, "epochs": 2}, run_dir=tmp_path / "b")
    two.build_and_train(digits_dataset)
    epoch_two = torch.load(two.run.checkpoint_dir / "last.pt", weights_only=True)
    for name, value in epoch_two["model"].items():
        assert torch.equal(reader.seen[2]["model"][name], value), name
    assert reader.seen[2]["optimizer"]["state"].keys() == epoch_two["optimizer"]["state"].keys()
    for index, state in epoch_two["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(reader.seen[2]["optimizer"]["state"][index][key], value), (index, key)


def test_the_best_weights_are_stored_once_when_the_last_epoch_is_the_best(torch_stack, digits_dataset) -> None:
    stack = torch_stack(model={"architecture": "mlp"}, trainer={"epochs": 1})
    stack.build_and_train(digits_dataset)
    checkpoint = torch.load(stack.run.checkpoint_dir / "last.pt", weights_only=True)
    assert checkpoint["best_epoch"] == checkpoint["epoch"] == 1
    for name, value in checkpoint["model"].items():
        best = checkpoint["best_state"][name]
        assert torch.equal(best, value) and best.untyped_storage().data_ptr() == value.untyped_storage().data_ptr()


@pytest.mark.parametrize(("interval", "writes"), [(None, [3]), (0.0, [1, 2, 3])], ids=["default", "0"])
def test_the_checkpoint_interval_decides_which_epochs_are_written(torch_stack, digits_dataset, monkeypatch,
                                                                  interval, writes) -> None:
    from aios_torch import _training

    save, written = _training._save_checkpoint, []

    def counted(path: Path, payload: dict[str, Any]) -> None:
        written.append(payload["epoch"])
        save(path, payload)

    monkeypatch.setattr(_training, "_save_checkpoint", counted)
    trainer = {"epochs": 3} if interval is None else {"epochs": 3, "checkpoint_interval_s": interval}
    stack = torch_stack(model={"architecture": "mlp"}, trainer=trainer)
    stack.build_and_train(digits_dataset)
    assert written == writes  # the default (10 s) is longer than this run: written once, at the end
    assert torch.load(stack.run.checkpoint_dir / "last.pt", weights_only=True)["epoch"] == 3


def test_a_failed_checkpoint_write_fails_the_training(torch_stack, digits_dataset, monkeypatch) -> None:
    from aios_torch import _training

    def fail(path: Path, payload: dict[str, Any]) -> None:
        raise OSError("no space left on device")

    monkeypatch.setattr(_training, "_save_checkpoint", fail)
    stack = torch_stack(trainer={"epochs": 2})  # the default interval: the write at the end fails
    with pytest.raises(OSError, match="no space left on device"):
        stack.build_and_train(digits_dataset)
    assert list(stack.run.checkpoint_dir.iterdir()) == []  # no temporary file left


class _InterruptInEpoch:
    """A monitor that interrupts like Ctrl-C at the first progress report of an epoch."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    @hookimpl
    def aios_on_step(self, epoch: int) -> None:
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_an_interrupt_waits_for_the_write_in_flight(torch_stack, digits_dataset, monkeypatch) -> None:
    from aios_torch import _training

    save = _training._save_checkpoint

    def slow(path: Path, payload: dict[str, Any]) -> None:
        time.sleep(0.3)  # still writing epoch 2 when epoch 3 is interrupted
        save(path, payload)

    monkeypatch.setattr(_training, "_save_checkpoint", slow)
    stack = torch_stack(trainer={"epochs": 4, "checkpoint_interval_s": 0.0}, monitors=(_InterruptInEpoch(3),))
    with pytest.raises(KeyboardInterrupt):
        stack.build_and_train(digits_dataset)
    assert torch.load(stack.run.checkpoint_dir / "last.pt", weights_only=True)["epoch"] == 2
    assert [p.name for p in stack.run.checkpoint_dir.iterdir()] == ["last.pt"]


def test_an_interrupt_wins_over_a_failed_checkpoint_write(torch_stack, digits_dataset, monkeypatch, caplog) -> None:
    from aios_torch import _training

    save = _training._save_checkpoint

    def fail_at_epoch_two(path: Path, payload: dict[str, Any]) -> None:
        if payload["epoch"] == 2:
            raise OSError("no space left on device")
        save(path, payload)

    monkeypatch.setattr(_training, "_save_checkpoint", fail_at_epoch_two)
    stack = torch_stack(trainer={"epochs": 4, "checkpoint_interval_s": 0.0}, monitors=(_InterruptInEpoch(3),))
    with pytest.raises(KeyboardInterrupt):
        stack.build_and_train(digits_dataset)
    assert "writing the checkpoint" in caplog.text and "no space left on device" in caplog.text
    assert torch.load(stack.run.checkpoint_dir / "last.pt", weights_only=True)["epoch"] == 1


def test_a_learning_rate_far_too_high_fails_with_training_diverged(torch_stack, digits_dataset,
                                                                   epoch_recorder) -> None:
    recorder = epoch_recorder()
    stack = torch_stack(model={"architecture": "mlp"}, trainer={"epochs": 3, "optimizer": "sgd", "learning_rate": 1e6},
                        monitors=(recorder,))
    with pytest.raises(TrainingDiverged, match=r"epoch 1 ended with loss = nan; lower trainer\.learning_rate"):
        stack.build_and_train(digits_dataset)
    assert recorder.epochs == [] and not (stack.run.checkpoint_dir / "last.pt").exists()


def test_divergence_keeps_the_finite_epochs_reported_and_checkpointed(torch_stack, digits_dataset, epoch_recorder,
                                                                      factories_importable) -> None:
    steps = math.ceil(len(digits_dataset.y_train) / 64)
    model = {"architecture": f"{factories_importable}:overflowing", "options": {"finite_steps": 2 * steps}}
    recorder = epoch_recorder()
    stack = torch_stack(model=model, trainer={"epochs": 5}, monitors=(recorder,))
    with pytest.raises(TrainingDiverged, match="epoch 3 ended with loss = nan"):
        stack.build_and_train(digits_dataset)
    assert [epoch for epoch, _ in recorder.epochs] == [1, 2]
    assert all(math.isfinite(value) for _, metrics in recorder.epochs for value in metrics.values())
    checkpoint = torch.load(stack.run.checkpoint_dir / "last.pt", weights_only=True)  # written on the way out
    assert checkpoint["epoch"] == 2 and [row["epoch"] for row in checkpoint["history"]] == [1, 2]
    assert all(math.isfinite(value) for row in checkpoint["history"] for value in row.values())


def test_early_stopping_stops_and_restores_the_best_weights(torch_stack, digits_dataset, tmp_path) -> None:
    # A min_delta no epoch can beat: epoch 1 is the best, epochs 2 and 3 use up the patience.
    trainer = {"epochs": 10, "early_stopping_patience": 2, "early_stopping_min_delta": 100.0}
    result = torch_stack(trainer=trainer, run_dir=tmp_path / "a").build_and_train(digits_dataset)
    one_epoch = torch_stack(trainer={"epochs": 1}, run_dir=tmp_path / "b").build_and_train(digits_dataset)
    assert result.stopped_early and len(result.history) == 3 and result.best_epoch == 1
    _assert_same_weights(result.model, one_epoch.model)
    assert result.final_metrics == result.history[0]


def test_the_returned_model_holds_the_lowest_val_loss_weights(torch_stack, digits_dataset) -> None:
    # A learning rate this high makes validation loss jump around, so the best epoch is rarely the last.
    stack = torch_stack(trainer={"epochs": 6, "optimizer": "sgd", "learning_rate": 0.5})
    result = stack.build_and_train(digits_dataset)
    val_losses = [row["val_loss"] for row in result.history]
    assert not result.stopped_early
    assert result.best_epoch == 1 + int(np.argmin(val_losses))
    loss_fn = torch.nn.CrossEntropyLoss()
    with torch.no_grad():
        val_loss = loss_fn(result.model(torch.from_numpy(digits_dataset.x_val)), torch.from_numpy(digits_dataset.y_val)).item()
    assert val_loss == pytest.approx(min(val_losses), rel=1e-5)
    assert not result.model.training


def test_step_schedule_decays_the_learning_rate(torch_stack, digits_dataset) -> None:
    trainer = {"epochs": 4, "learning_rate": 0.01, "lr_schedule": "step", "lr_step_size": 2, "lr_gamma": 0.5}
    result = torch_stack(trainer=trainer).build_and_train(digits_dataset)
    assert [row["lr"] for row in result.history] == pytest.approx([0.01, 0.01, 0.005, 0.005])


def test_overrides_take_precedence_over_trainer_params(torch_stack, digits_dataset) -> None:
    stack = torch_stack(trainer={"epochs": 5})
    result = stack.train(stack.build(digits_dataset), digits_dataset, epochs=1)
    assert len(result.history) == 1 and stack.trainer.params.epochs == 5


def test_defaults_are_the_documented_ones() -> None:
    assert TorchTrainerParams().model_dump() == {
        "epochs": 20, "batch_size": 64, "optimizer": "adam", "learning_rate": 1e-3, "momentum": 0.9,
        "weight_decay": 0.0, "lr_schedule": "none", "lr_step_size": 10, "lr_gamma": 0.5, "loss": "auto",
        "early_stopping_patience": None, "early_stopping_min_delta": 0.0, "progress_updates": 4,
        "checkpoint_interval_s": 10.0,
    }


@pytest.mark.parametrize(("overrides", "field"), [
    ({"epochs": 0}, "epochs"),
    ({"batch_size": 0}, "batch_size"),
    ({"optimizer": "rmsprop"}, "optimizer"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"momentum": 1.5}, "momentum"),
    ({"lr_schedule": "linear"}, "lr_schedule"),
    ({"lr_gamma": 0.0}, "lr_gamma"),
    ({"early_stopping_patience": 0}, "early_stopping_patience"),
    ({"progress_updates": -1}, "progress_updates"),
    ({"checkpoint_interval_s": -1.0}, "checkpoint_interval_s"),
    ({"epoch": 3}, "epoch"),
])
def test_bad_trainer_params_are_validation_errors_naming_the_field(torch_stack, digits_dataset, overrides,
                                                                    field) -> None:
    with pytest.raises(pydantic.ValidationError, match=field):
        TorchTrainerParams(**overrides)
    stack = torch_stack(model={"architecture": "mlp"})
    with pytest.raises(pydantic.ValidationError, match=field):
        stack.train(stack.build(digits_dataset), digits_dataset, **overrides)


def test_empty_validation_split_is_a_clear_error(torch_stack, digits_dataset) -> None:
    no_val = Dataset(name="no-val", x_train=digits_dataset.x_train, y_train=digits_dataset.y_train,
                     x_val=digits_dataset.x_val[:0], y_val=digits_dataset.y_val[:0], x_test=digits_dataset.x_test, y_test=digits_dataset.y_test,
                     class_names=digits_dataset.class_names, content_hash="x", image_shape=digits_dataset.image_shape)
    with pytest.raises(ValueError, match="empty validation split"):
        torch_stack().build_and_train(no_val)


def test_training_leaves_deterministic_mode_as_it_found_it(torch_stack, digits_dataset) -> None:
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.utils.deterministic.fill_uninitialized_memory
    torch_stack(trainer={"epochs": 1}).build_and_train(digits_dataset)
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.utils.deterministic.fill_uninitialized_memory


def test_training_accuracy_does_not_depend_on_how_often_predictions_are_counted(torch_stack, digits_dataset,
                                                                                 tmp_path, monkeypatch) -> None:
    from aios_torch import _training

    trainer = {"epochs": 2, "batch_size": 64}
    whole = torch_stack(model={"architecture": "mlp"}, trainer=trainer, run_dir=tmp_path / "a")
    whole_history = whole.build_and_train(digits_dataset).history
    monkeypatch.setattr(_training, "_ACCURACY_ROWS", 100)  # counted every 2 batches, the last one short
    pieces = torch_stack(model={"architecture": "mlp"}, trainer=trainer, run_dir=tmp_path / "b")
    assert _without_seconds(pieces.build_and_train(digits_dataset).history) == _without_seconds(whole_history)
    assert 0.5 < whole_history[-1]["accuracy"] < 1.0
