"""The shared base of the compressor and deployer contracts: kinds that take a model artifact."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from aios_core.testing._harness import fail, frameworks_for, input_model, label_of, manager_with
from aios_core.testing.component import ComponentContract

if TYPE_CHECKING:
    import pluggy

    from aios_core.components import Component
    from aios_core.context import RunContext
    from aios_core.plugins import ComponentEntry
    from aios_core.records import Dataset, ModelArtifact


class ModelConsumerContract(ComponentContract):
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
        return input_model(request.config, tmp_path_factory, accepted, dataset, component_entry, input_framework)

    @pytest.fixture
    def regression_input(self, request: pytest.FixtureRequest, component_entry: ComponentEntry,
                         component_class: type[Component], input_framework: str | None,
                         tiny_regression_dataset: Dataset,
                         tmp_path_factory: pytest.TempPathFactory) -> tuple[Dataset, ModelArtifact]:
        """For a component that declares regression: the tiny regression set and a model trained on it, in an
        accepted format (the regression checks skip otherwise)."""
        if "regression" not in component_class.tasks:
            pytest.skip(f"{label_of(self.kind, component_entry.name)} declares tasks {list(component_class.tasks)}, "
                        "not regression")
        accepted = tuple(getattr(component_class, self.accepted_formats_attribute, ()))
        return tiny_regression_dataset, input_model(request.config, tmp_path_factory, accepted,
                                                    tiny_regression_dataset, component_entry, input_framework)

    @pytest.fixture
    def supporting_components(self, input_artifact: ModelArtifact,
                              component_class: type[Component]) -> list[Component]:
        """Registered beside the component, as a stack's framework is: installed frameworks of the formats involved."""
        formats = {input_artifact.format}
        if hasattr(component_class, "output_format"):
            formats.add(component_class.output_format)
        return frameworks_for(formats)


def prepared_call(kind: str, accepted_attribute: str, component: Component, artifact: ModelArtifact,
                  supporting: list[Component], aios_run_context: Callable[..., RunContext], phase: str,
                  **context: Any) -> tuple[pluggy.PluginManager, RunContext]:
    """The plugin manager and run context (in ``phase``) to call ``component``'s hook on ``artifact`` with.

    Fails first when ``artifact``'s format is not among the component's ``accepted_attribute``;
    ``supporting`` are registered beside it, as a stack's framework is; ``context`` goes to ``aios_run_context``.
    """
    accepted = list(getattr(component, accepted_attribute))
    if artifact.format not in accepted:
        fail(f"input_artifact has format {artifact.format!r}, which {label_of(kind, component.name)} does not take "
             f"({accepted_attribute} {accepted})")
    pm = manager_with(*supporting, component)
    run = aios_run_context(pm, **context)
    run.phase = phase
    return pm, run
