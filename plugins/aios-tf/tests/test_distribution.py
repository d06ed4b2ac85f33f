"""What the distribution declares beyond the contract kit's checks: the kernel's shared parameter models, its
components' capabilities and its requirements."""

from __future__ import annotations

from importlib import metadata

from aios_tf import KerasFramework, KerasTrainer, KerasTrainerParams
from packaging.requirements import Requirement

from aios_core import ModelParams, TrainingParams


def test_parameters_are_the_kernels_shared_models_so_a_stack_swaps_frameworks_in_one_line() -> None:
    assert KerasFramework.Params is ModelParams
    assert issubclass(KerasTrainerParams, TrainingParams)
    assert KerasTrainerParams.model_fields.keys() == TrainingParams.model_fields.keys()


def test_capabilities_name_the_keras_format_and_onnx() -> None:
    assert KerasFramework.capabilities() == {"native_format": "keras", "export_formats": ["onnx"]}
    assert KerasTrainer.capabilities() == {"frameworks": ["keras"]}


def test_distribution_requires_ranges_not_pins() -> None:
    """The kernel's range is the contract kit's check; here the libraries the hooks import."""
    requirements = [Requirement(line) for line in metadata.requires("aios-tf") or []]
    runtime = {r.name: r.specifier for r in requirements if r.marker is None}
    assert {"tensorflow-cpu", "keras", "tf2onnx", "onnx", "onnxruntime", "numpy"} <= runtime.keys()
    assert not any(spec.operator == "==" for specifier in runtime.values() for spec in specifier)
