"""Quantization pre-processing: its imports are declared, and when it fails anyway, the artifact says so.

ONNX Runtime's ``quant_pre_process`` needs sympy (symbolic shape inference), which
onnxruntime no longer installs and torch used to bring; in an environment without
torch the pre-processing failed and only run.log said so (issue 9).
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from aios_onnx_quant_test_helpers import compress_with, nearest_mean_layers, onnx_artifact, write_classifier
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from aios_core import Dataset

# Runs both quantizations (pre-processing included) with the frameworks unimportable, as in an
# environment holding only aios-onnx-quant, and prints the top-level modules imported meanwhile.
_PROBE = """
import json, sys
for framework in ("torch", "tensorflow", "jax"):
    sys.modules[framework] = None
before = set(sys.modules)
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from aios_core.testing import tiny_dataset
from aios_onnx_quant_test_helpers import compress_with, nearest_mean_layers, onnx_artifact, write_classifier
dataset, folder = tiny_dataset(), Path(sys.argv[2])
model = onnx_artifact(write_classifier(folder / "model.onnx", nearest_mean_layers(dataset)))
for mode in ("static", "dynamic"):
    output, _ = compress_with(model, dataset, folder / mode, mode=mode, latency_runs=2)
    assert output.metrics["pre_processing"] == "applied", output.metrics["warnings"]
print(json.dumps(sorted({name.split(".")[0] for name in set(sys.modules) - before if sys.modules[name] is not None})))
"""


def _requirement_closure(distribution: str) -> set[str]:
    """``distribution`` and everything its requirements (without extras) require, installed, by canonical name."""
    closure: set[str] = set()
    pending = [distribution]
    while pending:
        name = canonicalize_name(pending.pop())
        if name in closure:
            continue
        closure.add(name)
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:  # declared but not installed: nothing of it can be imported
            continue
        for text in requirements:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return closure


def test_every_package_quantization_imports_is_a_declared_requirement(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", _PROBE, str(Path(__file__).parent), str(tmp_path)],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    imported = json.loads(result.stdout.strip().splitlines()[-1])
    providers = metadata.packages_distributions()
    distributions = {canonicalize_name(dist) for module in imported for dist in providers.get(module, [])}
    assert "sympy" in distributions, "pre-processing should have run symbolic shape inference"
    assert distributions - _requirement_closure("aios-onnx-quant") == set()


def test_a_failed_pre_processing_is_reported_in_the_artifact_metrics(monkeypatch: pytest.MonkeyPatch,
                                                                     tiny_dataset: Dataset, tmp_path: Path) -> None:
    # What an environment without sympy does: symbolic shape inference cannot be imported.
    monkeypatch.setitem(sys.modules, "sympy", None)
    monkeypatch.delitem(sys.modules, "onnxruntime.tools.symbolic_shape_infer", raising=False)
    model = onnx_artifact(write_classifier(tmp_path / "model.onnx", nearest_mean_layers(tiny_dataset)))
    output, _ = compress_with(model, tiny_dataset, tmp_path / "run", mode="static", latency_runs=5)
    assert output.metrics["pre_processing"] == "skipped"
    (warning,) = [w for w in output.metrics["warnings"] if "pre-processing skipped" in w]
    assert "sympy" in warning
    assert output.path.is_file()
