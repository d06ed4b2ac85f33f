"""The one ONNX Runtime session and predictor every part of AIOS uses.

Evaluation, the compressors and the server all run ``onnx`` artifacts through
``onnx_session``, so they measure and answer with the same settings. onnxruntime is
imported when a session is made, never at import time; the kernel does not depend on
it (the plugins that write ONNX files do).

Thread policy: ``intra_op_num_threads`` is the stack's ``threads`` (at least 1, so a
measured latency matches the run's setting and two sessions never fight for every
core), ``inter_op_num_threads`` is 1 with sequential execution (the models are single
chains of operators), every graph optimization is on (it fuses quantize/dequantize
pairs into integer kernels; without it an int8 QDQ model is slower than fp32), and
only the CPU execution provider is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aios_core.hookspecs import hookimpl

if TYPE_CHECKING:
    from aios_core.records import ModelArtifact, Predictor

__all__ = ["OnnxRuntimePredictors", "onnx_predictor", "onnx_session"]


def onnx_session(path: str | Path, threads: int = 1) -> Any:
    """An ``onnxruntime.InferenceSession`` for the model at ``path``, with the thread policy above."""
    try:
        import onnxruntime as ort
    except ImportError as error:
        raise RuntimeError(f"running the ONNX model {path} needs onnxruntime, which is not installed: "
                           "pip install onnxruntime") from error
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def onnx_predictor(path: str | Path, threads: int = 1) -> Predictor:
    """A function mapping a float32 batch (n, features) to the model's first output (class probabilities)."""
    import numpy as np

    session = onnx_session(path, threads)
    input_name, output_name = session.get_inputs()[0].name, session.get_outputs()[0].name

    def predict(batch: np.ndarray) -> np.ndarray:
        return session.run([output_name], {input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]

    return predict


class OnnxRuntimePredictors:
    """The kernel's answer to ``aios_load_predictor`` for ``onnx`` artifacts, registered in every run.

    Components answer for their own native formats; ONNX files, whoever wrote them, are
    run here, so evaluation does not depend on which plugin registered first.
    """

    NAME = "aios-kernel:onnxruntime"

    @hookimpl(tryfirst=True)  # before components, however they were registered
    def aios_load_predictor(self, artifact: ModelArtifact, threads: int) -> Predictor | None:
        if artifact.format != "onnx":
            return None
        return onnx_predictor(artifact.path, threads)
