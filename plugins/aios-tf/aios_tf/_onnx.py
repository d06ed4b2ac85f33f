"""ONNX export with tf2onnx and a parity check against Keras.

The Keras model is traced as a ``tf.function`` with a dynamic batch dimension and
converted by ``tf2onnx.convert.from_function``; its graph input is named ``input`` and
its output renamed ``probabilities``, as the torch framework's exports are. The parity
check runs the file in the kernel's ONNX Runtime session (``aios_core.onnx_session``),
the one evaluation and the servers use; the kernel also answers ``aios_load_predictor``
for ``onnx`` artifacts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from aios_core import Dataset, atomic_path, onnx_session
from aios_tf import _runtime

MAX_ABS_DIFF = 1e-4
"""Largest difference between ONNX Runtime and Keras probabilities an export may show."""
PARITY_BATCH_SIZES = (1, 256)
OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"


def export_onnx(model: Any, path: Path, dataset: Dataset) -> dict[str, Any]:
    """Export ``model`` to ``path`` as one ONNX file and check it against Keras.

    Raises ``ValueError`` when ONNX Runtime's probabilities differ from Keras' by more
    than ``MAX_ABS_DIFF``; ``path`` is then left untouched.
    """
    import onnx

    proto = _convert(model, dataset.num_features, "predictions" if dataset.task == "regression" else OUTPUT_NAME)
    onnx.checker.check_model(proto, full_check=True)
    rows = _parity_rows(dataset)
    with atomic_path(path) as tmp:
        onnx.save_model(proto, str(tmp))
        metrics = _parity(model, tmp, rows)
    return metrics


def _convert(model: Any, num_features: int, output_name: str = OUTPUT_NAME) -> Any:
    tf = _runtime.tensorflow()
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)  # per-op INFO notes; errors still raise
    import tf2onnx

    _patch_tf2onnx_for_numpy2()
    function = tf.function(lambda x: model(x, training=False))
    signature = [tf.TensorSpec((None, num_features), tf.float32, name=INPUT_NAME)]
    proto, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=OPSET)
    if len(proto.graph.output) != 1:
        raise ValueError(f"ONNX export: the model has {len(proto.graph.output)} outputs; expected one (probabilities)")
    _rename_output(proto, proto.graph.output[0].name, output_name)
    return proto


def _patch_tf2onnx_for_numpy2() -> None:
    """Apply the patch Keras applies before its own ``model.export(format="onnx")``.

    tf2onnx 1.17 still uses numpy 1 names in a few rewrites (``np.object`` in constant
    folding); Keras ships a fix (a private module, hence the guard). Without it those
    rewrites fail on numpy 2 for some graphs; the built-in architectures do not need them.
    """
    try:
        from keras.src.export.tf2onnx_lib import patch_tf2onnx
    except ImportError:
        return
    patch_tf2onnx()


def _rename_output(proto: Any, old: str, new: str) -> None:
    for node in proto.graph.node:
        node.output[:] = [new if name == old else name for name in node.output]
        node.input[:] = [new if name == old else name for name in node.input]
    proto.graph.output[0].name = new


def _parity_rows(dataset: Dataset) -> np.ndarray:
    """Up to 256 rows from the first non-empty split of test, val, train (repeated to fill 256)."""
    for name in ("test", "val", "train"):
        split = dataset.split(name)
        if split.rows:  # the first rows alone, read through the split: a split held as a view is not gathered whole
            rows = np.ascontiguousarray(split.read(0, min(split.rows, max(PARITY_BATCH_SIZES)))[0], dtype=np.float32)
            repeats = -(-max(PARITY_BATCH_SIZES) // len(rows))
            return np.ascontiguousarray(np.tile(rows, (repeats, 1))[: max(PARITY_BATCH_SIZES)])
    raise ValueError("ONNX export needs sample rows, but the dataset's test, val and train splits are empty")


def _parity(model: Any, path: Path, rows: np.ndarray) -> dict[str, Any]:
    session = onnx_session(path, threads=1)
    worst = 0.0
    for size in PARITY_BATCH_SIZES:
        batch = rows[:size]
        expected = np.asarray(model(batch, training=False))
        actual = session.run(None, {INPUT_NAME: batch})[0]
        if actual.shape != expected.shape:
            raise ValueError(f"ONNX export: batch {size} gave output shape {actual.shape}, expected {expected.shape}")
        worst = max(worst, float(np.max(np.abs(actual - expected))))
    if worst > MAX_ABS_DIFF:
        raise ValueError(
            f"ONNX export: ONNX Runtime and Keras probabilities differ by up to {worst:.3g} "
            f"(allowed {MAX_ABS_DIFF:g}); the model uses an operation tf2onnx translates inexactly"
        )
    return {"max_abs_diff": worst, "parity_batch_sizes": list(PARITY_BATCH_SIZES), "opset": OPSET,
            "exporter": "tf2onnx"}
