"""Helpers of the aios-serve tests: a small ONNX classifier, run directories, a server process.

The model is built with onnx's helpers (a 64-32-10 MLP with fixed random weights and a
softmax), so these tests need no framework and no training; what they check is the
server, not the model. The contract tests use the contract kit's own trained model.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FEATURES, CLASSES = 64, 10
CLASS_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
MODEL = "digits-mlp"
VERSION = "20260101-000000"


def write_mlp(path: Path, seed: int = 0) -> None:
    """A float32 64-32-10 MLP ending in softmax; input "input" (n, 64), output "probabilities" (n, 10)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = {"w1": rng.normal(0, 0.3, (FEATURES, 32)), "b1": rng.normal(0, 0.1, 32),
               "w2": rng.normal(0, 0.3, (32, CLASSES)), "b2": rng.normal(0, 0.1, CLASSES)}
    initializers = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    nodes = [helper.make_node("MatMul", ["input", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["a"]), helper.make_node("MatMul", ["a", "w2"], ["z"]),
             helper.make_node("Add", ["z", "b2"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", FEATURES])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", CLASSES])],
                              initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def make_run_dir(root: Path, name: str = MODEL, stamp: str = VERSION, seed: int = 0) -> Path:
    """A finished run directory as aios run leaves it (lock, state, data summary, final ONNX model)."""
    run = root / f"{stamp}-{name}"
    (run / "artifacts").mkdir(parents=True)
    write_mlp(run / "artifacts" / "model.onnx", seed)
    (run / "stack.lock.yaml").write_text(f"name: {name}\nsettings:\n  seed: 0\n  threads: 1\n", encoding="utf-8")
    artifact = {"name": "onnx", "path": str(run / "artifacts" / "model.onnx"), "format": "onnx",
                "producer": "test", "metrics": {}}
    (run / "state.json").write_text(json.dumps({"status": "completed", "phases": {"export": {"artifacts": [artifact]}}}),
                                    encoding="utf-8")
    mean = np.linspace(0.0, 8.0, FEATURES).round(3).tolist()
    std = np.linspace(1.0, 4.0, FEATURES).round(3).tolist()
    (run / "data.json").write_text(json.dumps({"name": "digits", "class_names": CLASS_NAMES, "num_features": FEATURES,
                                               "preprocessing": {"scaling": "standardize", "mean": mean, "std": std}}),
                                   encoding="utf-8")
    return run


class ServerProcess:
    """``python -m aios_serve`` in a child process (its own GIL, real signals)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "aios_serve", *args, "--port", "0"],
                                        stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
        self.url = ""
        deadline = time.monotonic() + 60
        assert self.process.stderr is not None
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line and self.process.poll() is not None:
                raise RuntimeError(f"aios-serve exited with {self.process.returncode}")
            found = re.search(r"serving on (http://\S+)", line)
            if found:
                self.url = found.group(1)
                return
        self.process.kill()
        raise RuntimeError("aios-serve did not start within 60 s")

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
