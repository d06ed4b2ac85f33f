"""Whole stacks through the installed `aios` command, as a user runs them in an empty directory: the digits stack
with `framework: keras` through int8 and a deployer, and the quickstart MLP on MNIST-style IDX files."""

from __future__ import annotations

import gzip
import struct
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from aios_core import RunDirectory, RunState
from aios_core.testing import run_aios

STACKS = Path(__file__).parent / "stacks"
NEEDED = {"aios.datastores": ("sklearn", "files"), "aios.compressors": ("onnx-quant",), "aios.deployers": ("oip",)}
MISSING = [f"{group}:{name}" for group, names in NEEDED.items() for name in names
           if not metadata.entry_points(group=group, name=name)]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"the stacks need {', '.join(MISSING)}: "
                                                      "pip install 'aios-tf[test]'")


def _run(stack: str, directory: Path, *overrides: str) -> tuple[RunDirectory, RunState]:
    """``aios run STACK --set ...`` in ``directory`` (runs go to its ``runs/``); the run and its state."""
    arguments = [item for override in overrides for item in ("--set", override)]
    result = run_aios("run", str(STACKS / stack), *arguments, cwd=directory, env={"AIOS_RUNS_DIR": ""})
    runs = sorted((directory / "runs").iterdir()) if (directory / "runs").is_dir() else []
    assert result.returncode == 0 and len(runs) == 1, f"{result.stdout}\n{result.stderr}"
    run = RunDirectory.open(runs[0])
    state = run.read_state()
    assert state.status == "completed", state.error
    return run, state


def test_the_digits_stack_with_keras_runs_through_int8_and_a_deployer(tmp_path: Path) -> None:
    run, state = _run("digits-keras.yaml", tmp_path)
    assert state.phases["train"]["artifact"]["format"] == "keras"
    evaluate = state.phases["evaluate"]
    assert evaluate["final"] == "int8" and evaluate["test_accuracy"] >= 0.95
    assert [a.format for a in run.artifacts()] == ["keras", "onnx", "onnx"]
    assert all(a.path.is_file() and a.path.is_relative_to(run.path) for a in run.artifacts())
    assert state.phases["deploy"]["smoke_test"]["passed"]


def _write_idx(directory: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """MNIST-style gzipped IDX files (``train-images-idx3-ubyte.gz`` and its labels) for uint8 images."""
    count, height, width = images.shape
    images_path = directory / "train-images-idx3-ubyte.gz"
    with gzip.open(images_path, "wb") as handle:
        handle.write(struct.pack(">HBBIII", 0, 0x08, 3, count, height, width) + images.astype(np.uint8).tobytes())
    with gzip.open(directory / "train-labels-idx1-ubyte.gz", "wb") as handle:
        handle.write(struct.pack(">HBBI", 0, 0x08, 1, count) + labels.astype(np.uint8).tobytes())
    return images_path


def test_the_quickstart_model_trains_with_the_keras_trainer_on_idx_files(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16))  # 8x8 digits as 8-bit MNIST-style images
    path = _write_idx(tmp_path, images, digits.target)
    run, state = _run("mnist-keras.yaml", tmp_path, f"data.path={path}", "trainer.epochs=3")
    data = state.phases["data"]
    assert data["image_shape"] == [1, 8, 8] and sum(data["sizes"].values()) == len(digits.target)
    assert run.read_lock()["trainer"]["plugin"] == "keras"  # the trainer section names none: the framework's
    assert [row["epoch"] for row in state.phases["train"]["history"]] == [1, 2, 3]
    assert state.phases["evaluate"]["test_accuracy"] >= 0.8


def test_validate_refuses_a_cnn_for_rows_without_an_image_shape(tmp_path: Path) -> None:
    (tmp_path / "stack.yaml").write_text("name: iris-cnn\ndata: {plugin: sklearn, dataset: iris}\n"
                                         "model: {framework: keras, architecture: cnn}\n")
    for command in ("validate", "run"):
        result = run_aios(command, "stack.yaml", cwd=tmp_path)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2 and len(errors) == 1, result.stderr
        assert errors[0].startswith("error: stack.yaml:3: model.architecture: found 'cnn', but the data are rows of "
                                    "4 features with no image shape"), errors[0]
    assert not (tmp_path / "runs").exists()


def test_validate_refuses_a_factory_that_does_not_import(tmp_path: Path) -> None:
    (tmp_path / "stack.yaml").write_text("name: bad-factory\ndata: {plugin: sklearn, dataset: digits}\n"
                                         "model: {framework: keras, architecture: 'no_such_models:build'}\n")
    result = run_aios("validate", "stack.yaml", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert ("error: stack.yaml:3: model.architecture: found 'no_such_models:build', but it does not load "
            "(ModuleNotFoundError: No module named 'no_such_models')") in result.stderr
