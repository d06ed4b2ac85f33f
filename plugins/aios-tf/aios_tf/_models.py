"""Building, saving and loading the framework's Keras models.

Models take flat float32 rows ``(n, features)`` and end in a softmax, as Keras'
tutorials write them, so they output class probabilities. The layers mirror the torch
framework's: ``mlp`` is Dense -> activation per hidden layer, dropout, Dense to the
classes; ``cnn`` reshapes rows to the dataset's image (channels last, as TensorFlow's CPU
kernels want), one same-padded Conv2D -> activation per channel count, MaxPooling2D(2),
Flatten, then the ``mlp`` head. Files are ``.keras`` archives, loaded with safe mode on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from aios_core import Dataset, ModelParams, Predictor, atomic_path
from aios_tf import _runtime


def build_model(params: ModelParams, dataset: Dataset, *, seed: int, threads: int) -> Any:
    """Build an untrained model for ``dataset``, with weights drawn from ``seed``."""
    keras = _runtime.keras()
    _runtime.configure(threads)
    keras.utils.set_random_seed(seed)
    # a regression head is a linear Dense named "predictions", one unit per target
    num_features, num_classes = dataset.num_features, (-dataset.num_targets if dataset.task == "regression"
                                                       else dataset.num_classes)
    if params.architecture == "mlp":
        return _mlp(keras, params, num_features, num_classes)
    if params.architecture == "cnn":
        return _cnn(keras, params, num_features, num_classes, dataset.image_shape)
    return _from_factory(keras, params, dataset)


def _head(keras: Any, params: ModelParams, x: Any, num_classes: int) -> Any:
    """Hidden dense layers with their activation, dropout (before the output layer), softmax output layer."""
    layers = keras.layers
    for number, units in enumerate(params.hidden_units, start=1):
        x = layers.Dense(units, activation=params.activation, name=f"hidden_{number}")(x)
    if params.dropout > 0:
        x = layers.Dropout(params.dropout, name="dropout")(x)
    if num_classes < 0:  # regression: -targets
        return layers.Dense(-num_classes, name="predictions")(x)
    return layers.Dense(num_classes, activation="softmax", name="probabilities")(x)


def _mlp(keras: Any, params: ModelParams, num_features: int, num_classes: int) -> Any:
    inputs = keras.Input((num_features,), name="input")
    return keras.Model(inputs, _head(keras, params, inputs, num_classes), name="mlp")


def _cnn(keras: Any, params: ModelParams, num_features: int, num_classes: int,
         image_shape: tuple[int, int, int] | None) -> Any:
    if image_shape is None:
        raise ValueError(
            "model.architecture: 'cnn' needs image data, but the dataset has no image_shape "
            "(channels, height, width); use architecture 'mlp' or a datastore that sets image_shape"
        )
    channels, height, width = (int(size) for size in image_shape)
    if channels * height * width != num_features:
        raise ValueError(
            f"model.architecture: 'cnn': dataset image_shape {tuple(image_shape)} holds "
            f"{channels * height * width} values but rows have {num_features} features"
        )
    if height < 2 or width < 2:
        raise ValueError(f"model.architecture: 'cnn' needs images of at least 2x2, found {height}x{width}")
    layers = keras.layers
    inputs = keras.Input((num_features,), name="input")
    x = layers.Reshape((channels, height, width), name="image")(inputs)  # rows hold (C, H, W), as in torch
    x = layers.Permute((2, 3, 1), name="channels_last")(x)
    for number, out_channels in enumerate(params.conv_channels, start=1):
        x = layers.Conv2D(out_channels, params.kernel_size, padding="same", activation=params.activation,
                          name=f"conv_{number}")(x)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, _head(keras, params, x, num_classes), name="cnn")


def _from_factory(keras: Any, params: ModelParams, dataset: Dataset) -> Any:
    try:
        factory = params.load_factory()
    except ValueError as error:
        raise ValueError(f"model.architecture: {error}") from error
    model = factory(dataset, **params.options)
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"model.architecture: factory {params.architecture!r} returned {type(model).__name__}, "
            "expected a keras.Model (keras.Sequential or the functional API)"
        )
    _check_outputs(model, dataset, params.architecture)
    return model


def _check_outputs(model: Any, dataset: Dataset, architecture: str) -> None:
    """A factory's model must map (n, features) to (n, classes) probabilities; say what to change if not."""
    sample = np.zeros((2, dataset.num_features), dtype=np.float32)
    try:
        output = np.asarray(model(sample, training=False))
    except Exception as error:
        raise ValueError(
            f"model.architecture: the model of factory {architecture!r} cannot take a float32 batch of shape "
            f"(n, {dataset.num_features}): {type(error).__name__}: {error}; give it keras.Input(({dataset.num_features},))"
        ) from error
    if dataset.task == "regression":
        if output.shape != (2, dataset.num_targets):
            raise ValueError(f"model.architecture: the model of factory {architecture!r} outputs shape "
                             f"{output.shape[1:]} per row; expected ({dataset.num_targets},), one value per target")
        return
    if output.shape != (2, dataset.num_classes):
        raise ValueError(
            f"model.architecture: the model of factory {architecture!r} outputs shape {output.shape[1:]} per row; "
            f"expected ({dataset.num_classes},), one probability per class"
        )
    if not np.allclose(output.sum(axis=1), 1.0, atol=1e-3) or output.min() < 0:
        raise ValueError(
            f"model.architecture: the model of factory {architecture!r} does not output class probabilities "
            "(rows do not sum to 1); end it with Dense(classes, activation='softmax')"
        )


def _is_model(model: Any) -> bool:
    keras = _runtime.keras()
    return isinstance(model, keras.Model)


def save_model(model: Any, path: Path) -> None:
    """Write ``model`` (architecture and weights, no optimizer) to ``path`` as a ``.keras`` archive, atomically."""
    if not _is_model(model):
        raise TypeError(f"the keras framework saves keras.Model instances, got {type(model).__name__}")
    if path.suffix != ".keras":
        raise ValueError(f"{path}: the keras framework writes .keras files; name the file model.keras")
    with atomic_path(path) as tmp:
        model.save(tmp, include_optimizer=False)


def load_model(path: Path) -> Any:
    """Load a ``.keras`` archive with ``safe_mode=True``: no code (Lambda layers, pickles) runs from the file."""
    keras = _runtime.keras()
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except (ValueError, OSError) as error:
        raise ValueError(f"{path}: not a Keras model the keras framework can load safely: {error}") from error


def keras_predictor(model: Any, *, threads: int = 1) -> Predictor:
    """A function mapping a float32 batch to class probabilities (regression: predictions) in inference mode."""
    _runtime.configure(threads)

    def predict(batch: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_on_batch(np.ascontiguousarray(batch, dtype=np.float32)), dtype=np.float32)

    return predict


def is_regression(model: Any) -> bool:
    """Whether ``model`` ends in the regression head (a linear Dense named ``predictions``)."""
    return model.layers[-1].name == "predictions"
