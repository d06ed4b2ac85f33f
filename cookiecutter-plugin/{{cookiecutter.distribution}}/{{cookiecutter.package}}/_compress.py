{%- set kinds = cookiecutter.__kinds.split(',') -%}
"""The ``{{ cookiecutter.plugin_name }}`` compressor: float16 weight storage, checked against the input on the validation split."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from aios_core import Dataset, ModelArtifact, RunContext{% if 'framework' not in kinds %}, atomic_path{% endif %}

if TYPE_CHECKING:
    from {{ cookiecutter.package }} import {{ cookiecutter.__class_prefix }}CompressorParams

{% if 'framework' in kinds -%}
OUTPUT_NAME = "fp16"


def compress(artifact: ModelArtifact, dataset: Dataset, run: RunContext,
             params: {{ cookiecutter.__class_prefix }}CompressorParams, producer: str) -> ModelArtifact:
    """Write ``model.fp16.{{ cookiecutter.__native_format }}`` under ``run.artifacts_dir``: the same model, weights stored as float16."""
    from {{ cookiecutter.package }} import _model

    path = run.artifacts_dir / f"model.{OUTPUT_NAME}.{artifact.format}"
    _model.save(_model.load(Path(artifact.path)), path, dtype="float16")
    output = ModelArtifact(name=OUTPUT_NAME, path=path, format=artifact.format, producer=producer)
    output.metrics = _compare(artifact, output, dataset, run, params)
    return output
{%- else -%}
OUTPUT_NAME = "fp16"


def compress(artifact: ModelArtifact, dataset: Dataset, run: RunContext,
             params: {{ cookiecutter.__class_prefix }}CompressorParams, producer: str) -> ModelArtifact:
    """Write ``model.fp16.onnx`` under ``run.artifacts_dir``: float weights stored as float16, cast back when run."""
    path = run.artifacts_dir / f"model.{OUTPUT_NAME}.onnx"
    converted = float16_weights(Path(artifact.path), path, params.min_elements)
    output = ModelArtifact(name=OUTPUT_NAME, path=path, format="onnx", producer=producer)
    output.metrics = {**_compare(artifact, output, dataset, run, params), "converted_tensors": converted}
    return output


def float16_weights(source: Path, target: Path, min_elements: int) -> int:
    """Copy the ONNX model ``source`` to ``target`` with its float32 initializers stored as float16.

    Each converted initializer gets a ``Cast`` node back to float32 under its old name, so
    the graph's inputs, outputs and arithmetic stay float32. Returns how many were converted.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    graph_inputs = {value.name for value in graph.input}
    kept, casts = [], []
    for initializer in graph.initializer:
        array = numpy_helper.to_array(initializer)
        if (initializer.data_type != TensorProto.FLOAT or initializer.name in graph_inputs
                or array.size < min_elements or not np.all(np.abs(array) <= np.finfo(np.float16).max)):
            kept.append(initializer)
            continue
        half = numpy_helper.from_array(array.astype(np.float16), name=f"{initializer.name}.fp16")
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [initializer.name], to=TensorProto.FLOAT,
                                      name=f"{initializer.name}.cast"))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)  # the casts first, so the graph stays in topological order
    onnx.checker.check_model(model)
    with atomic_path(target) as tmp:
        onnx.save(model, str(tmp))
    return len(casts)
{%- endif %}


def _compare(source: ModelArtifact, output: ModelArtifact, dataset: Dataset, run: RunContext,
             params: {{ cookiecutter.__class_prefix }}CompressorParams) -> dict[str, Any]:
    """Size, validation accuracy and batch-1 latency of input and output; fails if accuracy drops too much.

    The models are run by whichever component of the stack runs their format
    (``run.load_predictor``); without one, only the sizes are reported.
    """
    metrics: dict[str, Any] = {"input_size_bytes": source.size_bytes, "output_size_bytes": output.size_bytes,
                               "size_ratio": output.size_bytes / source.size_bytes}
    measured = {}
    for role, artifact in (("input", source), ("output", output)):
        predict = run.load_predictor(artifact)
        if predict is None:
            run.log.warning("no component of the stack runs %s models; reporting sizes only", artifact.format)
            return metrics
        accuracy = float((predict(dataset.x_val).argmax(axis=1) == dataset.y_val).mean())
        row = np.ascontiguousarray(dataset.x_val[:1])
        started = time.perf_counter()
        for _ in range(20):
            predict(row)
        measured[role] = accuracy
        metrics[f"{role}_accuracy"] = accuracy
        metrics[f"{role}_latency_ms"] = (time.perf_counter() - started) / 20 * 1000
    drop = measured["input"] - measured["output"]
    metrics["accuracy_drop"] = drop
    if drop > params.max_accuracy_drop:
        raise ValueError(f"float16 weights cost {drop * 100:.2f} points of validation accuracy, more than "
                         f"max_accuracy_drop {params.max_accuracy_drop * 100:.2f}; raise it or skip this compressor")
    return metrics
