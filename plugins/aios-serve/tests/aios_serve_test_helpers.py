"""Helpers of the aios-serve tests: a small ONNX classifier, run directories, a server process, a model replacer.

The model is built with onnx's helpers (a 64-32-10 MLP with fixed random weights and a
softmax), so these tests need no framework and no training; what they check is the
server, not the model.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from aios_core import Monitor, hookimpl

FEATURES, CLASSES = 64, 10
CLASS_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
MODEL = "digits-mlp"
VERSION = "20260101-000000"
REPLACER = "replace-deployed-model"


def write_mlp(path: Path, seed: int = 0, features: int = FEATURES, classes: int = CLASSES, hidden: int = 32) -> Path:
    """A float32 features-hidden-classes MLP ending in softmax; input "input" (n, features), output "probabilities"
    (n, classes); 64-32-10 by default, for digits."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = {"w1": rng.normal(0, 0.3, (features, hidden)), "b1": rng.normal(0, 0.1, hidden),
               "w2": rng.normal(0, 0.3, (hidden, classes)), "b2": rng.normal(0, 0.1, classes)}
    initializers = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    nodes = [helper.make_node("MatMul", ["input", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["a"]), helper.make_node("MatMul", ["a", "w2"], ["z"]),
             helper.make_node("Add", ["z", "b2"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", features])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", classes])],
                              initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_run_dir(root: Path, name: str = MODEL, stamp: str = VERSION, seed: int = 0, hidden: int = 32) -> Path:
    """A finished run directory as aios run leaves it (lock, state, data summary, final ONNX model), written
    through the run record's own API (``aios_core.RunDirectory``)."""
    from aios_core import ModelArtifact, RunDirectory, RunState

    run = RunDirectory(root / f"{stamp}-{name}")
    run.artifacts_dir.mkdir(parents=True)
    model = write_mlp(run.artifacts_dir / "model.onnx", seed, hidden=hidden)
    run.write_lock({"name": name, "seed": 0, "threads": 1})
    artifact = ModelArtifact(name="onnx", path=model, format="onnx", producer="test")
    run.write_state(RunState(status="completed", phases={"export": {"artifacts": [run.artifact_to_json(artifact)]}}))
    mean = np.linspace(0.0, 8.0, FEATURES).round(3).tolist()
    std = np.linspace(1.0, 4.0, FEATURES).round(3).tolist()
    run.write_data_summary({"name": "digits", "class_names": CLASS_NAMES, "num_features": FEATURES,
                            "preprocessing": {"scaling": "standardize", "mean": mean, "std": std}})
    return run.path


class ModelReplacer(Monitor):
    """Replaces the model file being deployed right after the run's in-process predictor loaded it, as another
    process overwriting the run's model would: the server then loads other weights than the reference holds.

    A monitor (any component may implement any hook): it learns the phase from
    ``aios_on_phase_start`` and wraps ``aios_load_predictor``.
    """

    def __init__(self, params: Any = None, name: str | None = None) -> None:
        super().__init__(params, name or REPLACER)
        self.deploying = False

    @hookimpl
    def aios_on_phase_start(self, phase: str) -> None:
        self.deploying = phase == "deploy"

    @hookimpl(wrapper=True)
    def aios_load_predictor(self, artifact: Any, threads: int) -> Any:
        predictor = yield
        if self.deploying and predictor is not None:
            perturb_weights(Path(artifact.path))
        return predictor


def perturb_weights(path: Path, seed: int = 0) -> None:
    """Rewrite the ONNX model at ``path`` (atomically) with noise added to its float weights."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    rng = np.random.default_rng(seed)
    for tensor in model.graph.initializer:
        weights = numpy_helper.to_array(tensor)
        if weights.dtype == np.float32 and weights.size > 1:
            noisy = weights + rng.normal(0.0, float(weights.std()) + 1e-3, weights.shape)
            tensor.CopyFrom(numpy_helper.from_array(noisy.astype(np.float32), tensor.name))
    replacement = path.with_name(path.name + ".replacement")
    onnx.save(model, str(replacement))
    os.replace(replacement, path)


def install_replacer(folder: Path) -> dict[str, str]:
    """Install ``ModelReplacer`` as the monitor plugin ``replace-deployed-model`` for a child process: a
    distribution's metadata (an ``aios.monitors`` entry point) in ``folder``. Returns the environment that
    puts it and this module on the child's path."""
    dist_info = folder / "aios_serve_test_replacer-0.0.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: aios-serve-test-replacer\nVersion: 0.0.0\n",
                                        encoding="utf-8")
    (dist_info / "entry_points.txt").write_text(
        f"[aios.monitors]\n{REPLACER} = {__name__}:ModelReplacer\n", encoding="utf-8")
    path = [str(folder), str(Path(__file__).parent), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(path)}


class ServerProcess:
    """``python -m aios_serve`` in a child process (its own GIL, real signals); ``aios=True``: ``aios serve``.

    ``url`` is the HTTP base URL and ``grpc`` the gRPC target (``host:port``) when it serves one, read
    from the line the command prints once it listens.
    """

    def __init__(self, *args: str, env: dict[str, str] | None = None, aios: bool = False) -> None:
        command = ["aios_core", "serve"] if aios else ["aios_serve"]
        self.process = subprocess.Popen([sys.executable, "-m", *command, *args, "--port", "0"],
                                        stdout=subprocess.PIPE if aios else None, stderr=None if aios else subprocess.PIPE,
                                        text=True, env={**os.environ, **(env or {})})
        self.url = ""
        self.grpc: str | None = None
        stream = self.process.stdout if aios else self.process.stderr
        deadline = time.monotonic() + 60
        assert stream is not None
        while time.monotonic() < deadline:
            line = stream.readline()
            if not line and self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}")
            found = re.search(r"serving .*?on (http://[^\s/]+)", line)
            if found:
                self.url = found.group(1)
                grpc = re.search(r"g[Rr][Pp][Cc] (\S+:\d+)", line)
                self.grpc = grpc.group(1) if grpc else None
                return
        self.process.kill()
        raise RuntimeError("the server did not start within 60 s")

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def terminate(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
