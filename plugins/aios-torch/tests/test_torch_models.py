"""aios_build_model, aios_save_model, aios_load_model and the native predictor."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pydantic
import pytest
import torch
from torch import nn

from aios_core import ModelArtifact


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_mlp_maps_flat_rows_to_class_logits(torch_stack, digits_dataset) -> None:
    model = torch_stack(model={"architecture": "mlp", "hidden_units": [32, 16]}).build(digits_dataset)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 32), (32, 16), (16, 10)]
    logits = model(torch.from_numpy(digits_dataset.x_test[:5]))
    assert logits.shape == (5, 10)
    assert not torch.allclose(logits.sum(dim=1), torch.ones(5))  # logits, not probabilities


def test_cnn_unflattens_rows_to_the_image_shape(torch_stack, digits_dataset) -> None:
    model = torch_stack(model={"architecture": "cnn", "conv_channels": [16, 32], "hidden_units": [128]}).build(digits_dataset)
    layers = list(model.children())
    assert isinstance(layers[0], nn.Unflatten) and tuple(layers[0].unflattened_size) == (1, 8, 8)
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 16), (16, 32)]
    assert isinstance(layers[layers.index(convs[-1]) + 2], nn.MaxPool2d)  # conv, activation, pool
    assert model(torch.from_numpy(digits_dataset.x_test[:3])).shape == (3, 10)


@pytest.mark.parametrize("architecture", ["mlp", "cnn"])
def test_dropout_sits_before_the_output_layer(torch_stack, digits_dataset, architecture) -> None:
    model = torch_stack(model={"architecture": architecture, "hidden_units": [32, 16], "dropout": 0.25}).build(digits_dataset)
    layers = list(model.children())
    assert [m.p for m in layers if isinstance(m, nn.Dropout)] == [0.25]
    assert isinstance(layers[-2], nn.Dropout) and isinstance(layers[-1], nn.Linear)
    assert not any(isinstance(m, nn.Dropout) for m in torch_stack(model={"architecture": architecture}).build(digits_dataset).modules())


def test_activation_follows_every_convolution_and_hidden_layer(torch_stack, digits_dataset) -> None:
    model = torch_stack(model={"architecture": "cnn", "activation": "gelu", "hidden_units": [32, 16]}).build(digits_dataset)
    layers = list(model.children())
    weighted = [i for i, m in enumerate(layers[:-1]) if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weighted) == 4 and all(isinstance(layers[i + 1], nn.GELU) for i in weighted)


def test_the_same_seed_builds_the_same_weights(torch_stack, digits_dataset) -> None:
    first = torch_stack(model={"architecture": "cnn"}, seed=7).build(digits_dataset)
    second = torch_stack(model={"architecture": "cnn"}, seed=7).build(digits_dataset)
    other = torch_stack(model={"architecture": "cnn"}, seed=8).build(digits_dataset)
    assert _same_weights(first, second)
    assert not _same_weights(first, other)


def test_overrides_take_precedence_over_params(torch_stack, digits_dataset) -> None:
    stack = torch_stack(model={"architecture": "mlp", "hidden_units": [64]})
    model = stack.build(digits_dataset, hidden_units=[8])
    assert [m.out_features for m in model.modules() if isinstance(m, nn.Linear)] == [8, 10]
    assert stack.framework.params.hidden_units == [64]


@pytest.mark.parametrize(("overrides", "field"), [
    ({"architecture": "transformer"}, "architecture"),
    ({"dropout": 1.5}, "dropout"),
    ({"hidden_units": []}, "hidden_units"),
    ({"activation": "swish"}, "activation"),
    ({"layers": 3}, "layers"),
])
def test_bad_model_params_are_validation_errors_naming_the_field(torch_stack, digits_dataset, overrides, field) -> None:
    with pytest.raises(pydantic.ValidationError, match=field):
        torch_stack().build(digits_dataset, **overrides)


def test_cnn_without_image_shape_is_a_clear_error(torch_stack, flat_digits) -> None:
    with pytest.raises(ValueError, match=r"model\.architecture.*'cnn'.*image_shape"):
        torch_stack(model={"architecture": "cnn"}).build(flat_digits)


def test_user_factory_receives_dataset_and_options(torch_stack, digits_dataset, factories_importable) -> None:
    architecture = f"{factories_importable}:two_layer"
    model = torch_stack(model={"architecture": architecture, "options": {"width": 12}}).build(digits_dataset)
    assert [m.out_features for m in model.modules() if isinstance(m, nn.Linear)] == [12, 10]


def test_user_factory_model_trains_saves_and_loads(torch_stack, digits_dataset, factories_importable, tmp_path) -> None:
    stack = torch_stack(model={"architecture": f"{factories_importable}:linear", "options": {"scale": 0.5}},
                        trainer={"epochs": 2})
    model = stack.build_and_train(digits_dataset).model
    artifact = stack.pm.hook.aios_save_model(model=model, path=tmp_path / "model.torch")
    loaded = stack.pm.hook.aios_load_model(artifact=artifact)
    assert isinstance(loaded, nn.Linear) and _same_weights(model, loaded)


@pytest.mark.parametrize(("name", "error", "message"), [
    ("aios_torch_missing_module.models:build", ValueError, r"model\.architecture.*does not load.*missing_module"),
    ("aios_torch_test_factories.models:missing", ValueError, r"model\.architecture.*does not load.*missing"),
    ("aios_torch_test_factories.models:not_a_module", TypeError, r"model\.architecture.*returned dict"),
])
def test_bad_user_factories_are_clear_errors(torch_stack, digits_dataset, factories_importable, name, error, message) -> None:
    with pytest.raises(error, match=message):
        torch_stack(model={"architecture": name}).build(digits_dataset)


def test_save_then_load_predicts_identically(torch_stack, digits_dataset, tmp_path) -> None:
    stack = torch_stack(model={"architecture": "cnn", "dropout": 0.2}, trainer={"epochs": 1})
    model = stack.build_and_train(digits_dataset).model
    artifact = stack.pm.hook.aios_save_model(model=model, path=tmp_path / "artifacts" / "model.torch")
    assert artifact == ModelArtifact(name="native", path=tmp_path / "artifacts" / "model.torch",
                                     format="torch", producer="torch")
    assert [p.name for p in artifact.path.parent.iterdir()] == ["model.torch"]  # no temporary file left
    loaded = stack.pm.hook.aios_load_model(artifact=artifact)
    assert _same_weights(model, loaded) and not loaded.training
    original = stack.pm.hook.aios_load_predictor(artifact=artifact, threads=1)(digits_dataset.x_test)
    with torch.no_grad():
        expected = torch.softmax(model.eval()(torch.from_numpy(digits_dataset.x_test)), dim=1).numpy()
    np.testing.assert_array_equal(original, expected)


def test_saved_file_holds_only_tensors_and_plain_values(torch_stack, digits_dataset, tmp_path) -> None:
    stack = torch_stack(model={"architecture": "cnn"})
    artifact = stack.pm.hook.aios_save_model(model=stack.build(digits_dataset), path=tmp_path / "model.torch")
    payload = torch.load(artifact.path, weights_only=True)
    assert payload["spec"]["params"]["architecture"] == "cnn"
    assert payload["spec"]["dataset"]["image_shape"] == [1, 8, 8]


def test_loading_refuses_a_file_that_would_run_code(torch_stack, tmp_path) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "model.torch"
    torch.save({"format": "aios-torch/1", "spec": _RunsCodeWhenUnpickled(marker), "state_dict": {}}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch_stack().pm.hook.aios_load_model(artifact=ModelArtifact("native", path, "torch", "torch"))
    assert not marker.exists()


class _RunsCodeWhenUnpickled:
    """Unpickling this calls os.makedirs(marker): what a malicious file would do, harmlessly."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.makedirs, (self.marker,)


def test_loading_leaves_the_global_random_stream_alone(torch_stack, digits_dataset, tmp_path) -> None:
    stack = torch_stack()
    artifact = stack.pm.hook.aios_save_model(model=stack.build(digits_dataset), path=tmp_path / "model.torch")
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    stack.pm.hook.aios_load_model(artifact=artifact)
    assert torch.equal(torch.rand(4), expected)


def test_saving_a_foreign_model_is_a_clear_error(torch_stack, tmp_path) -> None:
    with pytest.raises(TypeError, match="only models it built"):
        torch_stack().pm.hook.aios_save_model(model=nn.Linear(2, 2), path=tmp_path / "model.torch")


def test_native_predictor_returns_probabilities(torch_stack, digits_dataset, tmp_path) -> None:
    stack = torch_stack(model={"architecture": "mlp"})
    artifact = stack.pm.hook.aios_save_model(model=stack.build(digits_dataset), path=tmp_path / "model.torch")
    probabilities = stack.pm.hook.aios_load_predictor(artifact=artifact, threads=1)(digits_dataset.x_test[:7])
    assert probabilities.shape == (7, 10) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_no_predictor_for_formats_it_cannot_run(torch_stack, tmp_path) -> None:
    artifact = ModelArtifact("int8", tmp_path / "model.tflite", "tflite", "other")
    assert torch_stack().pm.hook.aios_load_predictor(artifact=artifact, threads=1) is None
