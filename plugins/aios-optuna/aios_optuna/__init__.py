"""AIOS tuner ``optuna``: searches any model or trainer parameter of the stack with Optuna.

Importing this package imports neither optuna nor numpy: ``aios plugins list`` stays
cheap. The search runs in ``aios_optuna._study``; the space is checked in
``aios_optuna._space`` (at ``aios validate``, against the stack's components' ``Params``).
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from aios_core import Params, RunContext, TuneResult, Tuner, ValidationContext, hookimpl

__version__ = "0.1.0"
__all__ = ["OBJECTIVES", "OptunaParams", "OptunaTuner", "SelectRule"]

OBJECTIVES: dict[str, str] = {"val_loss": "minimize", "val_accuracy": "maximize", "latency_ms": "minimize",
                              "size_bytes": "minimize"}
"""Each objective and its direction."""
Objective = Literal["val_loss", "val_accuracy", "latency_ms", "size_bytes"]


class SelectRule(Params):
    """Which trial of a Pareto front the final training uses (several objectives)."""

    max_accuracy_drop: float | None = Field(
        None, ge=0, le=1, description="Keep front trials within this val_accuracy of the front's best.")
    minimize: Objective | None = Field(
        None, description="Among those, the trial with the lowest value of this objective (default: the last "
                          "objective); a maximized objective (val_accuracy) picks the highest.")


class OptunaParams(Params):
    """The ``tuner:`` section of a stack (``plugin: optuna``)."""

    space: dict[str, Any] = Field(
        default_factory=dict, description="model.<field> / trainer.<field> -> a list of choices or a range "
                                          "{low, high, log, step}.")
    trials: int | None = Field(20, ge=1, description="Trials to finish (completed, pruned or failed); null: until "
                                                     "timeout_s.")
    timeout_s: float | None = Field(None, gt=0, description="Start no trial after this many seconds of tuning (by "
                                                         "this process: a resumed run counts anew).")
    sampler: Literal["tpe", "random", "cmaes", "nsga2"] = Field(
        "tpe", description="tpe, random, cmaes (ranges only) or nsga2 (several objectives); seeded by the stack's "
                           "seed.")
    pruner: Literal["median", "hyperband", "none"] | None = Field(
        None, description="Stops unpromising trials by their epochs: median, hyperband (one objective) or none; "
                          "default median for one trainer objective, none for several (median then judges val_loss).")
    startup_trials: int = Field(2, ge=0, description="Trials that finish before the pruner may prune.")
    min_epochs: int = Field(1, ge=1, description="Epochs every trial trains before the pruner may stop it.")
    objectives: list[Objective] = Field(
        default_factory=lambda: ["val_loss"], min_length=1,
        description="val_loss, val_accuracy, latency_ms (batch 1, after the stack's compressors), size_bytes.")
    select: SelectRule = Field(default_factory=SelectRule, description="Several objectives: which front trial "
                                                                      "the final training uses.")
    storage: str | None = Field(None, description="An Optuna RDB URL (postgresql://..., sqlite:///...); default: "
                                                  "sqlite in the run directory (tune/study.db).")
    storage_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description=(
        "The name of an environment variable holding the storage URL: a URL with a password stays out of the "
        "run's lock file."))
    study_name: str | None = Field(None, description="The study's name in the storage; default: the stack's name.")
    n_workers: int = Field(1, ge=1, description="Processes working on the study at once on this machine.")

    @field_validator("objectives", mode="before")
    @classmethod
    def _one_objective(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _coherent(self) -> OptunaParams:
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError("objectives: each objective once")
        if self.trials is None and self.timeout_s is None:
            raise ValueError("give trials or timeout_s (or both), else the search never ends")
        several = len(self.objectives) > 1
        if several and self.pruner == "hyperband":
            raise ValueError("pruner: hyperband needs one objective; with several use pruner: median (which judges "
                             "each epoch's val_loss) or none")
        if self.storage and self.storage_env:
            raise ValueError("give storage or storage_env, not both")
        rule = self.select
        if rule.max_accuracy_drop is not None and "val_accuracy" not in self.objectives:
            raise ValueError("select.max_accuracy_drop needs val_accuracy among the objectives")
        if rule.minimize is not None and rule.minimize not in self.objectives:
            raise ValueError(f"select.minimize: {rule.minimize} is not among the objectives {self.objectives}")
        if several and self.sampler == "cmaes":
            raise ValueError("sampler: cmaes optimizes one objective; with several use nsga2, tpe or random")
        return self

    @property
    def effective_pruner(self) -> str:
        """The pruner in use: the default is median when the one objective is a metric the trainer reports per epoch."""
        if self.pruner is not None:
            return self.pruner
        return "median" if self.objectives in (["val_loss"], ["val_accuracy"]) else "none"


class OptunaTuner(Tuner):
    """Searches the stack's model and trainer parameters with Optuna: pruned, resumable, in parallel."""

    Params = OptunaParams
    params: OptunaParams

    @hookimpl
    def aios_validate(self, context: ValidationContext) -> list[tuple[Any, str]]:
        from aios_optuna._space import parse_space

        components = {role: component for role, component in context.components.items() if role in ("model", "trainer")}
        dimensions, problems = parse_space(self.params.space, components or None)
        problems += self._storage_problems()
        import multiprocessing

        if self.params.n_workers > 1 and "fork" not in multiprocessing.get_all_start_methods():
            problems.append((("n_workers",), f"found {self.params.n_workers}, but this system cannot fork worker "
                                             "processes; use n_workers: 1 and run more `aios run` processes on one "
                                             "storage URL"))
        if self.params.sampler == "cmaes" and any(d.kind == "categorical" for d in dimensions):
            names = ", ".join(d.name for d in dimensions if d.kind == "categorical")
            problems.append((("sampler",), f"cmaes samples ranges only, and the space has choices ({names}); "
                                           "use tpe, or make them ranges"))
        return problems

    def _storage_problems(self) -> list[tuple[Any, str]]:
        from urllib.parse import urlsplit

        params = self.params
        if params.storage_env and not os.environ.get(params.storage_env):
            return [(("storage_env",), f"found '{params.storage_env}', but that environment variable is not set (or is "
                                       f"empty); expected the storage URL in it: export {params.storage_env}="
                                       "postgresql://user:password@host/db, or drop storage_env")]
        if params.storage and urlsplit(params.storage).password:
            return [(("storage",), "the URL holds a password, which the run's lock file would keep; put the URL in "
                                   "an environment variable and name it: storage_env: AIOS_OPTUNA_STORAGE")]
        return []

    @hookimpl
    def aios_tune(self, objective: Any, run: RunContext) -> TuneResult:
        from aios_optuna._study import tune

        return tune(self.params, objective, run)
