"""The last check before a run: each component checks its parameters against the environment (``aios_validate``).

Runs after the components were built and found to fit, before any run directory
exists, so ``aios validate`` knows everything ``aios run`` would find out at start-up:
a missing data file, a model factory that does not import, a ``cnn`` for rows that
have no image shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aios_core.components import streaming_refusal, task_refusal
from aios_core.context import ValidationContext
from aios_core.errors import one_line
from aios_core.plugins import new_plugin_manager, register
from aios_core.stack.problems import Positions, Problem
from aios_core.stack.reading import role_path

if TYPE_CHECKING:
    from aios_core.stack.validated import Stack


_GATES_OF_THE_OTHER_TASK = {"regression": ("min_accuracy", "max_accuracy_drop"),
                            "classification": ("max_rmse", "min_r2")}
_OTHER = {"regression": "classification", "classification": "regression"}


def check_environment(stack: Stack, positions: Positions, problems: list[Problem]) -> None:
    """Ask the datastore what its data will look like, then every component what cannot work; add the problems."""
    pm = new_plugin_manager(builtins=False)
    for role, component in stack.components.items():
        register(pm, component, role)

    def only(role: str, hook: str):
        others = [c for r, c in stack.components.items() if r != role]
        return pm.subset_hook_caller(hook, remove_plugins=others)

    settings = stack.settings
    context = ValidationContext(stack=stack.resolved, seed=settings.seed, threads=settings.threads, source=stack.source,
                                components=stack.components)
    if "data" in stack.components:
        try:
            data = only("data", "aios_describe_data")(context=context)
        except Exception as error:  # noqa: BLE001 -- a plugin's check may fail in any way; report it by name
            problems.append(positions.problem(("data",), f"datastore '{stack.components['data'].name}' could not "
                                                          f"describe its data: {one_line(error)}"))
            data = None  # the other components still check what they can
        context = ValidationContext(stack=stack.resolved, seed=settings.seed, threads=settings.threads,
                                    source=stack.source, data=data, components=stack.components)
        for role, component in stack.components.items():
            refusal = (task_refusal(component, data.task if data is not None else None)
                       or streaming_refusal(component, data is not None and data.streaming))
            if refusal:
                problems.append(positions.problem(role_path(role), refusal))
        if data is not None and data.task is not None:
            for gate in _GATES_OF_THE_OTHER_TASK[data.task]:
                if getattr(settings.evaluate, gate) is not None:
                    problems.append(positions.problem(("evaluate", gate), (
                        f"a {'classification' if data.task == 'regression' else 'regression'} gate, but the data's "
                        f"task is {data.task}; use {' or '.join(_GATES_OF_THE_OTHER_TASK[_OTHER[data.task]])} "
                        "or max_metric_drop")))
    for role, component in stack.components.items():
        path = role_path(role)
        try:
            results = only(role, "aios_validate")(context=context)
        except Exception as error:  # noqa: BLE001
            problems.append(positions.problem(path, f"{component.kind} '{component.name}' failed while checking its "
                                                    f"parameters: {one_line(error)}"))
            continue
        for result in results:
            for field, message in result or ():
                # a tuple is the path itself (its keys may hold dots: a tuner's space.model.hidden_units)
                parts = tuple(field) if isinstance(field, (tuple, list)) else tuple(
                    int(part) if part.isdigit() else part for part in str(field).split(".") if part)
                problems.append(positions.problem(path + parts, message))
