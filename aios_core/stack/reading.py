"""Reading a stack file: YAML with the line of every field, ``${ENV}`` interpolation, ``--set`` overrides.

``read_stack_file`` stops before any plugin is loaded: it checks the stack's own fields
(``aios_core.stack.schema``) and leaves each component's parameters to its ``Params``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aios_core.stack.problems import Positions, Problem, StackError, describe, non_ascii, validation_problems
from aios_core.stack.schema import DEFAULT_MONITORS, OPTIONAL_SECTIONS, REQUIRED_SECTIONS, StackFile
from aios_core.stack.yaml_file import parse_yaml, read_yaml
from aios_core.vocabulary import LIST_ROLES

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_ANY_REFERENCE = re.compile(r"\$\{[^}]*\}")


def _interpolate(value: Any, path: tuple, positions: Positions, problems: list[Problem]) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string value."""
    if isinstance(value, dict):
        return {k: _interpolate(v, path + (k,), positions, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, path + (i,), positions, problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        problems.append(positions.problem(path, f"found '{match.group(0)}', but environment variable {name} is not set; "
                                                f"set it or write ${{{name}:-default}}"))
        return match.group(0)

    for match in _ANY_REFERENCE.finditer(value):  # ${AIOS_EPОCHS} with a Cyrillic О would stay unreplaced
        if not _ENV_REFERENCE.fullmatch(match.group(0)):
            note = non_ascii(match.group(0))
            message = f"found {match.group(0)!r}, expected ${{VAR}} or ${{VAR:-default}} with VAR of ASCII letters, digits and _"
            problems.append(positions.problem(path, message + (f"; {note}" if note else "")))
    return _ENV_REFERENCE.sub(substitute, value)


def _apply_override(data: dict[str, Any], override: str, positions: Positions) -> Problem | None:
    """Apply one ``--set a.b.0.c=value`` (the value is parsed as YAML; if it is not YAML, it is a string).

    Every field the override creates is marked as coming from ``--set``, so a problem
    with it (an unknown section, a missing ``plugin``) is blamed on the option.
    """
    import yaml

    dotted, sep, raw = override.partition("=")
    if not sep or not dotted or any(not part for part in dotted.split(".")):
        return Problem("--set", None, override, "expected FIELD.PATH=VALUE, e.g. --set trainer.epochs=3")
    try:
        value = parse_yaml(raw, "--set")[1] if raw else ""
    except StackError as error:
        return Problem("--set", None, dotted, error.problems[0].message)
    except yaml.YAMLError:
        value = raw
    parts = dotted.split(".")
    path: list[Any] = []  # the keys as used: an item number in a list, a string in a mapping
    target: Any = data
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth]) or "the stack"
        if isinstance(target, list):
            if not (part.isdigit() and int(part) < len(target)):
                expected = f"an item of {where} from 0 to {len(target) - 1}" if target else f"an item, but {where} is empty"
                return Problem("--set", None, dotted, f"found item {part}, expected {expected}")
            key: Any = int(part)
        elif isinstance(target, dict):
            key = part
        else:
            return Problem("--set", None, dotted, f"found {describe(target)} at {where}, expected a section to set a field in")
        path.append(key)
        if depth == len(parts) - 1:
            target[key] = value
        elif isinstance(target, dict) and target.get(key) is None:
            target[key] = [] if parts[depth + 1].isdigit() else {}
            positions.overridden.add(tuple(path))
        target = target[key]
    positions.overridden.add(tuple(path))
    return None


def role_path(role: str) -> tuple:
    """A role as a field path: ``compressors.0`` is ``("compressors", 0)``."""
    return tuple(int(p) if p.isdigit() else p for p in role.split("."))


@dataclass
class StackFileContents:
    """A stack file read and checked for structure, before any component is loaded."""

    data: dict[str, Any]
    settings: StackFile
    positions: Positions
    lock: Any = None

    def sections(self) -> dict[str, tuple[dict[str, Any], str]]:
        """Each role (``data``, ``compressors.0``, ...) with its section and the key naming its component."""
        sections: dict[str, tuple[dict[str, Any], str]] = {
            "data": (self.data["data"], "plugin"), "model": (self.data["model"], "framework")}
        trainer = dict(self.data.get("trainer") or {})
        trainer.setdefault("plugin", self.settings.model.framework)
        sections["trainer"] = (trainer, "plugin")
        for role in ("tuner", "deployer", "orchestrator"):
            if self.data.get(role):
                sections[role] = (self.data[role], "plugin")
        for role in LIST_ROLES:
            items = self.data.get(role, DEFAULT_MONITORS if role == "monitors" else [])
            for index, item in enumerate(items):
                sections[f"{role}.{index}"] = (item, "plugin")
        return sections

    def problem(self, role: str, key: str, message: str) -> Problem:
        """A problem located at ``role.key`` (e.g. ``compressors.0``, ``plugin``)."""
        return self.positions.problem((*role_path(role), key), message)


def _empty_sections(data: dict[str, Any], positions: Positions) -> list[Problem]:
    """An optional section left empty (only comments under ``trainer:``) is omitted; a required one is a problem."""
    problems = []
    for section in OPTIONAL_SECTIONS:
        if section in data and data[section] is None:
            del data[section]
    for section, selector in REQUIRED_SECTIONS.items():
        if section in data and data[section] is None:
            problems.append(positions.problem((section,), f"empty section; expected {selector}: NAME and its parameters"))
    for section in LIST_ROLES:
        items = data.get(section)
        for index, item in enumerate(items if isinstance(items, list) else ()):
            if item is None:
                problems.append(positions.problem((section, index), "empty item; expected plugin: NAME and its parameters"))
    return problems


def read_stack_file(path: str | os.PathLike[str], overrides: tuple[str, ...] | list[str] = (), *,
                    locked: bool = False) -> StackFileContents:
    """Read, interpolate, override and check the structure of a stack file; no plugin is loaded."""
    path = Path(path)
    positions = Positions(str(path))
    data = read_yaml(path, positions)
    problems: list[Problem] = []
    lock = data.pop("lock", None)
    if lock is not None and not locked:
        problems.append(positions.problem(("lock",), "unknown field; this is a lock file: run it with aios run --lock FILE"))
    data = _interpolate(data, (), positions, problems)
    for override in overrides:
        problem = _apply_override(data, override, positions)
        if problem:
            problems.append(problem)
    problems += _empty_sections(data, positions)
    if problems:
        raise StackError(problems)
    try:
        settings = StackFile.model_validate(data)
    except ValidationError as error:
        raise StackError(validation_problems(error, data, (), positions, StackFile)) from None
    return StackFileContents(data, settings, positions, lock)
