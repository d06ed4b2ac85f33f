"""The heavy half of ``onnx-quant``: quantize with ONNX Runtime, measure, choose, write.

Imported only when a hook runs, so ``import aios_onnx_quant`` stays free of onnx,
onnxruntime and numpy. The models are measured in ``aios_core.onnx_session``, the
session evaluation and the server run them in, so the figures match theirs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from aios_core import ModelArtifact, atomic_path, one_line, onnx_session

if TYPE_CHECKING:
    from aios_core import Dataset, RunContext
    from aios_onnx_quant import OnnxQuantParams

OUTPUT_NAME = "model.int8.onnx"
CALIBRATION_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
_CALIBRATION_BATCH = 64
# Softmax-like heads stay float: quantized to uint8 their probabilities come out in steps
# of 1/256 and no longer sum to 1, and keeping them float cost nothing measurable.
_FLOAT_HEADS = {"Softmax", "LogSoftmax", "Sigmoid"}
BATCH_INDEPENDENT = ("static",)
"""The variants ``auto`` chooses from: their answer for a row does not depend on the rows it is batched with.

Dynamic int8 quantizes activations with ranges computed per call over the whole batch,
so a row alone and the same row in a batch can get different probabilities, even a
different label; a server that batches concurrent requests would answer a client
according to what others sent at the same moment. ``mode: dynamic`` builds it when asked.
"""


def compress(artifact: ModelArtifact, dataset: Dataset, run: RunContext, params: OnnxQuantParams) -> ModelArtifact:
    """Quantize ``artifact`` as ``params.mode`` asks, measure every model, keep one, write it atomically."""
    if len(dataset.y_val) == 0:
        raise ValueError(f"onnx-quant measures accuracy on the validation split, but data set "
                         f"{dataset.name!r} has no validation rows; give the datastore a val fraction > 0.")
    warnings: list[str] = []
    target = run.artifacts_dir / OUTPUT_NAME
    with tempfile.TemporaryDirectory(prefix="aios-onnx-quant-") as scratch_dir:
        scratch = Path(scratch_dir)
        prepared, skipped = prepare(artifact.path, scratch / "prepared.onnx", run.log)
        if skipped:
            warnings.append(f"quantization pre-processing skipped ({skipped}); the model was quantized as is")
        paths = {"fp32": artifact.path}
        for mode in variants_for(params.mode):
            paths[mode] = scratch / f"{mode}.onnx"
            run.log.info("onnx-quant: building the %s int8 model", mode)
            if mode == "static":
                quantize_static_model(prepared, paths[mode], _calibration_rows(dataset, params, run.seed),
                                      method=params.calibration_method, per_channel=params.per_channel, log=run.log)
            else:
                quantize_dynamic_model(prepared, paths[mode], per_channel=params.per_channel, log=run.log)
        variants = measure(paths, dataset.x_val, dataset.y_val, threads=run.threads, runs=params.latency_runs)
        for name, figures in variants.items():
            run.log.info("onnx-quant: %s size=%d B val_accuracy=%.4f latency_b1=%.4f ms",
                         name, figures["size_bytes"], figures["val_accuracy"], figures["latency_ms_b1"])
        chosen, missed = choose_variant(variants, params.max_accuracy_drop)
        if missed:
            warnings.append(missed)
        if chosen not in BATCH_INDEPENDENT:
            warnings.append(f"{chosen} int8 answers depend on the batch (activation ranges are computed per call): "
                            "a row alone and the same row in a batch can get different probabilities or labels; "
                            "mode: static (or auto) answers each row the same in any batch")
        for warning in warnings:
            run.log.warning("onnx-quant: %s", warning)
        with atomic_path(target) as tmp:
            shutil.copyfile(paths[chosen], tmp)
            onnx.checker.check_model(str(tmp))
    return ModelArtifact(
        name="int8", path=target, format="onnx", producer="onnx-quant",
        metrics={
            "mode": params.mode,
            "chosen": chosen,
            "batch_independent": chosen in BATCH_INDEPENDENT,
            "pre_processing": "skipped" if skipped else "applied",
            "variants": variants,
            "size_ratio": variants[chosen]["size_bytes"] / variants["fp32"]["size_bytes"],
            "warnings": warnings,
        },
    )


def variants_for(mode: str) -> tuple[str, ...]:
    """The int8 variants a mode builds: ``auto`` the batch-independent ones, another mode itself."""
    return BATCH_INDEPENDENT if mode == "auto" else (mode,)


def _calibration_rows(dataset: Dataset, params: OnnxQuantParams, seed: int) -> np.ndarray:
    """``calibration_samples`` training rows drawn with ``seed``, so a split sorted by class still calibrates on all."""
    count = min(params.calibration_samples, len(dataset.x_train))
    rows = np.sort(np.random.default_rng(seed).choice(len(dataset.x_train), size=count, replace=False))
    return dataset.x_train[rows]


def choose_variant(variants: dict[str, dict[str, Any]], max_accuracy_drop: float) -> tuple[str, str | None]:
    """The fastest int8 variant within ``max_accuracy_drop`` of fp32, else the most accurate and why it missed.

    Returns the chosen name and ``None``, or, when no variant qualifies, the most accurate
    one and a warning saying so (the output is always int8).
    """
    baseline = variants["fp32"]["val_accuracy"]
    candidates = {name: figures for name, figures in variants.items() if name != "fp32"}
    # A tolerance of a fraction of one row, so a drop of exactly the limit is not lost to float rounding.
    qualified = [name for name, figures in candidates.items()
                 if baseline - figures["val_accuracy"] <= max_accuracy_drop + 1e-9]
    if qualified:
        return min(qualified, key=lambda name: candidates[name]["latency_ms_b1"]), None
    chosen = max(candidates, key=lambda name: (candidates[name]["val_accuracy"], -candidates[name]["latency_ms_b1"]))
    found = ", ".join(f"{name} {figures['val_accuracy']:.4f}" for name, figures in candidates.items())
    return chosen, (f"no int8 model stays within max_accuracy_drop={max_accuracy_drop} of fp32 validation accuracy "
                    f"{baseline:.4f} ({found}); kept the most accurate, {chosen}. Raise max_accuracy_drop, try "
                    "calibration_method: entropy or per_channel: true, or drop the compressor")


# ---------------------------------------------------------------- quantizing
def quantize_static_model(model: Path, output: Path, calibration_rows: np.ndarray, *, method: str,
                          per_channel: bool, log: logging.Logger) -> None:
    """Static int8 in QDQ format: int8 weights, uint8 activations with ranges calibrated on ``calibration_rows``.

    uint8 activations (U8S8) is ONNX Runtime's x86 default; int8 activations measured the
    same accuracy and latency on the digits CNN, so the default stays.
    """
    proto, input_name, fixed_batch = _load_for_quantization(model)
    rows = np.ascontiguousarray(calibration_rows, dtype=np.float32)
    if fixed_batch:
        if len(rows) < fixed_batch:
            raise ValueError(f"{model} takes batches of exactly {fixed_batch} rows; calibration has only "
                             f"{len(rows)}: raise calibration_samples to at least {fixed_batch}.")
        batch, rows = fixed_batch, rows[: len(rows) // fixed_batch * fixed_batch]
    else:
        # The histogram calibrators (entropy, percentile) fail on batches of unequal size
        # (numpy "inhomogeneous shape"), so split the rows into equal batches.
        batch = max(size for size in range(1, _CALIBRATION_BATCH + 1) if len(rows) % size == 0)
    reader = _RowReader(input_name, rows, batch)
    with _quiet(log):
        quantize_static(proto, output, reader, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CALIBRATION_METHODS[method], nodes_to_exclude=_float_heads(proto))


def quantize_dynamic_model(model: Path, output: Path, *, per_channel: bool, log: logging.Logger) -> None:
    """Dynamic int8: int8 weights, activations quantized at run time (int8 weights; uint8 was 2x slower here)."""
    proto, _, _ = _load_for_quantization(model)
    with _quiet(log):
        quantize_dynamic(proto, output, per_channel=per_channel, weight_type=QuantType.QInt8,
                         nodes_to_exclude=_float_heads(proto))


class _RowReader(CalibrationDataReader):
    """Feeds calibration rows to the quantizer, ``batch`` rows at a time."""

    def __init__(self, input_name: str, rows: np.ndarray, batch: int) -> None:
        self._batches = iter([{input_name: rows[start:start + batch]} for start in range(0, len(rows), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def prepare(model: Path, output: Path, log: logging.Logger) -> tuple[Path, str | None]:
    """ONNX Runtime's recommended pre-processing (shape inference, graph cleanup) into ``output``.

    Pre-processing is an optimization, not a requirement: if it fails, the model is
    quantized as is, and the reason is returned (the caller reports it in the artifact's
    metrics, not only in run.log). Returns the model to quantize and the reason, or None.
    """
    try:
        with _quiet(log):
            quant_pre_process(str(model), str(output))
    except Exception as error:
        log.debug("onnx-quant: quantization pre-processing of %s failed", model, exc_info=True)
        return model, one_line(error)
    return output, None


def _load_for_quantization(model: Path) -> tuple[onnx.ModelProto, str, int]:
    """The model with every node named (so nodes can be excluded), its input name and fixed batch size (0: any)."""
    proto = onnx.load(str(model))
    for index, node in enumerate(proto.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{index}"
    initializers = {initializer.name for initializer in proto.graph.initializer}
    inputs = [value for value in proto.graph.input if value.name not in initializers]
    if len(inputs) != 1 or inputs[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        found = [(value.name, onnx.TensorProto.DataType.Name(value.type.tensor_type.elem_type)) for value in inputs]
        raise ValueError(f"onnx-quant expects a model with one float32 input (n, features); {model} has {found}")
    dims = inputs[0].type.tensor_type.shape.dim
    fixed_batch = dims[0].dim_value if dims and dims[0].HasField("dim_value") else 0
    return proto, inputs[0].name, fixed_batch


def _float_heads(proto: onnx.ModelProto) -> list[str]:
    outputs = {value.name for value in proto.graph.output}
    return [node.name for node in proto.graph.node
            if node.op_type in _FLOAT_HEADS and any(name in outputs for name in node.output)]


@contextlib.contextmanager
def _quiet(log: logging.Logger) -> Iterator[None]:
    """Send what the quantizer prints (histogram progress) to the run log at debug level."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        yield
    if printed.getvalue().strip():
        log.debug("onnx-quant: %s", printed.getvalue().strip())


# ---------------------------------------------------------------- measuring
def measure(paths: dict[str, Path], x_val: np.ndarray, y_val: np.ndarray, *, threads: int,
            runs: int) -> dict[str, dict[str, Any]]:
    """Size, validation accuracy and median batch-1 latency (ms) of each model, in ``aios_core.onnx_session``s."""
    sessions = {name: onnx_session(path, threads) for name, path in paths.items()}
    x_val = np.ascontiguousarray(x_val, dtype=np.float32)
    latencies = _batch1_latencies(sessions, x_val, runs)
    return {
        name: {
            "size_bytes": paths[name].stat().st_size,
            "val_accuracy": float(np.mean(_probabilities(sessions[name], x_val).argmax(axis=1) == y_val)),
            "latency_ms_b1": round(float(np.median(latencies[name])) * 1000.0, 4),
        }
        for name in paths
    }


def _batch1_latencies(sessions: dict[str, Any], rows: np.ndarray, runs: int) -> dict[str, list[float]]:
    """Time ``runs`` single-row inferences per session, interleaved so load spikes hit every model alike."""
    feeds = [rows[index % len(rows)][None] for index in range(runs)]
    names = {name: sess.get_inputs()[0].name for name, sess in sessions.items()}
    for name, sess in sessions.items():
        for feed in feeds[:10]:
            sess.run(None, {names[name]: feed})
    timings: dict[str, list[float]] = {name: [] for name in sessions}
    for feed in feeds:
        for name, sess in sessions.items():
            start = time.perf_counter()
            sess.run(None, {names[name]: feed})
            timings[name].append(time.perf_counter() - start)
    return timings


def _probabilities(sess: Any, rows: np.ndarray) -> np.ndarray:
    return sess.run([sess.get_outputs()[0].name], {sess.get_inputs()[0].name: rows})[0]
