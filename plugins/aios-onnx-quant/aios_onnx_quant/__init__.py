"""AIOS compressor ``onnx-quant``: int8 quantization of ONNX classifiers and regressors with ONNX Runtime.

Importing this module is cheap: onnx, onnxruntime and numpy load only when a hook runs
(from ``aios_onnx_quant._quantization``), so listing plugins never pays for them. The
int8 model it writes is an ordinary ``onnx`` artifact: the kernel runs it
(``aios_core.onnx_predictor``), so this plugin implements no ``aios_load_predictor``.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, PositiveInt

from aios_core import Compressor, Params, hookimpl

if TYPE_CHECKING:
    from aios_core import Dataset, ModelArtifact, RunContext

__version__ = "0.1.0"
__all__ = ["OnnxQuantCompressor", "OnnxQuantParams"]


class OnnxQuantParams(Params):
    """Parameters of the ``onnx-quant`` compressor."""

    mode: Literal["dynamic", "static", "auto"] = Field(
        "auto", description="static: calibrated QDQ int8; dynamic: int8 weights, activations quantized per call "
                            "(a row's answer then depends on its batch); auto: the batch-independent int8 "
                            "variant (today: static) if it pays (within max_accuracy_drop, not slower at the "
                            "stack's batch sizes, and faster or min_size_reduction smaller), else fp32, said why.")
    calibration_samples: PositiveInt = Field(
        256, description="Training rows (drawn with the run's seed) used to calibrate static quantization.")
    calibration_method: Literal["minmax", "entropy", "percentile"] = Field(
        "minmax", description="How static quantization picks activation ranges from the calibration rows.")
    per_channel: bool = Field(False, description="Quantize weights per output channel instead of per tensor.")
    max_accuracy_drop: float = Field(
        0.01, ge=0.0, le=1.0, description="Largest validation-accuracy loss vs fp32 (0.01 = 1 point) a variant may "
                                          "have to be chosen; a kept model beyond it gets a warning in its metrics.")
    max_metric_drop: float | None = Field(
        None, ge=0.0, description="The budget in the data's task metric: for regression the largest relative "
                                  "validation-RMSE increase vs fp32 (0.05 = 5 %; 0.05 when null); for "
                                  "classification an accuracy drop, overriding max_accuracy_drop when given.")
    latency_runs: PositiveInt = Field(200, description="Timed batch-1 inferences per model, interleaved (a tenth, "
                                                       "at least 20, at larger batch sizes); medians are reported.")
    min_size_reduction: float = Field(
        0.5, ge=0.0, le=1.0, description="auto: an int8 model no faster than fp32 (within the measured noise) is "
                                         "kept only if at least this much smaller (0.5: half the size).")


    def budget(self, task: str) -> float:
        """How much worse than fp32 a variant may be, in ``aios_core.metric_drop``'s terms for ``task``."""
        if self.max_metric_drop is not None:
            return self.max_metric_drop
        return 0.05 if task == "regression" else self.max_accuracy_drop


_NEEDS = {"onnx": "reading and checking models", "onnxruntime": "quantizing and measuring",
          "sympy": "quantization pre-processing", "ml_dtypes": "imported by onnxruntime.quantization",
          "numpy": "calibration rows"}
"""What a quantization imports, and why; each a requirement of this distribution."""


class OnnxQuantCompressor(Compressor):
    """Quantizes an ONNX classifier to int8 (static QDQ or dynamic), measuring what it gains and loses."""

    Params: ClassVar[type[OnnxQuantParams]] = OnnxQuantParams
    tasks: ClassVar[tuple[str, ...]] = ("classification", "regression")
    input_formats: ClassVar[tuple[str, ...]] = ("onnx",)
    output_format: ClassVar[str] = "onnx"
    streams: ClassVar[bool] = True  # calibrates on, and compares variants over, the sample a streamed Dataset holds
    params: OnnxQuantParams

    def __init__(self, params: OnnxQuantParams | None = None, name: str | None = None) -> None:
        super().__init__(params, name or "onnx-quant")

    @hookimpl
    def aios_validate(self) -> list[tuple[str, str]]:
        """Before a run: the packages quantization imports are installed (found by name, nothing imported)."""
        missing = [module for module in _NEEDS if importlib.util.find_spec(module) is None]
        if not missing:
            return []
        needs = ", ".join(f"{module} ({_NEEDS[module]})" for module in missing)
        return [("plugin", (f"found 'onnx-quant', which needs {needs}, not installed in this Python environment; "
                            f"expected them installed: pip install {' '.join(missing)}"))]

    @hookimpl
    def aios_compress(self, artifact: ModelArtifact, dataset: Dataset, run: RunContext) -> ModelArtifact:
        """Write ``run.artifacts_dir / "model.int8.onnx"`` and report fp32 and int8 size, accuracy and latency."""
        if artifact.format not in self.input_formats:
            raise ValueError(
                f"onnx-quant compresses ONNX models, but artifact {artifact.name!r} ({artifact.path}) has format "
                f"{artifact.format!r}; put an ONNX export before it in the stack (framework export_formats: [onnx]).")
        from aios_onnx_quant import _quantization

        return _quantization.compress(artifact, dataset, run, self.params)

    @classmethod
    def capabilities(cls) -> dict[str, Any]:
        return {**super().capabilities(), "modes": ["dynamic", "static", "auto"], "output_name": "int8"}
