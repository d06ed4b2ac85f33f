"""Support for the contract kit's tests: the kit run in a separate pytest process against installed plugins.

``aios-kit-demo`` has one small numpy component of every kind, each doing what its kind promises; a
test installs it, and any broken plugin it needs, as real distributions (a dist-info folder with
entry points on PYTHONPATH), then runs test classes built on the kit's contracts with ``run_kit``.
A test module uses the fixture with ``pytest_plugins = ["pytester", "contract_kit_support"]``.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from support import make_distribution

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

        def saved_arrays(self, model):
            """The arrays aios_save_model writes for ``model``."""
            return model

        def loaded_model(self, arrays):
            """The model aios_load_model makes of the arrays read from a file."""
            return {"w": arrays["w"], "b": arrays["b"]}

        @hookimpl
        def aios_save_model(self, model, path):
            write_npz(path, self.saved_arrays(model))
            return ModelArtifact(name="native", path=Path(path), format=self.native_format, producer=self.name)

        @hookimpl
        def aios_load_model(self, artifact):
            import numpy as np

            if artifact.format != self.native_format:
                return None
            with np.load(artifact.path, allow_pickle=False) as data:
                return self.loaded_model(data)

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


@pytest.fixture
def run_kit(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, site: Path):
    """``run_kit(test_source)``: install aios-kit-demo into ``site`` (beside any broken plugin a test installed
    there), then run ``test_source`` after ``KIT_TESTS`` with pytest in a fresh process."""

    def run(test_source: str) -> pytest.RunResult:
        make_distribution(site, "aios-kit-demo", DEMO_ENTRY_POINTS, modules={"aios_kit_demo": DEMO})
        for variable in [name for name in os.environ if name.startswith("AIOS_")]:
            monkeypatch.delenv(variable)
        monkeypatch.setenv("PYTHONPATH", str(site))
        # Other pytest plugins of this environment cost seconds per process; the kit's is named
        # explicitly (test_the_kit_is_a_pytest_plugin_entry_point checks pytest finds it by itself).
        monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
        pytester.makepyfile(test_plugin=textwrap.dedent(KIT_TESTS) + "\n\n" + textwrap.dedent(test_source))
        return pytester.runpytest_subprocess("-p", "aios_core.testing.plugin", "-p", "no:cacheprovider", "-rfEs",
                                             "--tb=short")

    return run


def contract_class(header: str, component: str, body: str = "") -> str:
    """The source of one test class for ``run_kit``: ``header`` is ``TestName(SomeContract)``, ``component`` the
    entry-point name of the component it tests, ``body`` any further members (fixtures, checks)."""
    members = textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
    return f"\nclass {header}:\n    component_name = named({component!r})\n{members}\n"


def assert_only_failure(result: pytest.RunResult, check: str, *lines: str, passed: int, skipped: int = 0) -> None:
    """Of the checks ``run_kit`` ran, ``check`` (``TestName::test_name``) alone failed, and the output shows ``lines``
    (fnmatch patterns, in order) before its FAILED line; ``passed`` and ``skipped`` count the others."""
    result.assert_outcomes(failed=1, passed=passed, skipped=skipped)
    result.stdout.fnmatch_lines([*lines, f"FAILED test_plugin.py::{check}*"])
