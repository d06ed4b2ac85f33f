"""The checks every component passes, whatever its kind: ``ComponentContract``, the base of each kind's contract.

Every check exercises the installed component the way a run does: its entry point is
looked up and imported through ``aios_core.plugins``, it is built from validated
``Params`` and its hooks are registered in a real plugin manager. A kind's contract
(``trainer.py``, ``monitor.py``, ...) adds the fixtures and behaviour checks of that kind.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
from pydantic import BaseModel, ValidationError

from aios_core import __version__
from aios_core.components import BASE_CLASSES, Component
from aios_core.plugins import ComponentEntry, PluginError, new_plugin_manager, register
from aios_core.testing._harness import HEAVY_MODULES, build, entry_of, fail, label_of, load_class
from aios_core.testing._validation import check_validate, describe, implements, validation_context
from aios_core.vocabulary import CORE_DISTRIBUTION, KIND_GROUPS

if TYPE_CHECKING:
    from pathlib import Path

    import pluggy

    from aios_core.records import Dataset

__all__ = ["ComponentContract"]

_IMPORT_PROBE = """
import importlib, json, sys
module_name, attribute, heavy, params, name = sys.argv[1:6]
heavy = json.loads(heavy)
loaded = lambda: [m for m in heavy if m in sys.modules]
report = {"import": None, "create": None}
value = importlib.import_module(module_name)
report["import"] = loaded()
for part in attribute.split("."):
    value = getattr(value, part)
try:
    from aios_core.plugins import build_component
    value.capabilities()
    build_component(value, json.loads(params), name)
    report["create"] = loaded()
except Exception:  # the other checks report a component that cannot be built
    pass
print(json.dumps(report))
"""


class ComponentContract:
    """Checks every component passes, whatever its kind; subclass a kind's contract, not this.

    Fixtures a subclass provides: ``component_name`` (required: the entry-point name),
    ``component_params`` (the parameters a stack would give it; default ``{}``) and
    ``invalid_params`` (parameter sets its ``Params`` must reject; default
    ``[{"not_a_parameter": 1}]``; each is applied on top of ``component_params``).
    """

    kind: ClassVar[str] = ""
    heavy_modules: ClassVar[tuple[str, ...]] = HEAVY_MODULES
    required_hooks: ClassVar[tuple[str, ...]] = ()
    required_attributes: ClassVar[tuple[str, ...]] = ()
    _example_name: ClassVar[str] = "my-plugin"

    # ------------------------------------------------------------ fixtures an author provides
    @pytest.fixture
    def component_name(self, request: pytest.FixtureRequest) -> str:
        group = KIND_GROUPS.get(self.kind, "aios.<kind>s")
        fail(f"{request.cls.__name__} must provide a `component_name` fixture returning the component's "
             f"entry-point name (its key under [project.entry-points.\"{group}\"]), e.g.\n\n"
             f"    @pytest.fixture\n    def component_name(self):\n        return \"{self._example_name}\"\n")

    @pytest.fixture
    def component_params(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def invalid_params(self) -> list[dict[str, Any]]:
        return [{"not_a_parameter": 1}]

    # ------------------------------------------------------------ fixtures the checks use
    @pytest.fixture
    def component_entry(self, component_name: str) -> ComponentEntry:
        return entry_of(self.kind, component_name)

    @pytest.fixture
    def component_class(self, component_entry: ComponentEntry) -> type[Component]:
        return load_class(component_entry)

    @pytest.fixture
    def component(self, component_class: type[Component], component_name: str,
                  component_params: dict[str, Any]) -> Component:
        """The component as a stack would build it, from ``contract_params``."""
        return build(component_class, self.contract_params(component_class, component_params), component_name)

    def contract_params(self, component_class: type[Component], params: dict[str, Any]) -> dict[str, Any]:
        """The parameters the behaviour checks build the component with (a kind may add, e.g. few epochs)."""
        return dict(params)

    # ------------------------------------------------------------ checks
    def test_entry_point_resolves_to_a_component_of_its_kind(self, component_entry: ComponentEntry,
                                                             component_class: type[Component]) -> None:
        label = label_of(self.kind, component_entry.name)
        if component_class.kind != self.kind:
            fail(f"{label} ({component_entry.value}) has kind {component_class.kind!r}; a component registered "
                 f"under {KIND_GROUPS[self.kind]} must have kind {self.kind!r} (do not override `kind`)")
        params = getattr(component_class, "Params", None)
        if not (isinstance(params, type) and issubclass(params, BaseModel)):
            fail(f"{label}: {component_entry.value}.Params is {params!r}; it must be a pydantic model "
                 "(subclass aios_core.Params)")

    def test_declares_its_capabilities(self, component_entry: ComponentEntry,
                                       component_class: type[Component]) -> None:
        label = label_of(self.kind, component_entry.name)
        missing = [name for name in self.required_attributes if not hasattr(component_class, name)]
        if missing:
            fail(f"{label} does not declare {', '.join(missing)}: every {self.kind} sets "
                 + ", ".join(f"`{name}`" for name in self.required_attributes)
                 + f" as class attributes (see aios_core.{BASE_CLASSES[self.kind].__name__})")
        capabilities = component_class.capabilities()
        try:
            json.dumps(capabilities)
        except (TypeError, ValueError) as error:
            fail(f"{label}.capabilities() must return JSON-able values (aios plugins info shows them): {error}")

    def test_params_accept_the_component_params(self, component_entry: ComponentEntry,
                                                component_class: type[Component],
                                                component_params: dict[str, Any]) -> None:
        try:
            component_class.Params.model_validate(component_params)
        except ValidationError as error:
            fail(f"the Params of {label_of(self.kind, component_entry.name)} reject component_params "
                 f"{component_params!r}:\n{error}")

    def test_params_reject_invalid_values_naming_the_field(self, component_entry: ComponentEntry,
                                                           component_class: type[Component],
                                                           component_params: dict[str, Any],
                                                           invalid_params: list[dict[str, Any]]) -> None:
        label = label_of(self.kind, component_entry.name)
        if not invalid_params:
            fail(f"invalid_params is empty; give at least one parameter set the Params of {label} must reject")
        problems, accepted = [], False
        for bad in invalid_params:
            try:
                component_class.Params.model_validate({**component_params, **bad})
            except ValidationError as error:
                named = {str(detail["loc"][0]) for detail in error.errors() if detail["loc"]}
                if not named & {str(key) for key in bad}:
                    first = str(error).splitlines()[1:3]
                    problems.append(f"{bad!r} was rejected, but the error names {sorted(named) or 'no field'} "
                                    f"instead of {sorted(map(str, bad))}: {' '.join(line.strip() for line in first)}")
            except Exception as error:  # a validator raising TypeError etc. escapes pydantic
                problems.append(f"{bad!r} raised {type(error).__name__} instead of a pydantic ValidationError "
                                f"(raise ValueError in validators): {error}")
            else:
                accepted = True
                problems.append(f"{bad!r} was accepted")
        if problems:
            hint = ("\nSubclass aios_core.Params (unknown keys are errors: extra='forbid') and constrain values with "
                    "pydantic's Field(...), Literal[...] or validators, so a stack's typo is an error, not ignored."
                    if accepted else "")
            fail(f"the Params of {label} must reject invalid parameters with a ValidationError naming the field:\n  "
                 + "\n  ".join(problems) + hint)

    def test_hooks_match_the_specs(self, component_entry: ComponentEntry, component: Component) -> None:
        label = label_of(self.kind, component_entry.name)
        pm = new_plugin_manager()
        try:
            register(pm, component, component_entry.name)
        except PluginError as error:
            fail(str(error) + _misspelt_hook_hint(pm, component))
        implemented = {caller.name for caller in pm.get_hookcallers(component) or ()}
        missing = [hook for hook in self.hooks_required_of(component) if hook not in implemented]
        if missing:
            fail(f"{label} does not implement {', '.join(missing)}, which every {self.kind} must: a method of that "
                 "name marked @aios_core.hookimpl (see aios_core/hookspecs.py)")

    def hooks_required_of(self, component: Component) -> tuple[str, ...]:
        """The hooks ``component`` must implement; a kind may depend on what the component declares."""
        return self.required_hooks

    def test_validate_returns_field_message_pairs(self, component: Component, tiny_dataset: Dataset,
                                                  tmp_path: Path) -> None:
        label = label_of(self.kind, component.name)
        if not implements(component, "aios_validate"):
            pytest.skip(f"{label} does not implement aios_validate")
        check_validate(component, validation_context(component, tmp_path / "validate", describe(tiny_dataset)), label)

    def test_entry_point_module_imports_no_heavy_library(self, component_entry: ComponentEntry,
                                                         component_class: type[Component],
                                                         component_params: dict[str, Any]) -> None:
        module_name, _, attribute = component_entry.value.partition(":")
        env = dict(os.environ)
        local = [path for path in sys.path if path and os.path.isdir(path)
                 and not path.startswith((sys.prefix, sys.base_prefix))]
        env["PYTHONPATH"] = os.pathsep.join([*local, *filter(None, [env.get("PYTHONPATH")])])
        argv = [sys.executable, "-c", _IMPORT_PROBE, module_name, attribute, json.dumps(self.heavy_modules),
                json.dumps(self.contract_params(component_class, component_params), default=str),
                component_entry.name]
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
        if result.returncode != 0:
            fail(f"importing {module_name} in a fresh interpreter failed:\n{result.stderr[-3000:]}")
        report = json.loads(result.stdout.strip().splitlines()[-1])
        label = label_of(self.kind, component_entry.name)
        for stage, what in (("import", (f"importing {module_name} (the entry point of {label}: "
                                         f"{component_entry.value})")),
                            ("create", f"creating {label} (its Params, capabilities() and __init__)")):
            heavy = report[stage] or []
            if heavy:
                statements = " and ".join(f"`import {name}`" for name in heavy)
                fail(f"{what} imported {', '.join(heavy)}; move {statements} inside the hook methods that use "
                     f"{'it' if len(heavy) == 1 else 'them'} (or into a module they import), so `aios plugins "
                     "list` and stack validation do not pay for it")

    def test_declared_aios_core_range_includes_the_running_version(self, component_entry: ComponentEntry) -> None:
        entry = component_entry
        if entry.distribution == CORE_DISTRIBUTION:
            return  # built into the kernel: always the running version
        major, minor = __version__.split(".")[:2]
        suggestion = f'"{CORE_DISTRIBUTION}>={major}.{minor},<{major}.{int(minor) + 1}"'
        if not entry.core_range:
            fail(f"{entry.distribution} {entry.version} (which provides {label_of(entry.kind, entry.name)}) declares "
                 f"no {CORE_DISTRIBUTION} version range; add {suggestion} to [project] dependencies in its pyproject.toml")
        from packaging.specifiers import SpecifierSet

        if not SpecifierSet(entry.core_range).contains(__version__, prereleases=True):
            fail(f"{entry.distribution} {entry.version} requires {CORE_DISTRIBUTION}{entry.core_range}, but the running "
                 f"{CORE_DISTRIBUTION} is {__version__}; widen the range in its pyproject.toml (e.g. {suggestion}) "
                 f"or test against a matching {CORE_DISTRIBUTION}")


def _misspelt_hook_hint(pm: pluggy.PluginManager, component: Component) -> str:
    """For each marked method that names no spec: the spec it most likely meant."""
    from aios_core import hookspecs

    specs = [name for name in vars(hookspecs) if name.startswith(f"{hookspecs.PROJECT_NAME}_")]
    hints = []
    for name in dir(type(component)):
        if name not in specs and pm.parse_hookimpl_opts(component, name) is not None:
            close = difflib.get_close_matches(name, specs, n=1, cutoff=0.6)
            hints.append(f"{name}: did you mean {close[0]}?" if close else f"{name}: no such hook")
    return f" ({'; '.join(hints)})" if hints else ""
