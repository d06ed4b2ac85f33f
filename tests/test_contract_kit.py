"""The contract kit (aios_core.testing) passes good components and fails broken ones with a clear message.

Each check runs the kit in a separate pytest process (pytester) against plugins installed
as real distributions: a dist-info folder with entry points on PYTHONPATH. The good
plugin, ``aios-kit-demo``, has one small numpy component of every kind; each broken
plugin differs from it in one way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from support import make_distribution

from aios_core.rundir import RunDirectory
from aios_core.testing import tiny_dataset

pytest_plugins = ["pytester"]

DEMO = '''
    """Small numpy components of every kind, each doing what its kind promises."""

    from __future__ import annotations

    from pathlib import Path
    from typing import Any, ClassVar

    from pydantic import Field

    from aios_core import (Compressor, Datastore, Deployer, Framework, ModelArtifact, Monitor, Params,
                           Trainer, TrainResult, Tuner, TuneResult, atomic_path, hookimpl)


    def softmax(logits):
        import numpy as np

        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)


    def write_npz(path, arrays):
        import numpy as np

        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


    class SoftmaxFramework(Framework):
        """Softmax regression: weights and biases in an .npz file."""

        native_format = "softmax-npz"

        @hookimpl
        def aios_validate(self, context):
            if context.data is not None and context.data.num_classes == 1:
                return [("", "found data of one class; softmax regression needs at least two")]
            return []

        @hookimpl
        def aios_build_model(self, dataset, run, overrides):
            import numpy as np

            rng = np.random.default_rng(run.seed)
            return {"w": rng.normal(0, 0.01, (dataset.num_features, dataset.num_classes)).astype(np.float32),
                    "b": np.zeros(dataset.num_classes, dtype=np.float32)}

        @hookimpl
        def aios_save_model(self, model, path):
            write_npz(path, model)
            return ModelArtifact(name="native", path=Path(path), format=self.native_format, producer=self.name)

        @hookimpl
        def aios_load_model(self, artifact):
            import numpy as np

            if artifact.format != self.native_format:
                return None
            with np.load(artifact.path, allow_pickle=False) as data:
                return {"w": data["w"], "b": data["b"]}

        @hookimpl
        def aios_load_predictor(self, artifact, threads):
            model = self.aios_load_model(artifact)
            if model is None:
                return None
            return lambda batch: softmax(batch @ model["w"] + model["b"])


    class GradientDescentTrainer(Trainer):
        """Full-batch gradient descent on the cross-entropy."""

        frameworks = ("softmax",)
        step_scale: ClassVar[float] = 1.0

        class Params(Params):
            epochs: int = Field(10, ge=1)
            learning_rate: float = Field(0.5, gt=0)

        @hookimpl
        def aios_train(self, model, dataset, run, overrides):
            import numpy as np

            params = self.Params.model_validate({**self.params.model_dump(), **overrides})
            w, b = model["w"].astype(np.float64), model["b"].astype(np.float64)
            x, y = dataset.x_train, dataset.y_train
            onehot = np.eye(dataset.num_classes)[y]
            history = []
            for epoch in range(1, params.epochs + 1):
                probabilities = softmax(x @ w + b)
                loss = float(-np.mean(np.log(probabilities[np.arange(len(y)), y] + 1e-12)))
                gradient = (probabilities - onehot) / len(y)
                w -= params.learning_rate * self.step_scale * (x.T @ gradient)
                b -= params.learning_rate * self.step_scale * gradient.sum(axis=0)
                val = softmax(dataset.x_val @ w + b)
                metrics = {"epoch": epoch, "loss": loss,
                           "accuracy": float(np.mean(probabilities.argmax(axis=1) == y)),
                           "val_loss": float(-np.mean(np.log(val[np.arange(len(dataset.y_val)), dataset.y_val]))),
                           "val_accuracy": float(np.mean(val.argmax(axis=1) == dataset.y_val)),
                           "lr": params.learning_rate, "seconds": 0.0}
                history.append(metrics)
                run.report_epoch(epoch, dict(metrics))
            model = {"w": w.astype(np.float32), "b": b.astype(np.float32)}
            return TrainResult(model=model, history=history, best_epoch=len(history))


    class BlobsDatastore(Datastore):
        """The kit's tiny data set, three classes."""

        classes: ClassVar[int] = 3

        class Params(Params):
            rows_per_class: int = Field(30, ge=5)

        @hookimpl
        def aios_describe_data(self):
            from aios_core import DataDescription

            return DataDescription(num_features=16, num_classes=3, image_shape=(1, 4, 4))

        @hookimpl
        def aios_load_dataset(self, run):
            from aios_core.testing import tiny_dataset

            return tiny_dataset(run.seed, classes=self.classes, rows_per_class=self.params.rows_per_class)


    class GridTuner(Tuner):
        """Tries every combination of the space's values."""

        class Params(Params):
            space: dict[str, list[Any]] = Field(default_factory=dict)

        def choose(self, trials):
            return min(trials, key=lambda trial: trial["value"])

        @hookimpl
        def aios_tune(self, objective, run):
            import itertools

            keys = sorted(self.params.space)
            trials = []
            for values in itertools.product(*(self.params.space[key] for key in keys)):
                params = dict(zip(keys, values))
                trials.append({"params": params, "value": objective(params)})
            best = self.choose(trials)
            return TuneResult(best_params=best["params"], best_value=best["value"], trials=trials)


    class RoundingCompressor(Compressor):
        """Rounds the weights to a few decimals (a stand-in for quantization)."""

        input_formats = ("softmax-npz",)
        output_format = "softmax-npz"

        class Params(Params):
            decimals: int = Field(2, ge=0, le=6)

        @hookimpl
        def aios_compress(self, artifact, dataset, run):
            import numpy as np

            with np.load(artifact.path, allow_pickle=False) as data:
                model = {key: np.round(data[key], self.params.decimals) for key in data.files}
            path = run.artifacts_dir / "model.rounded.softmax-npz"
            write_npz(path, model)
            return ModelArtifact(name="rounded", path=path, format=self.output_format, producer=self.name)


    class HttpDeployer(Deployer):
        """Serves predictions over HTTP on localhost; checks one request against the run's predictor."""

        formats = ("softmax-npz",)

        class Params(Params):
            rows: int = Field(8, ge=1)

        def report(self, url, rows, passed):
            return {"endpoint": url, "smoke_test": {"passed": passed, "rows": rows}}

        @hookimpl
        def aios_deploy(self, artifact, dataset, run):
            import http.server
            import json
            import threading
            import urllib.request

            import numpy as np

            predict = run.load_predictor(artifact)

            class Handler(http.server.BaseHTTPRequestHandler):
                def do_POST(self):
                    rows = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                    body = json.dumps(predict(np.asarray(rows, dtype=np.float32)).tolist()).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

                def log_message(self, *args):
                    pass

            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            url = f"http://127.0.0.1:{server.server_address[1]}/predict"
            rows = dataset.x_test[: self.params.rows]
            try:
                request = urllib.request.Request(url, data=json.dumps(rows.tolist()).encode(), method="POST")
                with urllib.request.urlopen(request, timeout=30) as response:
                    answers = np.asarray(json.loads(response.read()))
            finally:
                server.shutdown()
                server.server_close()
            return self.report(url, len(rows), bool(np.allclose(answers, predict(rows), atol=1e-6)))


    class LogMonitor(Monitor):
        """Appends a line per run event to events.log in the run directory."""

        def __init__(self, params=None, name=None):
            super().__init__(params, name)
            self.path = None

        def write(self, line):
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line + "\\n")

        @hookimpl
        def aios_on_run_start(self, run):
            self.path = run.dir / "events.log"
            self.write("run_start")

        @hookimpl
        def aios_on_epoch_end(self, epoch, metrics):
            self.write(f"epoch {epoch} loss={metrics['loss']:.3f}")

        @hookimpl
        def aios_on_run_end(self, status):
            self.write(f"run_end {status}")
'''

DEMO_ENTRY_POINTS = {
    "aios.frameworks": {"softmax": "aios_kit_demo:SoftmaxFramework"},
    "aios.trainers": {"gd": "aios_kit_demo:GradientDescentTrainer"},
    "aios.datastores": {"blobs": "aios_kit_demo:BlobsDatastore"},
    "aios.tuners": {"grid": "aios_kit_demo:GridTuner"},
    "aios.compressors": {"round": "aios_kit_demo:RoundingCompressor"},
    "aios.deployers": {"http": "aios_kit_demo:HttpDeployer"},
    "aios.monitors": {"log": "aios_kit_demo:LogMonitor"},
}

KIT_TESTS = '''
    import pytest

    from aios_core.testing import (CompressorContract, DatastoreContract, DeployerContract, FrameworkContract,
                                   MonitorContract, TrainerContract, TunerContract)


    def named(name):
        return pytest.fixture(lambda self: name, name="component_name")
'''

GOOD_TESTS = KIT_TESTS + '''
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


@pytest.fixture
def run_kit(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, site: Path):
    """``run_kit(test_source, **broken_modules)``: install aios-kit-demo (and broken plugins) into
    ``site``, then run ``test_source`` with pytest in a fresh process."""

    def run(test_source: str) -> pytest.RunResult:
        make_distribution(site, "aios-kit-demo", DEMO_ENTRY_POINTS, modules={"aios_kit_demo": DEMO})
        for variable in [name for name in os.environ if name.startswith("AIOS_")]:
            monkeypatch.delenv(variable)
        monkeypatch.setenv("PYTHONPATH", str(site))
        # Other pytest plugins of this environment cost seconds per process; the kit's is named
        # explicitly (test_the_kit_is_a_pytest_plugin_entry_point checks pytest finds it by itself).
        monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
        pytester.makepyfile(test_plugin=textwrap.dedent(test_source))
        return pytester.runpytest_subprocess("-p", "aios_core.testing.plugin", "-p", "no:cacheprovider", "-rfEs",
                                             "--tb=short")

    return run


# ---------------------------------------------------------------- good plugins pass
def test_a_good_component_of_every_kind_passes(run_kit) -> None:
    result = run_kit(GOOD_TESTS)
    # Skipped: the framework's export check and six ONNX checks (it exports nothing), and the aios_validate
    # check of the six components that do not implement it.
    result.assert_outcomes(passed=70, skipped=1 + 6 + 6)
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
    result = run_kit(KIT_TESTS + '''
    class TestTfliteDeployer(DeployerContract):
        component_name = named("tflite")
    ''')
    result.assert_outcomes(passed=7, skipped=3)  # the two behaviour checks and aios_validate
    result.stdout.fnmatch_lines([("SKIPPED*deployer 'tflite' accepts [[]'tflite'[]], and no installed "
                                  "framework writes any of them; install a framework that does, or provide an "
                                  "`input_artifact` fixture")])


def test_a_subclass_adds_checks_on_the_records_the_fixtures_return(run_kit) -> None:
    result = run_kit(KIT_TESTS + '''
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
    result.assert_outcomes(passed=42 + 4, skipped=10)  # the four classes' own checks, then the four above


# ---------------------------------------------------------------- broken plugins fail, saying why
def test_a_trainer_that_never_lowers_the_loss_fails(run_kit, site: Path) -> None:
    make_distribution(site, "aios-kit-stuck", {"aios.trainers": {"stuck": "aios_kit_stuck:StuckTrainer"}},
                      modules={"aios_kit_stuck": '''
                          from aios_kit_demo import GradientDescentTrainer
                          class StuckTrainer(GradientDescentTrainer):
                              """Computes its gradients, never applies them."""
                              step_scale = 0.0
                      '''})
    result = run_kit(KIT_TESTS + '''
    class TestStuckTrainer(TrainerContract):
        component_name = named("stuck")
    ''')
    result.assert_outcomes(failed=1, passed=10, skipped=1)
    result.stdout.re_match_lines([(r"trainer 'stuck' did not lower the training loss: "
                                   r"epoch 1 loss=(1\.\d+), epoch 5 loss=\1$"),
                                  r"FAILED test_plugin.py::TestStuckTrainer::test_training_lowers_the_loss"])


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
    result = run_kit(KIT_TESTS + '''
    class TestTypoMonitor(MonitorContract):
        component_name = named("typo")
    ''')
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
    result = run_kit(KIT_TESTS + '''
    class TestHeavyMonitor(MonitorContract):
        component_name = named("heavy")
    ''')
    result.assert_outcomes(failed=1, passed=8, skipped=1)
    result.stdout.fnmatch_lines([
        ("*importing aios_kit_heavy (the entry point of monitor 'heavy': aios_kit_heavy:HeavyMonitor) imported "
        "torch; move `import torch` inside the hook methods that use it (or into a module they import), so "
        "`aios plugins list` and stack validation do not pay for it"),
        "FAILED test_plugin.py::TestHeavyMonitor::test_entry_point_module_imports_no_heavy_library*",
    ])


def test_a_plugin_requiring_another_aios_core_fails_showing_both_versions(run_kit, site: Path) -> None:
    make_distribution(site, "aios-kit-future", {"aios.monitors": {"future": "aios_kit_future:FutureMonitor"}},
                      requires=("aios-kernel>=9.0",), modules={"aios_kit_future": '''
                          from aios_kit_demo import LogMonitor as FutureMonitor
                      '''})
    result = run_kit(KIT_TESTS + '''
    class TestFutureMonitor(MonitorContract):
        component_name = named("future")
    ''')
    result.assert_outcomes(failed=1, passed=8, skipped=1)
    result.stdout.fnmatch_lines([
        ("*aios-kit-future 0.1.0 requires aios-kernel>=9.0, but the running aios-kernel is 0.1.0; widen the range in "
        "its pyproject.toml (e.g. \"aios-kernel>=0.1,<0.2\") or test against a matching aios-kernel"),
        "FAILED test_plugin.py::TestFutureMonitor::test_declared_aios_core_range_includes_the_running_version*",
    ])


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
    result = run_kit(KIT_TESTS + '''
    class TestLenientDatastore(DatastoreContract):
        component_name = named("lenient")
    ''')
    result.assert_outcomes(failed=1, passed=9, skipped=1)
    result.stdout.fnmatch_lines([
        "*the Params of datastore 'lenient' must reject invalid parameters with a ValidationError naming the field:",
        "*{'not_a_parameter': 1} was accepted",
        "*Subclass aios_core.Params (unknown keys are errors: extra='forbid')*",
        "FAILED test_plugin.py::TestLenientDatastore::test_params_reject_invalid_values_naming_the_field*",
    ])


def test_a_deployer_that_reports_no_smoke_test_fails(run_kit, site: Path) -> None:
    make_distribution(site, "aios-kit-quiet", {"aios.deployers": {"quiet": "aios_kit_quiet:QuietDeployer"}},
                      modules={"aios_kit_quiet": '''
                          from aios_kit_demo import HttpDeployer
                          class QuietDeployer(HttpDeployer):
                              def report(self, url, rows, passed):
                                  return {"endpoint": url}
                      '''})
    result = run_kit(KIT_TESTS + '''
    class TestQuietDeployer(DeployerContract):
        component_name = named("quiet")
    ''')
    result.assert_outcomes(failed=1, passed=8, skipped=1)
    result.stdout.fnmatch_lines([
        "*the report of deployer 'quiet' has no \"smoke_test\": {\"passed\": ...} entry (keys: [[]'endpoint'[]])*",
        "FAILED test_plugin.py::TestQuietDeployer::test_answers_its_smoke_test_request*",
    ])


def test_a_tuner_that_returns_its_last_trial_fails(run_kit, site: Path) -> None:
    make_distribution(site, "aios-kit-last", {"aios.tuners": {"last": "aios_kit_last:LastTuner"}},
                      modules={"aios_kit_last": '''
                          from aios_kit_demo import GridTuner
                          class LastTuner(GridTuner):
                              def choose(self, trials):
                                  return max(trials, key=lambda trial: trial["value"])
                      '''})
    result = run_kit(KIT_TESTS + '''
    class TestLastTuner(TunerContract):
        component_name = named("last")

        @pytest.fixture
        def tuner_params(self):
            return {"space": {"trainer.learning_rate": [0.1, 0.5, 1.0]}}
    ''')
    result.assert_outcomes(failed=1, passed=9, skipped=1)
    result.stdout.fnmatch_lines([
        ("*tuner 'last' returned best_value=0.*, but the lowest value the objective returned over its 3 call(s) "
        "was 0.* (lower is better)"),
        "FAILED test_plugin.py::TestLastTuner::test_best_value_is_the_lowest_value_seen*",
    ])


def test_a_component_registered_under_another_kinds_group_fails(run_kit, site: Path) -> None:
    make_distribution(site, "aios-kit-misfiled", {"aios.trainers": {"misfiled": "aios_kit_demo:LogMonitor"}})
    result = run_kit(KIT_TESTS + '''
    class TestMisfiledTrainer(TrainerContract):
        component_name = named("misfiled")
    ''')
    result.stdout.fnmatch_lines([
        ("*trainer 'misfiled' (aios-kit-misfiled 0.1.0): aios_kit_demo:LogMonitor is not a subclass of "
        "aios_core.Trainer; it is a Monitor, so register it under [[]project.entry-points.\"aios.monitors\"[]] or "
        "make it subclass aios_core.Trainer"),
    ])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_missing_fixture_is_an_error_that_shows_what_to_write(run_kit) -> None:
    result = run_kit(KIT_TESTS + '''
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
