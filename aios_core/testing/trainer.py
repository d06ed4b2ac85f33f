"""``TrainerContract``: a trainer lowers the training loss on a tiny data set and reports every epoch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from aios_core.plugins import PluginError, installed, load_component
from aios_core.records import ModelArtifact, TrainResult
from aios_core.testing._harness import (
    Recorder,
    build,
    check_probabilities,
    entry_of,
    fail,
    fail_raised,
    identity,
    label_of,
    load_class,
    manager_with,
    predictor_for,
    train,
)
from aios_core.testing.component import ComponentContract

if TYPE_CHECKING:
    from collections.abc import Callable

    import pluggy

    from aios_core.components import Component, Framework
    from aios_core.context import RunContext
    from aios_core.records import Dataset

__all__ = ["TrainerContract", "Training"]

_SHARED_TRAININGS = pytest.StashKey[dict]()


@dataclass(frozen=True)
class Training:
    """What the ``training`` fixture holds: one training of the framework's model by the trainer."""

    result: Any
    """What ``aios_train`` returned; the checks require an ``aios_core.TrainResult``."""
    recorder: Recorder
    """The kit's monitor: ``recorder.epochs`` lists ``(phase, epoch, metrics)`` per ``run.report_epoch``,
    ``recorder.steps`` lists ``(phase, epoch, step, total_steps)`` per ``run.report_step``."""
    plugin_manager: pluggy.PluginManager
    """Holds the framework, the trainer and the recorder, registered as a run registers them."""
    run: RunContext
    """The run trained in (phase ``train``); write files under ``run.artifacts_dir``."""


class TrainerContract(ComponentContract):
    """A trainer lowers the training loss on a tiny data set and reports every epoch.

    Optional fixtures: ``framework_name`` (default: the first installed framework among
    the trainer's ``frameworks``; the checks skip if none is installed),
    ``framework_params`` (default ``{}``) and ``dataset`` (default ``tiny_dataset``).
    If the trainer's Params has an ``epochs`` field, the checks train for ``epochs``
    (a class attribute, 5) unless ``component_params`` sets it. Each check that asks for
    ``training`` trains anew, unless the class sets ``share_training = True`` (for a trainer
    whose fit is slow, e.g. one that starts processes): then they share one training.
    """

    kind = "trainer"
    required_hooks = ("aios_train",)
    required_attributes = ("frameworks",)
    epochs: ClassVar[int] = 5
    share_training: ClassVar[bool] = False
    _example_name = "torch"

    def contract_params(self, component_class: type[Component], params: dict[str, Any]) -> dict[str, Any]:
        if "epochs" in component_class.Params.model_fields and "epochs" not in params:
            return {**params, "epochs": self.epochs}
        return dict(params)

    @pytest.fixture
    def framework_name(self, component_class: type[Component], component_name: str) -> str:
        label = label_of(self.kind, component_name)
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
        return build(load_class(entry_of("framework", framework_name)), framework_params, framework_name)

    @pytest.fixture
    def dataset(self, tiny_dataset: Dataset) -> Dataset:
        return tiny_dataset

    @pytest.fixture
    def training(self, request: pytest.FixtureRequest, component: Component, framework: Framework,
                 dataset: Dataset, aios_run_context: Callable[..., RunContext]) -> Training:
        """Build a model with the framework and train it, recording what the trainer reports; with
        ``share_training``, once per test class and configuration."""
        shared = request.config.stash.setdefault(_SHARED_TRAININGS, {})
        key = (request.cls, *identity(component), *identity(framework), dataset.content_hash)
        if self.share_training and key in shared:
            return shared[key]
        recorder = Recorder()
        pm = manager_with(framework, component, recorder)
        run = aios_run_context(pm)
        training = Training(result=train(pm, run, dataset), recorder=recorder, plugin_manager=pm, run=run)
        if self.share_training:
            shared[key] = training
        return training

    def _result(self, training: Training, name: str) -> TrainResult:
        result = training.result
        if not isinstance(result, TrainResult):
            fail(f"aios_train of {label_of(self.kind, name)} returned {type(result).__name__}; "
                 "it must return an aios_core.TrainResult")
        return result

    def test_training_lowers_the_loss(self, component_name: str, training: Training) -> None:
        self._result(training, component_name)
        label = label_of(self.kind, component_name)
        reported = [(epoch, metrics) for phase, epoch, metrics in training.recorder.epochs]
        if len(reported) < 2:
            fail(f"{label} reported {len(reported)} epoch(s) through run.report_epoch; the check compares the first "
                 "and the last, so train at least 2 epochs (set `epochs` in component_params)")
        (first, first_metrics), (last, last_metrics) = reported[0], reported[-1]
        if "loss" not in first_metrics or "loss" not in last_metrics:
            fail(f"{label} reported epochs without a 'loss' metric: {sorted(first_metrics)}; report the mean "
                 "training loss of each epoch as metrics['loss']")
        if not float(last_metrics["loss"]) < float(first_metrics["loss"]):
            fail(f"{label} did not lower the training loss: epoch {first} loss={float(first_metrics['loss']):.6g}, "
                 f"epoch {last} loss={float(last_metrics['loss']):.6g}")

    def test_every_epoch_is_reported_in_order(self, component_name: str, training: Training) -> None:
        result = self._result(training, component_name)
        label = label_of(self.kind, component_name)
        phases = {phase for phase, _, _ in training.recorder.epochs}
        epochs = [epoch for _, epoch, _ in training.recorder.epochs]
        expected = list(range(1, len(result.history) + 1))
        if epochs != expected:
            fail(f"{label} reported epochs {epochs} through run.report_epoch, but its history holds "
                 f"{len(result.history)} epochs; report each epoch once, numbered from 1 ({expected})")
        if phases - {"train"}:
            fail(f"{label} reported epochs in phase {sorted(phases)}; report through run.report_epoch, which "
                 "uses the run's phase")

    def test_history_has_one_entry_per_epoch(self, component_name: str, training: Training) -> None:
        result = self._result(training, component_name)
        label = label_of(self.kind, component_name)
        reported = len(training.recorder.epochs)
        if len(result.history) != reported or not result.history:
            fail(f"{label} returned a history of {len(result.history)} entries after reporting {reported} epochs; "
                 "TrainResult.history holds one dict of metrics per epoch")
        if not all(isinstance(row, dict) for row in result.history):
            fail(f"{label}: TrainResult.history must be a list of dicts of metrics")
        if not 1 <= result.best_epoch <= len(result.history):
            fail(f"{label}: TrainResult.best_epoch is {result.best_epoch}, outside 1..{len(result.history)}")

    def test_regression_training_lowers_the_mse(self, component: Component, component_name: str,
                                                framework: Framework, tiny_regression_dataset: Dataset,
                                                aios_run_context: Callable[..., RunContext]) -> None:
        """For a trainer that declares regression: on a tiny regression set it lowers the (MSE) training loss,
        reports ``val_rmse`` in the target's units (``Dataset.target_scale``), and its model predicts (n, targets)."""
        label = label_of(self.kind, component_name)
        for who, declared in ((label, component.tasks), (label_of("framework", framework.name), framework.tasks)):
            if "regression" not in declared:
                pytest.skip(f"{who} declares tasks {list(declared)}, not regression")
        recorder = Recorder()
        pm = manager_with(framework, component, recorder)
        run = aios_run_context(pm)
        result = train(pm, run, tiny_regression_dataset)
        if not isinstance(result, TrainResult):
            fail(f"aios_train of {label} returned {type(result).__name__} for a regression set")
        reported = [metrics for _, _, metrics in recorder.epochs]
        if len(reported) < 2 or not float(reported[-1]["loss"]) < float(reported[0]["loss"]):
            fail(f"{label} did not lower the MSE on a regression set: losses "
                 f"{[round(float(m.get('loss', float('nan'))), 4) for m in reported]}")
        if "val_rmse" not in reported[-1]:
            fail(f"{label} reported {sorted(reported[-1])} on a regression set; report val_rmse (and val_mae) "
                 "instead of val_accuracy")
        artifact = pm.hook.aios_save_model(model=result.model, path=run.artifacts_dir /
                                           f"model.{framework.native_format}")
        who = f"the regression model {label} trained"
        predict = predictor_for(pm, artifact, who)
        check_probabilities(predict, tiny_regression_dataset, who)
        _check_target_units(label, result, predict, tiny_regression_dataset)

    def test_trained_model_saves_and_predicts(self, component_name: str, framework: Framework, dataset: Dataset,
                                              training: Training) -> None:
        result = self._result(training, component_name)
        pm, run = training.plugin_manager, training.run
        artifact = pm.hook.aios_save_model(model=result.model, path=run.artifacts_dir /
                                           f"model.{framework.native_format}")
        who = (f"the model {label_of(self.kind, component_name)} trained, saved by "
               f"{label_of('framework', framework.name)}")
        if not isinstance(artifact, ModelArtifact):
            fail(f"{who}: aios_save_model returned {artifact!r}")
        check_probabilities(predictor_for(pm, artifact, who), dataset, who)

    def test_a_pruned_trial_stops_training(self, component: Component, component_name: str, framework: Framework,
                                           dataset: Dataset, aios_run_context: Callable[..., RunContext]) -> None:
        """A tuner prunes a trial by raising ``TrialPruned`` from ``run.report_epoch``; the trainer must let it out."""
        from aios_core.context import TrialPruned

        label = label_of(self.kind, component_name)
        reported: list[int] = []

        def prune(epoch: int, metrics: dict[str, float]) -> None:
            reported.append(epoch)
            raise TrialPruned(f"the kit prunes after epoch {epoch}")

        pm = manager_with(framework, component)
        trial = aios_run_context(pm).for_trial(1, prune)
        try:
            result = train(pm, trial, dataset)
        except TrialPruned:
            if reported != [1]:
                fail(f"{label} went on reporting epochs {reported} after run.report_epoch raised TrialPruned at "
                     "epoch 1")
            return
        except Exception as error:  # noqa: BLE001 -- the wrong exception is the failure being reported
            fail_raised(f"{label} turned the TrialPruned that run.report_epoch raised into another error; let it "
                        "through (a tuner prunes a trial that way)", error)
        if not reported:
            fail(f"{label} returned {type(result).__name__} without calling run.report_epoch; report every epoch")
        fail(f"{label} returned {type(result).__name__} after run.report_epoch raised TrialPruned at epoch 1 "
             f"(it reported epochs {reported}); let exceptions from run.report_epoch through (do not catch them "
             "around the report) so a tuner can stop a trial")


_UNITS_TOLERANCE = 0.25
"""How far the best epoch's val_rmse may be from the returned model's: the tiny set's target std is about 7, so a
val_rmse of the standardized target is off by that factor."""


def _check_target_units(label: str, result: TrainResult, predict: Callable[..., Any], dataset: Dataset) -> None:
    """The best epoch's ``val_rmse`` is the returned model's validation RMSE in the target's units."""
    import numpy as np

    reported = float(result.history[result.best_epoch - 1].get("val_rmse", float("nan")))
    predicted = dataset.unscale_targets(np.asarray(predict(dataset.x_val)).reshape(len(dataset.x_val), -1))
    actual = float(np.sqrt(np.mean((predicted - dataset.unscale_targets(dataset.y_val)) ** 2)))
    if not abs(reported - actual) <= _UNITS_TOLERANCE * actual:
        fail(f"{label} reported val_rmse {reported:.4g} at its best epoch {result.best_epoch}, but the model it "
             f"returned has a validation RMSE of {actual:.4g} in the target's units (the standardized target's is "
             f"{actual / dataset.target_scale[0]:.4g}); report RMSE and MAE in the target's units: the error times "
             "Dataset.target_scale")
