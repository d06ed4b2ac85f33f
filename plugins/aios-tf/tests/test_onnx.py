"""ONNX export: the torch framework's contract (input, output, dynamic batch), parity with Keras, the kernel's
predictor runs it, onnx-quant takes it unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aios_core import ModelArtifact, RunContext
from aios_core.testing import plugin_manager


@pytest.fixture(scope="module")
def exported(digits, tmp_path_factory, make_keras_stack) -> tuple[object, ModelArtifact, object]:
    run_dir = tmp_path_factory.mktemp("onnx")
    stack = make_keras_stack(run_dir, {"architecture": "cnn", "conv_channels": [8], "hidden_units": [32], "dropout": 0.1},
                       {"epochs": 3, "learning_rate": 0.01, "progress_updates": 0}, 0, False, ())
    model = stack.build_and_train(digits).model
    artifact = stack.framework.aios_export_model(model=model, fmt="onnx", path=run_dir / "model.onnx", dataset=digits)
    return stack, artifact, model


def test_export_passes_the_onnx_checker(exported) -> None:
    import onnx

    onnx.checker.check_model(str(exported[1].path), full_check=True)


def test_export_takes_input_and_returns_probabilities_with_a_dynamic_batch(exported) -> None:
    import onnx

    graph = onnx.load(str(exported[1].path)).graph
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["probabilities"]
    input_type = graph.input[0].type.tensor_type
    assert input_type.elem_type == onnx.TensorProto.FLOAT
    batch, features = input_type.shape.dim
    assert not batch.HasField("dim_value") and features.dim_value == 64
    assert graph.output[0].type.tensor_type.shape.dim[1].dim_value == 10


@pytest.mark.parametrize("rows", [1, 7, 270])
def test_onnx_runtime_matches_keras(exported, digits, rows: int) -> None:
    stack, artifact, model = exported
    batch = np.resize(digits.x_test, (rows, digits.num_features)).astype(np.float32)
    predict = stack.run.load_predictor(artifact)
    np.testing.assert_allclose(predict(batch), model(batch, training=False).numpy(), atol=1e-4)
    assert artifact.metrics["max_abs_diff"] <= 1e-4 and artifact.metrics["exporter"] == "tf2onnx"


def test_the_kernel_runs_the_onnx_file_and_the_framework_only_its_native_format(exported, digits) -> None:
    stack, artifact, model = exported
    assert stack.framework.aios_load_predictor(artifact=artifact, threads=1) is None
    predict = plugin_manager().hook.aios_load_predictor(artifact=artifact, threads=1)  # the kernel's built-in alone
    np.testing.assert_allclose(predict(digits.x_test), model(digits.x_test, training=False).numpy(), atol=1e-4)


def test_an_unknown_format_is_a_clear_error(exported, digits, tmp_path: Path) -> None:
    stack, _, model = exported
    with pytest.raises(ValueError, match=r"exports \['onnx'\], not 'tflite'"):
        stack.framework.aios_export_model(model=model, fmt="tflite", path=tmp_path / "m", dataset=digits)


def test_onnx_quant_compresses_the_keras_onnx_unchanged(exported, digits, tmp_path: Path) -> None:
    onnx_quant = pytest.importorskip("aios_onnx_quant", reason="needs aios-onnx-quant: pip install 'aios-tf[test]'")

    _, artifact, _ = exported
    compressor = onnx_quant.OnnxQuantCompressor(onnx_quant.OnnxQuantCompressor.Params(mode="dynamic"))
    pm = plugin_manager(compressor)
    run = RunContext(name="t", seed=0, threads=1, dir=tmp_path, stack={}, hook=pm.hook)
    output = pm.hook.aios_compress(artifact=artifact, dataset=digits, run=run)
    assert output.format == "onnx" and output.path.stat().st_size < artifact.path.stat().st_size
    accuracy = {name: (run.load_predictor(a)(digits.x_test).argmax(axis=1) == digits.y_test).mean()
                for name, a in (("fp32", artifact), ("int8", output))}
    assert accuracy["fp32"] >= 0.9 and accuracy["int8"] >= accuracy["fp32"] - 0.03
