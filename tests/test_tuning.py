"""The kernel's side of tuning: a trial's epochs reach the tuner, TrialPruned stops it, the tuned lock file, latency."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from aios_core import Monitor, RunContext, TrialPruned, TuneResult, hookimpl
from aios_core.plugins import new_plugin_manager
from aios_core.tuning import measure_latency, split_params, tuned_lock


class Epochs(Monitor):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, int]] = []

    @hookimpl
    def aios_on_epoch_end(self, phase: str, epoch: int) -> None:
        self.seen.append((phase, epoch))


def _run(tmp_path, monitor: Monitor) -> RunContext:
    pm = new_plugin_manager(builtins=False)
    pm.register(monitor)
    return RunContext(name="t", seed=0, threads=1, dir=tmp_path, stack={}, hook=pm.hook)


def test_a_trial_reports_each_epoch_to_the_monitors_then_to_the_tuner(tmp_path) -> None:
    monitor, told = Epochs(), []
    trial = _run(tmp_path, monitor).for_trial(7, lambda epoch, metrics: told.append((epoch, metrics["val_loss"])))
    trial.report_epoch(1, {"val_loss": 0.5})
    trial.report_epoch(2, {"val_loss": 0.4})
    assert monitor.seen == [("tune", 1), ("tune", 2)]
    assert told == [(1, 0.5), (2, 0.4)]
    assert trial.trial == 7 and trial.artifacts_dir == trial.checkpoint_dir == tmp_path / "trials" / "0007"


def test_the_tuner_stops_a_trial_by_raising_trial_pruned_from_its_report(tmp_path) -> None:
    monitor = Epochs()

    def prune(epoch: int, metrics: dict) -> None:
        raise TrialPruned(f"pruned at {epoch}")

    trial = _run(tmp_path, monitor).for_trial(1, prune)
    with pytest.raises(TrialPruned, match="pruned at 1"):
        trial.report_epoch(1, {"val_loss": 1.0})
    assert monitor.seen == [("tune", 1)]  # the monitors saw the epoch before the tuner stopped it


def test_the_run_itself_is_not_a_trial(tmp_path) -> None:
    run = _run(tmp_path, Epochs())
    run.report_epoch(1, {"val_loss": 1.0})
    assert run.trial is None and run.artifacts_dir == tmp_path / "artifacts"


def test_the_tuned_lock_file_holds_the_best_parameters_and_no_tuner() -> None:
    lock = {"name": "s", "model": {"framework": "torch", "hidden_units": [128]},
            "trainer": {"plugin": "torch", "learning_rate": 0.001},
            "tuner": {"plugin": "optuna", "trials": 5}, "lock": {"aios_core": "0.1.0"}}
    best = {"model.hidden_units": [64, 32], "trainer.learning_rate": 0.01}
    tuned = tuned_lock(lock, TuneResult(best_params=best, best_value=0.1))
    assert tuned["model"] == {"framework": "torch", "hidden_units": [64, 32]}
    assert tuned["trainer"] == {"plugin": "torch", "learning_rate": 0.01}
    assert "tuner" not in tuned and lock["tuner"]["trials"] == 5  # the given lock is left alone
    assert tuned["lock"]["tuned"] == {"params": best, "value": 0.1, "tuner": {"plugin": "optuna", "trials": 5}}
    assert "&" not in yaml.safe_dump(tuned)  # no YAML anchors: the file reads as written


def test_tuner_parameters_must_name_the_model_or_the_trainer() -> None:
    assert split_params({"model.dropout": 0.1, "trainer.epochs": 2}) == ({"dropout": 0.1}, {"epochs": 2})
    with pytest.raises(ValueError, match="must start with model. or trainer.: data.dataset"):
        split_params({"data.dataset": "iris"})


def test_latency_is_a_median_of_rounds_with_its_noise_and_an_interleaved_ratio() -> None:
    weights = np.random.default_rng(0).normal(size=(64, 10)).astype(np.float32)
    small, large = (lambda x: x @ weights), (lambda x: np.tanh(x @ weights) @ weights.T @ weights)
    rows = np.ones((5, 64), dtype=np.float32)
    alone = measure_latency(small, rows, 1, rounds=3, runs=5)
    assert alone["latency_ms"] > 0 and alone["noise"] >= 0 and (alone["rounds"], alone["runs"]) == (3, 5)
    assert "ratio" not in alone
    paired = measure_latency(large, rows, 4, rounds=3, runs=5, reference=small)
    assert paired["ratio"] > 0 and paired["reference_ms"] > 0 and paired["batch_size"] == 4
