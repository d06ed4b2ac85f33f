"""The keras framework's models: the torch framework's architectures, factories, .keras files with safe mode, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from aios_core import Dataset, ModelArtifact, ModelParams


def _layer_types(model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def test_mlp_is_dense_layers_then_a_softmax_over_the_classes(keras_stack, digits) -> None:
    model = keras_stack(model={"hidden_units": [128, 64], "dropout": 0.2}).build(digits)
    assert _layer_types(model) == ["InputLayer", "Dense", "Dense", "Dropout", "Dense"]
    assert [layer.units for layer in model.layers if type(layer).__name__ == "Dense"] == [128, 64, 10]
    assert model.layers[-1].activation.__name__ == "softmax"
    assert model.input_shape == (None, 64) and model.output_shape == (None, 10)


def test_the_tutorial_model_has_the_tutorials_parameter_count(keras_stack) -> None:
    """Flatten -> Dense(128, relu) -> Dense(10, softmax) on 28x28 images: 101,770 parameters."""
    x = np.zeros((20, 784), dtype=np.float32)
    y = np.arange(20, dtype=np.int64) % 10
    mnist = Dataset(name="mnist", x_train=x, y_train=y, x_val=x, y_val=y, x_test=x, y_test=y,
                    class_names=[str(i) for i in range(10)], content_hash="", image_shape=(1, 28, 28))
    model = keras_stack(model={"hidden_units": [128]}).build(mnist)
    assert model.count_params() == 101_770


def test_cnn_mirrors_the_torch_cnn(keras_stack, digits) -> None:
    model = keras_stack(model={"architecture": "cnn", "conv_channels": [8, 16], "kernel_size": 5,
                               "hidden_units": [32], "activation": "tanh"}).build(digits)
    assert _layer_types(model) == ["InputLayer", "Reshape", "Permute", "Conv2D", "Conv2D", "MaxPooling2D",
                                   "Flatten", "Dense", "Dense"]
    convolutions = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert [c.filters for c in convolutions] == [8, 16] and convolutions[0].kernel_size == (5, 5)
    assert convolutions[0].activation.__name__ == "tanh"
    assert model.get_layer("flatten").output.shape[-1] == 16 * 4 * 4


def test_the_same_seed_builds_the_same_weights(keras_stack, digits) -> None:
    first = keras_stack(seed=3).build(digits).get_weights()
    second = keras_stack(seed=3).build(digits).get_weights()
    other = keras_stack(seed=4).build(digits).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not np.array_equal(first[0], other[0])


def test_overrides_take_precedence_over_params(keras_stack, digits) -> None:
    model = keras_stack(model={"hidden_units": [128]}).build(digits, hidden_units=[7])
    assert model.get_layer("hidden_1").units == 7


def test_a_factory_builds_the_model_with_its_options(keras_stack, digits, factories_importable) -> None:
    model = keras_stack(model={"architecture": f"{factories_importable}:small", "options": {"units": 5}}).build(digits)
    assert model.layers[0].units == 5


@pytest.mark.parametrize(("factory", "message"), [
    ("logits", "does not output class probabilities.*softmax"),
    ("wrong_classes", r"outputs shape \(3,\).*expected \(10,\)"),
    ("not_a_model", "returned dict, expected a keras.Model"),
    ("missing", "does not load"),
])
def test_a_bad_factory_is_a_clear_error(keras_stack, digits, factories_importable, factory, message) -> None:
    with pytest.raises((ValueError, TypeError), match=f"model.architecture: .*{message}"):
        keras_stack(model={"architecture": f"{factories_importable}:{factory}"}).build(digits)


def test_cnn_without_an_image_shape_is_a_clear_error(keras_stack, digits) -> None:
    flat = Dataset(name="flat", x_train=digits.x_train, y_train=digits.y_train, x_val=digits.x_val,
                   y_val=digits.y_val, x_test=digits.x_test, y_test=digits.y_test,
                   class_names=digits.class_names, content_hash="")
    with pytest.raises(ValueError, match="'cnn' needs image data.*use architecture 'mlp'"):
        keras_stack(model={"architecture": "cnn"}).build(flat)


@pytest.mark.parametrize(("params", "field"), [
    ({"architecture": "transformer"}, "architecture"), ({"hidden_units": []}, "hidden_units"),
    ({"hidden_units": [0]}, "hidden_units"), ({"dropout": 1.0}, "dropout"), ({"activation": "swish"}, "activation"),
    ({"kernel_size": 0}, "kernel_size"), ({"layers": 3}, "layers"),
])
def test_bad_model_params_are_validation_errors_naming_the_field(keras_stack, digits, params, field) -> None:
    with pytest.raises(ValidationError) as caught:
        keras_stack().build(digits, **params)
    assert {error["loc"][0] for error in caught.value.errors()} == {field}
    with pytest.raises(ValidationError):
        ModelParams(**params)


def test_saved_model_loads_with_identical_predictions(keras_stack, digits, tmp_path: Path) -> None:
    stack = keras_stack(model={"architecture": "cnn", "conv_channels": [4], "dropout": 0.1})
    model = stack.build(digits)
    artifact = stack.framework.aios_save_model(model=model, path=tmp_path / "model.keras")
    assert artifact.format == "keras" and artifact.path.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left
    predict = stack.framework.aios_load_predictor(artifact=artifact, threads=1)
    expected = model(digits.x_test, training=False).numpy()
    np.testing.assert_allclose(predict(digits.x_test), expected, atol=1e-6)
    np.testing.assert_allclose(predict(digits.x_test).sum(axis=1), 1.0, atol=1e-5)


def test_loading_refuses_code_in_the_file(keras_stack, digits, tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((64,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(tmp_path / "model.keras")
    artifact = ModelArtifact(name="native", path=tmp_path / "model.keras", format="keras", producer="keras")
    with pytest.raises(ValueError, match="safely"):
        keras_stack().framework.aios_load_model(artifact=artifact)


def test_saving_something_else_is_a_clear_error(keras_stack, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="saves keras.Model instances, got dict"):
        keras_stack().framework.aios_save_model(model={}, path=tmp_path / "model.keras")
