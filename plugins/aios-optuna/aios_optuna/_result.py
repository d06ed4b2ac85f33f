"""From a finished study to a ``TuneResult``: the trials table, the Pareto front and the chosen trial."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aios_core import TuneResult
from aios_optuna import OBJECTIVES, SelectRule

if TYPE_CHECKING:
    import optuna

    from aios_optuna._study import Search


class AllTrialsFailed(RuntimeError):
    """No trial completed; the message holds the first trial's error."""


def first_error(study: optuna.Study, errors: dict[int, BaseException]) -> BaseException:
    """The error to fail the run with when no trial completed: the first failed trial's, raised here if it was."""
    from aios_optuna._study import _state

    failed = sorted((t for t in study.get_trials(deepcopy=False) if _state(t) == "failed"), key=lambda t: t.number)
    if not failed:
        return AllTrialsFailed(f"no trial of study '{study.study_name}' completed "
                               f"({len(study.trials)} trials: none finished; raise tuner.trials or timeout_s)")
    first = failed[0]
    if first.number in errors:
        return errors[first.number]
    return AllTrialsFailed(f"every trial failed; the first (trial {first.number}): "
                           f"{first.user_attrs.get('error', 'no error recorded')}")


def select(front: list[optuna.trial.FrozenTrial], objectives: list[str], rule: SelectRule) -> optuna.trial.FrozenTrial:
    """The front trial the rule picks: within ``max_accuracy_drop`` of the best val_accuracy, best by ``minimize``."""
    candidates = list(front)
    if rule.max_accuracy_drop is not None:
        index = objectives.index("val_accuracy")
        best = max(t.values[index] for t in candidates)
        candidates = [t for t in candidates if t.values[index] >= best - rule.max_accuracy_drop - 1e-12]
    key = rule.minimize or objectives[-1]
    index, sign = objectives.index(key), (1 if OBJECTIVES[key] == "minimize" else -1)
    return min(candidates, key=lambda t: (sign * t.values[index], t.number))


def _row(trial: optuna.trial.FrozenTrial, search: Search, front: set[int], chosen: int) -> dict[str, Any]:
    from aios_optuna._study import _state

    objectives = list(search.params.objectives)
    values = dict(zip(objectives, trial.values)) if trial.values is not None else None
    by_name = {d.name: d for d in search.dimensions}
    params = {name: by_name[name].value(value) if name in by_name else value for name, value in trial.params.items()}
    trained = trial.user_attrs.get("trained") or {}
    row: dict[str, Any] = {"number": trial.number, "state": _state(trial), "params": params, "values": values,
                           "epochs": trained.get("epochs"), "seconds": trained.get("seconds"),
                           "worker": (trial.user_attrs.get("worker") or {}).get("index")}
    noise = (trial.user_attrs.get("metrics") or {}).get("latency_noise")
    if noise is not None:
        row["latency_noise"] = noise
    if trial.user_attrs.get("error"):
        row["error"] = trial.user_attrs["error"]
    if len(objectives) > 1:
        row["pareto"] = trial.number in front
    row["chosen"] = trial.number == chosen
    return row


def _redacted(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 -- an unparsable URL is shown without its credentials part
        return url.split("@")[-1]


def result_of(study: optuna.Study, search: Search) -> TuneResult:
    params = search.params
    objectives = list(params.objectives)
    trials = study.get_trials(deepcopy=False)
    if len(objectives) == 1:
        chosen, front = study.best_trial, []
    else:
        front = sorted(study.best_trials, key=lambda t: t.number)
        chosen = select(front, objectives, params.select)
    by_name = {d.name: d for d in search.dimensions}
    best_params = {name: by_name[name].value(value) if name in by_name else value
                   for name, value in chosen.params.items()}
    rows = [_row(t, search, {t.number for t in front}, chosen.number) for t in trials]
    params_of = {row["number"]: row["params"] for row in rows}
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    summary: dict[str, Any] = {
        "study": study.study_name, "storage": _redacted(search.url),
        "objectives": {name: OBJECTIVES[name] for name in objectives}, "sampler": params.sampler,
        "pruner": params.effective_pruner, "chosen_trial": chosen.number,
        "chosen_values": dict(zip(objectives, chosen.values)),
        "counts": counts, "epochs_trained": sum(row["epochs"] or 0 for row in rows),
    }
    if front:
        summary["pareto_front"] = [{"number": t.number, "values": dict(zip(objectives, t.values)),
                                    "params": params_of[t.number]} for t in front]
    return TuneResult(best_params=best_params, best_value=float(chosen.values[0]), trials=rows, summary=summary)
