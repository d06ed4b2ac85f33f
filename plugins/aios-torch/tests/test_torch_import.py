"""The entry-point module stays light, and the distribution declares its components."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

from packaging.requirements import Requirement

from aios_core import Framework, ModelParams, Trainer
from aios_torch import TorchFramework, TorchTrainer, TorchTrainerParams


def test_importing_the_plugin_imports_no_ml_library() -> None:
    code = ("import sys, json, aios_torch; "
            "print(json.dumps([m for m in ('torch', 'onnx', 'onnxruntime', 'onnxscript') if m in sys.modules]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_creating_components_imports_no_ml_library() -> None:
    code = ("import sys, json, aios_torch; aios_torch.TorchFramework(); aios_torch.TorchTrainer(); "
            "aios_torch.TorchFramework.capabilities(); "
            "print(json.dumps([m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_entry_points_name_the_components() -> None:
    frameworks = {ep.name: ep.value for ep in metadata.entry_points(group="aios.frameworks")}
    trainers = {ep.name: ep.value for ep in metadata.entry_points(group="aios.trainers")}
    assert frameworks["torch"] == "aios_torch:TorchFramework"
    assert trainers["torch"] == "aios_torch:TorchTrainer"


def test_components_declare_kind_params_and_capabilities() -> None:
    assert issubclass(TorchFramework, Framework) and TorchFramework.Params is ModelParams
    assert TorchFramework.capabilities() == {"native_format": "torch", "export_formats": ["onnx"]}
    assert issubclass(TorchTrainer, Trainer) and TorchTrainer.Params is TorchTrainerParams
    assert TorchTrainer.capabilities() == {"frameworks": ["torch"]}


def test_distribution_requires_ranges_not_pins() -> None:
    requirements = {r.name: r.specifier for r in map(Requirement, metadata.requires("aios-torch") or [])}
    assert {"aios-core", "torch", "onnx", "onnxscript", "onnxruntime", "numpy"} <= requirements.keys()
    assert "0.1.9" in requirements["aios-core"] and "0.2.0" not in requirements["aios-core"]
    assert not any(spec.operator == "==" for specifier in requirements.values() for spec in specifier)
