"""A trial that raises, or trains to a NaN loss, is recorded as failed and the study goes on."""

from __future__ import annotations

from conftest import run_stack, stack_text

EXPLODE = "aios_optuna_test_factories:explode"
NAN = "aios_optuna_test_factories:not_a_number"


def test_failing_trials_are_recorded_and_the_study_goes_on(tmp_path) -> None:
    finished = run_stack(tmp_path, stack_text(
        {"trials": 6, "sampler": "random", "pruner": "none",
         "space": {"model.architecture": ["mlp", EXPLODE, NAN], "trainer.learning_rate": [0.001, 0.01]}},
        trainer={"plugin": "torch", "epochs": 1}))
    assert finished.error is None, finished.error
    trials = finished.tune["trials"]
    by_state = {state: [t for t in trials if t["state"] == state] for state in ("completed", "failed")}
    assert len(trials) == 6
    assert {t["params"]["model.architecture"] for t in by_state["completed"]} == {"mlp"}
    assert {t["params"]["model.architecture"] for t in by_state["failed"]} == {EXPLODE, NAN}
    for trial in by_state["failed"]:
        expected = "cannot be built" if trial["params"]["model.architecture"] == EXPLODE else "diverged"
        assert expected in trial["error"], trial
    assert finished.tune["best_params"]["model.architecture"] == "mlp"  # a NaN loss is never the best


def test_a_run_whose_every_trial_fails_fails_with_the_first_error(tmp_path) -> None:
    finished = run_stack(tmp_path, stack_text({"trials": 2, "space": {"model.architecture": [EXPLODE]}}))
    assert finished.error is not None
    assert finished.state["status"] == "failed"
    assert finished.state["error"].startswith("tune: ")
    assert "this architecture cannot be built" in finished.state["error"]
    assert "train" not in finished.state["phases"]
