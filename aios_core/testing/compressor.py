"""``CompressorContract``: a compressor writes, under the run, a model of its ``output_format`` that predicts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import pytest

from aios_core.records import ModelArtifact
from aios_core.testing._harness import (
    check_probabilities,
    entry_of,
    fail,
    frameworks_for,
    label_of,
    predictor_for,
    trainer_for,
)
from aios_core.testing._model_consumer import ModelConsumerContract, prepared_call

if TYPE_CHECKING:
    from collections.abc import Callable

    import pluggy

    from aios_core.components import Component, Framework
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


def _native_framework(component: Component | type[Component], fmt: str) -> Framework | None:
    """The installed framework whose native format is ``fmt``, if the compressor works on that format before export."""
    return next((f for f in frameworks_for({fmt}) if f.native_format == fmt and component.works_before_export(fmt)),
                None)


class CompressorContract(ModelConsumerContract):
    """A compressor writes a model of its ``output_format`` under the run that loads and predicts.

    Optional fixtures: ``input_artifact`` (default: a small model in one of the
    compressor's ``input_formats``, from an installed framework; the checks skip if no
    installed framework writes one), ``supporting_components`` (components registered
    beside it; default: installed frameworks of the input and output formats, and for a
    compressor of a framework's native model also a trainer of that framework, for
    ``run.train``) and ``dataset`` (default ``tiny_dataset``).

    A native-format compressor (``Compressor.works_before_export``) is called in the
    ``compress-native`` phase, as the runner calls it, and its output must load with the
    framework's ``aios_load_model`` and export to each of the framework's export formats.
    """

    kind = "compressor"
    required_hooks = ("aios_compress",)
    required_attributes = ("input_formats", "output_format")
    accepted_formats_attribute = "input_formats"
    _example_name = "onnx-quant"

    regression_tolerance: ClassVar[float] = 0.25
    """How far a regression model's compressed predictions may move: RMSE from the input's, as a fraction of the
    target's standard deviation on the test split (both in the target's units)."""

    @pytest.fixture
    def supporting_components(self, input_artifact: ModelArtifact, component_class: type[Component]) -> list[Component]:
        return _supporting(input_artifact, component_class)

    @pytest.fixture
    def compressed(self, component: Component, input_artifact: ModelArtifact, dataset: Dataset,
                   supporting_components: list[Component],
                   aios_run_context: Callable[..., RunContext]) -> Compression:
        return _compress(component, input_artifact, dataset, supporting_components, aios_run_context)

    def test_regression_output_predicts_close_to_its_input(
            self, component: Component, regression_input: tuple[Dataset, ModelArtifact],
            aios_run_context: Callable[..., RunContext]) -> None:
        """For a compressor that declares regression: its output for a model trained on the tiny regression set
        predicts (n, targets), within ``regression_tolerance`` of the input model's predictions."""
        import numpy as np

        dataset, artifact = regression_input
        compression = _compress(component, artifact, dataset, _supporting(artifact, type(component)),
                                aios_run_context)
        label = label_of(self.kind, component.name)
        pm = compression.plugin_manager
        before = check_probabilities(predictor_for(pm, artifact, f"the regression model given to {label}"), dataset,
                                     f"the regression model given to {label}")
        who = f"the output of {label} for a regression model"
        after = check_probabilities(predictor_for(pm, compression.output, who), dataset, who)
        moved = float(np.sqrt(np.mean((dataset.unscale_targets(after) - dataset.unscale_targets(before)) ** 2)))
        spread = float(np.std(dataset.unscale_targets(dataset.y_test)))
        if not moved <= self.regression_tolerance * spread:
            fail(f"{who} predicts {moved:.4g} (RMSE, in the target's units) away from the input model's "
                 f"predictions, more than {self.regression_tolerance:g} of the target's standard deviation "
                 f"({spread:.4g}); keep a regression model's predictions close, or declare classification only")

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

    def test_a_native_output_loads_and_exports_like_a_trained_model(
            self, component: Component, dataset: Dataset, compressed: Compression, tmp_path: Path) -> None:
        """The runner exports a native compressor's output and later compressors start from that export."""
        output, pm = compressed.output, compressed.plugin_manager
        framework = _native_framework(component, output.format)
        if framework is None:
            pytest.skip(f"{label_of(self.kind, component.name)} works on exported models")
        label = label_of(self.kind, component.name)
        model = pm.hook.aios_load_model(artifact=output)
        if model is None:
            fail(f"framework '{framework.name}' does not load the output of {label} ({output.path}) with "
                 "aios_load_model; a native compressor must write a model its framework loads")
        for fmt in framework.export_formats:
            exported = pm.hook.aios_export_model(model=model, fmt=fmt, path=tmp_path / f"model.{fmt}",
                                                 dataset=dataset)
            who = f"the {fmt} export of the output of {label}"
            check_probabilities(predictor_for(pm, exported, who), dataset, who)


def _supporting(artifact: ModelArtifact, component_class: type[Component]) -> list[Component]:
    """Installed frameworks of the formats involved, and for a native-format compressor a trainer (``run.train``)."""
    frameworks = frameworks_for({artifact.format, component_class.output_format})
    natives = [f for f in frameworks if f.native_format == artifact.format
               and component_class.works_before_export(f.native_format)]
    trainers = [trainer_for(entry_of("framework", f.name)) for f in natives[:1]]
    return [*frameworks, *(t for t in trainers if t is not None)]


def _compress(component: Component, artifact: ModelArtifact, dataset: Dataset, supporting: list[Component],
              aios_run_context: Callable[..., RunContext]) -> Compression:
    """``aios_compress`` of ``artifact`` in the phase the runner would call it in."""
    label = label_of("compressor", component.name)
    phase = "compress-native" if _native_framework(component, artifact.format) else "compress"
    pm, run = prepared_call("compressor", "input_formats", component, artifact, supporting, aios_run_context, phase)
    output = pm.hook.aios_compress(artifact=artifact, dataset=dataset, run=run)
    if not isinstance(output, ModelArtifact):
        fail(f"aios_compress of {label} returned {type(output).__name__}; it must return an aios_core.ModelArtifact")
    return Compression(output=output, plugin_manager=pm, run=run)
