"""TensorFlow loads only when a stack names this plugin: importing it, creating its components and listing plugins stay light."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

from packaging.requirements import Requirement

from aios_core import Framework, ModelParams, Trainer
from aios_tf import KerasFramework, KerasTrainer, KerasTrainerParams

HEAVY = ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "torch")


def _loaded_after(code: str) -> list[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_the_plugin_and_creating_components_imports_no_ml_library() -> None:
    code = ("import aios_tf\naios_tf.KerasFramework(); aios_tf.KerasTrainer()\n"
            "aios_tf.KerasFramework.capabilities(); aios_tf.KerasTrainer.capabilities()")
    assert _loaded_after(code) == []


def test_aios_plugins_list_does_not_import_tensorflow() -> None:
    code = ("from aios_core.cli import main\n"
            "try:\n    main(['plugins', 'list'], prog_name='aios')\nexcept SystemExit:\n    pass")
    assert _loaded_after(code) == []


def test_entry_points_name_the_components() -> None:
    frameworks = {ep.name: ep.value for ep in metadata.entry_points(group="aios.frameworks")}
    trainers = {ep.name: ep.value for ep in metadata.entry_points(group="aios.trainers")}
    assert frameworks["keras"] == "aios_tf:KerasFramework"
    assert trainers["keras"] == "aios_tf:KerasTrainer"


def test_components_declare_kind_params_and_capabilities() -> None:
    assert issubclass(KerasFramework, Framework) and KerasFramework.Params is ModelParams
    assert KerasFramework.capabilities() == {"native_format": "keras", "export_formats": ["onnx"]}
    assert issubclass(KerasTrainer, Trainer) and KerasTrainer.Params is KerasTrainerParams
    assert KerasTrainer.capabilities() == {"frameworks": ["keras"]}


def test_trainer_takes_the_torch_trainers_parameter_names() -> None:
    assert set(KerasTrainerParams.model_fields) == {
        "epochs", "batch_size", "optimizer", "learning_rate", "momentum", "weight_decay", "lr_schedule",
        "lr_step_size", "lr_gamma", "early_stopping_patience", "early_stopping_min_delta", "progress_updates"}


def test_distribution_requires_ranges_not_pins() -> None:
    requirements = {r.name: r.specifier for r in map(Requirement, metadata.requires("aios-tf") or [])}
    assert {"aios-core", "tensorflow-cpu", "keras", "tf2onnx", "onnx", "onnxruntime", "numpy"} <= requirements.keys()
    assert not any(spec.operator == "==" for specifier in requirements.values() for spec in specifier)
