"""Finding and loading plugin components: the whole story in one module.

Discovery reads installed distributions' metadata only (entry points and the
kernel (``aios-kernel``) range they require) and imports nothing. A component is imported when a
stack names it (``load_component``), checked against its kind's base class and the
hook specs, and registered in a run's plugin manager. A component that cannot be used
is reported by name and skipped; with ``AIOS_STRICT_PLUGINS=1`` that becomes an error.

Environment: ``AIOS_DISABLE_PLUGINS=a,b`` blocks components or distributions by name
before import; ``AIOS_STRICT_PLUGINS=1`` turns skips into errors;
``AIOS_TRACE_PLUGINS=1`` prints every hook call to stderr.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

from aios_core import __version__
from aios_core.vocabulary import CORE_DISTRIBUTION, KIND_GROUPS, KINDS, canonical_name

if TYPE_CHECKING:
    import pluggy

    from aios_core.components import Component


class PluginError(Exception):
    """A component cannot be used: unknown, disabled, incompatible, broken or invalid."""


class UnknownComponent(PluginError):
    """No installed component of ``kind`` is named ``name``; ``available`` lists those that are.

    The message offers close matches; a layer that knows the plugin index (the stack
    loader) may add which distribution provides the name.
    """

    def __init__(self, kind: str, name: str, available: list[str]) -> None:
        self.kind, self.name, self.available = kind, name, available
        message = f"no {kind} named '{name}' is installed"
        close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
        if close:
            message += "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
        super().__init__(message + (f" (installed: {', '.join(available)})" if available else " (none installed)"))


def strict_mode() -> bool:
    return os.environ.get("AIOS_STRICT_PLUGINS", "") not in ("", "0")


def _disabled_names() -> set[str]:
    raw = os.environ.get("AIOS_DISABLE_PLUGINS", "")
    return {canonical_name(part.strip()) for part in raw.split(",") if part.strip()}


@dataclass(frozen=True)
class ComponentEntry:
    """One registered component, as its distribution's metadata describes it."""

    kind: str
    name: str
    value: str
    distribution: str
    version: str
    core_range: str | None
    problem: str | None = None

    @property
    def status(self) -> str:
        if self.problem is None:
            return "ok"
        return self.problem.split(":", 1)[0]

    @property
    def label(self) -> str:
        return f"{self.kind} '{self.name}' ({self.distribution} {self.version})"


_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*\(?([^;()]*)\)?\s*(;.*)?$")
"""A PEP 508 requirement's name, version specifier and marker. Parsed with a regular expression
rather than packaging.requirements, whose import alone costs ``aios plugins list`` a fifth of its time."""


def _core_range(dist: metadata.Distribution) -> str | None:
    for line in dist.requires or ():
        match = _REQUIREMENT.match(line)
        if match and canonical_name(match.group(1)) == CORE_DISTRIBUTION and not match.group(3):
            return match.group(2).strip().replace(" ", "") or None
    return None


def _compatibility_problem(distribution: str, core_range: str | None) -> str | None:
    if distribution == CORE_DISTRIBUTION or core_range is None:
        return None
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        if SpecifierSet(core_range).contains(__version__, prereleases=True):
            return None
    except InvalidSpecifier:
        return f"incompatible: {distribution} declares an invalid {CORE_DISTRIBUTION} range '{core_range}'"
    return (f"incompatible: {distribution} requires {CORE_DISTRIBUTION}{core_range}, "
            f"but {CORE_DISTRIBUTION} {__version__} is installed; upgrade or downgrade one of them")


@functools.cache
def discover() -> tuple[ComponentEntry, ...]:
    """Every installed component of every kind, from metadata alone (nothing is imported)."""
    disabled = _disabled_names()
    groups = {group: kind for kind, group in KIND_GROUPS.items()}
    entries: list[ComponentEntry] = []
    ranges: dict[str, str | None] = {}
    seen: set[tuple[str, str]] = set()
    for dist in metadata.distributions():
        for entry_point in dist.entry_points:
            kind = groups.get(entry_point.group)
            if kind is None or (kind, entry_point.name) in seen:  # the first on sys.path wins, as for imports
                continue
            seen.add((kind, entry_point.name))
            distribution = canonical_name(dist.name)
            if distribution not in ranges:
                ranges[distribution] = _core_range(dist)
            problem = _compatibility_problem(distribution, ranges[distribution])
            if canonical_name(entry_point.name) in disabled or distribution in disabled:
                problem = "disabled: blocked by AIOS_DISABLE_PLUGINS"
            entries.append(ComponentEntry(kind=kind, name=entry_point.name, value=entry_point.value,
                                          distribution=distribution, version=dist.version,
                                          core_range=ranges[distribution], problem=problem))
    entries.sort(key=lambda e: (KINDS.index(e.kind), e.name))
    return tuple(entries)


def installed(kind: str) -> list[ComponentEntry]:
    """The components of ``kind``, usable or not."""
    return [entry for entry in discover() if entry.kind == kind]


def find_entry(kind: str, name: str) -> ComponentEntry:
    """The entry for a stack's ``kind: {plugin: name}``; ``UnknownComponent`` if none is installed."""
    matches = [entry for entry in installed(kind) if entry.name == name]
    if matches:
        return matches[0]
    raise UnknownComponent(kind, name, [entry.name for entry in installed(kind)])


def load_component(entry: ComponentEntry) -> type[Component]:
    """Import ``entry``'s class and check it is a component of its kind."""
    from aios_core.components import BASE_CLASSES

    if entry.problem:
        raise PluginError(f"{entry.label} is {entry.problem}")
    module_name, _, attribute = entry.value.partition(":")
    try:
        value: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            value = getattr(value, part)
    except Exception as error:  # a plugin's import may fail in any way; report it by name
        raise PluginError(f"{entry.label} failed to import {entry.value}: {type(error).__name__}: {error}") from error
    base = BASE_CLASSES[entry.kind]
    if not (isinstance(value, type) and issubclass(value, base)):
        raise PluginError(f"{entry.label}: {entry.value} is not a subclass of aios_core.{base.__name__}")
    return value


def new_plugin_manager(builtins: bool = True) -> pluggy.PluginManager:
    """A plugin manager holding the AIOS hook specs and the kernel's built-in hooks (the ONNX Runtime
    predictor, ``aios_core.inference``), and no component; traced if AIOS_TRACE_PLUGINS=1."""
    import pluggy

    from aios_core import hookspecs

    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    if builtins:
        from aios_core.inference import OnnxRuntimePredictors

        pm.register(OnnxRuntimePredictors(), name=OnnxRuntimePredictors.NAME)
    if os.environ.get("AIOS_TRACE_PLUGINS", "") not in ("", "0"):
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    return pm


def register(pm: pluggy.PluginManager, component: Component | type[Component], label: str,
             name: str | None = None) -> None:
    """Register ``component``, refusing hook implementations that do not match the specs.

    A component class may be registered too: its methods are checked the same way, with
    no instance (and so no parameters) needed.
    """
    import pluggy

    name = name or getattr(component, "name", label)
    try:
        pm.register(component, name=label)
    except pluggy.PluginValidationError as error:
        raise PluginError(f"{component.kind} '{name}' has a hook that does not match its spec: {error}") from error
    unknown = sorted(caller.name for caller in pm.get_hookcallers(component) or () if not caller.has_spec())
    if unknown:
        pm.unregister(component)
        raise PluginError(f"{component.kind} '{name}' implements hooks that aios_core.hookspecs "
                          f"does not define: {', '.join(unknown)}")


def check_hooks(cls: type[Component], name: str) -> None:
    """Check a component class's ``@hookimpl`` methods against the specs; PluginError if one does not match."""
    register(new_plugin_manager(builtins=False), cls, name, name)


def build_component(cls: type[Component], params: Mapping[str, Any] | None, name: str) -> Component:
    """The one way a component is made: ``params`` (a stack section without its selector) validated by
    ``cls.Params``, then the class. Raises pydantic's ``ValidationError`` for bad parameters."""
    return cls(cls.Params.model_validate(dict(params or {})), name)


def check_component(entry: ComponentEntry) -> str | None:
    """Import one component and check its hooks against the specs without building it; the problem, or None."""
    try:
        check_hooks(load_component(entry), entry.name)
    except PluginError as error:
        return str(error)
    return None
