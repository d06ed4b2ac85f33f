"""``CompressorContract``: a compressor writes, under the run, a model of its ``output_format`` that predicts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from aios_core.records import ModelArtifact
from aios_core.testing._harness import check_probabilities, fail, label_of, manager_with, predictor_for
from aios_core.testing._model_consumer import ModelConsumerContract

if TYPE_CHECKING:
    from collections.abc import Callable

    import pluggy

    from aios_core.components import Component
    from aios_core.context import RunContext
    from aios_core.records import Dataset

__all__ = ["Compression", "CompressorContract"]


@dataclass(frozen=True)
class Compression:
    """What the ``compressed`` fixture holds: one compression of ``input_artifact``."""

    output: ModelArtifact
    """What ``aios_compress`` returned (the fixture fails unless it is an ``aios_core.ModelArtifact``)."""
    plugin_manager: pluggy.PluginManager
    """Holds ``supporting_components`` and the compressor, registered as a run registers them."""
    run: RunContext
    """The run compressed in (phase ``compress``)."""


class CompressorContract(ModelConsumerContract):
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
                   aios_run_context: Callable[..., RunContext]) -> Compression:
        label = label_of(self.kind, component.name)
        if input_artifact.format not in component.input_formats:
            fail(f"input_artifact has format {input_artifact.format!r}, which {label} does not accept "
                 f"(input_formats {list(component.input_formats)})")
        pm = manager_with(*supporting_components, component)
        run = aios_run_context(pm)
        run.phase = "compress"
        output = pm.hook.aios_compress(artifact=input_artifact, dataset=dataset, run=run)
        if not isinstance(output, ModelArtifact):
            fail(f"aios_compress of {label} returned {type(output).__name__}; it must return an aios_core.ModelArtifact")
        return Compression(output=output, plugin_manager=pm, run=run)

    def test_output_has_the_declared_format_and_lies_under_the_run(
            self, component: Component, input_artifact: ModelArtifact, compressed: Compression) -> None:
        output, run = compressed.output, compressed.run
        label = label_of(self.kind, component.name)
        if output.format != component.output_format:
            fail(f"{label} returned an artifact of format {output.format!r}, but declares output_format "
                 f"{component.output_format!r}")
        path = Path(output.path)
        if not path.is_file():
            fail(f"{label} returned an artifact whose file {path} does not exist")
        if not path.resolve().is_relative_to(run.artifacts_dir.resolve()):
            fail(f"{label} wrote {path}; write the compressed model under run.artifacts_dir ({run.artifacts_dir})")
        if not Path(input_artifact.path).is_file():
            fail(f"{label} removed or moved its input {input_artifact.path}; leave the input model in place")

    def test_output_loads_and_predicts(self, component: Component, dataset: Dataset,
                                       compressed: Compression) -> None:
        who = f"the output of {label_of(self.kind, component.name)}"
        check_probabilities(predictor_for(compressed.plugin_manager, compressed.output, who), dataset, who)
