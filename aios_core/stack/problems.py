"""Where a stack's values came from, and how a problem with one is phrased.

Every problem is one line: ``FILE:LINE: FIELD.PATH: found X, expected Y``, or
``--set: FIELD.PATH: ...`` when the value came from a ``--set`` override.
"""

from __future__ import annotations

import difflib
from typing import Any, NamedTuple

from pydantic import BaseModel, ValidationError


class Problem(NamedTuple):
    """One thing wrong with a stack, printed as ``file:line: field.path: message``."""

    source: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class StackError(Exception):
    """A stack cannot run; ``problems`` holds every problem found, one line each."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class Positions:
    """Where each field path came from: the file and line, or ``--set``."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[tuple, int] = {}
        self.overridden: set[tuple] = set()

    def record(self, node: Any, path: tuple = ()) -> None:
        """Note the line of every key and item under a composed YAML ``node``."""
        import yaml

        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                self.lines[path + (key.value,)] = key.start_mark.line + 1
                self.record(value, path + (key.value,))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.record(item, path + (index,))

    def problem(self, path: tuple, message: str) -> Problem:
        """A problem at ``path``, located at the nearest enclosing field that has a line (or ``--set``)."""
        dotted = ".".join(str(p) for p in path)
        for depth in range(len(path), -1, -1):
            if path[:depth] in self.overridden:
                return Problem("--set", None, dotted, message)
            if path[:depth] in self.lines:
                return Problem(self.source, self.lines[path[:depth]], dotted, message)
        return Problem(self.source, None, dotted, message)


# ---------------------------------------------------------------- pydantic's errors, phrased
def describe(value: Any) -> str:
    """A value as a message shows it: short, quoted like Python."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _expected(item: dict[str, Any]) -> str:
    """Pydantic's message, phrased as what was expected."""
    if item["type"] == "string_pattern_mismatch":
        return f"a string matching the pattern {item['ctx']['pattern']}"
    message = item["msg"]
    for prefix, replacement in (("Input should be ", ""), ("Value error, ", ""), ("String should ", "a string that should "),
                                ("List should ", "a list that should "), ("Dictionary should ", "a mapping that should ")):
        if message.startswith(prefix):
            return replacement + message[len(prefix):]
    return message


def _expected_fields(model: type[BaseModel], selector: str | None) -> list[str]:
    names = [selector] if selector else []
    return names + [n for n in model.model_fields if n != selector]


def validation_problems(error: ValidationError, data: Any, prefix: tuple, positions: Positions,
                        model: type[BaseModel], selector: str | None = None) -> list[Problem]:
    """One problem per pydantic error, located at the deepest field of ``data`` it names."""
    problems = []
    for item in error.errors():
        path: list[Any] = []
        node: Any = data
        loc = list(item["loc"])
        for index, part in enumerate(loc):
            if (isinstance(node, dict) and part in node
                    or isinstance(node, list) and isinstance(part, int) and part < len(node)):
                node = node[part]
                path.append(part)
            elif index == len(loc) - 1 and isinstance(part, str) and item["type"] in ("missing", "extra_forbidden"):
                path.append(part)
        full = prefix + tuple(path)
        if item["type"] == "missing":
            message = "required field is missing"
        elif item["type"] == "extra_forbidden":
            container: Any = model
            for part in path[:-1]:
                annotation = getattr(container, "model_fields", {}).get(part)
                inner = getattr(annotation, "annotation", None) if annotation else None
                container = inner if isinstance(inner, type) and issubclass(inner, BaseModel) else container
            allowed = _expected_fields(container, selector if container is model else None)
            close = difflib.get_close_matches(str(path[-1]), allowed, n=1)
            message = (f"unknown field; expected one of: {', '.join(allowed)}" if allowed
                       else "unknown field; this component takes no parameters")
            message += f"; did you mean '{close[0]}'?" if close else ""
        else:
            message = f"found {describe(item.get('input'))}, expected {_expected(item)}"
        problems.append(positions.problem(full, message))
    return problems
