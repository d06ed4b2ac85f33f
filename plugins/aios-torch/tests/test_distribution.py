"""What the distribution declares: its components' capabilities and its requirements (the kit checks the rest)."""

from __future__ import annotations

from importlib import metadata

from aios_torch import TorchFramework, TorchTrainer, TorchTrainerParams
from packaging.requirements import Requirement

from aios_core import ModelParams


def test_components_declare_their_params_and_capabilities() -> None:
    assert TorchFramework.Params is ModelParams and TorchTrainer.Params is TorchTrainerParams
    assert TorchFramework.capabilities() == {"native_format": "torch", "export_formats": ["onnx"]}
    assert TorchTrainer.capabilities() == {"frameworks": ["torch"]}


def test_distribution_requires_its_libraries_as_ranges_not_pins() -> None:
    # The kernel's range is the contract kit's check (test_declared_aios_core_range_includes_the_running_version).
    requirements = {r.name: r.specifier for r in map(Requirement, metadata.requires("aios-torch") or [])}
    assert {"torch", "onnx", "onnxscript", "onnxruntime", "numpy"} <= requirements.keys()
    assert not any(spec.operator == "==" for specifier in requirements.values() for spec in specifier)
