"""Contract test classes, one per kind: subclass one, give it the component's name, and pytest checks it.

Every check exercises the installed component the way a run does: its entry point is
looked up and imported through ``aios_core.plugins``, it is built from validated
``Params``, its hooks are registered in a real plugin manager and called with a real
``RunContext`` on ``tiny_dataset``. A check that cannot apply (a framework without
export formats, a compressor no installed framework can feed) skips and says why.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

import pytest
from pydantic import BaseModel, ValidationError

from aios_core import __version__
from aios_core.components import BASE_CLASSES, Component, Framework, Monitor
from aios_core.context import RunOptions
from aios_core.hookspecs import hookimpl
from aios_core.plugins import (
    CORE_DISTRIBUTION,
    KIND_GROUPS,
    ComponentEntry,
    PluginError,
    discover,
    find_entry,
    installed,
    load_component,
    new_plugin_manager,
    register,
)
from aios_core.records import Dataset, ModelArtifact, TrainResult, TuneResult

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import pluggy

    from aios_core.context import RunContext

__all__ = [
    "HEAVY_MODULES",
    "ComponentContract",
    "CompressorContract",
    "DatastoreContract",
    "DeployerContract",
    "FrameworkContract",
    "MonitorContract",
    "TrainerContract",
    "TunerContract",
]

HEAVY_MODULES = ("torch", "tensorflow", "ray", "onnxruntime")
"""Libraries an entry-point module must not import at its top: listing plugins would pay for them."""

_INPUT_MODELS = pytest.StashKey[dict]()
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
    value.capabilities()
    value(value.Params.model_validate(json.loads(params)), name)
    report["create"] = loaded()
except Exception:  # the other checks report a component that cannot be built
    pass
print(json.dumps(report))
"""


def _fail(message: str) -> NoReturn:
    """Fail the check with ``message`` alone: the message says what is wrong and what to do.

    Raised ``from None``: called while handling a kernel error, the message already says
    what that error said, and a chained repeat of it would only bury the advice.
    """
    __tracebackhide__ = True
    raise pytest.fail.Exception(message, pytrace=False) from None


def _fail_raised(message: str, error: BaseException) -> NoReturn:
    """Fail with ``message``, then the traceback of ``error`` raised inside the component."""
    _fail(f"{message}: {type(error).__name__}: {error}\n\n" + "".join(traceback.format_exception(error)))


def _label(kind: str, name: str) -> str:
    return f"{kind} '{name}'"


# ---------------------------------------------------------------- finding, loading, building
def _entry(kind: str, name: str) -> ComponentEntry:
    """The installed entry of ``kind`` named ``name``, or a failure that says where it is (or should be)."""
    try:
        return find_entry(kind, name)
    except PluginError as error:
        elsewhere = [entry for entry in discover() if entry.name == name and entry.kind != kind]
        if elsewhere:
            other = elsewhere[0]
            hint = (f"; '{name}' is registered under [project.entry-points.\"{KIND_GROUPS[other.kind]}\"] "
                    f"({other.distribution}), so it is a {other.kind}: register it under "
                    f"[project.entry-points.\"{KIND_GROUPS[kind]}\"] or test it with the {other.kind} contract")
        else:
            hint = (f"; declare it under [project.entry-points.\"{KIND_GROUPS[kind]}\"] in the plugin's "
                    "pyproject.toml and install the distribution (pip install -e .)")
        _fail(f"{error}{hint}")


def _load(entry: ComponentEntry) -> type[Component]:
    """Import the entry's class through the kernel's loader.

    An incompatible aios-core range is reported by its own check, so the other checks
    still load the component and say what else is wrong.
    """
    if entry.status == "incompatible":
        entry = dataclasses.replace(entry, problem=None)
    try:
        return load_component(entry)
    except PluginError as error:
        _fail(str(error) + _wrong_base_hint(entry))


def _wrong_base_hint(entry: ComponentEntry) -> str:
    module_name, _, attribute = entry.value.partition(":")
    value: Any = sys.modules.get(module_name)
    for part in attribute.split(".") if value is not None else ():
        value = getattr(value, part, None)
    for kind, base in BASE_CLASSES.items():
        if isinstance(value, type) and issubclass(value, base) and kind != entry.kind:
            return (f"; it is a {base.__name__}, so register it under [project.entry-points.\"{KIND_GROUPS[kind]}\"]"
                    f" or make it subclass aios_core.{BASE_CLASSES[entry.kind].__name__}")
    return ""


def _build(cls: type[Component], name: str, params: dict[str, Any]) -> Component:
    """An instance made as a stack makes one: validated ``Params``, then the class."""
    try:
        validated = cls.Params.model_validate(params)
    except ValidationError as error:
        _fail(f"the parameters given to {_label(cls.kind, name)} do not validate "
              f"(component_params: {params!r}):\n{error}")
    return cls(validated, name=name)


def _manager(*components: Any) -> pluggy.PluginManager:
    """A fresh plugin manager holding ``components``, registered as a run registers them."""
    pm = new_plugin_manager()
    for number, component in enumerate(components):
        try:
            register(pm, component, f"{component.kind}:{component.name}:{number}")
        except PluginError as error:
            _fail(str(error))
    return pm


def _loadable(kind: str) -> list[tuple[ComponentEntry, type[Component]]]:
    """Every installed component of ``kind`` that imports; the others' own tests say what is wrong."""
    found = []
    for entry in installed(kind):
        if entry.problem:
            continue
        try:
            found.append((entry, load_component(entry)))
        except PluginError:
            continue
    return found


def _default_instance(entry: ComponentEntry, cls: type[Component]) -> Component | None:
    try:
        return cls(name=entry.name)
    except Exception:  # needs parameters the kit cannot guess
        return None


def _frameworks_for(formats: set[str]) -> list[Framework]:
    """Every installed, loadable framework that writes one of ``formats``, with default parameters."""
    frameworks = [_default_instance(entry, cls) for entry, cls in _loadable("framework")]
    return [framework for framework in frameworks
            if framework is not None and formats & set(framework.formats)]


def _trainer_for(framework: ComponentEntry) -> Component | None:
    """An installed trainer of ``framework`` set to train for 2 epochs, or None.

    A trainer from the framework's own distribution comes first (``torch`` before
    ``ray-train`` for the torch framework), then the others by name.
    """
    candidates = [(entry, cls) for entry, cls in _loadable("trainer") if framework.name in cls.frameworks]
    candidates.sort(key=lambda pair: (pair[0].distribution != framework.distribution, pair[0].name))
    for entry, cls in candidates:
        params = {"epochs": 2} if "epochs" in cls.Params.model_fields else {}
        try:
            return cls(cls.Params.model_validate(params), name=entry.name)
        except Exception:
            continue
    return None


def _input_model(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory, accepted: tuple[str, ...],
                 dataset: Dataset, consumer: ComponentEntry, framework_name: str | None) -> ModelArtifact:
    """A small model in the first of ``accepted`` formats an installed framework writes, made once per session.

    The framework is ``framework_name`` if given, else one from the consumer's own
    distribution, else the first by name that writes an accepted format. It builds the
    model for ``dataset``; an installed trainer of that framework, if any, trains it for
    two epochs; then the framework saves or exports it.
    """
    label = _label(consumer.kind, consumer.name)
    candidates = [(entry, cls) for entry, cls in _loadable("framework") if framework_name in (None, entry.name)]
    if framework_name is not None and not candidates:
        _fail(f"input_framework is {framework_name!r}, which is not an installed, loadable framework "
              f"(installed: {', '.join(entry.name for entry in installed('framework')) or 'none'})")
    candidates.sort(key=lambda pair: (pair[0].distribution != consumer.distribution, pair[0].name))
    cache = config.stash.setdefault(_INPUT_MODELS, {})
    for fmt in accepted:
        for entry, cls in candidates:
            framework = _default_instance(entry, cls)
            if framework is None or fmt not in framework.formats:
                continue
            key = (entry.name, fmt, dataset.content_hash)
            if key not in cache:
                cache[key] = _make_model(framework, _trainer_for(entry), fmt, dataset,
                                         tmp_path_factory.mktemp(f"aios-input-{entry.name}-{fmt}"))
            return cache[key]
    which = f"framework '{framework_name}'" if framework_name else "no installed framework"
    pytest.skip(f"{label} accepts {list(accepted)}, and {which} writes any of them; "
                "install a framework that does, or provide an `input_artifact` fixture")


def _make_model(framework: Framework, trainer: Component | None, fmt: str, dataset: Dataset,
                run_dir: Path) -> ModelArtifact:
    from aios_core.context import RunContext

    pm = _manager(framework, *([trainer] if trainer else []))
    run = RunContext(name="contract-input", seed=0, threads=1, dir=run_dir, stack={}, hook=pm.hook)
    model = pm.hook.aios_build_model(dataset=dataset, run=run, overrides={})
    if trainer is not None:
        run.phase = "train"
        model = pm.hook.aios_train(model=model, dataset=dataset, run=run, overrides={}).model
    path = run.artifacts_dir / f"model.{fmt}"
    if fmt == framework.native_format:
        return pm.hook.aios_save_model(model=model, path=path)
    return pm.hook.aios_export_model(model=model, fmt=fmt, path=path, dataset=dataset)


def _predictor(pm: pluggy.PluginManager, artifact: ModelArtifact, who: str) -> Callable[[np.ndarray], np.ndarray]:
    predict = pm.hook.aios_load_predictor(artifact=artifact, threads=1)
    if predict is None:
        _fail(f"no component returned a predictor for {who} (format '{artifact.format}', {artifact.path}) from "
              f"aios_load_predictor; the component that writes '{artifact.format}' files should implement "
              "aios_load_predictor for them")
    return predict


def _probabilities(predict: Callable[[np.ndarray], np.ndarray], dataset: Dataset, who: str) -> np.ndarray:
    """Predict ``dataset.x_test`` and check the result is (n, classes) probabilities."""
    import numpy as np

    rows = dataset.x_test
    result = np.asarray(predict(rows))
    expected = (len(rows), dataset.num_classes)
    if result.shape != expected:
        _fail(f"the predictor of {who} returned shape {result.shape} for {len(rows)} rows of a "
              f"{dataset.num_classes}-class data set; expected class probabilities of shape {expected}")
    if not np.all(np.isfinite(result)) or result.min() < -1e-6:
        _fail(f"the predictor of {who} returned values that are not probabilities "
              f"(min {np.nanmin(result):.4g}, non-finite: {int(np.sum(~np.isfinite(result)))})")
    sums = result.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-3):
        _fail(f"the predictor of {who} returned rows summing to {sums.min():.4g}..{sums.max():.4g}; class "
              "probabilities must sum to 1 (apply softmax to logits)")
    return result


class _Recorder(Monitor):
    """The kit's own monitor: what a component reported through the RunContext."""

    def __init__(self) -> None:
        super().__init__(name="aios-contract-recorder")
        self.epochs: list[tuple[str, int, dict[str, float]]] = []
        self.steps: list[tuple[str, int, int, int]] = []

    @hookimpl
    def aios_on_epoch_end(self, phase: str, epoch: int, metrics: dict[str, float]) -> None:
        self.epochs.append((phase, epoch, dict(metrics)))

    @hookimpl
    def aios_on_step(self, phase: str, epoch: int, step: int, total_steps: int) -> None:
        self.steps.append((phase, epoch, step, total_steps))


# ---------------------------------------------------------------- every kind
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
        _fail(f"{request.cls.__name__} must provide a `component_name` fixture returning the component's "
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
        return _entry(self.kind, component_name)

    @pytest.fixture
    def component_class(self, component_entry: ComponentEntry) -> type[Component]:
        return _load(component_entry)

    @pytest.fixture
    def component(self, component_class: type[Component], component_name: str,
                  component_params: dict[str, Any]) -> Component:
        """The component as a stack would build it, from ``contract_params``."""
        return _build(component_class, component_name, self.contract_params(component_class, component_params))

    def contract_params(self, component_class: type[Component], params: dict[str, Any]) -> dict[str, Any]:
        """The parameters the behaviour checks build the component with (a kind may add, e.g. few epochs)."""
        return dict(params)

    # ------------------------------------------------------------ checks
    def test_entry_point_resolves_to_a_component_of_its_kind(self, component_entry: ComponentEntry,
                                                             component_class: type[Component]) -> None:
        label = _label(self.kind, component_entry.name)
        if component_class.kind != self.kind:
            _fail(f"{label} ({component_entry.value}) has kind {component_class.kind!r}; a component registered "
                  f"under {KIND_GROUPS[self.kind]} must have kind {self.kind!r} (do not override `kind`)")
        params = getattr(component_class, "Params", None)
        if not (isinstance(params, type) and issubclass(params, BaseModel)):
            _fail(f"{label}: {component_entry.value}.Params is {params!r}; it must be a pydantic model "
                  "(subclass aios_core.Params)")

    def test_declares_its_capabilities(self, component_entry: ComponentEntry,
                                       component_class: type[Component]) -> None:
        label = _label(self.kind, component_entry.name)
        missing = [name for name in self.required_attributes if not hasattr(component_class, name)]
        if missing:
            _fail(f"{label} does not declare {', '.join(missing)}: every {self.kind} sets "
                  + ", ".join(f"`{name}`" for name in self.required_attributes)
                  + f" as class attributes (see aios_core.{BASE_CLASSES[self.kind].__name__})")
        capabilities = component_class.capabilities()
        try:
            json.dumps(capabilities)
        except (TypeError, ValueError) as error:
            _fail(f"{label}.capabilities() must return JSON-able values (aios plugins info shows them): {error}")

    def test_params_accept_the_component_params(self, component_entry: ComponentEntry,
                                                component_class: type[Component],
                                                component_params: dict[str, Any]) -> None:
        try:
            component_class.Params.model_validate(component_params)
        except ValidationError as error:
            _fail(f"the Params of {_label(self.kind, component_entry.name)} reject component_params "
                  f"{component_params!r}:\n{error}")

    def test_params_reject_invalid_values_naming_the_field(self, component_entry: ComponentEntry,
                                                           component_class: type[Component],
                                                           component_params: dict[str, Any],
                                                           invalid_params: list[dict[str, Any]]) -> None:
        label = _label(self.kind, component_entry.name)
        if not invalid_params:
            _fail(f"invalid_params is empty; give at least one parameter set the Params of {label} must reject")
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
            _fail(f"the Params of {label} must reject invalid parameters with a ValidationError naming the field:\n  "
                  + "\n  ".join(problems) + hint)

    def test_hooks_match_the_specs(self, component_entry: ComponentEntry, component: Component) -> None:
        label = _label(self.kind, component_entry.name)
        pm = new_plugin_manager()
        try:
            register(pm, component, component_entry.name)
        except PluginError as error:
            _fail(str(error) + _misspelt_hook_hint(pm, component))
        implemented = {caller.name for caller in pm.get_hookcallers(component) or ()}
        missing = [hook for hook in self.hooks_required_of(component) if hook not in implemented]
        if missing:
            _fail(f"{label} does not implement {', '.join(missing)}, which every {self.kind} must: a method of that "
                  "name marked @aios_core.hookimpl (see aios_core/hookspecs.py)")

    def hooks_required_of(self, component: Component) -> tuple[str, ...]:
        """The hooks ``component`` must implement; a kind may depend on what the component declares."""
        return self.required_hooks

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
            _fail(f"importing {module_name} in a fresh interpreter failed:\n{result.stderr[-3000:]}")
        report = json.loads(result.stdout.strip().splitlines()[-1])
        label = _label(self.kind, component_entry.name)
        for stage, what in (("import", (f"importing {module_name} (the entry point of {label}: "
                                         f"{component_entry.value})")),
                            ("create", f"creating {label} (its Params, capabilities() and __init__)")):
            heavy = report[stage] or []
            if heavy:
                statements = " and ".join(f"`import {name}`" for name in heavy)
                _fail(f"{what} imported {', '.join(heavy)}; move {statements} inside the hook methods that use "
                      f"{'it' if len(heavy) == 1 else 'them'} (or into a module they import), so `aios plugins "
                      "list` and stack validation do not pay for it")

    def test_declared_aios_core_range_includes_the_running_version(self, component_entry: ComponentEntry) -> None:
        entry = component_entry
        if entry.distribution == CORE_DISTRIBUTION:
            return  # built into aios-core: always the running version
        major, minor = __version__.split(".")[:2]
        suggestion = f'"aios-core>={major}.{minor},<{major}.{int(minor) + 1}"'
        if not entry.core_range:
            _fail(f"{entry.distribution} {entry.version} (which provides {_label(entry.kind, entry.name)}) declares "
                  f"no aios-core version range; add {suggestion} to [project] dependencies in its pyproject.toml")
        from packaging.specifiers import SpecifierSet

        if not SpecifierSet(entry.core_range).contains(__version__, prereleases=True):
            _fail(f"{entry.distribution} {entry.version} requires aios-core{entry.core_range}, but the running "
                  f"aios-core is {__version__}; widen the range in its pyproject.toml (e.g. {suggestion}) "
                  "or test against a matching aios-core")


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


# ---------------------------------------------------------------- framework
class FrameworkContract(ComponentContract):
    """A framework builds a model for a data set, saves and loads it unchanged, and exports every declared format.

    Optional fixture: ``dataset`` (default ``tiny_dataset``). ``component_params`` are
    the model parameters (e.g. ``{"architecture": "cnn"}``).
    """

    kind = "framework"
    required_attributes = ("native_format", "export_formats")
    _example_name = "torch"

    def hooks_required_of(self, component: Component) -> tuple[str, ...]:
        hooks = ("aios_build_model", "aios_save_model", "aios_load_model", "aios_load_predictor")
        return hooks + (("aios_export_model",) if getattr(component, "export_formats", ()) else ())

    @pytest.fixture
    def dataset(self, tiny_dataset: Dataset) -> Dataset:
        return tiny_dataset

    @pytest.fixture
    def built(self, component: Framework, dataset: Dataset,
              aios_run_context: Callable[..., RunContext]) -> tuple[pluggy.PluginManager, RunContext, Any]:
        pm = _manager(component)
        run = aios_run_context(pm)
        model = pm.hook.aios_build_model(dataset=dataset, run=run, overrides={})
        if model is None:
            _fail(f"aios_build_model of {_label(self.kind, component.name)} returned None; it must return a model")
        return pm, run, model

    def test_saved_model_loads_and_predicts_identically(self, component: Framework, dataset: Dataset,
                                                        built: tuple[pluggy.PluginManager, RunContext, Any]) -> None:
        import numpy as np

        pm, run, model = built
        label = _label(self.kind, component.name)
        saved = self._artifact(pm.hook.aios_save_model(model=model, path=run.artifacts_dir /
                                                       f"model.{component.native_format}"),
                               component.native_format, f"aios_save_model of {label}")
        loaded = pm.hook.aios_load_model(artifact=saved)
        if loaded is None:
            _fail(f"aios_load_model of {label} returned None for its own file {saved.path}")
        resaved = self._artifact(pm.hook.aios_save_model(model=loaded, path=run.artifacts_dir /
                                                         f"reloaded.{component.native_format}"),
                                 component.native_format, f"aios_save_model of {label}")
        before = _probabilities(_predictor(pm, saved, f"{label}'s saved model"), dataset, f"{label}'s saved model")
        after = _probabilities(_predictor(pm, resaved, f"{label}'s reloaded model"), dataset,
                               f"{label}'s reloaded model")
        if not np.allclose(before, after, rtol=0.0, atol=1e-6):
            _fail(f"{label}: a model saved, loaded (aios_load_model) and saved again predicts differently from the "
                  f"original file (max difference {np.max(np.abs(before - after)):.3g}); saving must keep every weight")

    def test_each_export_format_exports_and_predicts_probabilities(
            self, component: Framework, dataset: Dataset,
            built: tuple[pluggy.PluginManager, RunContext, Any]) -> None:
        label = _label(self.kind, component.name)
        if not component.export_formats:
            pytest.skip(f"{label} declares no export_formats")
        pm, run, model = built
        for fmt in component.export_formats:
            artifact = self._artifact(
                pm.hook.aios_export_model(model=model, fmt=fmt, path=run.artifacts_dir / f"model.{fmt}",
                                          dataset=dataset),
                fmt, f"aios_export_model of {label} (fmt={fmt!r})")
            _probabilities(_predictor(pm, artifact, f"{label}'s {fmt} export"), dataset, f"{label}'s {fmt} export")

    @staticmethod
    def _artifact(artifact: Any, fmt: str, who: str) -> ModelArtifact:
        if not isinstance(artifact, ModelArtifact):
            _fail(f"{who} returned {artifact!r}; it must return an aios_core.ModelArtifact")
        if artifact.format != fmt:
            _fail(f"{who} returned an artifact of format {artifact.format!r}; expected {fmt!r}")
        if not Path(artifact.path).is_file():
            _fail(f"{who} returned an artifact whose file {artifact.path} does not exist")
        return artifact


# ---------------------------------------------------------------- datastore
class DatastoreContract(ComponentContract):
    """A datastore returns well-formed, non-empty splits, the same ones for the same seed."""

    kind = "datastore"
    required_hooks = ("aios_load_dataset",)
    _example_name = "sklearn"

    @pytest.fixture
    def load_with_seed(self, component_class: type[Component], component_name: str,
                       component_params: dict[str, Any],
                       aios_run_context: Callable[..., RunContext]) -> Callable[[int], Dataset]:
        """``load_with_seed(seed)``: the Dataset a fresh instance returns for a fresh run with ``seed``."""

        def load(seed: int) -> Dataset:
            component = _build(component_class, component_name,
                               self.contract_params(component_class, component_params))
            pm = _manager(component)
            run = aios_run_context(pm, seed=seed)
            run.phase = "data"
            dataset = pm.hook.aios_load_dataset(run=run)
            if not isinstance(dataset, Dataset):
                _fail(f"aios_load_dataset of {_label(self.kind, component_name)} returned {type(dataset).__name__}; "
                      "it must return an aios_core.Dataset")
            return dataset

        return load

    def test_dataset_splits_are_well_formed(self, component_name: str, load_with_seed: Callable[[int], Dataset]) -> None:
        import numpy as np

        dataset = load_with_seed(0)
        label = _label(self.kind, component_name)
        problems = []
        if len(dataset.class_names) < 2:
            problems.append(f"class_names has {len(dataset.class_names)} entries; a classifier needs at least 2")
        features = dataset.x_train.shape[1] if getattr(dataset.x_train, "ndim", 0) == 2 else None
        for split in ("train", "val", "test"):
            x, y = getattr(dataset, f"x_{split}"), getattr(dataset, f"y_{split}")
            if not (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 2):
                problems.append(f"x_{split} must be a float32 array of shape (n, features), "
                                f"found {type(x).__name__} {getattr(x, 'dtype', '')} {getattr(x, 'shape', '')}")
                continue
            if not (isinstance(y, np.ndarray) and y.dtype == np.int64 and y.ndim == 1):
                problems.append(f"y_{split} must be an int64 array of shape (n,), "
                                f"found {type(y).__name__} {getattr(y, 'dtype', '')} {getattr(y, 'shape', '')}")
                continue
            if len(x) == 0:
                problems.append(f"the {split} split is empty")
            if len(x) != len(y):
                problems.append(f"x_{split} has {len(x)} rows but y_{split} has {len(y)} labels")
            if x.shape[1] != features:
                problems.append(f"x_{split} has {x.shape[1]} features, x_train has {features}")
            if not np.all(np.isfinite(x)):
                problems.append(f"x_{split} holds {int(np.sum(~np.isfinite(x)))} NaN or infinite values")
            if len(y) and (y.min() < 0 or y.max() >= len(dataset.class_names)):
                problems.append(f"y_{split} holds labels {int(y.min())}..{int(y.max())}, outside "
                                f"0..{len(dataset.class_names) - 1} (indices into class_names)")
        if dataset.image_shape is not None and features is not None and math.prod(dataset.image_shape) != features:
            problems.append(f"image_shape {tuple(dataset.image_shape)} holds {math.prod(dataset.image_shape)} values, "
                            f"but rows have {features} features")
        if not (isinstance(dataset.content_hash, str) and dataset.content_hash):
            problems.append("content_hash is empty; set it with aios_core.hash_arrays(raw arrays, parameters)")
        try:
            json.dumps(dataset.summary())
        except (TypeError, ValueError) as error:
            problems.append(f"summary() is not JSON-able (check class_names and preprocessing): {error}")
        if problems:
            _fail(f"aios_load_dataset of {label} returned a malformed Dataset:\n  " + "\n  ".join(problems))

    def test_same_seed_gives_the_same_dataset(self, component_name: str, load_with_seed: Callable[[int], Dataset]) -> None:
        import numpy as np

        first, second = load_with_seed(0), load_with_seed(0)
        label = _label(self.kind, component_name)
        if first.content_hash != second.content_hash:
            _fail(f"{label} gave content_hash {first.content_hash[:12]} then {second.content_hash[:12]} for the same "
                  "seed; the hash must identify the raw data and parameters only (no time, no random values)")
        different = [name for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
                     if not np.array_equal(getattr(first, name), getattr(second, name))]
        if different or first.class_names != second.class_names:
            _fail(f"{label} gave different {', '.join(different) or 'class_names'} for the same seed; draw every "
                  "random choice (split, shuffle) from run.seed")


# ---------------------------------------------------------------- trainer
class TrainerContract(ComponentContract):
    """A trainer lowers the training loss on a tiny data set and reports every epoch.

    Optional fixtures: ``framework_name`` (default: the first installed framework among
    the trainer's ``frameworks``; the checks skip if none is installed),
    ``framework_params`` (default ``{}``) and ``dataset`` (default ``tiny_dataset``).
    If the trainer's Params has an ``epochs`` field, the checks train for ``epochs``
    (a class attribute, 5) unless ``component_params`` sets it.
    """

    kind = "trainer"
    required_hooks = ("aios_train",)
    required_attributes = ("frameworks",)
    epochs: ClassVar[int] = 5
    _example_name = "torch"

    def contract_params(self, component_class: type[Component], params: dict[str, Any]) -> dict[str, Any]:
        if "epochs" in component_class.Params.model_fields and "epochs" not in params:
            return {**params, "epochs": self.epochs}
        return dict(params)

    @pytest.fixture
    def framework_name(self, component_class: type[Component], component_name: str) -> str:
        label = _label(self.kind, component_name)
        declared = list(getattr(component_class, "frameworks", ()))
        if not declared:
            pytest.skip(f"{label} declares no frameworks; provide a `framework_name` fixture")
        for name in declared:
            for entry in installed("framework"):
                if entry.name == name and not entry.problem:
                    try:
                        load_component(entry)
                    except PluginError:
                        continue
                    return name
        pytest.skip(f"{label} trains models of {declared}, and none of these frameworks is installed and loadable; "
                    "install one or provide a `framework_name` fixture")

    @pytest.fixture
    def framework_params(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def framework(self, framework_name: str, framework_params: dict[str, Any]) -> Framework:
        return _build(_load(_entry("framework", framework_name)), framework_name, framework_params)

    @pytest.fixture
    def dataset(self, tiny_dataset: Dataset) -> Dataset:
        return tiny_dataset

    @pytest.fixture
    def training(self, component: Component, framework: Framework, dataset: Dataset,
                 aios_run_context: Callable[..., RunContext]) -> tuple[Any, _Recorder, pluggy.PluginManager, RunContext]:
        """Build a model with the framework and train it, recording what the trainer reports."""
        recorder = _Recorder()
        pm = _manager(framework, component, recorder)
        run = aios_run_context(pm)
        run.phase = "train"
        model = pm.hook.aios_build_model(dataset=dataset, run=run, overrides={})
        result = pm.hook.aios_train(model=model, dataset=dataset, run=run, overrides={})
        return result, recorder, pm, run

    def _result(self, training: tuple[Any, ...], name: str) -> TrainResult:
        result = training[0]
        if not isinstance(result, TrainResult):
            _fail(f"aios_train of {_label(self.kind, name)} returned {type(result).__name__}; "
                  "it must return an aios_core.TrainResult")
        return result

    def test_training_lowers_the_loss(self, component_name: str, training: tuple[Any, ...]) -> None:
        self._result(training, component_name)
        label = _label(self.kind, component_name)
        reported = [(epoch, metrics) for phase, epoch, metrics in training[1].epochs]
        if len(reported) < 2:
            _fail(f"{label} reported {len(reported)} epoch(s) through run.report_epoch; the check compares the first "
                  "and the last, so train at least 2 epochs (set `epochs` in component_params)")
        (first, first_metrics), (last, last_metrics) = reported[0], reported[-1]
        if "loss" not in first_metrics or "loss" not in last_metrics:
            _fail(f"{label} reported epochs without a 'loss' metric: {sorted(first_metrics)}; report the mean "
                  "training loss of each epoch as metrics['loss']")
        if not float(last_metrics["loss"]) < float(first_metrics["loss"]):
            _fail(f"{label} did not lower the training loss: epoch {first} loss={float(first_metrics['loss']):.6g}, "
                  f"epoch {last} loss={float(last_metrics['loss']):.6g}")

    def test_every_epoch_is_reported_in_order(self, component_name: str, training: tuple[Any, ...]) -> None:
        result = self._result(training, component_name)
        label = _label(self.kind, component_name)
        phases = {phase for phase, _, _ in training[1].epochs}
        epochs = [epoch for _, epoch, _ in training[1].epochs]
        expected = list(range(1, len(result.history) + 1))
        if epochs != expected:
            _fail(f"{label} reported epochs {epochs} through run.report_epoch, but its history holds "
                  f"{len(result.history)} epochs; report each epoch once, numbered from 1 ({expected})")
        if phases - {"train"}:
            _fail(f"{label} reported epochs in phase {sorted(phases)}; report through run.report_epoch, which "
                  "uses the run's phase")

    def test_history_has_one_entry_per_epoch(self, component_name: str, training: tuple[Any, ...]) -> None:
        result = self._result(training, component_name)
        label = _label(self.kind, component_name)
        reported = len(training[1].epochs)
        if len(result.history) != reported or not result.history:
            _fail(f"{label} returned a history of {len(result.history)} entries after reporting {reported} epochs; "
                  "TrainResult.history holds one dict of metrics per epoch")
        if not all(isinstance(row, dict) for row in result.history):
            _fail(f"{label}: TrainResult.history must be a list of dicts of metrics")
        if not 1 <= result.best_epoch <= len(result.history):
            _fail(f"{label}: TrainResult.best_epoch is {result.best_epoch}, outside 1..{len(result.history)}")

    def test_trained_model_saves_and_predicts(self, component_name: str, framework: Framework, dataset: Dataset,
                                              training: tuple[Any, ...]) -> None:
        result = self._result(training, component_name)
        _, _, pm, run = training
        artifact = pm.hook.aios_save_model(model=result.model, path=run.artifacts_dir /
                                           f"model.{framework.native_format}")
        who = f"the model {_label(self.kind, component_name)} trained, saved by {_label('framework', framework.name)}"
        if not isinstance(artifact, ModelArtifact):
            _fail(f"{who}: aios_save_model returned {artifact!r}")
        _probabilities(_predictor(pm, artifact, who), dataset, who)


# ---------------------------------------------------------------- tuner
class _Objective:
    """The kit's objective: a deterministic value per parameter set, recording every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], float]] = []

    def __call__(self, params: dict[str, Any]) -> float:
        if not isinstance(params, dict):
            raise TypeError(f"the objective takes a dict of parameters, got {type(params).__name__}")
        text = json.dumps(params, sort_keys=True, default=str)
        value = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64
        self.calls.append((dict(params), value))
        return value


class TunerContract(ComponentContract):
    """A tuner calls the objective and returns the best value it saw and the parameters that gave it.

    Required fixture: ``tuner_params``, the tuner's parameters including a search space
    over ``model.<field>`` / ``trainer.<field>`` keys (it is also ``component_params``).
    The kit's objective returns a deterministic value per parameter set.
    """

    kind = "tuner"
    required_hooks = ("aios_tune",)
    _example_name = "optuna"

    @pytest.fixture
    def tuner_params(self, request: pytest.FixtureRequest) -> dict[str, Any]:
        _fail(f"{request.cls.__name__} must provide a `tuner_params` fixture: the tuner's parameters with a small "
              "search space over model.<field> / trainer.<field> keys and few trials, e.g.\n\n"
              "    @pytest.fixture\n    def tuner_params(self):\n"
              "        return {\"trials\": 4, \"space\": {\"trainer.learning_rate\": [0.001, 0.01]}}\n")

    @pytest.fixture
    def component_params(self, tuner_params: dict[str, Any]) -> dict[str, Any]:
        return tuner_params

    @pytest.fixture
    def tuning(self, component: Component,
               aios_run_context: Callable[..., RunContext]) -> tuple[Any, _Objective]:
        objective = _Objective()
        pm = _manager(component)
        run = aios_run_context(pm)
        run.phase = "tune"
        result = pm.hook.aios_tune(objective=objective, run=run)
        if not isinstance(result, TuneResult):
            _fail(f"aios_tune of {_label(self.kind, component.name)} returned {type(result).__name__}; "
                  "it must return an aios_core.TuneResult")
        return result, objective

    def test_calls_the_objective_with_model_and_trainer_parameters(self, component_name: str,
                                                                  tuning: tuple[Any, _Objective]) -> None:
        label = _label(self.kind, component_name)
        calls = tuning[1].calls
        if not calls:
            _fail(f"{label} never called the objective; each trial must call objective(params)")
        keys = sorted({key for params, _ in calls for key in params if not str(key).startswith(("model.", "trainer."))})
        if keys:
            _fail(f"{label} called the objective with keys {keys}; a run accepts only model.<field> and "
                  "trainer.<field> keys")

    def test_best_value_is_the_lowest_value_seen(self, component_name: str,
                                                 tuning: tuple[Any, _Objective]) -> None:
        result, objective = tuning
        lowest = min(value for _, value in objective.calls) if objective.calls else None
        if lowest is None or not math.isclose(float(result.best_value), lowest, rel_tol=1e-9, abs_tol=1e-12):
            _fail(f"{_label(self.kind, component_name)} returned best_value={result.best_value!r}, but the lowest "
                  f"value the objective returned over its {len(objective.calls)} call(s) was {lowest!r} "
                  "(lower is better)")

    def test_best_params_are_the_params_that_gave_it(self, component_name: str,
                                                     tuning: tuple[Any, _Objective]) -> None:
        result, objective = tuning
        if not any(params == result.best_params and math.isclose(value, float(result.best_value), rel_tol=1e-9)
                   for params, value in objective.calls):
            _fail(f"{_label(self.kind, component_name)} returned best_params={result.best_params!r}, which is not a "
                  f"parameter set that gave best_value={result.best_value!r}; the objective was called with: "
                  + "; ".join(f"{params!r} -> {value:.6g}" for params, value in objective.calls[:10]))


# ---------------------------------------------------------------- compressor and deployer
class _ModelConsumerContract(ComponentContract):
    """Shared fixtures of kinds that take a model artifact: the input model and who can run it."""

    accepted_formats_attribute: ClassVar[str] = ""

    @pytest.fixture
    def dataset(self, tiny_dataset: Dataset) -> Dataset:
        return tiny_dataset

    @pytest.fixture
    def input_framework(self) -> str | None:
        """The framework that makes the default ``input_artifact``; None: any installed one that fits."""
        return None

    @pytest.fixture
    def input_artifact(self, request: pytest.FixtureRequest, component_entry: ComponentEntry,
                       component_class: type[Component], input_framework: str | None, dataset: Dataset,
                       tmp_path_factory: pytest.TempPathFactory) -> ModelArtifact:
        accepted = tuple(getattr(component_class, self.accepted_formats_attribute, ()))
        return _input_model(request.config, tmp_path_factory, accepted, dataset, component_entry, input_framework)

    @pytest.fixture
    def supporting_components(self, input_artifact: ModelArtifact,
                              component_class: type[Component]) -> list[Component]:
        """Registered beside the component, as a stack's framework is: installed frameworks of the formats involved."""
        formats = {input_artifact.format}
        if hasattr(component_class, "output_format"):
            formats.add(component_class.output_format)
        return _frameworks_for(formats)


class CompressorContract(_ModelConsumerContract):
    """A compressor writes a model of its ``output_format`` under the run that loads and predicts.

    Optional fixtures: ``input_artifact`` (default: a small model in one of the
    compressor's ``input_formats``, from an installed framework; the checks skip if no
    installed framework writes one), ``supporting_components`` (components registered
    beside it; default: installed frameworks of the input and output formats) and
    ``dataset`` (default ``tiny_dataset``).
    """

    kind = "compressor"
    required_hooks = ("aios_compress",)
    required_attributes = ("input_formats", "output_format")
    accepted_formats_attribute = "input_formats"
    _example_name = "onnx-quant"

    @pytest.fixture
    def compressed(self, component: Component, input_artifact: ModelArtifact, dataset: Dataset,
                   supporting_components: list[Component],
                   aios_run_context: Callable[..., RunContext]) -> tuple[Any, pluggy.PluginManager, RunContext]:
        label = _label(self.kind, component.name)
        if input_artifact.format not in component.input_formats:
            _fail(f"input_artifact has format {input_artifact.format!r}, which {label} does not accept "
                  f"(input_formats {list(component.input_formats)})")
        pm = _manager(*supporting_components, component)
        run = aios_run_context(pm)
        run.phase = "compress"
        output = pm.hook.aios_compress(artifact=input_artifact, dataset=dataset, run=run)
        if not isinstance(output, ModelArtifact):
            _fail(f"aios_compress of {label} returned {type(output).__name__}; it must return an aios_core.ModelArtifact")
        return output, pm, run

    def test_output_has_the_declared_format_and_lies_under_the_run(
            self, component: Component, input_artifact: ModelArtifact,
            compressed: tuple[ModelArtifact, pluggy.PluginManager, RunContext]) -> None:
        output, _, run = compressed
        label = _label(self.kind, component.name)
        if output.format != component.output_format:
            _fail(f"{label} returned an artifact of format {output.format!r}, but declares output_format "
                  f"{component.output_format!r}")
        path = Path(output.path)
        if not path.is_file():
            _fail(f"{label} returned an artifact whose file {path} does not exist")
        if not path.resolve().is_relative_to(run.artifacts_dir.resolve()):
            _fail(f"{label} wrote {path}; write the compressed model under run.artifacts_dir ({run.artifacts_dir})")
        if not Path(input_artifact.path).is_file():
            _fail(f"{label} removed or moved its input {input_artifact.path}; leave the input model in place")

    def test_output_loads_and_predicts(self, component: Component, dataset: Dataset,
                                       compressed: tuple[ModelArtifact, pluggy.PluginManager, RunContext]) -> None:
        output, pm, _ = compressed
        who = f"the output of {_label(self.kind, component.name)}"
        _probabilities(_predictor(pm, output, who), dataset, who)


class DeployerContract(_ModelConsumerContract):
    """A deployer deploys a model, answers a request, and reports it.

    The contract for "answers a request": with ``run.options.serve`` false,
    ``aios_deploy`` sends at least one request to what it deployed (rows of
    ``dataset.test``), compares the answers with ``run.load_predictor(artifact)``, stops,
    and returns a JSON-able report holding ``"smoke_test": {"passed": True, ...}``.
    Optional fixtures: ``input_artifact`` (default: a small model in one of the
    deployer's ``formats`` from an installed framework; the checks skip if none writes
    one), ``supporting_components`` and ``dataset``, as for compressors.
    """

    kind = "deployer"
    required_hooks = ("aios_deploy",)
    required_attributes = ("formats",)
    accepted_formats_attribute = "formats"
    _example_name = "fastapi"

    @pytest.fixture
    def deployment(self, component: Component, input_artifact: ModelArtifact, dataset: Dataset,
                   supporting_components: list[Component], aios_run_context: Callable[..., RunContext]) -> Any:
        label = _label(self.kind, component.name)
        if input_artifact.format not in component.formats:
            _fail(f"input_artifact has format {input_artifact.format!r}, which {label} does not deploy "
                  f"(formats {list(component.formats)})")
        pm = _manager(*supporting_components, component)
        run = aios_run_context(pm, options=RunOptions(serve=False))
        run.phase = "deploy"
        return pm.hook.aios_deploy(artifact=input_artifact, dataset=dataset, run=run)

    def test_report_is_json(self, component: Component, deployment: Any) -> None:
        label = _label(self.kind, component.name)
        if not isinstance(deployment, dict):
            _fail(f"aios_deploy of {label} returned {type(deployment).__name__}; it must return a dict (the report)")
        try:
            json.dumps(deployment)
        except (TypeError, ValueError) as error:
            _fail(f"the report of {label} is not JSON-able ({error}); it is recorded in the run's state.json")

    def test_answers_its_smoke_test_request(self, component: Component, deployment: Any) -> None:
        label = _label(self.kind, component.name)
        smoke = deployment.get("smoke_test") if isinstance(deployment, dict) else None
        if not isinstance(smoke, dict) or "passed" not in smoke:
            _fail(f"the report of {label} has no \"smoke_test\": {{\"passed\": ...}} entry (keys: "
                  f"{sorted(deployment) if isinstance(deployment, dict) else deployment!r}); a deployer sends rows of "
                  "dataset.test to what it deployed, compares the answers with run.load_predictor(artifact) and "
                  "reports {\"smoke_test\": {\"passed\": true, ...}}")
        if smoke["passed"] is not True:
            _fail(f"{label} reports a failed smoke test: {smoke!r}")


# ---------------------------------------------------------------- monitor
_LIFECYCLE_HOOKS = ("aios_on_run_start", "aios_on_phase_start", "aios_on_step", "aios_on_epoch_end",
                    "aios_on_phase_end", "aios_on_artifact", "aios_on_error", "aios_on_run_end")


class MonitorContract(ComponentContract):
    """A monitor receives a run's lifecycle events, in order, without raising."""

    kind = "monitor"
    _example_name = "my-monitor"

    def test_hooks_match_the_specs(self, component_entry: ComponentEntry, component: Component) -> None:
        super().test_hooks_match_the_specs(component_entry, component)
        pm = _manager(component)
        if not {caller.name for caller in pm.get_hookcallers(component) or ()} & set(_LIFECYCLE_HOOKS):
            _fail(f"{_label(self.kind, component_entry.name)} implements no lifecycle hook; a monitor implements "
                  f"some of {', '.join(_LIFECYCLE_HOOKS)} (methods marked @aios_core.hookimpl)")

    @pytest.fixture
    def dataset(self, tiny_dataset: Dataset) -> Dataset:
        return tiny_dataset

    def _drive(self, component: Component, run_context: Callable[..., RunContext],
               events: Callable[[pluggy.PluginManager, RunContext], list[tuple[str, Callable[[], Any]]]]
               ) -> tuple[list[str], list[str]]:
        """Send ``events`` through a plugin manager holding the monitor; (expected, received) hook names."""
        pm = _manager(component)
        implemented = {caller.name for caller in pm.get_hookcallers(component) or ()}
        received: list[str] = []

        def before(hook_name: str, hook_impls: list[Any], kwargs: dict[str, Any]) -> None:
            if any(impl.plugin is component for impl in hook_impls):
                received.append(f"{hook_name}({kwargs['phase']})" if "phase" in kwargs else hook_name)

        def after(outcome: Any, hook_name: str, hook_impls: list[Any], kwargs: dict[str, Any]) -> None:
            pass

        undo = pm.add_hookcall_monitoring(before, after)
        run = run_context(pm)
        expected: list[str] = []
        try:
            for event, send in events(pm, run):
                if event.split("(")[0] in implemented:
                    expected.append(event)
                try:
                    send()
                except Exception as error:
                    _fail_raised(f"{_label(self.kind, component.name)} raised on {event}", error)
        finally:
            undo()
        return expected, received

    def test_receives_a_completed_runs_events_in_order(self, component: Component, dataset: Dataset,
                                                       aios_run_context: Callable[..., RunContext]) -> None:
        def events(pm: pluggy.PluginManager, run: RunContext) -> list[tuple[str, Callable[[], Any]]]:
            hook = pm.hook
            artifact_path = run.artifacts_dir / "model.bin"
            history = [{"epoch": epoch, "loss": 1.0 / epoch, "accuracy": 0.5 + 0.2 * epoch, "val_loss": 1.1 / epoch,
                        "val_accuracy": 0.5 + 0.15 * epoch, "lr": 0.001, "seconds": 0.01} for epoch in (1, 2)]
            artifact = ModelArtifact(name="native", path=artifact_path, format="bin", producer="aios-contract")
            data_summary = {**dataset.summary(), "seconds": 0.01}
            train_summary = {"history": history, "best_epoch": 2, "stopped_early": False, "final": history[1],
                             "artifact": artifact.to_json(), "seconds": 0.02}
            state = {"status": "completed", "phases": {"data": data_summary, "train": train_summary},
                     "started": "2024-01-01T00:00:00", "finished": "2024-01-01T00:00:01"}

            def phase(name: str) -> Callable[[], None]:
                def start() -> None:
                    run.phase = name
                    hook.aios_on_phase_start(run=run, phase=name)
                return start

            def write_artifact() -> None:
                artifact_path.parent.mkdir(parents=True, exist_ok=True)
                artifact_path.write_bytes(b"\0" * 2048)
                hook.aios_on_artifact(run=run, artifact=artifact)

            return [
                ("aios_on_run_start", lambda: hook.aios_on_run_start(run=run)),
                ("aios_on_phase_start(data)", phase("data")),
                ("aios_on_phase_end(data)", lambda: hook.aios_on_phase_end(run=run, phase="data", summary=data_summary)),
                ("aios_on_phase_start(train)", phase("train")),
                ("aios_on_step(train)", lambda: run.report_step(1, 2, 4, {"loss": 1.2})),
                ("aios_on_epoch_end(train)", lambda: run.report_epoch(1, dict(history[0]))),
                ("aios_on_step(train)", lambda: run.report_step(2, 2, 4, {"loss": 0.6})),
                ("aios_on_epoch_end(train)", lambda: run.report_epoch(2, dict(history[1]))),
                ("aios_on_artifact", write_artifact),
                ("aios_on_phase_end(train)",
                 lambda: hook.aios_on_phase_end(run=run, phase="train", summary=train_summary)),
                ("aios_on_run_end", lambda: hook.aios_on_run_end(run=run, status="completed", summary=state)),
            ]

        expected, received = self._drive(component, aios_run_context, events)
        if received != expected:
            _fail(f"{_label(self.kind, component.name)} received the lifecycle events\n  {received}\n"
                  f"but a completed run sends it, in this order,\n  {expected}")

    def test_survives_a_failed_run(self, component: Component, aios_run_context: Callable[..., RunContext]) -> None:
        def events(pm: pluggy.PluginManager, run: RunContext) -> list[tuple[str, Callable[[], Any]]]:
            hook = pm.hook
            error = RuntimeError("aios contract kit: a simulated failure of the data phase")
            state = {"status": "failed", "phases": {}, "started": "2024-01-01T00:00:00",
                     "finished": "2024-01-01T00:00:01"}

            def start() -> None:
                run.phase = "data"
                hook.aios_on_phase_start(run=run, phase="data")

            return [
                ("aios_on_run_start", lambda: hook.aios_on_run_start(run=run)),
                ("aios_on_phase_start(data)", start),
                ("aios_on_error(data)", lambda: hook.aios_on_error(run=run, phase="data", error=error)),
                ("aios_on_run_end", lambda: hook.aios_on_run_end(run=run, status="failed", summary=state)),
            ]

        expected, received = self._drive(component, aios_run_context, events)
        if received != expected:
            _fail(f"{_label(self.kind, component.name)} received the events\n  {received}\n"
                  f"but a failed run sends it, in this order,\n  {expected}")
