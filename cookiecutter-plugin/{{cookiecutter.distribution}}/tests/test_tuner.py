{%- set P = cookiecutter.__class_prefix -%}
"""The {{ cookiecutter.plugin_name }} tuner: distinct trials from the space, and the best of them returned."""

from __future__ import annotations

import pydantic
import pytest

from {{ cookiecutter.package }} import {{ P }}Tuner, {{ P }}TunerParams


def tune(run_with, objective, **params):
    tuner = {{ P }}Tuner({{ P }}TunerParams(**params))
    return tuner.aios_tune(objective=objective, run=run_with(tuner))


def test_the_best_trial_is_returned(run_with):
    space = {"trainer.learning_rate": [0.001, 0.01, 0.1], "model.hidden_units": [[8], [16]]}
    result = tune(run_with, lambda p: abs(p["trainer.learning_rate"] - 0.01), space=space, trials=6)
    assert result.best_params["trainer.learning_rate"] == 0.01
    assert result.best_value == min(trial["value"] for trial in result.trials)


def test_trials_are_distinct_and_at_most_the_combinations(run_with):
    seen = []
    result = tune(run_with, lambda p: seen.append(p) or 1.0, space={"trainer.epochs": [1, 2]}, trials=10)
    assert len(result.trials) == 2
    assert sorted(p["trainer.epochs"] for p in seen) == [1, 2]


def test_without_a_space_one_trial_runs_the_stack_as_it_is(run_with):
    result = tune(run_with, lambda p: 0.5)
    assert result.best_params == {} and len(result.trials) == 1


def test_space_keys_must_name_a_model_or_trainer_field():
    with pytest.raises(pydantic.ValidationError, match="model.<field> or trainer.<field>"):
        {{ P }}TunerParams(space={"learning_rate": [0.1]})
