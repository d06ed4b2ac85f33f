"""What every contract drives a component with: failing with advice, finding, loading and building
components, a plugin manager as a run makes one, the input model of compressors and deployers, the
probability check of predictors, and the monitor that records what a trainer reports.

A contract module imports from here and from ``component``; this module imports no contract.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import traceback
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
from pydantic import ValidationError

from aios_core.components import BASE_CLASSES, Component, Framework, Monitor
from aios_core.hookspecs import hookimpl
from aios_core.plugins import (
    ComponentEntry,
    PluginError,
    build_component,
    discover,
    find_entry,
    installed,
    load_component,
)
from aios_core.testing.tools import plugin_manager
from aios_core.vocabulary import KIND_GROUPS

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import numpy as np
    import pluggy

    from aios_core.context import RunContext
    from aios_core.records import Dataset, ModelArtifact

HEAVY_MODULES = ("torch", "tensorflow", "ray", "onnxruntime", "sklearn", "pandas", "scipy", "mlflow")
"""Libraries an entry-point module must not import at its top: listing plugins and validating stacks would pay for
them (each costs from a few hundred milliseconds to seconds to import)."""

_INPUT_MODELS = pytest.StashKey[dict]()


# ---------------------------------------------------------------- failing
def fail(message: str) -> NoReturn:
    """Fail the check with ``message`` alone: the message says what is wrong and what to do.

    Raised ``from None``: called while handling a kernel error, the message already says
    what that error said, and a chained repeat of it would only bury the advice.
    """
    __tracebackhide__ = True
    raise pytest.fail.Exception(message, pytrace=False) from None


def fail_raised(message: str, error: BaseException) -> NoReturn:
    """Fail with ``message``, then the traceback of ``error`` raised inside the component."""
    fail(f"{message}: {type(error).__name__}: {error}\n\n" + "".join(traceback.format_exception(error)))


def label_of(kind: str, name: str) -> str:
    """How messages name a component: ``trainer 'torch'``."""
    return f"{kind} '{name}'"


# ---------------------------------------------------------------- finding, loading, building
def entry_of(kind: str, name: str) -> ComponentEntry:
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
        fail(f"{error}{hint}")


def load_class(entry: ComponentEntry) -> type[Component]:
    """Import the entry's class through the kernel's loader.

    An incompatible aios-kernel range is reported by its own check, so the other checks
    still load the component and say what else is wrong.
    """
    if entry.status == "incompatible":
        entry = dataclasses.replace(entry, problem=None)
    try:
        return load_component(entry)
    except PluginError as error:
        fail(str(error) + _wrong_base_hint(entry))


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


def build(cls: type[Component], params: dict[str, Any], name: str) -> Component:
    """An instance made as a stack makes one (``aios_core.plugins.build_component``), or a failure."""
    try:
        return build_component(cls, params, name)
    except ValidationError as error:
        fail(f"the parameters given to {label_of(cls.kind, name)} do not validate "
             f"(component_params: {params!r}):\n{error}")


def identity(component: Component) -> tuple[str, ...]:
    """What tells one configured component from another in the kit's session caches: class, name and parameters."""
    params = json.dumps(component.params.model_dump(mode="json"), sort_keys=True, default=str)
    return type(component).__module__, type(component).__qualname__, component.name, params


def manager_with(*components: Any) -> pluggy.PluginManager:
    """``aios_core.testing.plugin_manager(*components)``, failing the check if a component does not register."""
    try:
        return plugin_manager(*components)
    except PluginError as error:
        fail(str(error))


# ---------------------------------------------------------------- the input model of compressors and deployers
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
        return build_component(cls, {}, entry.name)
    except Exception:  # needs parameters the kit cannot guess
        return None


def frameworks_for(formats: set[str]) -> list[Framework]:
    """Every installed, loadable framework that writes one of ``formats``, with default parameters."""
    frameworks = [_default_instance(entry, cls) for entry, cls in _loadable("framework")]
    return [framework for framework in frameworks
            if framework is not None and formats & set(framework.formats)]


def trainers_of(framework: ComponentEntry) -> list[tuple[ComponentEntry, type[Component]]]:
    """Every installed, loadable trainer of ``framework``'s models, those of its own distribution first.

    So ``torch`` comes before ``ray-train`` for the torch framework; the others follow by name.
    """
    candidates = [(entry, cls) for entry, cls in _loadable("trainer") if framework.name in cls.frameworks]
    return sorted(candidates, key=lambda pair: (pair[0].distribution != framework.distribution, pair[0].name))


def trainer_for(framework: ComponentEntry) -> Component | None:
    """The first of ``trainers_of(framework)`` that builds, set to train for 2 epochs, or None."""
    for entry, cls in trainers_of(framework):
        params = {"epochs": 2} if "epochs" in cls.Params.model_fields else {}
        try:
            return build_component(cls, params, entry.name)
        except Exception:
            continue
    return None


def input_model(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory, accepted: tuple[str, ...],
                dataset: Dataset, consumer: ComponentEntry, framework_name: str | None) -> ModelArtifact:
    """A small model in the first of ``accepted`` formats an installed framework writes, made once per session.

    The framework is ``framework_name`` if given, else one from the consumer's own
    distribution, else the first by name that writes an accepted format. It builds the
    model for ``dataset``; an installed trainer of that framework, if any, trains it for
    two epochs; then the framework saves or exports it.
    """
    label = label_of(consumer.kind, consumer.name)
    candidates = [(entry, cls) for entry, cls in _loadable("framework") if framework_name in (None, entry.name)]
    if framework_name is not None and not candidates:
        fail(f"input_framework is {framework_name!r}, which is not an installed, loadable framework "
             f"(installed: {', '.join(entry.name for entry in installed('framework')) or 'none'})")
    candidates = [(entry, cls) for entry, cls in candidates if dataset.task in cls.tasks]  # a model for the data's task
    candidates.sort(key=lambda pair: (pair[0].distribution != consumer.distribution, pair[0].name))
    cache = config.stash.setdefault(_INPUT_MODELS, {})
    for fmt in accepted:
        for entry, cls in candidates:
            framework = _default_instance(entry, cls)
            if framework is None or fmt not in framework.formats:
                continue
            key = (entry.name, fmt, dataset.content_hash)
            if key not in cache:
                cache[key] = _make_model(framework, trainer_for(entry), fmt, dataset,
                                         tmp_path_factory.mktemp(f"aios-input-{entry.name}-{fmt}"))
            return cache[key]
    which = f"framework '{framework_name}'" if framework_name else "no installed framework"
    which += "" if dataset.task == "classification" else f" of {dataset.task} models"
    pytest.skip(f"{label} accepts {list(accepted)}, and {which} writes any of them; "
                "install a framework that does, or provide an `input_artifact` fixture")


def _make_model(framework: Framework, trainer: Component | None, fmt: str, dataset: Dataset,
                run_dir: Path) -> ModelArtifact:
    from aios_core.context import RunContext

    pm = manager_with(framework, *([trainer] if trainer else []))
    run = RunContext(name="contract-input", seed=0, threads=1, dir=run_dir, stack={}, hook=pm.hook)
    if trainer is None:
        model = pm.hook.aios_build_model(dataset=dataset, run=run, overrides={})
    else:
        model = train(pm, run, dataset).model
    path = run.artifacts_dir / f"model.{fmt}"
    if fmt == framework.native_format:
        return pm.hook.aios_save_model(model=model, path=path)
    return pm.hook.aios_export_model(model=model, fmt=fmt, path=path, dataset=dataset)


def train(pm: pluggy.PluginManager, run: RunContext, dataset: Dataset) -> Any:
    """Build a model with the registered framework and train it with the registered trainer, as a run's train phase
    does; what ``aios_train`` returned."""
    run.phase = "train"
    model = pm.hook.aios_build_model(dataset=dataset, run=run, overrides={})
    return pm.hook.aios_train(model=model, dataset=dataset, run=run, overrides={})


# ---------------------------------------------------------------- predictions
def predictor_for(pm: pluggy.PluginManager, artifact: ModelArtifact,
                  who: str) -> Callable[[np.ndarray], np.ndarray]:
    """The predictor a registered component returns for ``artifact``, or a failure naming ``who``."""
    predict = pm.hook.aios_load_predictor(artifact=artifact, threads=1)
    if predict is None:
        fail(f"no component returned a predictor for {who} (format '{artifact.format}', {artifact.path}) from "
             f"aios_load_predictor; the component that writes '{artifact.format}' files should implement "
             "aios_load_predictor for them")
    return predict


def check_probabilities(predict: Callable[[np.ndarray], np.ndarray], dataset: Dataset, who: str) -> np.ndarray:
    """Predict ``dataset.x_test`` and check the result is (n, classes) probabilities, or for a regression
    data set (n, targets) finite predictions."""
    import numpy as np

    rows = dataset.x_test
    result = np.asarray(predict(rows))
    if dataset.task == "regression":
        expected = (len(rows), dataset.num_targets)
        if result.shape != expected:
            fail(f"the predictor of {who} returned shape {result.shape} for {len(rows)} rows of a regression data "
                 f"set of {dataset.num_targets} target(s); expected predictions of shape {expected}")
        if not np.all(np.isfinite(result)):
            fail(f"the predictor of {who} returned {int(np.sum(~np.isfinite(result)))} non-finite predictions")
        return result
    expected = (len(rows), dataset.num_classes)
    if result.shape != expected:
        fail(f"the predictor of {who} returned shape {result.shape} for {len(rows)} rows of a "
             f"{dataset.num_classes}-class data set; expected class probabilities of shape {expected}")
    if not np.all(np.isfinite(result)) or result.min() < -1e-6:
        fail(f"the predictor of {who} returned values that are not probabilities "
             f"(min {np.nanmin(result):.4g}, non-finite: {int(np.sum(~np.isfinite(result)))})")
    sums = result.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-3):
        fail(f"the predictor of {who} returned rows summing to {sums.min():.4g}..{sums.max():.4g}; class "
             "probabilities must sum to 1 (apply softmax to logits)")
    return result


# ---------------------------------------------------------------- recording
class Recorder(Monitor):
    """The kit's own monitor: what a component reported through the RunContext.

    ``epochs`` holds ``(phase, epoch, metrics)`` per ``run.report_epoch``; ``steps`` holds
    ``(phase, epoch, step, total_steps)`` per ``run.report_step``; ``progress`` holds
    ``(phase, task, done, total, unit)`` per ``run.report_progress``.
    """

    def __init__(self) -> None:
        super().__init__(name="aios-contract-recorder")
        self.epochs: list[tuple[str, int, dict[str, float]]] = []
        self.steps: list[tuple[str, int, int, int]] = []
        self.progress: list[tuple[str, str, int, int | None, str]] = []

    @hookimpl
    def aios_on_epoch_end(self, phase: str, epoch: int, metrics: dict[str, float]) -> None:
        self.epochs.append((phase, epoch, dict(metrics)))

    @hookimpl
    def aios_on_step(self, phase: str, epoch: int, step: int, total_steps: int) -> None:
        self.steps.append((phase, epoch, step, total_steps))

    @hookimpl
    def aios_on_progress(self, phase: str, task: str, done: int, total: int | None, unit: str) -> None:
        self.progress.append((phase, task, done, total, unit))
