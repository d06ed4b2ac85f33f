"""``FrameworkContract``: a framework builds a model, saves and loads it unchanged, exports every declared format,
and its ONNX export is what onnx-quant and oip can run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from aios_core.testing import _onnx_checks as onnx_checks
from aios_core.testing._harness import (
    build,
    check_probabilities,
    entry_of,
    fail,
    label_of,
    load_class,
    manager_with,
    predictor_for,
    train,
    trainers_of,
)
from aios_core.testing._onnx_checks import OnnxExport
from aios_core.testing._saving import WRAPPINGS, check_load_runs_no_code, check_trained_weights_survive
from aios_core.testing.component import ComponentContract

if TYPE_CHECKING:
    from collections.abc import Callable

    import pluggy

    from aios_core.components import Component, Framework, Trainer
    from aios_core.context import RunContext
    from aios_core.plugins import ComponentEntry
    from aios_core.records import Dataset

__all__ = ["Built", "FrameworkContract", "OnnxExport"]


@dataclass(frozen=True)
class Built:
    """What the ``built`` fixture holds: the framework's model for the data set, and where it was built."""

    plugin_manager: pluggy.PluginManager
    """Holds the framework alone, registered as a run registers it."""
    run: RunContext
    """A run in a temporary run directory; write files under ``run.artifacts_dir``."""
    model: Any
    """What ``aios_build_model`` returned (never None)."""


class FrameworkContract(ComponentContract):
    """A framework builds a model for a data set, saves and loads it unchanged, and exports every declared format.

    Optional fixtures: ``dataset`` (default ``tiny_dataset``), ``trainer_name`` (default:
    the first installed trainer of this framework, its own distribution's first; the
    trained-weights check skips if there is none) and ``trainer_params`` (default ``{}``;
    ``trainer_epochs`` epochs unless set). ``component_params`` are the model parameters
    (e.g. ``{"architecture": "cnn"}``). ``onnx_extra_outputs`` names the outputs an ONNX
    export has after the probabilities, if the plugin documents any.
    """

    kind = "framework"
    required_attributes = ("native_format", "export_formats")
    onnx_extra_outputs: ClassVar[tuple[str, ...]] = ()
    trainer_epochs: ClassVar[int] = 2
    _example_name = "torch"

    def hooks_required_of(self, component: Component) -> tuple[str, ...]:
        hooks = ("aios_build_model", "aios_save_model", "aios_load_model", "aios_load_predictor")
        return hooks + (("aios_export_model",) if getattr(component, "export_formats", ()) else ())

    @pytest.fixture
    def dataset(self, tiny_dataset: Dataset) -> Dataset:
        return tiny_dataset

    @pytest.fixture
    def trainer_name(self, component_entry: ComponentEntry) -> str:
        trainers = trainers_of(component_entry)
        if not trainers:
            pytest.skip(f"no installed trainer trains models of {label_of(self.kind, component_entry.name)} (a trainer "
                        f"whose `frameworks` include '{component_entry.name}'); install one or provide a "
                        "`trainer_name` fixture")
        return trainers[0][0].name

    @pytest.fixture
    def trainer_params(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def trainer(self, component_name: str, trainer_name: str, trainer_params: dict[str, Any]) -> Trainer:
        """The trainer ``trainer_name`` with ``trainer_params``, for ``trainer_epochs`` epochs unless they set it."""
        cls = load_class(entry_of("trainer", trainer_name))
        if component_name not in getattr(cls, "frameworks", ()):
            fail(f"trainer_name is {trainer_name!r}, which trains {list(getattr(cls, 'frameworks', ()))}, not "
                 f"'{component_name}'")
        params = dict(trainer_params)
        if "epochs" in cls.Params.model_fields:
            params.setdefault("epochs", self.trainer_epochs)
        return build(cls, params, trainer_name)

    @pytest.fixture
    def onnx_export(self, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                    component: Framework, dataset: Dataset) -> OnnxExport:
        """The framework's model for ``dataset`` saved natively and exported to ONNX, once per session and
        configuration; skips without an ``onnx`` export format or without onnx and onnxruntime."""
        return onnx_checks.onnx_export(request.config, tmp_path_factory, component, dataset,
                                       label_of(self.kind, component.name))

    @pytest.fixture
    def built(self, component: Framework, dataset: Dataset, aios_run_context: Callable[..., RunContext]) -> Built:
        """The framework's model for ``dataset``, built through ``aios_build_model``."""
        pm = manager_with(component)
        run = aios_run_context(pm)
        model = pm.hook.aios_build_model(dataset=dataset, run=run, overrides={})
        if model is None:
            fail(f"aios_build_model of {label_of(self.kind, component.name)} returned None; it must return a model")
        return Built(plugin_manager=pm, run=run, model=model)

    def test_regression_model_saves_and_exports_predictions(self, request: pytest.FixtureRequest,
                                                            tmp_path_factory: pytest.TempPathFactory,
                                                            component: Framework,
                                                            tiny_regression_dataset: Dataset) -> None:
        """For a framework that declares regression: its model for a regression set predicts (n, targets), and
        its ONNX export's first output is ``predictions`` (n, targets), equal to the native model's."""
        import numpy as np

        label = label_of(self.kind, component.name)
        if "regression" not in component.tasks:
            pytest.skip(f"{label} declares tasks {list(component.tasks)}, not regression")
        dataset = tiny_regression_dataset
        export = onnx_checks.onnx_export(request.config, tmp_path_factory, component, dataset, label)
        problems = onnx_checks.output_problems(export, dataset, self.onnx_extra_outputs)
        if problems:
            fail(f"the ONNX export of {label}'s regression model: " + "; ".join(problems))
        native = onnx_checks.native_probabilities(export, dataset, label)
        exported = onnx_checks.check_runtime_probabilities(export, dataset, label)
        worst = float(np.max(np.abs(native - exported)))
        if worst > onnx_checks.PARITY_ATOL:
            fail(f"{label}'s regression model: ONNX Runtime's predictions differ from the native model's by up to "
                 f"{worst:.3g} (allowed {onnx_checks.PARITY_ATOL:g})")

    def test_saved_model_loads_and_predicts_identically(self, component: Framework, dataset: Dataset,
                                                        built: Built) -> None:
        import numpy as np

        pm, run = built.plugin_manager, built.run
        label = label_of(self.kind, component.name)
        saved = self._artifact(pm.hook.aios_save_model(model=built.model, path=run.artifacts_dir /
                                                       f"model.{component.native_format}"),
                               component.native_format, f"aios_save_model of {label}")
        loaded = pm.hook.aios_load_model(artifact=saved)
        if loaded is None:
            fail(f"aios_load_model of {label} returned None for its own file {saved.path}")
        resaved = self._artifact(pm.hook.aios_save_model(model=loaded, path=run.artifacts_dir /
                                                         f"reloaded.{component.native_format}"),
                                 component.native_format, f"aios_save_model of {label}")
        before = check_probabilities(predictor_for(pm, saved, f"{label}'s saved model"), dataset,
                                     f"{label}'s saved model")
        after = check_probabilities(predictor_for(pm, resaved, f"{label}'s reloaded model"), dataset,
                                    f"{label}'s reloaded model")
        if not np.allclose(before, after, rtol=0.0, atol=1e-6):
            fail(f"{label}: a model saved, loaded (aios_load_model) and saved again predicts differently from the "
                 f"original file (max difference {np.max(np.abs(before - after)):.3g}); saving must keep every weight")

    def test_each_export_format_exports_and_predicts_probabilities(self, component: Framework, dataset: Dataset,
                                                                   built: Built) -> None:
        label = label_of(self.kind, component.name)
        if not component.export_formats:
            pytest.skip(f"{label} declares no export_formats")
        pm, run = built.plugin_manager, built.run
        for fmt in component.export_formats:
            artifact = self._artifact(
                pm.hook.aios_export_model(model=built.model, fmt=fmt, path=run.artifacts_dir / f"model.{fmt}",
                                          dataset=dataset),
                fmt, f"aios_export_model of {label} (fmt={fmt!r})")
            check_probabilities(predictor_for(pm, artifact, f"{label}'s {fmt} export"), dataset,
                                f"{label}'s {fmt} export")

    _artifact = staticmethod(onnx_checks.artifact_of)

    def test_trained_model_saves_and_loads_with_its_weights(self, component: Framework, trainer: Trainer,
                                                            dataset: Dataset,
                                                            aios_run_context: Callable[..., RunContext]) -> None:
        """How without a predictor of the model in memory: ``aios_core.testing._saving.check_trained_weights_survive``."""
        pm = manager_with(component, trainer)
        run = aios_run_context(pm)
        untrained = pm.hook.aios_build_model(dataset=dataset, run=run, overrides={})
        result = train(pm, run, dataset)  # on a model of its own: a trainer may train in place
        trained = getattr(result, "model", None)
        if trained is None:
            fail(f"aios_train of {label_of('trainer', trainer.name)} returned {result!r}, with no model to save")
        check_trained_weights_survive(pm, component, untrained, trained, dataset, run,
                                      label_of(self.kind, component.name))

    @pytest.mark.parametrize("wrapping", list(WRAPPINGS), ids=["pickle", "zip-wrapped-pickle"])
    def test_loading_a_native_file_runs_no_code_from_it(self, component: Framework, tmp_path: Path,
                                                         wrapping: str) -> None:
        check_load_runs_no_code(manager_with(component), component, tmp_path / "untrusted", wrapping,
                                label_of(self.kind, component.name))

    # ------------------------------------------------------------ the ONNX export, as onnx-quant and oip run it
    def test_onnx_export_passes_the_onnx_checker(self, component: Framework, onnx_export: OnnxExport) -> None:
        problem = onnx_checks.checker_problem(onnx_export)
        if problem:
            fail(f"onnx.checker.check_model rejects the ONNX export of {label_of(self.kind, component.name)} "
                 f"({onnx_export.onnx.path}): {problem}")

    def test_onnx_export_imports_one_opset_per_domain(self, component: Framework, onnx_export: OnnxExport) -> None:
        problems = onnx_checks.duplicate_opsets(onnx_export)
        if problems:
            found = "; ".join(f"domain {domain!r}: versions {versions}" if versions else
                              f"domain {domain!r}: not imported" for domain, versions in problems.items())
            fail(f"the ONNX export of {label_of(self.kind, component.name)} must import one opset per domain, the "
                 f"default domain ('' or 'ai.onnx', one entry) included; found {found}. onnx-quant's quantizer "
                 "reads the model's opset from that one entry and stops with 'Failed to find proper ai.onnx "
                 "domain' otherwise; keep one opset_import entry per domain")

    def test_onnx_export_takes_one_float32_input_of_any_batch_size(self, component: Framework, dataset: Dataset,
                                                                   onnx_export: OnnxExport) -> None:
        problems = onnx_checks.input_problems(onnx_export, dataset)
        if problems:
            fail(f"the ONNX export of {label_of(self.kind, component.name)} must take one float32 input of shape "
                 f"(n, {dataset.num_features}) with a symbolic batch dimension: onnx-quant calibrates and times it "
                 "through that one input, and oip feeds it batches of any size. Found:\n  " + "\n  ".join(problems))

    def test_onnx_export_outputs_probabilities_first(self, component: Framework, dataset: Dataset,
                                                     onnx_export: OnnxExport) -> None:
        label = label_of(self.kind, component.name)
        problems = onnx_checks.output_problems(onnx_export, dataset, self.onnx_extra_outputs)
        if problems:
            fail(f"the ONNX export of {label} must output class probabilities (n, {dataset.num_classes}) as its only "
                 "output, or its first: oip answers requests with the first output and onnx-quant measures accuracy "
                 "on it. Found:\n  " + "\n  ".join(problems))
        onnx_checks.check_runtime_probabilities(onnx_export, dataset, label)

    def test_onnx_export_answers_as_the_native_model(self, component: Framework, dataset: Dataset,
                                                     onnx_export: OnnxExport) -> None:
        import numpy as np

        label = label_of(self.kind, component.name)
        native = onnx_checks.native_probabilities(onnx_export, dataset, label)
        exported = onnx_checks.check_runtime_probabilities(onnx_export, dataset, label)
        difference = float(np.max(np.abs(exported - native)))
        if difference > onnx_checks.PARITY_ATOL:
            fail(f"ONNX Runtime on the ONNX export of {label} answers differently from the native model on the same "
                 f"{len(dataset.x_test)} rows: max difference {difference:.3g} in probability (allowed "
                 f"{onnx_checks.PARITY_ATOL:g}); the served model must be the trained one: export the same weights "
                 "and the same computation (no preprocessing of its own, inference mode)")

    def test_onnx_export_predicts_a_row_alone_as_in_a_batch(self, component: Framework, dataset: Dataset,
                                                            onnx_export: OnnxExport) -> None:
        label = label_of(self.kind, component.name)
        row, difference = onnx_checks.batch_differences(onnx_export, dataset, label)
        if difference > onnx_checks.BATCH_ATOL:
            fail(f"ONNX Runtime on the ONNX export of {label} predicts test row {row} alone differently from the same "
                 f"row in a batch of {len(dataset.x_test)}: max difference {difference:.3g} (allowed "
                 f"{onnx_checks.BATCH_ATOL:g}). oip batches concurrent requests together, so an answer must not "
                 "depend on the other rows: export in inference mode (batch normalization with its running "
                 "statistics, no statistic over the batch dimension)")
