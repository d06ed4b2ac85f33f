"""Parameters: shared by both datastores, validated, unknown keys rejected."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from aios_data import DataParams, FilesDatastore, SklearnDatastore


def test_defaults() -> None:
    params = SklearnDatastore.Params()
    assert params.dataset == "digits"
    assert params.model_dump(exclude={"dataset"}) == {
        "task": "auto",
        "clean": {"drop_missing": True, "drop_duplicates": False},
        "preprocess": {"scaling": "standardize", "scale_factor": 1.0, "one_hot": [], "target_scaling": "standardize"},
        "split": {"validation": 0.15, "test": 0.15, "method": "auto"},
    }


def test_file_defaults() -> None:
    params = FilesDatastore.Params(path="data.csv")
    assert (params.path, params.format, params.target, params.x_key, params.y_key) == \
        (Path("data.csv"), "auto", "target", "x", "y")
    assert params.labels_path is None and params.image_shape is None
    assert (params.streaming, params.window_rows, params.sample_rows) == (False, 262_144, 10_000)


def test_both_datastores_share_one_parameter_model() -> None:
    assert issubclass(SklearnDatastore.Params, DataParams)
    assert issubclass(FilesDatastore.Params, DataParams)


def test_path_is_required() -> None:
    with pytest.raises(ValidationError, match="path"):
        FilesDatastore.Params()


@pytest.mark.parametrize("params", [
    {"surprise": 1},
    {"clean": {"drop_nan": True}},
    {"preprocess": {"scale": 16}},
    {"split": {"train": 0.7}},
])
def test_unknown_keys_are_rejected(params: dict) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        SklearnDatastore.Params(**params)


@pytest.mark.parametrize("params", [
    {"dataset": "mnist"},
    {"preprocess": {"scaling": "normalize"}},
    {"preprocess": {"scaling": "scale", "scale_factor": 0}},
    {"preprocess": {"scaling": "scale", "scale_factor": -255}},
    {"split": {"validation": 0}},
    {"split": {"validation": 0.5}},
    {"split": {"test": 0.6}},
    {"split": {"test": -0.1}},
])
def test_values_out_of_range_are_rejected(params: dict) -> None:
    with pytest.raises(ValidationError):
        SklearnDatastore.Params(**params)


def test_scale_factor_without_scaling_scale_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"scale_factor\n.*1.0, since scaling is 'standardize'"):
        SklearnDatastore.Params(preprocess={"scale_factor": 16})


def test_one_hot_column_named_twice_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"one_hot\n.*each column named once \('color' repeated\)"):
        FilesDatastore.Params(path="x.csv", preprocess={"one_hot": ["color", "color"]})


def test_image_shape_needs_three_positive_sizes() -> None:
    assert FilesDatastore.Params(path="x.npz", image_shape=[1, 28, 28]).image_shape == (1, 28, 28)
    with pytest.raises(ValidationError):
        FilesDatastore.Params(path="x.npz", image_shape=[28, 28])
    with pytest.raises(ValidationError):
        FilesDatastore.Params(path="x.npz", image_shape=[0, 28, 28])
