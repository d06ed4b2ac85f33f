"""Building, saving and loading the framework's PyTorch models.

Every built model carries ``_aios_spec``: plain values (parameters and dataset shape)
from which ``build_module`` rebuilds the same module, so a saved file holds only
tensors and plain types and loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aios_core import Dataset, ModelParams, Predictor, atomic_path

FILE_FORMAT = "aios-torch/1"
_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def build_model(params: ModelParams, dataset: Dataset, *, seed: int, threads: int) -> nn.Module:
    """Build an untrained model for ``dataset``, with weights drawn from ``seed``."""
    torch.manual_seed(seed)
    torch.set_num_threads(max(1, int(threads)))
    spec = {
        "params": params.model_dump(mode="json"),
        "dataset": {
            "name": dataset.name,
            "num_features": dataset.num_features,
            "class_names": [str(name) for name in dataset.class_names],
            "image_shape": [int(size) for size in dataset.image_shape] if dataset.image_shape else None,
            "task": dataset.task,
            "target_names": [str(name) for name in dataset.target_names] or ["target"] * dataset.num_targets,
        },
    }
    return build_module(spec)


def build_module(spec: dict[str, Any]) -> nn.Module:
    """The module ``spec`` describes, with fresh weights from the global torch RNG."""
    params = ModelParams.model_validate(spec["params"])
    shape = spec["dataset"]
    num_features = int(shape["num_features"])
    # a regression head is a linear layer of one output per target; a classification head, one per class (logits)
    num_classes = len(shape["target_names"]) if is_regression(spec) else len(shape["class_names"])
    if params.architecture == "mlp":
        module = _mlp(params, num_features, num_classes)
    elif params.architecture == "cnn":
        module = _cnn(params, num_features, num_classes, shape["image_shape"])
    else:
        module = _from_factory(params, _shape_only_dataset(shape))
    module._aios_spec = spec
    return module


def is_regression(spec_or_model: Any) -> bool:
    """Whether a model (or its spec) predicts numbers rather than class logits."""
    spec = spec_or_model if isinstance(spec_or_model, dict) else getattr(spec_or_model, "_aios_spec", {}) or {}
    return spec.get("dataset", {}).get("task", "classification") == "regression"


def _head(params: ModelParams, width: int, num_classes: int) -> list[nn.Module]:
    """Hidden dense layers with their activation, dropout (ModelParams: before the output layer), output layer."""
    layers: list[nn.Module] = []
    for units in params.hidden_units:
        layers += [nn.Linear(width, units), _ACTIVATIONS[params.activation]()]
        width = units
    if params.dropout > 0:
        layers.append(nn.Dropout(params.dropout))
    return [*layers, nn.Linear(width, num_classes)]


def _mlp(params: ModelParams, num_features: int, num_classes: int) -> nn.Module:
    return nn.Sequential(*_head(params, num_features, num_classes))


def _cnn(params: ModelParams, num_features: int, num_classes: int, image_shape: list[int] | None) -> nn.Module:
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
    layers: list[nn.Module] = [nn.Unflatten(1, (channels, height, width))]
    for out_channels in params.conv_channels:
        layers += [nn.Conv2d(channels, out_channels, params.kernel_size, padding="same"),
                   _ACTIVATIONS[params.activation]()]
        channels = out_channels
    layers += [nn.MaxPool2d(2), nn.Flatten()]
    return nn.Sequential(*layers, *_head(params, channels * (height // 2) * (width // 2), num_classes))


def _from_factory(params: ModelParams, dataset: Dataset) -> nn.Module:
    try:
        factory = params.load_factory()
    except ValueError as error:
        raise ValueError(f"model.architecture: {error}") from error
    module = factory(dataset, **params.options)
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"model.architecture: factory {params.architecture!r} returned {type(module).__name__}, "
            "expected a torch.nn.Module"
        )
    return module


def _shape_only_dataset(shape: dict[str, Any]) -> Dataset:
    """A Dataset with empty splits and the saved shape: what a factory sees when a model is rebuilt."""
    x = np.empty((0, int(shape["num_features"])), dtype=np.float32)
    y = np.empty((0,), dtype=np.int64)
    image_shape = tuple(shape["image_shape"]) if shape["image_shape"] else None
    task = shape.get("task", "classification")
    if task == "regression":
        y = np.empty((0, len(shape["target_names"])), dtype=np.float32)
    return Dataset(name=shape["name"], x_train=x, y_train=y, x_val=x, y_val=y, x_test=x, y_test=y,
                   class_names=list(shape["class_names"]), content_hash="", image_shape=image_shape,
                   task=task, target_names=list(shape.get("target_names", [])))


def model_spec(model: Any) -> dict[str, Any]:
    """The rebuild spec of a model built by this framework."""
    spec = getattr(model, "_aios_spec", None)
    if not isinstance(model, nn.Module) or spec is None:
        raise TypeError(
            f"the torch framework can save only models it built (aios_build_model), got {type(model).__name__}"
        )
    return spec


def save_model(model: nn.Module, path: Path) -> None:
    """Write the spec and weights of ``model`` to ``path`` atomically."""
    payload = {"format": FILE_FORMAT, "spec": model_spec(model), "state_dict": model.state_dict()}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_model(path: Path) -> nn.Module:
    """Rebuild a model saved by ``save_model``; the file is read with ``weights_only=True``."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
        raise ValueError(f"{path}: not a model saved by the aios torch framework (expected format {FILE_FORMAT!r})")
    # Rebuilding draws initial weights that are overwritten at once; keep the caller's RNG stream intact.
    with torch.random.fork_rng(devices=[]):
        module = build_module(payload["spec"])
    module.load_state_dict(payload["state_dict"])
    return module.eval()


def torch_predictor(model: nn.Module, *, threads: int = 1) -> Predictor:
    """A function mapping a float32 batch to class probabilities (or regression predictions) with ``model`` in eval mode.

    torch's intra-op thread count is process-wide; it is set to ``threads`` here, as the
    run's build and training already did.
    """
    torch.set_num_threads(max(1, int(threads)))
    model.eval()
    regression = is_regression(model)

    def predict(batch: np.ndarray) -> np.ndarray:
        inputs = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        with torch.inference_mode():
            outputs = model(inputs)
            return (outputs if regression else torch.softmax(outputs, dim=1)).numpy()

    return predict
