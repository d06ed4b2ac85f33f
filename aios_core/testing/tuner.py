"""``TunerContract``: a tuner calls the objective and returns the best value it saw and the parameters that gave it."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from aios_core.records import TuneResult
from aios_core.testing._harness import fail, label_of, manager_with
from aios_core.testing.component import ComponentContract

if TYPE_CHECKING:
    from collections.abc import Callable

    from aios_core.components import Component
    from aios_core.context import RunContext

__all__ = ["TunerContract", "Tuning"]


class _Objective:
    """The kit's objective: a deterministic value per parameter set, recording every call.

    It takes the objective's keyword arguments (``number``, ``report``, ``objectives``):
    with ``report`` it reports two epochs whose ``val_loss`` ends at the value, and a
    ``TrialPruned`` raised there ends the call as a pruned trial does in a run.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], float]] = []
        self.pruned: list[dict[str, Any]] = []
        self.several: bool = False

    @staticmethod
    def _value(params: dict[str, Any], salt: str = "") -> float:
        text = json.dumps(params, sort_keys=True, default=str) + salt
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64

    def __call__(self, params: dict[str, Any], *, number: int | None = None,
                 report: Callable[[int, dict[str, float]], None] | None = None,
                 objectives: Any = None) -> Any:
        from aios_core.context import TrialPruned

        if not isinstance(params, dict):
            raise TypeError(f"the objective takes a dict of parameters, got {type(params).__name__}")
        value = self._value(params)
        if report is not None:
            try:
                for epoch, loss in ((1, value + 0.5), (2, value)):
                    report(epoch, {"epoch": epoch, "loss": loss, "val_loss": loss, "val_accuracy": 1 - loss})
            except TrialPruned:
                self.pruned.append(dict(params))
                raise
        if objectives:
            self.several = True
            values = {name: value if name == "val_loss" else 1 - value if name == "val_accuracy"
                      else self._value(params, name) for name in objectives}
            self.calls.append((dict(params), values[list(objectives)[0]]))
            return values
        self.calls.append((dict(params), value))
        return value


@dataclass(frozen=True)
class Tuning:
    """What the ``tuning`` fixture holds: one search by the tuner over the kit's objective."""

    result: TuneResult
    """What ``aios_tune`` returned (the fixture fails unless it is an ``aios_core.TuneResult``)."""
    objective: _Objective
    """The objective the tuner was given: ``objective.calls`` lists ``(params, value)`` per call, in order."""


class TunerContract(ComponentContract):
    """A tuner calls the objective and returns the best value it saw and the parameters that gave it.

    Required fixture: ``tuner_params``, the tuner's parameters including a search space
    over ``model.<field>`` / ``trainer.<field>`` keys (it is also ``component_params``).
    The kit's objective returns a deterministic value per parameter set.
    """

    kind = "tuner"
    required_hooks = ("aios_tune",)
    _example_name = "optuna"

    @pytest.fixture
    def tuner_params(self, request: pytest.FixtureRequest) -> dict[str, Any]:
        fail(f"{request.cls.__name__} must provide a `tuner_params` fixture: the tuner's parameters with a small "
             "search space over model.<field> / trainer.<field> keys and few trials, e.g.\n\n"
             "    @pytest.fixture\n    def tuner_params(self):\n"
             "        return {\"trials\": 4, \"space\": {\"trainer.learning_rate\": [0.001, 0.01]}}\n")

    @pytest.fixture
    def component_params(self, tuner_params: dict[str, Any]) -> dict[str, Any]:
        return tuner_params

    @pytest.fixture
    def tuning(self, component: Component, aios_run_context: Callable[..., RunContext]) -> Tuning:
        objective = _Objective()
        pm = manager_with(component)
        run = aios_run_context(pm)
        run.phase = "tune"
        result = pm.hook.aios_tune(objective=objective, run=run)
        if not isinstance(result, TuneResult):
            fail(f"aios_tune of {label_of(self.kind, component.name)} returned {type(result).__name__}; "
                 "it must return an aios_core.TuneResult")
        return Tuning(result=result, objective=objective)

    def test_calls_the_objective_with_model_and_trainer_parameters(self, component_name: str,
                                                                  tuning: Tuning) -> None:
        label = label_of(self.kind, component_name)
        calls = tuning.objective.calls
        if not calls:
            fail(f"{label} never called the objective; each trial must call objective(params)")
        keys = sorted({key for params, _ in calls for key in params if not str(key).startswith(("model.", "trainer."))})
        if keys:
            fail(f"{label} called the objective with keys {keys}; a run accepts only model.<field> and "
                 "trainer.<field> keys")

    def test_best_value_is_the_lowest_value_seen(self, component_name: str, tuning: Tuning) -> None:
        result, objective = tuning.result, tuning.objective
        if objective.several:
            pytest.skip("the tuner optimizes several objectives; which trial is best is its own rule")
        lowest = min(value for _, value in objective.calls) if objective.calls else None
        if lowest is None or not math.isclose(float(result.best_value), lowest, rel_tol=1e-9, abs_tol=1e-12):
            fail(f"{label_of(self.kind, component_name)} returned best_value={result.best_value!r}, but the lowest "
                 f"value the objective returned over its {len(objective.calls)} call(s) was {lowest!r} "
                 "(lower is better)")

    def test_best_params_are_the_params_that_gave_it(self, component_name: str, tuning: Tuning) -> None:
        result, objective = tuning.result, tuning.objective
        if not any(params == result.best_params and math.isclose(value, float(result.best_value), rel_tol=1e-9)
                   for params, value in objective.calls):
            fail(f"{label_of(self.kind, component_name)} returned best_params={result.best_params!r}, which is not a "
                 f"parameter set that gave best_value={result.best_value!r}; the objective was called with: "
                 + "; ".join(f"{params!r} -> {value:.6g}" for params, value in objective.calls[:10]))
