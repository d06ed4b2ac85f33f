"""The ONNX export: the model's probabilities are a softmax of a linear function, so two operators."""

from __future__ import annotations

from pathlib import Path

from aios_core import atomic_path

from aios_nearest_centroid._model import NearestCentroid

OPSET = 13
"""Softmax over one axis (``axis=1``) is what opset 13 defines; ONNX Runtime and onnx-quant read it."""


def export(model: NearestCentroid, path: Path) -> None:
    """Write ``model`` as ONNX: ``input`` float32 (batch, features) -> ``probabilities`` (batch, classes)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights, biases = model.linear()
    features, classes = weights.shape
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["input", "weights", "biases"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
        "nearest_centroid",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", classes])],
        initializer=[numpy_helper.from_array(weights, "weights"), numpy_helper.from_array(biases, "biases")],
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                   producer_name="aios-nearest-centroid")
    onnx_model.ir_version = 8  # what opset 13 needs at least; older runtimes read it too
    onnx.checker.check_model(onnx_model)
    with atomic_path(path) as tmp:
        onnx.save_model(onnx_model, str(tmp))
