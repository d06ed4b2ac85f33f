"""The search space as the stack writes it, checked and turned into dimensions (imports no optuna).

A space maps ``model.<field>`` / ``trainer.<field>`` to a list of choices (any values,
lists included: ``[[64], [128, 64]]``) or a range ``{low, high, log, step}``, integer
when the component's parameter is an integer. Every problem is one ``(path, message)``
pair, the path a tuple of keys inside the tuner's section.
"""

from __future__ import annotations

import difflib
import json
import math
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

Problem = tuple[tuple[Any, ...], str]

RANGE_KEYS = ("low", "high", "log", "step")
ROLES = {"model": "framework", "trainer": "trainer"}


@dataclass(frozen=True)
class Dimension:
    """One searched parameter: ``categorical`` (``choices``), ``int`` or ``float`` (``low``..``high``)."""

    name: str
    kind: str
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None

    def labels(self) -> tuple[Any, ...]:
        """The choices as Optuna stores them: scalars as they are, lists and mappings as JSON text."""
        return tuple(choice if _scalar(choice) else json.dumps(choice) for choice in self.choices)

    def value(self, stored: Any) -> Any:
        """The parameter value a stored choice (a label) stands for."""
        if self.kind != "categorical":
            return stored
        return self.choices[self.labels().index(stored)]


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer_field(component: Any, field: str) -> bool | None:
    """Whether the component's parameter is an integer (not a float), or None when it is not known."""
    info = type(component.params).model_fields.get(field) if component is not None else None
    if info is None:
        return None
    arms: list[Any] = []
    pending = [info.annotation]
    while pending:
        annotation = pending.pop()
        if get_origin(annotation) is Union or isinstance(annotation, types.UnionType):
            pending += list(get_args(annotation))
        elif get_origin(annotation) is Annotated:
            pending.append(get_args(annotation)[0])
        else:
            arms.append(annotation)
    return int in arms and float not in arms


def _component_problems(name: str, field: str, component: Any, role: str) -> list[Problem]:
    fields = list(type(component.params).model_fields)
    if field in fields:
        return []
    close = difflib.get_close_matches(field, fields, n=1)
    return [(("space", name), f"unknown parameter: {role} '{component.name}' has no parameter '{field}'; expected "
                              f"{name.split('.')[0]}.<one of: {', '.join(fields)}>"
                              + (f"; did you mean '{name.split('.')[0]}.{close[0]}'?" if close else ""))]


def _range(name: str, spec: Mapping[str, Any], component: Any, field: str) -> tuple[Dimension | None, list[Problem]]:
    path = ("space", name)
    problems: list[Problem] = []
    unknown = [key for key in spec if key not in RANGE_KEYS]
    for key in unknown:
        problems.append(((*path, key), f"unknown key of a range; expected {', '.join(RANGE_KEYS)}"))
    for key in ("low", "high"):
        if key not in spec:
            problems.append((path, f"a range needs '{key}': {{low: 1e-4, high: 1e-2, log: true}}"))
        elif not _is_number(spec[key]) or not math.isfinite(spec[key]):
            problems.append(((*path, key), f"found {spec[key]!r}, expected a finite number"))
    log, step = spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        problems.append(((*path, "log"), f"found {log!r}, expected true or false"))
    if step is not None and (not _is_number(step) or step <= 0):
        problems.append(((*path, "step"), f"found {step!r}, expected a number above 0"))
    if problems:
        return None, problems
    low, high = spec["low"], spec["high"]
    if low > high:
        problems.append((path, f"low {low} > high {high}: the range is empty; swap them"))
    if log and low <= 0:
        problems.append(((*path, "low"), f"found low {low} with log: true, but a log range must lie above 0 "
                                         "(log(0) is undefined); raise low, or drop log"))
    integer = _integer_field(component, field)
    if integer is None:
        integer = isinstance(low, int) and isinstance(high, int) and (step is None or isinstance(step, int))
    if integer and not all(isinstance(v, int) for v in (low, high) if v is not None):
        problems.append((path, f"parameter '{field}' is an integer; low and high must be integers "
                               f"(found {low}, {high})"))
    if integer and step is not None and not isinstance(step, int):
        problems.append(((*path, "step"), f"found {step!r}, expected an integer step for an integer parameter"))
    if log and step is not None and (not integer or step != 1):
        problems.append(((*path, "step"), "a range takes log: true or a step, not both (Optuna samples a log range "
                                          "continuously)"))
    if component is not None and not problems:
        for key in ("low", "high"):
            problem = component.override_problem(field, spec[key])
            if problem:
                problems.append(((*path, key), problem))
    if problems:
        return None, problems
    return Dimension(name, "int" if integer else "float", low=low, high=high, log=log,
                     step=step if step is not None else (1 if integer else None)), []


def parse_space(space: Mapping[str, Any], components: Mapping[str, Any] | None = None) -> tuple[list[Dimension],
                                                                                               list[Problem]]:
    """The space's dimensions and every problem with it, one per mistake.

    ``components`` maps roles (``model``, ``trainer``) to the stack's configured components;
    when given, each name must be a parameter of its component and each choice and bound
    a value its ``Params`` accepts.
    """
    dimensions: list[Dimension] = []
    problems: list[Problem] = []
    if not space:
        return [], [(("space",), "the search space is empty; expected e.g. space: {trainer.learning_rate: "
                                 "{low: 1e-4, high: 1e-2, log: true}}")]
    for name, spec in space.items():
        path = ("space", name)
        role, _, field = str(name).partition(".")
        if role not in ROLES or not field:
            problems.append((path, f"found '{name}', expected model.<parameter> or trainer.<parameter>"))
            continue
        component = (components or {}).get(role)
        if components and component is None:
            problems.append((path, f"the stack has no {ROLES[role]} to take '{name}'"))
            continue
        if component is not None:
            found = _component_problems(name, field, component, ROLES[role])
            if found:
                problems += found
                continue
        if isinstance(spec, list):
            if not spec:
                problems.append((path, "empty choices: give at least one value, e.g. [64, 128]"))
                continue
            bad = [(index, component.override_problem(field, choice)) for index, choice in enumerate(spec)
                   if component is not None]
            bad = [(index, problem) for index, problem in bad if problem]
            problems += [((*path, index), problem) for index, problem in bad]
            labels = [choice if _scalar(choice) else json.dumps(choice, sort_keys=True) for choice in spec]
            if len(set(map(repr, labels))) != len(labels):
                problems.append((path, "a choice appears twice; list each value once"))
            elif not bad:
                dimensions.append(Dimension(str(name), "categorical", choices=tuple(spec)))
        elif isinstance(spec, Mapping):
            dimension, found = _range(str(name), spec, component, field)
            problems += found
            if dimension is not None:
                dimensions.append(dimension)
        else:
            problems.append((path, f"found {spec!r}, expected a list of choices ([a, b]) or a range "
                                   "{low: ..., high: ..., log: true|false, step: ...}"))
    return dimensions, problems
