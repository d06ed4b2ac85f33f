{%- set P = cookiecutter.__class_prefix -%}
{%- set kinds = cookiecutter.__kinds.split(',') -%}
{%- macro import_line(module, names) -%}
{%- set line = 'from ' ~ module ~ ' import ' ~ names | join(', ') -%}
{%- if line | length <= 120 %}{{ line }}{% else %}from {{ module }} import (
{%- for name in names %}
    {{ name }},
{%- endfor %}
){% endif -%}
{%- endmacro -%}
"""The {{ cookiecutter.plugin_name }} compressor: float16 weights, a smaller file, nearly the same answers."""

from __future__ import annotations

import numpy as np
import pytest
{%- if 'framework' in kinds %}
from aios_core import ModelArtifact

{{ import_line(cookiecutter.package, ['NATIVE_FORMAT', P ~ 'Compressor', P ~ 'CompressorParams', P ~ 'Framework', P ~ 'Trainer', P ~ 'TrainerParams']) }}


def trained_artifact(run, dataset, tmp_path) -> ModelArtifact:
    framework, trainer = {{ P }}Framework(), {{ P }}Trainer({{ P }}TrainerParams(epochs=5))
    model = framework.aios_build_model(dataset=dataset, run=run, overrides={})
    model = trainer.aios_train(model=model, dataset=dataset, run=run, overrides={}).model
    return framework.aios_save_model(model=model, path=tmp_path / f"model.{NATIVE_FORMAT}")


def test_the_output_is_smaller_and_answers_nearly_the_same(run_with, toy_dataset, tmp_path):
    compressor = {{ P }}Compressor()
    run = run_with({{ P }}Framework(), compressor)
    source = trained_artifact(run, toy_dataset, tmp_path)
    output = compressor.aios_compress(artifact=source, dataset=toy_dataset, run=run)
    assert output.format == NATIVE_FORMAT and output.path.parent == run.artifacts_dir
    assert output.size_bytes < source.size_bytes
    expected, actual = run.load_predictor(source), run.load_predictor(output)
    np.testing.assert_allclose(actual(toy_dataset.x_test), expected(toy_dataset.x_test), atol=1e-2)
    assert output.metrics["accuracy_drop"] <= 0.02


def test_a_model_of_another_format_is_refused(run_with, toy_dataset, tmp_path):
    compressor = {{ P }}Compressor({{ P }}CompressorParams(max_accuracy_drop=0.1))
    other = ModelArtifact(name="onnx", path=tmp_path / "model.onnx", format="onnx", producer="x")
    with pytest.raises(ValueError, match="takes"):
        compressor.aios_compress(artifact=other, dataset=toy_dataset, run=run_with(compressor))
{%- else %}
from aios_core import ModelArtifact, hookimpl

from {{ cookiecutter.package }} import {{ P }}Compressor


class ReferenceOnnxRunner:
    """Runs ONNX models with onnx's pure-Python reference evaluator (stands in for ONNX Runtime here)."""

    @hookimpl
    def aios_load_predictor(self, artifact: ModelArtifact, threads: int):
        if artifact.format != "onnx":
            return None
        from onnx.reference import ReferenceEvaluator

        session = ReferenceEvaluator(str(artifact.path))
        return lambda rows: session.run(None, {"input": np.asarray(rows, dtype=np.float32)})[0]


def onnx_classifier(dataset, path) -> ModelArtifact:
    """A two-layer ONNX classifier: random ReLU features, then a least-squares fit of the one-hot labels."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = rng.normal(0.0, 0.5, size=(dataset.num_features, 64)).astype(np.float32)
    hidden = np.maximum(dataset.x_train @ w1, 0.0)
    onehot = np.eye(dataset.num_classes, dtype=np.float32)[dataset.y_train]
    w2 = np.linalg.lstsq(hidden, onehot * 10.0, rcond=None)[0].astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
        "classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", dataset.num_features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", dataset.num_classes])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return ModelArtifact(name="onnx", path=path, format="onnx", producer="test")


def test_the_output_is_smaller_and_answers_nearly_the_same(run_with, toy_dataset, tmp_path):
    compressor = {{ P }}Compressor()
    run = run_with(compressor, ReferenceOnnxRunner())
    source = onnx_classifier(toy_dataset, tmp_path / "model.onnx")
    output = compressor.aios_compress(artifact=source, dataset=toy_dataset, run=run)
    assert output.format == "onnx" and output.path.parent == run.artifacts_dir
    assert output.size_bytes < source.size_bytes and output.metrics["converted_tensors"] == 2
    expected, actual = run.load_predictor(source), run.load_predictor(output)
    np.testing.assert_allclose(actual(toy_dataset.x_test), expected(toy_dataset.x_test), atol=1e-2)
    assert output.metrics["accuracy_drop"] <= 0.02


def test_a_model_of_another_format_is_refused(run_with, toy_dataset, tmp_path):
    compressor = {{ P }}Compressor()
    other = ModelArtifact(name="native", path=tmp_path / "model.pt", format="torch", producer="x")
    with pytest.raises(ValueError, match="takes"):
        compressor.aios_compress(artifact=other, dataset=toy_dataset, run=run_with(compressor))
{%- endif %}
