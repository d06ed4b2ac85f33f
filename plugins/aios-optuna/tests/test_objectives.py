"""Several objectives: the trial's shipped model measured, a Pareto front, and the ``select`` rule."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import run_stack

from aios_optuna import SelectRule
from aios_optuna._result import select

EXAMPLE = Path(__file__).parents[3] / "examples" / "digits-automl.yaml"


def _frozen(number: int, accuracy: float, latency: float):
    import optuna
    from optuna.distributions import FloatDistribution

    trial = optuna.trial.create_trial(params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)},
                                      values=[accuracy, latency])
    trial.number = number
    return trial


def test_select_keeps_the_fastest_trial_within_the_accuracy_drop() -> None:
    front = [_frozen(0, 0.97, 0.9), _frozen(1, 0.965, 0.5), _frozen(2, 0.95, 0.1)]
    rule = SelectRule(max_accuracy_drop=0.01, minimize="latency_ms")
    assert select(front, ["val_accuracy", "latency_ms"], rule).number == 1
    assert select(front, ["val_accuracy", "latency_ms"], SelectRule()).number == 2  # default: the last objective
    assert select(front, ["val_accuracy", "latency_ms"], SelectRule(minimize="val_accuracy")).number == 0


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory):
    """examples/digits-automl.yaml, smaller: 4 trials of 2 epochs, MLPs only."""
    stack = yaml.safe_load(EXAMPLE.read_text().replace("${AIOS_EPOCHS:-8}", "2").replace("${AIOS_TRIALS:-20}", "4"))
    stack["tuner"]["space"]["model.architecture"] = ["mlp"]
    stack["tuner"]["startup_trials"] = 4
    stack["evaluate"] = {"batch_sizes": [1], "latency_runs": 5}
    stack["monitors"] = [{"plugin": "jsonl"}]
    finished = run_stack(tmp_path_factory.mktemp("example"), yaml.safe_dump(stack, sort_keys=False))
    assert finished.error is None, finished.error
    return finished


def test_the_example_tunes_accuracy_against_int8_latency(example) -> None:
    tune = example.tune
    assert tune["objectives"] == {"val_accuracy": "maximize", "latency_ms": "minimize"}
    completed = [t for t in tune["trials"] if t["state"] == "completed"]
    assert len(completed) == 4
    for trial in completed:
        folder = example.path / "trials" / f"{trial['number']:04d}"
        assert (folder / "model.int8.onnx").exists()  # measured as it would ship: after the compressor
        assert trial["values"]["latency_ms"] > 0 and 0 < trial["values"]["val_accuracy"] <= 1
    front = tune["pareto_front"]
    on_front = {t["number"] for t in tune["trials"] if t.get("pareto")}
    assert {p["number"] for p in front} == on_front and tune["chosen_trial"] in on_front
    best = max(p["values"]["val_accuracy"] for p in front)
    eligible = [p for p in front if p["values"]["val_accuracy"] >= best - 0.01]
    assert tune["chosen_trial"] == min(eligible, key=lambda p: p["values"]["latency_ms"])["number"]
    assert tune["best_params"] == next(p["params"] for p in front if p["number"] == tune["chosen_trial"])
    assert (example.path / "report" / "tune_pareto_front.png").read_bytes()[:4] == b"\x89PNG"


def test_a_latency_value_comes_with_its_noise(example) -> None:
    import optuna

    study = optuna.load_study(study_name="digits-automl", storage=f"sqlite:///{example.path / 'tune' / 'study.db'}")
    for trial in study.trials:
        if trial.state.name == "COMPLETE":
            assert trial.user_attrs["metrics"]["latency_ms"] == trial.values[1]
            assert trial.user_attrs["metrics"]["latency_noise"] >= 0
            assert trial.user_attrs["metrics"]["size_bytes"] == (
                example.path / "trials" / f"{trial.number:04d}" / "model.int8.onnx").stat().st_size
