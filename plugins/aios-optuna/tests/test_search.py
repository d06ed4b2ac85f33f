"""One tuned run, read from every side: pruning, the lock file, the report, ``aios runs show``."""

from __future__ import annotations

import yaml
from click.testing import CliRunner
from conftest import SEARCH, Finished, run_stack

from aios_core.cli import main


def test_every_trial_is_recorded_once(tuned: Finished) -> None:
    trials = tuned.tune["trials"]
    assert [t["number"] for t in trials] == list(range(SEARCH["trials"]))
    assert all(t["state"] in ("completed", "pruned") for t in trials)
    assert sum(t["chosen"] for t in trials) == 1


def test_pruning_stops_unpromising_trials_early(tuned: Finished) -> None:
    trials = tuned.tune["trials"]
    pruned = [t for t in trials if t["state"] == "pruned"]
    assert pruned, trials
    assert all(t["epochs"] < 3 for t in pruned)
    assert all(t["epochs"] == 3 for t in trials if t["state"] == "completed")
    assert tuned.tune["epochs_trained"] < 3 * len(trials)
    tune_epochs = [e for e in tuned.events() if e["event"] == "epoch" and e["phase"] == "tune"]
    assert len(tune_epochs) == tuned.tune["epochs_trained"]  # monitors saw every epoch, up to the pruned one


def test_the_best_trial_is_the_lowest_completed_val_loss(tuned: Finished) -> None:
    completed = [t for t in tuned.tune["trials"] if t["state"] == "completed"]
    best = min(completed, key=lambda t: t["values"]["val_loss"])
    assert best["chosen"]
    assert tuned.tune["best_params"] == best["params"]
    assert tuned.tune["best_value"] == best["values"]["val_loss"]


def test_the_best_parameters_train_the_final_model(tuned: Finished) -> None:
    best = tuned.tune["best_params"]
    lock = tuned.lock()
    assert "tuner" not in lock
    assert lock["model"]["hidden_units"] == best["model.hidden_units"]
    assert lock["trainer"]["learning_rate"] == best["trainer.learning_rate"]
    assert lock["trainer"]["batch_size"] == best["trainer.batch_size"]
    assert lock["lock"]["tuned"]["params"] == best
    assert lock["lock"]["tuned"]["tuner"]["plugin"] == "optuna"


def test_the_lock_file_retrains_the_chosen_model_without_tuning(tuned: Finished, tmp_path) -> None:
    again = run_stack(tmp_path, (tuned.path / "stack.lock.yaml").read_text(), locked=True)
    assert again.error is None
    assert "tune" not in again.state["phases"]
    strip = lambda history: [{k: v for k, v in row.items() if k != "seconds"} for row in history]  # noqa: E731
    assert strip(again.state["phases"]["train"]["history"]) == strip(tuned.state["phases"]["train"]["history"])


def test_the_report_holds_history_and_importances(tuned: Finished) -> None:
    assert tuned.tune["report"] == ["report/tune_history.png", "report/tune_importances.png"]
    for name in tuned.tune["report"]:
        assert (tuned.path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_study_is_an_optuna_sqlite_study_in_the_run_directory(tuned: Finished) -> None:
    import optuna

    study = optuna.load_study(study_name="automl-test", storage=f"sqlite:///{tuned.path / 'tune' / 'study.db'}")
    assert len(study.trials) == SEARCH["trials"]
    assert study.best_trial.number == tuned.tune["chosen_trial"]


def test_runs_show_lists_the_trials(tuned: Finished) -> None:
    result = CliRunner().invoke(main, ["runs", "show", str(tuned.path)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "trials" in result.output
    lines = [line for line in result.output.splitlines() if "pruned" in line]
    assert len(lines) == tuned.tune["counts"]["pruned"]


def test_the_lock_records_no_tuner_but_what_it_chose(tuned: Finished) -> None:
    text = (tuned.path / "stack.lock.yaml").read_text()
    assert yaml.safe_load(text)["lock"]["tuned"]["value"] == tuned.tune["best_value"]
