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

from aios_core.stack.problems import Positions, Problem, StackError, validation_problems
from aios_core.stack.schema import DEFAULT_MONITORS, StackFile
from aios_core.vocabulary import LIST_ROLES


def _read_yaml(path: Path, positions: Positions) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StackError([Problem(str(path), None, "", "no such stack file")]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise StackError([Problem(str(path), None, "", f"cannot read the stack file: {error}")]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        reason = getattr(error, "problem", None) or str(error)
        raise StackError([Problem(str(path), mark.line + 1 if mark else None, "",
                                  f"invalid YAML: {reason}")]) from None
    if not isinstance(data, dict):
        found = "an empty file" if data is None else f"a {type(data).__name__}"
        raise StackError([Problem(str(path), 1, "", f"found {found}, expected a mapping of sections (name, data, model, ...)")])
    positions.record(node)
    return data


_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


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

    return _ENV_REFERENCE.sub(substitute, value)


def _apply_override(data: dict[str, Any], override: str, positions: Positions) -> Problem | None:
    """Apply one ``--set a.b.0.c=value`` (the value is parsed as YAML)."""
    import yaml

    dotted, sep, raw = override.partition("=")
    if not sep or not dotted or any(not part for part in dotted.split(".")):
        return Problem("--set", None, override, "expected FIELD.PATH=VALUE, e.g. --set trainer.epochs=3")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    parts: list[Any] = [int(p) if p.isdigit() else p for p in dotted.split(".")]
    target: Any = data
    for depth, part in enumerate(parts[:-1]):
        child = parts[depth + 1]
        if isinstance(target, list):
            if not isinstance(part, int) or part >= len(target):
                return Problem("--set", None, dotted, f"no item {part} in {'.'.join(map(str, parts[:depth])) or 'the stack'} "
                                                      f"(it has {len(target)})")
        elif not isinstance(target, dict):
            return Problem("--set", None, dotted, f"{'.'.join(map(str, parts[:depth]))} is not a section")
        elif part not in target or target[part] is None:
            target[part] = [] if isinstance(child, int) else {}
        target = target[part]
    last = parts[-1]
    if isinstance(target, dict) or isinstance(target, list) and isinstance(last, int) and last < len(target):
        target[last] = value
    else:
        return Problem("--set", None, dotted, "cannot set this path")
    positions.overridden.add(tuple(parts))
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
        for role in ("tuner", "deployer"):
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


def read_stack_file(path: str | os.PathLike[str], overrides: tuple[str, ...] | list[str] = (), *,
                    locked: bool = False) -> StackFileContents:
    """Read, interpolate, override and check the structure of a stack file; no plugin is loaded."""
    path = Path(path)
    positions = Positions(str(path))
    data = _read_yaml(path, positions)
    problems: list[Problem] = []
    lock = data.pop("lock", None)
    if lock is not None and not locked:
        problems.append(positions.problem(("lock",), "unknown field; this is a lock file: run it with aios run --lock FILE"))
    data = _interpolate(data, (), positions, problems)
    for override in overrides:
        problem = _apply_override(data, override, positions)
        if problem:
            problems.append(problem)
    if problems:
        raise StackError(problems)
    try:
        settings = StackFile.model_validate(data)
    except ValidationError as error:
        raise StackError(validation_problems(error, data, (), positions, StackFile)) from None
    return StackFileContents(data, settings, positions, lock)
