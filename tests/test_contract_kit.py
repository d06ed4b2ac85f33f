"""The contract kit (aios_core.testing) passes good components and fails broken ones with a clear message.

Each check runs the kit in a separate pytest process (pytester) against plugins installed
as real distributions: a dist-info folder with entry points on PYTHONPATH. The good
plugin, ``aios-kit-demo``, has one small numpy component of every kind; each broken
plugin differs from it in one way.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from contract_kit_support import assert_only_failure, contract_class
from support import make_distribution

from aios_core.rundir import RunDirectory
from aios_core.testing import tiny_dataset

pytest_plugins = ["pytester", "contract_kit_support"]  # run_kit

GOOD_TESTS = '''
    class TestFramework(FrameworkContract):
        component_name = named("softmax")

    class TestTrainer(TrainerContract):
        component_name = named("gd")

    class TestDatastore(DatastoreContract):
        component_name = named("blobs")

        @pytest.fixture
        def invalid_params(self):
            return [{"not_a_parameter": 1}, {"rows_per_class": 2}]

    class TestTuner(TunerContract):
        component_name = named("grid")

        @pytest.fixture
        def tuner_params(self):
            return {"space": {"trainer.learning_rate": [0.1, 0.5, 1.0], "model.hidden_units": [[8], [16]]}}

    class TestCompressor(CompressorContract):
        component_name = named("round")

    class TestDeployer(DeployerContract):
        component_name = named("http")

    class TestMonitor(MonitorContract):
        component_name = named("log")
'''


# ---------------------------------------------------------------- good plugins pass
def test_a_good_component_of_every_kind_passes(run_kit) -> None:
    result = run_kit(GOOD_TESTS)
    # Skipped: the framework's export check and six ONNX checks (it exports nothing), and the aios_validate
    # check of the six components that do not implement it. The compressor works on the framework's native
    # format, so the native-compressor check (its output loads with the framework) runs too.
    result.assert_outcomes(passed=72, skipped=1 + 6 + 6 + 4)  # + the regression checks of a classification-only
    # framework, trainer, compressor and deployer
    result.stdout.fnmatch_lines(["*SKIPPED*compressor 'round' declares tasks [[]'classification'[]], not regression"])
    result.stdout.fnmatch_lines(["*SKIPPED*framework 'softmax' declares no export_formats*"])
    result.stdout.fnmatch_lines(["*SKIPPED*framework 'softmax' declares no 'onnx' export format (export_formats [[][]])"])
    result.stdout.fnmatch_lines(["*SKIPPED*trainer 'gd' does not implement aios_validate"])


def test_behaviour_checks_skip_when_no_installed_framework_writes_an_accepted_format(run_kit, site: Path) -> None:
    make_distribution(site, "aios-kit-tflite", {"aios.deployers": {"tflite": "aios_kit_tflite:TfliteDeployer"}},
                      modules={"aios_kit_tflite": '''
                          from aios_kit_demo import HttpDeployer
                          class TfliteDeployer(HttpDeployer):
                              formats = ("tflite",)
                      '''})
    result = run_kit(contract_class("TestTfliteDeployer(DeployerContract)", "tflite"))
    result.assert_outcomes(passed=7, skipped=4)  # the two behaviour checks, aios_validate and regression
    result.stdout.fnmatch_lines([("SKIPPED*deployer 'tflite' accepts [[]'tflite'[]], and no installed "
                                  "framework writes any of them; install a framework that does, or provide an "
                                  "`input_artifact` fixture")])


def test_a_subclass_adds_checks_on_the_records_the_fixtures_return(run_kit) -> None:
    result = run_kit('''
    from pathlib import Path

    from aios_core.testing import Built, Compression, Training, Tuning

    class TestFramework(FrameworkContract):
        component_name = named("softmax")

        def test_builds_weights_for_every_class(self, built: Built, dataset):
            assert built.model["w"].shape == (dataset.num_features, dataset.num_classes)
            assert built.run.dir.is_dir() and built.plugin_manager.hook.aios_build_model.get_hookimpls()

    class TestTrainer(TrainerContract):
        component_name = named("gd")

        def test_reports_each_of_five_epochs_in_the_train_phase(self, training: Training):
            assert training.run.phase == "train"
            reported = [(phase, epoch) for phase, epoch, _ in training.recorder.epochs]
            assert reported == [("train", epoch) for epoch in range(1, 6)]
            assert training.result.best_epoch == 5 and training.plugin_manager.hook.aios_train.get_hookimpls()

    class TestTuner(TunerContract):
        component_name = named("grid")

        @pytest.fixture
        def tuner_params(self):
            return {"space": {"trainer.learning_rate": [0.1, 0.5]}}

        def test_tries_every_value_once(self, tuning: Tuning):
            assert [params for params, _ in tuning.objective.calls] == [{"trainer.learning_rate": 0.1},
                                                                        {"trainer.learning_rate": 0.5}]
            assert tuning.result.best_value == min(value for _, value in tuning.objective.calls)

    class TestCompressor(CompressorContract):
        component_name = named("round")

        def test_writes_the_rounded_model_in_the_artifacts_directory(self, compressed: Compression):
            assert Path(compressed.output.path) == compressed.run.artifacts_dir / "model.rounded.softmax-npz"
            assert compressed.plugin_manager.hook.aios_compress.get_hookimpls()
    ''')
    result.assert_outcomes(passed=44 + 4, skipped=10 + 3)  # the four classes' own checks (3 regression checks
    # skipped), then the four above


def test_a_class_that_shares_training_trains_once(run_kit) -> None:
    result = run_kit(contract_class("TestTrainer(TrainerContract)", "gd", '''
        share_training = True
        seen = []

        def test_first(self, training):
            self.seen.append(training)
            assert all(other is training for other in self.seen)

        def test_second(self, training):
            self.seen.append(training)
            assert all(other is training for other in self.seen)
    '''))
    result.assert_outcomes(passed=12 + 2, skipped=1 + 1)  # the regression check: a classification-only trainer


# ---------------------------------------------------------------- broken plugins fail, saying why
def test_a_trainer_that_never_lowers_the_loss_fails(run_kit, site: Path) -> None:
    make_distribution(site, "aios-kit-stuck", {"aios.trainers": {"stuck": "aios_kit_stuck:StuckTrainer"}},
                      modules={"aios_kit_stuck": '''
                          from aios_kit_demo import GradientDescentTrainer
                          class StuckTrainer(GradientDescentTrainer):
                              """Computes its gradients, never applies them."""
                              step_scale = 0.0
                      '''})
    result = run_kit(contract_class("TestStuckTrainer(TrainerContract)", "stuck"))
    result.assert_outcomes(failed=1, passed=11, skipped=1 + 1)
    result.stdout.re_match_lines([(r"trainer 'stuck' did not lower the training loss: "
                                   r"epoch 1 loss=(1\.\d+), epoch 5 loss=\1$"),
                                  r"FAILED test_plugin.py::TestStuckTrainer::test_training_lowers_the_loss"])


def test_a_trainer_that_swallows_a_pruned_trial_fails(run_kit, site: Path) -> None:
    make_distribution(site, "aios-kit-deaf", {"aios.trainers": {"deaf": "aios_kit_deaf:DeafTrainer"}},
                      modules={"aios_kit_deaf": '''
                          from aios_core import hookimpl
                          from aios_kit_demo import GradientDescentTrainer
                          class DeafTrainer(GradientDescentTrainer):
                              """Reports each epoch but ignores whatever the report raises."""
                              @staticmethod
                              def _quiet(run):
                                  report = run.report_epoch
                                  def quiet(epoch, metrics):
                                      try:
                                          report(epoch, metrics)
                                      except Exception:
                                          pass
                                  run.report_epoch = quiet
                                  return run
                              @hookimpl
                              def aios_train(self, model, dataset, run, overrides):
                                  return super().aios_train(model, dataset, self._quiet(run), overrides)
                      '''})
    result = run_kit(contract_class("TestDeafTrainer(TrainerContract)", "deaf"))
    result.assert_outcomes(failed=1, passed=11, skipped=1 + 1)  # + the regression check (classification only)
    result.stdout.fnmatch_lines(["*trainer 'deaf' returned TrainResult after run.report_epoch raised TrialPruned at "
                                 "epoch 1 (it reported epochs [[]1, 2, 3, 4, 5[]]); let exceptions from *"])
    result.stdout.fnmatch_lines(["FAILED test_plugin.py::TestDeafTrainer::test_a_pruned_trial_stops_training*"])


def test_a_monitor_with_a_misspelt_hook_fails(run_kit, site: Path) -> None:
    make_distribution(site, "aios-kit-typo", {"aios.monitors": {"typo": "aios_kit_typo:TypoMonitor"}},
                      modules={"aios_kit_typo": '''
                          from aios_core import Monitor, hookimpl
                          class TypoMonitor(Monitor):
                              @hookimpl
                              def aios_on_run_start(self, run):
                                  pass
                              @hookimpl
                              def aios_on_epoch_ended(self, epoch, metrics):
                                  pass
                      '''})
    result = run_kit(contract_class("TestTypoMonitor(MonitorContract)", "typo"))
    result.assert_outcomes(failed=4, passed=6)  # a monitor that does not register fails its behaviour checks
    result.stdout.fnmatch_lines(["FAILED test_plugin.py::TestTypoMonitor::test_hooks_match_the_specs*"])
    result.stdout.fnmatch_lines([("*monitor 'typo' implements hooks that aios_core.hookspecs does not define: "
                                  "aios_on_epoch_ended (aios_on_epoch_ended: did you mean aios_on_epoch_end?)")])


def test_a_plugin_importing_torch_at_module_top_fails_naming_torch(run_kit, site: Path) -> None:
    make_distribution(site, "aios-kit-heavy", {"aios.monitors": {"heavy": "aios_kit_heavy:HeavyMonitor"}},
                      modules={"aios_kit_heavy": '''
                          import torch
                          from aios_core import Monitor, hookimpl
                          class HeavyMonitor(Monitor):
                              @hookimpl
                              def aios_on_epoch_end(self, epoch, metrics):
                                  torch.tensor(metrics["loss"])
                      ''',
                               # The check looks at sys.modules only; a stand-in spares two real torch imports.
                               "torch": "def tensor(value):\n    return value\n"})
    result = run_kit(contract_class("TestHeavyMonitor(MonitorContract)", "heavy"))
    assert_only_failure(
        result, "TestHeavyMonitor::test_entry_point_module_imports_no_heavy_library",
        ("*importing aios_kit_heavy (the entry point of monitor 'heavy': aios_kit_heavy:HeavyMonitor) imported "
        "torch; move `import torch` inside the hook methods that use it (or into a module they import), so "
        "`aios plugins list` and stack validation do not pay for it"),
        passed=8, skipped=1)


def test_a_plugin_requiring_another_aios_core_fails_showing_both_versions(run_kit, site: Path) -> None:
    make_distribution(site, "aios-kit-future", {"aios.monitors": {"future": "aios_kit_future:FutureMonitor"}},
                      requires=("aios-kernel>=9.0",), modules={"aios_kit_future": '''
                          from aios_kit_demo import LogMonitor as FutureMonitor
                      '''})
    result = run_kit(contract_class("TestFutureMonitor(MonitorContract)", "future"))
    assert_only_failure(
        result, "TestFutureMonitor::test_declared_aios_core_range_includes_the_running_version",
        ("*aios-kit-future 0.1.0 requires aios-kernel>=9.0, but the running aios-kernel is 0.1.0; widen the range in "
        "its pyproject.toml (e.g. \"aios-kernel>=0.1,<0.2\") or test against a matching aios-kernel"),
        passed=8, skipped=1)


def test_params_that_accept_anything_fail(run_kit, site: Path) -> None:
    make_distribution(site, "aios-kit-lenient", {"aios.datastores": {"lenient": "aios_kit_lenient:LenientDatastore"}},
                      modules={"aios_kit_lenient": '''
                          from pydantic import BaseModel, ConfigDict
                          from aios_kit_demo import BlobsDatastore
                          class LenientDatastore(BlobsDatastore):
                              class Params(BaseModel):
                                  model_config = ConfigDict(extra="allow")
                                  rows_per_class: int = 30
                      '''})
    result = run_kit(contract_class("TestLenientDatastore(DatastoreContract)", "lenient"))
    assert_only_failure(
        result, "TestLenientDatastore::test_params_reject_invalid_values_naming_the_field",
        "*the Params of datastore 'lenient' must reject invalid parameters with a ValidationError naming the field:",
        "*{'not_a_parameter': 1} was accepted",
        "*Subclass aios_core.Params (unknown keys are errors: extra='forbid')*",
        passed=9, skipped=1)


def test_a_deployer_that_reports_no_smoke_test_fails(run_kit, site: Path) -> None:
    make_distribution(site, "aios-kit-quiet", {"aios.deployers": {"quiet": "aios_kit_quiet:QuietDeployer"}},
                      modules={"aios_kit_quiet": '''
                          from aios_kit_demo import HttpDeployer
                          class QuietDeployer(HttpDeployer):
                              def report(self, url, rows, passed):
                                  return {"endpoint": url}
                      '''})
    result = run_kit(contract_class("TestQuietDeployer(DeployerContract)", "quiet"))
    assert_only_failure(
        result, "TestQuietDeployer::test_answers_its_smoke_test_request",
        "*the report of deployer 'quiet' has no \"smoke_test\": {\"passed\": ...} entry (keys: [[]'endpoint'[]])*",
        passed=8, skipped=1 + 1)  # + the regression check (classification only)


def test_a_tuner_that_returns_its_last_trial_fails(run_kit, site: Path) -> None:
    make_distribution(site, "aios-kit-last", {"aios.tuners": {"last": "aios_kit_last:LastTuner"}},
                      modules={"aios_kit_last": '''
                          from aios_kit_demo import GridTuner
                          class LastTuner(GridTuner):
                              def choose(self, trials):
                                  return max(trials, key=lambda trial: trial["value"])
                      '''})
    result = run_kit(contract_class("TestLastTuner(TunerContract)", "last", '''
        @pytest.fixture
        def tuner_params(self):
            return {"space": {"trainer.learning_rate": [0.1, 0.5, 1.0]}}
    '''))
    assert_only_failure(
        result, "TestLastTuner::test_best_value_is_the_lowest_value_seen",
        ("*tuner 'last' returned best_value=0.*, but the lowest value the objective returned over its 3 call(s) "
        "was 0.* (lower is better)"),
        passed=9, skipped=1)


def test_a_component_registered_under_another_kinds_group_fails(run_kit, site: Path) -> None:
    make_distribution(site, "aios-kit-misfiled", {"aios.trainers": {"misfiled": "aios_kit_demo:LogMonitor"}})
    result = run_kit(contract_class("TestMisfiledTrainer(TrainerContract)", "misfiled"))
    result.stdout.fnmatch_lines([
        ("*trainer 'misfiled' (aios-kit-misfiled 0.1.0): aios_kit_demo:LogMonitor is not a subclass of "
        "aios_core.Trainer; it is a Monitor, so register it under [[]project.entry-points.\"aios.monitors\"[]] or "
        "make it subclass aios_core.Trainer"),
    ])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_missing_fixture_is_an_error_that_shows_what_to_write(run_kit) -> None:
    result = run_kit('''
    class TestUnnamed(MonitorContract):
        pass

    class TestTunerWithoutSpace(TunerContract):
        component_name = named("grid")
    ''')
    result.assert_outcomes(errors=10 + 8, passed=3)  # the tuner's metadata checks need no tuner_params
    result.stdout.fnmatch_lines([
        ("*TestUnnamed must provide a `component_name` fixture returning the component's entry-point name "
        "(its key under [[]project.entry-points.\"aios.monitors\"[]]), e.g."),
        "",
        "    @pytest.fixture",
        "    def component_name(self):",
        "        return \"my-monitor\"",
    ])
    result.stdout.fnmatch_lines([("*TestTunerWithoutSpace must provide a `tuner_params` fixture: the tuner's "
                                  "parameters with a small search space over model.<field> / trainer.<field> keys*")])


# ---------------------------------------------------------------- the data set and fixtures
def test_tiny_dataset_is_deterministic_for_a_seed() -> None:
    first, second, other = tiny_dataset(0), tiny_dataset(0), tiny_dataset(1)
    assert first.content_hash == second.content_hash != other.content_hash
    assert np.array_equal(first.x_train, second.x_train) and np.array_equal(first.y_test, second.y_test)


def test_tiny_dataset_has_standardized_image_shaped_splits() -> None:
    dataset = tiny_dataset()
    assert (dataset.x_train.shape, dataset.x_val.shape, dataset.x_test.shape) == ((144, 16), (48, 16), (48, 16))
    assert dataset.x_train.dtype == np.float32 and dataset.y_train.dtype == np.int64
    assert dataset.image_shape == (1, 4, 4) and dataset.class_names == ["class-0", "class-1", "class-2", "class-3"]
    assert np.bincount(dataset.y_train).tolist() == [36, 36, 36, 36]
    np.testing.assert_allclose(dataset.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(dataset.x_train.std(axis=0), 1.0, atol=1e-4)
    json.dumps(dataset.summary())


def test_tiny_dataset_is_learnable_by_a_linear_model() -> None:
    dataset = tiny_dataset()
    centroids = np.stack([dataset.x_train[dataset.y_train == k].mean(axis=0) for k in range(4)])
    distances = ((dataset.x_test[:, None, :] - centroids[None]) ** 2).sum(axis=2)
    assert np.mean(distances.argmin(axis=1) == dataset.y_test) >= 0.9


def test_run_context_fixture_makes_a_run_directory_per_call(aios_run_context, aios_plugin_manager) -> None:
    first, second = aios_run_context(), aios_run_context(seed=7)
    assert first.dir != second.dir and (first.dir / RunDirectory.LOCK).is_file()
    assert second.seed == 7 and first.checkpoint_dir == first.dir / "checkpoints"
    assert first._hook is aios_plugin_manager.hook


def test_plugin_manager_fixture_has_the_specs_and_the_kernels_builtins_only(aios_plugin_manager) -> None:
    from aios_core.inference import OnnxRuntimePredictors

    assert [name for name, _ in aios_plugin_manager.list_name_plugin()] == [OnnxRuntimePredictors.NAME]
    assert aios_plugin_manager.hook.aios_train.has_spec()


def test_the_kit_is_a_pytest_plugin_entry_point(pytestconfig: pytest.Config) -> None:
    from importlib import metadata

    entry_points = {ep.name: ep.value for ep in metadata.distribution("aios-kernel").entry_points
                    if ep.group == "pytest11"}
    assert entry_points == {"aios": "aios_core.testing.plugin"}
    assert pytestconfig.pluginmanager.has_plugin("aios")


def test_loading_the_pytest_plugin_imports_nothing_heavy() -> None:
    code = ("import sys, json, pytest; before = set(sys.modules); import aios_core.testing.plugin; "
            "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert set(json.loads(result.stdout)) <= {"aios_core"}
