"""From a read stack file to configured components: find, import and build each one, then check they fit.

This is the layer that knows the plugin index, so an unknown component's message
says which distribution provides it (the loader below only says it is not installed).
"""

from __future__ import annotations

import difflib
import os
from typing import Any

from pydantic import ValidationError

from aios_core.components import Component
from aios_core.errors import one_line
from aios_core.plugins import (
    ComponentEntry,
    PluginError,
    UnknownComponent,
    build_component,
    find_entry,
    load_component,
    strict_mode,
)
from aios_core.stack.problems import Positions, Problem, StackError, non_ascii, validation_problems
from aios_core.stack.reading import read_stack_file, role_path
from aios_core.stack.validated import Stack
from aios_core.vocabulary import ROLE_KINDS


def _unknown_message(error: UnknownComponent) -> str:
    """The loader's message, or the install command when the plugin index knows who provides the name."""
    from aios_core.catalog import distribution_providing

    note = non_ascii(error.name)
    if note:  # a look-alike letter: "did you mean 'torch'" alone would show two identical names
        close = difflib.get_close_matches(error.name, error.available, n=1, cutoff=0.5)
        return (f"no {error.kind} named '{error.name}' is installed; {note} (component names are ASCII)"
                + (f"; did you mean '{close[0]}'?" if close else ""))
    distribution = distribution_providing(error.kind, error.name)
    if distribution:
        return f"no {error.kind} named '{error.name}' is installed; it is provided by {distribution}: aios plugins install {distribution}"
    return str(error)


def _select(role: str, section: dict[str, Any], selector: str, positions: Positions, problems: list[Problem],
            skipped: list[str]) -> tuple[ComponentEntry, Component] | None:
    """Find, import and configure the component a section names.

    A monitor whose plugin is installed but broken is skipped (noted in ``skipped``)
    unless AIOS_STRICT_PLUGINS is set: watching a run must never stop it.
    """
    kind = ROLE_KINDS[role.split(".")[0]]
    path = role_path(role)
    name = section[selector]
    try:
        entry = find_entry(kind, name)
    except UnknownComponent as error:
        problems.append(positions.problem(path + (selector,), f"found '{name}': {_unknown_message(error)}"))
        return None
    try:
        cls = load_component(entry)
    except PluginError as error:
        problem = positions.problem(path + (selector,), f"found '{name}': {error}")
        if kind == "monitor" and not strict_mode():
            skipped.append(str(problem))
        else:
            problems.append(problem)
        return None
    raw = {k: v for k, v in section.items() if k != selector}
    try:
        return entry, build_component(cls, raw, name)
    except ValidationError as error:
        problems.extend(validation_problems(error, raw, path, positions, cls.Params))
    except Exception as error:  # noqa: BLE001 -- a plugin's constructor may fail in any way; report it by name
        problems.append(positions.problem(path, f"{entry.label} could not be set up: {one_line(error)}"))
    return None


def _check_fit(stack: Stack, positions: Positions, problems: list[Problem]) -> None:
    """Check that the components fit together: trainer/framework, compressor and deployer formats."""
    framework, trainer = stack.role("model"), stack.role("trainer")
    if framework is None:
        return
    if trainer is not None and framework.name not in trainer.frameworks:
        problems.append(positions.problem(("trainer", "plugin"), (
            f"trainer '{trainer.name}' cannot train models of framework '{framework.name}' (model.framework); "
            f"it trains: {', '.join(trainer.frameworks) or 'nothing declared'}")))
    formats: set[str] = set(framework.formats)
    producer = f"framework '{framework.name}'"
    exported_by = None  # the first compressor that works on an exported model
    for role in stack.roles("compressors"):
        compressor = stack.components[role]
        if compressor.works_before_export(framework.native_format):
            if exported_by is not None:
                problems.append(positions.problem((*role_path(role), "plugin"), (
                    f"compressor '{compressor.name}' works on the native {framework.native_format} model before "
                    f"export, so it cannot follow compressor '{exported_by}', which works on the exported model; "
                    f"list '{compressor.name}' before '{exported_by}'")))
            continue
        exported_by = exported_by or compressor.name
        if not formats & set(compressor.input_formats):
            problems.append(positions.problem((*role_path(role), "plugin"), (
                f"compressor '{compressor.name}' takes {', '.join(compressor.input_formats)} models, "
                f"but {producer} produces {', '.join(sorted(formats))}")))
        formats, producer = {compressor.output_format}, f"compressor '{compressor.name}'"
    deployer = stack.role("deployer")
    if deployer is not None and not formats & set(deployer.formats):
        problems.append(positions.problem(("deployer", "plugin"), (
            f"deployer '{deployer.name}' serves {', '.join(deployer.formats)} models, "
            f"but {producer} produces {', '.join(sorted(formats))}")))


def _check_lock(lock: Any, stack: Stack, positions: Positions, problems: list[Problem]) -> None:
    """The installed version of every locked distribution must be the locked one."""
    locked = lock.get("distributions", {}) if isinstance(lock, dict) else {}
    running = {entry.distribution: entry.version for entry in stack.entries.values()}
    for distribution, version in locked.items():
        if running.get(distribution, version) != version:
            problems.append(positions.problem(("lock", "distributions", distribution), (
                f"found {distribution} {running[distribution]} installed, expected {version} as locked; "
                f"aios plugins install {distribution}=={version}")))


def load_stack(path: str | os.PathLike[str], overrides: tuple[str, ...] | list[str] = (), *,
               locked: bool = False) -> Stack:
    """Read and validate a stack file and configure its components; raise StackError listing every problem.

    With ``locked``, the file is a lock file written by a run: the installed plugin
    versions must equal the locked ones.
    """
    contents = read_stack_file(path, overrides, locked=locked)
    settings, positions, lock = contents.settings, contents.positions, contents.lock
    sections = contents.sections()
    problems: list[Problem] = []

    components: dict[str, Component] = {}
    entries: dict[str, ComponentEntry] = {}
    skipped: list[str] = []
    for role, (section, selector) in sections.items():
        selected = _select(role, section, selector, positions, problems, skipped)
        if selected is not None:
            entries[role], components[role] = selected

    resolved: dict[str, Any] = {"name": settings.name, "description": settings.description,
                                "seed": settings.seed, "threads": settings.threads}
    for role, component in components.items():
        selector = sections[role][1]
        value = {selector: component.name, **component.params.model_dump(mode="json")}
        section, _, index = role.partition(".")
        if index:
            resolved.setdefault(section, []).append(value)
        else:
            resolved[section] = value
    resolved.setdefault("compressors", [])
    resolved["evaluate"] = settings.evaluate.model_dump(mode="json")
    stack = Stack(str(path), settings, components, entries, resolved, skipped)
    if not problems:
        _check_fit(stack, positions, problems)
        if locked:
            _check_lock(lock, stack, positions, problems)
    if not problems:
        from aios_core.stack.environment import check_environment

        check_environment(stack, positions, problems)
    if problems:
        raise StackError(problems)
    return stack
