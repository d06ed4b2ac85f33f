"""Whole stacks: the digits stack with `framework: keras` through int8 and a deployer, and mnist-keras.yaml on IDX files."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from aios_core.runner import start_run
from aios_core.stack import load_stack

REPO = Path(__file__).resolve().parents[3]
DIGITS_STACK = REPO / "examples" / "digits-torch.yaml"
MNIST_STACK = REPO / "examples" / "mnist-keras.yaml"


def _swap_to_keras(text: str) -> str:
    """The digits stack without its trainer's `plugin:` line (the trainer follows the framework), then the one-line swap."""
    text = re.sub(r"(?m)^trainer:\n  plugin: torch\n", "trainer:\n", text)
    return text.replace("framework: torch", "framework: keras")


def _run(stack_file: Path, tmp_path: Path, overrides: list[str]) -> dict:
    stack = load_stack(stack_file, overrides)
    state = start_run(stack, tmp_path / "runs").execute()
    assert state["status"] == "completed"
    return state


def test_the_digits_stack_swaps_to_keras_in_one_line_and_runs_through_int8_and_a_deployer(tmp_path: Path) -> None:
    original = DIGITS_STACK.read_text()
    swapped = _swap_to_keras(original)
    assert len([line for line in swapped.splitlines() if line not in original.splitlines()]) == 1
    stack_file = tmp_path / "digits-keras.yaml"
    stack_file.write_text(swapped)
    state = _run(stack_file, tmp_path, ["deployer.plugin=oip", "deployer.smoke_requests=20",
                                        "monitors.0.plugin=jsonl"])
    assert state["phases"]["train"]["artifact"]["format"] == "keras"
    evaluate = state["phases"]["evaluate"]
    assert evaluate["final"] == "int8" and evaluate["test_accuracy"] >= 0.95
    assert state["phases"]["deploy"]


def _write_idx(directory: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """MNIST-style gzipped IDX files (``train-images-idx3-ubyte.gz`` and its labels) for uint8 images."""
    count, height, width = images.shape
    images_path = directory / "train-images-idx3-ubyte.gz"
    with gzip.open(images_path, "wb") as handle:
        handle.write(struct.pack(">HBBIII", 0, 0x08, 3, count, height, width) + images.astype(np.uint8).tobytes())
    with gzip.open(directory / "train-labels-idx1-ubyte.gz", "wb") as handle:
        handle.write(struct.pack(">HBBI", 0, 0x08, 1, count) + labels.astype(np.uint8).tobytes())
    return images_path


def test_mnist_keras_reads_idx_files_through_the_files_datastore(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16))  # 8x8 digits as 8-bit MNIST-style images
    path = _write_idx(tmp_path, images, digits.target)
    state = _run(MNIST_STACK, tmp_path, ["data.plugin=files", f"data.path={path}", "trainer.epochs=3",
                                         "evaluate.min_accuracy=0.8", "monitors.0.plugin=jsonl"])
    data = state["phases"]["data"]
    assert data["image_shape"] == [1, 8, 8] and sum(data["sizes"].values()) == len(digits.target)
    assert state["phases"]["evaluate"]["test_accuracy"] >= 0.8


@pytest.mark.parametrize("overrides", [[], ["data.plugin=files", "data.path=train-images-idx3-ubyte.gz"]])
def test_mnist_keras_is_the_tutorial_model_on_either_datastore(overrides: list[str]) -> None:
    stack = load_stack(MNIST_STACK, overrides)
    model, trainer = stack.resolved["model"], stack.resolved["trainer"]
    assert (model["framework"], model["architecture"], model["hidden_units"], model["activation"]) == \
           ("keras", "mlp", [128], "relu")
    assert (trainer["plugin"], trainer["epochs"], trainer["optimizer"]) == ("keras", 5, "adam")
    assert stack.resolved["data"]["plugin"] == ("files" if overrides else "sklearn")
