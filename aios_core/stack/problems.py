"""Where a stack's values came from, and how a problem with one is phrased.

Every problem is one line: ``FILE:LINE: FIELD.PATH: found X, expected Y``, or
``--set: FIELD.PATH: ...`` when the value came from a ``--set`` override.
"""

from __future__ import annotations

import datetime
import difflib
import json
import unicodedata
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
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        # one line whatever a key, a value or a plugin's message holds: line breaks are shown escaped
        return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


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
        """A problem at ``path``: ``--set`` if it or a section holding it was set there (the file's lines
        below an override are stale), else the line of the nearest enclosing field in the file."""
        dotted = ".".join(str(p) for p in path)
        if any(path[:depth] in self.overridden for depth in range(len(path) + 1)):
            return Problem("--set", None, dotted, message)
        for depth in range(len(path), -1, -1):
            if path[:depth] in self.lines:
                return Problem(self.source, self.lines[path[:depth]], dotted, message)
        return Problem(self.source, None, dotted, message)


# ---------------------------------------------------------------- values and pydantic's errors, phrased
def kind_of(value: Any) -> str:
    """What a YAML value is, in the words of a stack's author (never a Python type name)."""
    kinds = ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
             ((list, tuple), "a list"), (dict, "a mapping"), ((set, frozenset), "a set"),
             (datetime.date, "a date"), (bytes, "binary data"), (type(None), "nothing (null)"))
    return next((kind for types, kind in kinds if isinstance(value, types)), "a value")


def describe(value: Any) -> str:
    """A value as a message shows it: short; strings quoted, containers as flow YAML."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, ensure_ascii=False, default=str)
    elif isinstance(value, (str, int, float)):
        text = repr(value)
    else:
        text = f"{value} ({kind_of(value)})"
    return text if len(text) <= 60 else text[:57] + "..."


def non_ascii(text: str) -> str | None:
    """Which characters of ``text`` are not ASCII (a Cyrillic 'о' looks like a Latin 'o'), or None."""
    found = [f"U+{ord(char):04X} {unicodedata.name(char, 'unnamed character')} at position {index}"
             for index, char in enumerate(text, 1) if not char.isascii()]
    if not found:
        return None
    return "it contains non-ASCII characters: " + ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")


_MAPPING_TYPES = ("model_type", "model_attributes_type", "dataclass_type", "dict_type", "mapping_type")


def expected(item: dict[str, Any]) -> str:
    """Pydantic's message, phrased as what was expected, without Python's or AIOS's class names."""
    if item["type"] == "string_pattern_mismatch":
        return f"a string matching the pattern {item['ctx']['pattern']}"
    if item["type"] in _MAPPING_TYPES:
        return "a mapping"
    if item["type"] == "none_required":
        return "nothing (null)"
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
            note = non_ascii(str(path[-1]))
            message = (f"unknown field; expected one of: {', '.join(allowed)}" if allowed
                       else "unknown field; this component takes no parameters")
            message += (f"; {note}" if note else "") + (f"; did you mean '{close[0]}'?" if close else "")
        else:
            value = item.get("input")
            note = non_ascii(value) if isinstance(value, str) else None
            message = f"found {describe(value)}, expected {expected(item)}" + (f"; {note}" if note else "")
        problems.append(positions.problem(full, message))
    return problems
