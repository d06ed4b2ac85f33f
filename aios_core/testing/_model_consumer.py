"""The shared base of the compressor and deployer contracts: kinds that take a model artifact."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import pytest

from aios_core.testing._harness import frameworks_for, input_model, label_of
from aios_core.testing.component import ComponentContract

if TYPE_CHECKING:
    from aios_core.components import Component
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
