"""Helpers of the onnx-quant tests: run the compressor as a run does, and small ONNX classifiers.

``write_classifier`` writes a float32 MLP: ``input`` (n, features) -> [MatMul, Add, Relu]
per hidden layer -> MatMul, Add -> Softmax -> ``probabilities`` (n, classes). The
weights come from ``nearest_mean_layers`` (chosen, not trained: a nearest-class-mean
classifier, numpy only) or ``trained_mlp_layers`` (scikit-learn's MLPClassifier).
The module name is unique because the repository's suite runs every plugin's tests in
one session, in importlib mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable

    import pytest

    from aios_core import Dataset, ModelArtifact, RunContext

Layers = list[tuple[np.ndarray, np.ndarray]]


def compress_with(artifact: ModelArtifact, dataset: Dataset, run_dir: Path, *, seed: int = 0,
                  **params: Any) -> tuple[ModelArtifact, RunContext]:
    """Run ``aios_compress`` as the runner does: the compressor registered in a run's plugin manager."""
    from aios_onnx_quant import OnnxQuantCompressor

    from aios_core import RunContext
    from aios_core.testing import plugin_manager

    pm = plugin_manager(OnnxQuantCompressor(OnnxQuantCompressor.Params(**params)))
    run = RunContext(name="t", seed=seed, threads=1, dir=run_dir, stack={}, hook=pm.hook)
    return pm.hook.aios_compress(artifact=artifact, dataset=dataset, run=run), run


def compressed_by_mode(artifact: ModelArtifact, dataset: Dataset, tmp_path_factory: pytest.TempPathFactory,
                       prefix: str = "", **params: Any) -> Callable[[str], ModelArtifact]:
    """``get(mode)``: ``artifact`` compressed in ``mode`` (with ``params``), made on the first call for a mode."""
    cache: dict[str, ModelArtifact] = {}

    def get(mode: str) -> ModelArtifact:
        if mode not in cache:
            cache[mode], _ = compress_with(artifact, dataset, tmp_path_factory.mktemp(f"{prefix}{mode}"), mode=mode,
                                           **params)
        return cache[mode]

    return get


def onnx_artifact(path: Path) -> ModelArtifact:
    """``path`` as the run records an exported ONNX model."""
    from aios_core import ModelArtifact

    return ModelArtifact(name="onnx", path=Path(path), format="onnx", producer="test-fixture")


def write_classifier(path: Path, layers: Layers) -> Path:
    """Write the MLP whose layers are ``(weights (in, out), bias (out,))``, ReLU between them, softmax last."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, initializers, current = [], [], "input"
    for index, (weights, bias) in enumerate(layers):
        w, b = f"w{index}", f"b{index}"
        initializers += [numpy_helper.from_array(np.asarray(weights, np.float32), w),
                         numpy_helper.from_array(np.asarray(bias, np.float32), b)]
        nodes += [helper.make_node("MatMul", [current, w], [f"mm{index}"]),
                  helper.make_node("Add", [f"mm{index}", b], [f"z{index}"])]
        current = f"z{index}"
        if index < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [current], [f"a{index}"]))
            current = f"a{index}"
    nodes.append(helper.make_node("Softmax", [current], ["probabilities"], axis=1))
    features, classes = layers[0][0].shape[0], layers[-1][0].shape[1]
    graph = helper.make_graph(
        nodes, "classifier", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", classes])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what onnxruntime 1.18, the oldest the plugin supports, reads
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def write_unquantizable(path: Path, features: int, classes: int) -> Path:
    """A "classifier" of operators no quantizer touches: softmax of the absolute values of the first features."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    picked = numpy_helper.from_array(np.arange(classes, dtype=np.int64), "picked")
    nodes = [helper.make_node("Abs", ["input"], ["magnitudes"]),
             helper.make_node("Gather", ["magnitudes", "picked"], ["scores"], axis=1),
             helper.make_node("Softmax", ["scores"], ["probabilities"], axis=1)]
    graph = helper.make_graph(
        nodes, "unquantizable", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", classes])], [picked])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def nearest_mean_layers(dataset: Dataset, sharpness: float = 2.0) -> Layers:
    """A nearest-class-mean classifier on the training split, as two layers with a ReLU between.

    The score of class c is ``x . m_c - |m_c|^2 / 2`` (the nearest mean scores highest).
    The hidden layer holds ``relu(x)`` and ``relu(-x)``, whose difference is ``x``, so the
    ReLU loses nothing and the model is exactly that linear classifier.
    """
    features = dataset.x_train.shape[1]
    means = np.stack([dataset.x_train[dataset.y_train == label].mean(axis=0) for label in range(dataset.num_classes)])
    split = np.concatenate([np.eye(features), -np.eye(features)], axis=1)
    scores = np.concatenate([means.T, -means.T], axis=0) * sharpness
    return [(split, np.zeros(2 * features)), (scores, -0.5 * sharpness * (means ** 2).sum(axis=1))]


def trained_mlp_layers(dataset: Dataset, hidden: tuple[int, ...] = (64,), seed: int = 0) -> Layers:
    """An MLP trained with scikit-learn on the training split (a few hundred Adam steps, seconds on CPU)."""
    from sklearn.neural_network import MLPClassifier

    classifier = MLPClassifier(hidden_layer_sizes=hidden, max_iter=200, random_state=seed)
    classifier.fit(dataset.x_train, dataset.y_train)
    return list(zip(classifier.coefs_, classifier.intercepts_, strict=True))


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(probabilities).argmax(axis=1) == labels))
