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

from aios_core import ModelArtifact, atomic_path, metric_drop, one_line, onnx_session, regression_metrics

if TYPE_CHECKING:
    from aios_core import Dataset, RunContext
    from aios_onnx_quant import OnnxQuantParams

OUTPUT_NAME = "model.int8.onnx"
FP32_NAME = "model.fp32.onnx"
"""What ``auto`` writes when no int8 model pays: a copy of its fp32 input, so it is never reported as int8."""
DEFAULT_BATCH_SIZES = (1, 256)
NOISE_BLOCKS = 5
"""Interleaved timings are split into this many consecutive blocks; a latency difference counts only when every
block's median ratio agrees on it and exceeds ``TIE_MARGIN``; anything else is a tie."""
TIE_MARGIN = 0.03
CALIBRATION_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
_CALIBRATION_BATCH = 64
PREDICT_ROWS = 8192
"""Rows per inference when a whole split is predicted: ONNX Runtime's arena keeps what its largest run needed."""
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
    """Quantize ``artifact`` as ``params.mode`` asks, measure every model, keep one, write it atomically.

    ``auto`` may keep fp32 (``choose_auto``); the output is then ``model.fp32.onnx``, named
    ``fp32``, never called int8.
    """
    budget = params.budget(dataset.task)
    if len(dataset.y_val) == 0:
        raise ValueError(f"onnx-quant measures accuracy on the validation split, but data set "
                         f"{dataset.name!r} has no validation rows; give the datastore a val fraction > 0.")
    warnings: list[str] = []
    batch_sizes = _stack_batch_sizes(run)
    with tempfile.TemporaryDirectory(prefix="aios-onnx-quant-") as scratch_dir:
        scratch = Path(scratch_dir)
        prepared, skipped = prepare(artifact.path, scratch / "prepared.onnx", run.log)
        if skipped:
            warnings.append(f"quantization pre-processing skipped ({skipped}); the model was quantized as is")
        paths = {"fp32": artifact.path}
        unquantized: list[str] = []
        for mode in variants_for(params.mode):
            paths[mode] = scratch / f"{mode}.onnx"
            run.log.info("onnx-quant: building the %s int8 model", mode)
            if mode == "static":
                quantize_static_model(prepared, paths[mode], _calibration_rows(dataset, params, run.seed),
                                      method=params.calibration_method, per_channel=params.per_channel, log=run.log)
            else:
                quantize_dynamic_model(prepared, paths[mode], per_channel=params.per_channel, log=run.log)
            if not quantized_weights(paths[mode]):
                unquantized.append(mode)
                del paths[mode]
        if unquantized and params.mode != "auto":
            raise ValueError(f"onnx-quant: nothing was quantized: the {params.mode} quantizer left every operator "
                             f"of {artifact.path} in float ({', '.join(operators(artifact.path))}), so there is no "
                             "int8 model; drop onnx-quant from the stack, or use mode: auto (keeps fp32)")
        variants = measure(paths, dataset.x_val, dataset.y_val, threads=run.threads, runs=params.latency_runs,
                           batch_sizes=batch_sizes)
        for name, figures in variants.items():
            run.log.info("onnx-quant: %s size=%d B %s=%.4f latency_ms=%s", name, figures["size_bytes"],
                         _metric(figures), figures[_metric(figures)], figures["latency_ms"])
        if params.mode == "auto":
            chosen, reason = choose_auto(variants, budget, params.min_size_reduction, unquantized)
            run.log.info("onnx-quant: auto keeps %s: %s", chosen, reason)
        else:
            chosen, missed = choose_variant(variants, budget)
            reason = f"mode: {params.mode}"
            if missed:
                warnings.append(missed)
        if chosen not in BATCH_INDEPENDENT and chosen != "fp32":
            warnings.append(f"{chosen} int8 answers depend on the batch (activation ranges are computed per call): "
                            "a row alone and the same row in a batch can get different probabilities or labels; "
                            "mode: static (or auto) answers each row the same in any batch")
        for warning in warnings:
            run.log.warning("onnx-quant: %s", warning)
        target = run.artifacts_dir / (FP32_NAME if chosen == "fp32" else OUTPUT_NAME)
        with atomic_path(target) as tmp:
            shutil.copyfile(paths[chosen], tmp)
            onnx.checker.check_model(str(tmp))
    return ModelArtifact(
        name="fp32" if chosen == "fp32" else "int8", path=target, format="onnx", producer="onnx-quant",
        metrics={
            "mode": params.mode,
            "chosen": chosen,
            "reason": reason,
            "batch_independent": chosen in BATCH_INDEPENDENT or chosen == "fp32",
            "pre_processing": "skipped" if skipped else "applied",
            "variants": variants,
            "size_ratio": variants[chosen]["size_bytes"] / variants["fp32"]["size_bytes"],
            "warnings": warnings,
        },
    )


def _stack_batch_sizes(run: RunContext) -> list[int]:
    """The batch sizes the stack's evaluation measures (1 and 256 by default): those ``auto`` must be fast at."""
    evaluate = (run.stack or {}).get("evaluate") or {}
    return sorted({int(size) for size in evaluate.get("batch_sizes") or DEFAULT_BATCH_SIZES})


def quantized_weights(path: Path) -> int:
    """How many 8-bit initializers (quantized weights) the model holds; 0 means nothing was quantized."""
    proto = onnx.load(str(path), load_external_data=False)
    eight_bit = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    return sum(1 for initializer in proto.graph.initializer if initializer.data_type in eight_bit)


def operators(path: Path) -> list[str]:
    """The distinct operator types of a model, in order of first use."""
    proto = onnx.load(str(path), load_external_data=False)
    return list(dict.fromkeys(node.op_type for node in proto.graph.node))


def variants_for(mode: str) -> tuple[str, ...]:
    """The int8 variants a mode builds: ``auto`` the batch-independent ones, another mode itself."""
    return BATCH_INDEPENDENT if mode == "auto" else (mode,)


def _calibration_rows(dataset: Dataset, params: OnnxQuantParams, seed: int) -> np.ndarray:
    """``calibration_samples`` training rows drawn with ``seed``, so a split sorted by class still calibrates on all."""
    return dataset.sample("train", params.calibration_samples, seed)  # gathers these rows alone


def _metric(figures: dict[str, Any]) -> str:
    """The validation figure a variant is judged by: ``val_accuracy``, or ``val_rmse`` for a regression model."""
    return "val_rmse" if "val_rmse" in figures else "val_accuracy"


def _budget_name(figures: dict[str, Any]) -> str:
    return "max_metric_drop" if "val_rmse" in figures else "max_accuracy_drop"


def choose_variant(variants: dict[str, dict[str, Any]], max_accuracy_drop: float) -> tuple[str, str | None]:
    """The fastest int8 variant within the budget of fp32, else the most accurate and why it missed.

    The budget is an accuracy drop for classification, a relative RMSE increase for regression
    (``aios_core.metric_drop``). Returns the chosen name and ``None``, or, when no variant
    qualifies, the most accurate one and a warning saying so (the output is always int8).
    """
    fp32 = variants["fp32"]
    candidates = {name: figures for name, figures in variants.items() if name != "fp32"}
    # A tolerance of a fraction of one row, so a drop of exactly the limit is not lost to float rounding.
    qualified = [name for name, figures in candidates.items()
                 if metric_drop(figures, fp32, "val_") <= max_accuracy_drop + 1e-9]
    if qualified:
        return min(qualified, key=lambda name: candidates[name]["latency_ms_b1"]), None
    chosen = min(candidates, key=lambda name: (metric_drop(candidates[name], fp32, "val_"),
                                               candidates[name]["latency_ms_b1"]))
    key, budget = _metric(fp32), _budget_name(fp32)
    found = ", ".join(f"{name} {figures[key]:.4f}" for name, figures in candidates.items())
    return chosen, (f"no int8 model stays within {budget}={max_accuracy_drop} of fp32 validation "
                    f"{key[4:]} {fp32[key]:.4f} ({found}); kept the most accurate, {chosen}. Raise {budget}, try "
                    "calibration_method: entropy or per_channel: true, or drop the compressor")


def choose_auto(variants: dict[str, dict[str, Any]], max_accuracy_drop: float, min_size_reduction: float,
                unquantized: list[str] | tuple[str, ...] = ()) -> tuple[str, str]:
    """``auto``: an int8 variant that pays, else fp32; returns the choice and why, in a sentence.

    An int8 variant qualifies when it stays within ``max_accuracy_drop`` of fp32. It pays
    when it is faster at one of the stack's batch sizes, or at least ``min_size_reduction``
    smaller (0.5: half the size); latency differences within the measured noise are ties
    (``speed_verdict``), which size then decides. Among paying variants the fastest at
    batch 1 wins; the reason names every batch size's speed-up, slower ones included.
    """
    fp32, fp32_size = variants["fp32"], variants["fp32"]["size_bytes"]
    paying: dict[str, str] = {}
    reasons = [f"{name}: the quantizer left every operator in float (nothing to quantize)" for name in unquantized]
    for name, figures in variants.items():
        if name == "fp32":
            continue
        size_ratio = figures["size_bytes"] / fp32_size
        verdicts = figures.get("speed", {})
        faster = [b for b, v in verdicts.items() if v["verdict"] == "faster"]
        slower = [b for b, v in verdicts.items() if v["verdict"] == "slower"]
        speeds = ", ".join(f"batch {b} x{1 / v['ratio']:.2f} ({v['verdict']})" for b, v in verdicts.items())
        drop = metric_drop(figures, fp32, "val_")
        if drop > max_accuracy_drop + 1e-9:
            lost = (f"raises validation RMSE by {drop:.2%}" if "val_rmse" in figures
                    else f"loses {drop:.4f} validation accuracy")
            reasons.append(f"{name} {lost} (> {_budget_name(fp32)} {max_accuracy_drop})")
        elif faster:
            paying[name] = (f"{name} is faster than fp32 at batch {', '.join(faster)} (speed-up {speeds}), "
                            f"{size_ratio:.2f} of its size")
        elif size_ratio <= 1 - min_size_reduction + 1e-9:
            paying[name] = (f"{name} is not faster than fp32 beyond the measured noise (speed-up {speeds}) but "
                            f"{size_ratio:.2f} of its size (min_size_reduction {min_size_reduction})")
        else:
            reasons.append(f"{name} is {'slower' if slower else 'not faster'} than fp32 (speed-up {speeds}) and "
                           f"only {1 - size_ratio:.0%} smaller (< min_size_reduction {min_size_reduction:.0%})")
    if paying:
        chosen = min(paying, key=lambda name: variants[name]["latency_ms_b1"])
        return chosen, paying[chosen]
    return "fp32", "kept fp32, no int8 model pays: " + "; ".join(reasons or ["no int8 variant was built"])


def speed_verdict(ratios: list[float]) -> dict[str, Any]:
    """Per-round latency ratios (variant / fp32, interleaved) -> the median ratio, block medians and a verdict.

    ``faster`` or ``slower`` only when the median of every one of ``NOISE_BLOCKS`` consecutive
    blocks of rounds lies beyond ``TIE_MARGIN`` on the same side of 1; otherwise ``tie``.
    """
    blocks = [float(np.median(block)) for block in np.array_split(np.asarray(ratios), NOISE_BLOCKS) if len(block)]
    verdict = ("faster" if max(blocks) < 1 - TIE_MARGIN else "slower" if min(blocks) > 1 + TIE_MARGIN else "tie")
    return {"ratio": round(float(np.median(ratios)), 4), "blocks": [round(b, 4) for b in blocks], "verdict": verdict}


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
def measure(paths: dict[str, Path], x_val: np.ndarray, y_val: np.ndarray, *, threads: int, runs: int,
            batch_sizes: tuple[int, ...] | list[int] = (1,)) -> dict[str, dict[str, Any]]:
    """Size, validation accuracy and median latency (ms) per batch size of each model, in ``aios_core.onnx_session``s.

    Every int8 variant also gets ``speed``: per batch size, its latency ratio to fp32 and
    whether it is faster, slower or tied within the noise (``speed_verdict``).
    """
    sessions = {name: onnx_session(path, threads) for name, path in paths.items()}
    x_val = np.ascontiguousarray(x_val, dtype=np.float32)
    latencies = {size: _latencies(sessions, x_val, size, runs if size == 1 else max(20, runs // 10))
                 for size in batch_sizes}
    figures = {}
    for name, path in paths.items():
        medians = {str(size): round(float(np.median(latencies[size][name])) * 1000.0, 4) for size in batch_sizes}
        figures[name] = {
            "size_bytes": path.stat().st_size,
            **_quality(_probabilities(sessions[name], x_val), y_val),
            "latency_ms_b1": medians.get("1", medians[str(min(batch_sizes))]),
            "latency_ms": medians,
        }
        if name != "fp32" and "fp32" in paths:
            figures[name]["speed"] = {
                str(size): speed_verdict([t / f for t, f in zip(latencies[size][name], latencies[size]["fp32"],
                                                                 strict=True)])
                for size in batch_sizes}
    return figures


def _latencies(sessions: dict[str, Any], rows: np.ndarray, batch: int, runs: int) -> dict[str, list[float]]:
    """Time ``runs`` inferences of ``batch`` rows per session, interleaved (alternating order) so load spikes hit
    every model alike; round ``i`` of every model is comparable."""
    # feed i: ``batch`` rows from row i on, wrapping round (what np.resize of the rows rolled by i gives, without
    # copying the whole split each time)
    feeds = [rows.take((np.arange(batch) + index) % len(rows), axis=0) for index in range(min(runs, 16))]
    names = {name: sess.get_inputs()[0].name for name, sess in sessions.items()}
    for name, sess in sessions.items():
        for feed in feeds[:5]:
            sess.run(None, {names[name]: feed})
    timings: dict[str, list[float]] = {name: [] for name in sessions}
    order = list(sessions)
    for index in range(runs):
        feed = feeds[index % len(feeds)]
        for name in (order if index % 2 == 0 else order[::-1]):
            start = time.perf_counter()
            sessions[name].run(None, {names[name]: feed})
            timings[name].append(time.perf_counter() - start)
    return timings


def _quality(outputs: np.ndarray, y_val: np.ndarray) -> dict[str, float]:
    """``val_accuracy`` of class probabilities, or ``val_rmse`` of regression predictions (float labels), in
    the units the model predicts: a relative increase is the same in any units."""
    if y_val.dtype.kind == "f":
        return {"val_rmse": regression_metrics(y_val.reshape(len(y_val), -1), outputs)["rmse"]}
    return {"val_accuracy": float(np.mean(outputs.argmax(axis=1) == y_val))}


def _probabilities(sess: Any, rows: np.ndarray) -> np.ndarray:
    """The model's first output for ``rows``, run ``PREDICT_ROWS`` at a time."""
    output, name = sess.get_outputs()[0].name, sess.get_inputs()[0].name
    return np.concatenate([sess.run([output], {name: rows[start:start + PREDICT_ROWS]})[0]
                           for start in range(0, max(len(rows), 1), PREDICT_ROWS)])
