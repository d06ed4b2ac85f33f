"""Budgets: ``n_workers: 2`` processes finish ``trials`` together on one SQLite study; ``timeout_s``."""

from __future__ import annotations

from conftest import run_stack, stack_text


def test_two_worker_processes_share_one_study(tmp_path) -> None:
    finished = run_stack(tmp_path, stack_text(
        {"trials": 6, "n_workers": 2, "sampler": "random", "pruner": "none",
         "space": {"trainer.learning_rate": {"low": 1e-3, "high": 3e-2, "log": True}}},
        trainer={"plugin": "torch", "epochs": 2}))
    assert finished.error is None, finished.error
    trials = finished.tune["trials"]
    assert [t["number"] for t in trials] == list(range(6))
    assert all(t["state"] == "completed" for t in trials)
    assert {t["worker"] for t in trials} == {0, 1}
    rates = [t["params"]["trainer.learning_rate"] for t in trials]
    assert len(set(rates)) == len(rates)  # the workers draw different suggestions
    assert len({p.name for p in (finished.path / "trials").iterdir()}) == 6


def test_a_time_budget_stops_starting_trials(tmp_path) -> None:
    finished = run_stack(tmp_path, stack_text(
        {"trials": None, "timeout_s": 0.5, "sampler": "random",
         "space": {"trainer.learning_rate": {"low": 1e-3, "high": 3e-2, "log": True}}},
        trainer={"plugin": "torch", "epochs": 2}))
    assert finished.error is None, finished.error
    trials = finished.tune["trials"]
    assert trials and all(t["state"] in ("completed", "pruned") for t in trials)  # it ended, trials finished
