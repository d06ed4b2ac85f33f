"""The ``{{ cookiecutter.plugin_name }}`` model: a NumPy multilayer perceptron, and its ``.npz`` file format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from aios_core import atomic_path

FILE_FORMAT = "{{ cookiecutter.__native_format }}/1"
"""Written into every file, so a loader can tell its own files (and their version) from others."""


@dataclass
class MLP:
    """Dense layers ``x @ weights[i] + biases[i]``, ``activation`` between them, softmax at the end."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    activation: str = "relu"

    def hidden(self, x: np.ndarray) -> list[np.ndarray]:
        """The input and the output of each hidden layer (what backpropagation needs), then the logits."""
        outputs = [np.asarray(x, dtype=np.float32)]
        for index, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            z = outputs[-1] @ weight + bias
            if index < len(self.weights) - 1:
                z = np.maximum(z, 0.0) if self.activation == "relu" else np.tanh(z)
            outputs.append(z.astype(np.float32, copy=False))
        return outputs

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (n, classes) for a float32 batch (n, features)."""
        return softmax(self.hidden(x)[-1])


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32, copy=False)


def build(features: int, classes: int, hidden_units: list[int], activation: str, *, seed: int) -> MLP:
    """An untrained MLP with He/Glorot-scaled random weights drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    sizes = [features, *hidden_units, classes]
    weights, biases = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        scale = np.sqrt((2.0 if activation == "relu" else 1.0) / fan_in)
        weights.append((rng.standard_normal((fan_in, fan_out)) * scale).astype(np.float32))
        biases.append(np.zeros(fan_out, dtype=np.float32))
    return MLP(weights, biases, activation)


def save(model: MLP, path: Path, dtype: str = "float32") -> None:
    """Write ``model`` to ``path`` atomically; ``dtype`` is how weights are stored (``float16`` halves the file)."""
    arrays: dict[str, np.ndarray] = {"format": np.array(FILE_FORMAT), "activation": np.array(model.activation)}
    for index, (weight, bias) in enumerate(zip(model.weights, model.biases)):
        arrays[f"weight_{index}"] = weight.astype(dtype)
        arrays[f"bias_{index}"] = bias.astype(dtype)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:  # a handle, so numpy keeps the file name as it is
        np.savez(handle, **arrays)


def load(path: Path) -> MLP:
    """Read a model written by ``save``; refuses pickled objects and files of other formats."""
    with np.load(path, allow_pickle=False) as data:
        found = str(data["format"]) if "format" in data.files else None
        if found != FILE_FORMAT:
            raise ValueError(f"{path}: not a {FILE_FORMAT} model file (found format {found!r})")
        layers = sum(1 for key in data.files if key.startswith("weight_"))
        weights = [data[f"weight_{i}"].astype(np.float32) for i in range(layers)]
        biases = [data[f"bias_{i}"].astype(np.float32) for i in range(layers)]
        return MLP(weights, biases, str(data["activation"]))
