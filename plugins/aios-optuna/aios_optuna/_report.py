"""The tune phase's report: PNGs of the optimisation history, the parameter importances and the Pareto front.

Drawn with matplotlib from the trials (the same figures as ``optuna.visualization``,
without its experimental warnings), written atomically to the run's ``report/``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aios_core import TuneResult, atomic_path, one_line
from aios_optuna import OBJECTIVES

if TYPE_CHECKING:
    import optuna

    from aios_optuna._study import Search

log = logging.getLogger("aios.optuna")


def _save(figure: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


def _history(result: TuneResult, objective: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    done = [row for row in result.trials if row["values"] is not None and row["state"] == "completed"]
    figure, axes = plt.subplots(figsize=(7, 4))
    numbers = [row["number"] for row in done]
    values = [row["values"][objective] for row in done]
    axes.scatter(numbers, values, label="completed trial", s=18)
    pruned = [row for row in result.trials if row["state"] == "pruned"]
    if pruned:
        axes.scatter([row["number"] for row in pruned], [0.0] * len(pruned), marker="x", color="grey",
                     label="pruned (at 0)", s=18)
    best, running = [], None
    better = min if OBJECTIVES[objective] == "minimize" else max
    for value in values:
        running = value if running is None else better(running, value)
        best.append(running)
    axes.plot(numbers, best, color="tab:red", label="best so far")
    axes.set(title=f"Optimisation history ({objective})", xlabel="trial", ylabel=objective)
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, path)


def _importances(study: optuna.Study, search: Search, path: Path) -> bool:
    import matplotlib.pyplot as plt
    import optuna

    completed = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(completed) < 2 or len(search.dimensions) < 1:
        return False
    try:
        import sklearn  # noqa: F401 -- fANOVA fits scikit-learn's random forests

        evaluator, method = optuna.importance.FanovaImportanceEvaluator(seed=search.seed), "fANOVA"
    except ImportError:  # PED-ANOVA needs nothing more than Optuna
        evaluator, method = optuna.importance.PedAnovaImportanceEvaluator(), "PED-ANOVA"
    try:
        importances = optuna.importance.get_param_importances(
            study, evaluator=evaluator, target=(lambda t: t.values[0]) if len(study.directions) > 1 else None)
    except Exception as error:  # noqa: BLE001 -- too few distinct trials for an estimate: no figure, say why
        log.info("optuna: no parameter importances: %s", one_line(error))
        return False
    figure, axes = plt.subplots(figsize=(7, 0.5 + 0.5 * max(1, len(importances))))
    names = list(importances)[::-1]
    axes.barh(names, [importances[name] for name in names])
    axes.set(title=f"Parameter importances ({method}, {search.params.objectives[0]})", xlabel="importance")
    _save(figure, path)
    return True


def _front(result: TuneResult, objectives: list[str], path: Path) -> None:
    import matplotlib.pyplot as plt

    x_name, y_name = objectives[0], objectives[1]
    done = [row for row in result.trials if row["values"] is not None and row["state"] == "completed"]
    figure, axes = plt.subplots(figsize=(7, 5))
    others = [row for row in done if not row.get("pareto")]
    front = sorted((row for row in done if row.get("pareto")), key=lambda row: row["values"][x_name])
    axes.scatter([r["values"][x_name] for r in others], [r["values"][y_name] for r in others], color="lightgrey",
                 label="trial", s=18)
    axes.plot([r["values"][x_name] for r in front], [r["values"][y_name] for r in front], marker="o",
              color="tab:blue", label="Pareto front")
    for row in front:
        axes.annotate(str(row["number"]), (row["values"][x_name], row["values"][y_name]), fontsize=8,
                      textcoords="offset points", xytext=(4, 4))
    chosen = [row for row in done if row["chosen"]]
    if chosen:
        axes.scatter([chosen[0]["values"][x_name]], [chosen[0]["values"][y_name]], marker="*", s=200,
                     color="tab:red", label=f"chosen (trial {chosen[0]['number']})", zorder=3)
    axes.set(title="Pareto front", xlabel=f"{x_name} ({OBJECTIVES[x_name]})", ylabel=f"{y_name} ({OBJECTIVES[y_name]})")
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, path)


def write_report(study: optuna.Study, search: Search, result: TuneResult, folder: Path) -> list[str]:
    """Write the PNGs; their paths relative to the run directory."""
    import matplotlib

    matplotlib.use("Agg")
    folder.mkdir(parents=True, exist_ok=True)
    objectives = list(search.params.objectives)
    written = []
    _history(result, objectives[0], folder / "tune_history.png")
    written.append("report/tune_history.png")
    if _importances(study, search, folder / "tune_importances.png"):
        written.append("report/tune_importances.png")
    if len(objectives) > 1:
        _front(result, objectives, folder / "tune_pareto_front.png")
        written.append("report/tune_pareto_front.png")
    return written
