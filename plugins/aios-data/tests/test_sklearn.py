"""The ``sklearn`` datastore: bundled data sets, stratified seeded splits, train-only scaling."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
from aios_core import Dataset

from aios_data import SklearnDatastore

Load = Callable[..., Dataset]

SHAPES = {  # name: (rows, features, class names)
    "digits": (1797, 64, [str(k) for k in range(10)]),
    "iris": (150, 4, ["setosa", "versicolor", "virginica"]),
    "wine": (178, 13, ["class_0", "class_1", "class_2"]),
    "breast_cancer": (569, 30, ["malignant", "benign"]),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_each_bundled_set_loads_with_its_shapes_and_classes(load: Load, name: str) -> None:
    rows, features, class_names = SHAPES[name]
    ds = load(SklearnDatastore, dataset=name)
    assert ds.name == name
    assert ds.class_names == class_names
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == rows
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)):
        assert x.dtype == np.float32 and x.shape == (len(y), features)
        assert y.dtype == np.int64 and set(np.unique(y)) == set(range(len(class_names)))
    assert len(ds.feature_names) == features
    assert ds.image_shape == ((1, 8, 8) if name == "digits" else None)


def test_split_fractions_follow_the_parameters(load: Load) -> None:
    ds = load(SklearnDatastore, dataset="digits", split={"validation": 0.2, "test": 0.1})
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == pytest.approx((1257, 360, 180), abs=2)


def test_splits_are_stratified(load: Load) -> None:
    ds = load(SklearnDatastore, dataset="breast_cancer")
    overall = np.bincount(np.concatenate([ds.y_train, ds.y_val, ds.y_test])) / 569
    for y in (ds.y_train, ds.y_val, ds.y_test):
        assert np.bincount(y, minlength=2) / len(y) == pytest.approx(overall, abs=0.02)


def test_same_seed_gives_identical_splits_and_hash(load: Load) -> None:
    first, second = load(SklearnDatastore, seed=7, dataset="wine"), load(SklearnDatastore, seed=7, dataset="wine")
    assert first.content_hash == second.content_hash
    for part in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert np.array_equal(getattr(first, part), getattr(second, part))


def test_another_seed_gives_other_splits_and_hash(load: Load) -> None:
    first, second = load(SklearnDatastore, seed=0, dataset="wine"), load(SklearnDatastore, seed=1, dataset="wine")
    assert first.content_hash != second.content_hash
    assert not np.array_equal(first.y_train, second.y_train)


def test_other_parameters_give_another_hash(load: Load) -> None:
    standardized = load(SklearnDatastore, dataset="iris")
    scaled = load(SklearnDatastore, dataset="iris", preprocess={"scaling": "none"})
    assert standardized.content_hash != scaled.content_hash


def test_standardize_statistics_come_from_the_train_split_only(load: Load) -> None:
    ds = load(SklearnDatastore, dataset="wine")
    record = ds.preprocessing
    assert record["scaling"] == "standardize"
    assert np.allclose(ds.x_train.mean(axis=0), 0, atol=1e-5)
    assert np.allclose(ds.x_train.std(axis=0), 1, atol=1e-4)
    raw = np.concatenate([ds.x_train, ds.x_val, ds.x_test]) * np.array(record["std"]) + np.array(record["mean"])
    assert not np.allclose(raw.mean(axis=0), record["mean"])  # fitted on all rows, it would match


def test_constant_features_keep_std_one(load: Load) -> None:
    ds = load(SklearnDatastore, dataset="digits")
    std = np.array(ds.preprocessing["std"])
    constant = ds.x_train.std(axis=0) == 0
    assert constant.any() and np.all(std[constant] == 1.0)
    assert np.all(np.isfinite(ds.x_val)) and np.all(np.isfinite(ds.x_test))


def test_scale_divides_by_the_factor(load: Load) -> None:
    ds = load(SklearnDatastore, dataset="digits", preprocess={"scaling": "scale", "scale_factor": 16})
    assert ds.preprocessing["scaling"] == "scale" and ds.preprocessing["factor"] == 16
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0


def test_minmax_maps_the_train_split_to_zero_one(load: Load) -> None:
    ds = load(SklearnDatastore, dataset="iris", preprocess={"scaling": "minmax"})
    assert ds.preprocessing["scaling"] == "minmax"
    assert np.allclose(ds.x_train.min(axis=0), 0) and np.allclose(ds.x_train.max(axis=0), 1)
    restored = ds.x_train * np.array(ds.preprocessing["range"]) + np.array(ds.preprocessing["min"])
    assert restored.min() >= 0.1  # iris measurements are positive centimetres


def test_scaling_none_keeps_raw_values(load: Load) -> None:
    from sklearn.datasets import load_digits

    ds = load(SklearnDatastore, dataset="digits", preprocess={"scaling": "none"})
    assert ds.preprocessing["scaling"] == "none"
    raw_rows = {row.tobytes() for row in load_digits().data.astype(np.float32)}
    assert all(row.tobytes() in raw_rows for row in ds.x_test)


def test_preprocessing_record_is_json_and_counts_nothing_dropped(load: Load) -> None:
    ds = load(SklearnDatastore, dataset="iris")
    record = json.loads(json.dumps(ds.preprocessing))
    assert record["dropped_missing"] == 0 and record["dropped_duplicates"] == 0
    assert len(record["mean"]) == len(record["std"]) == 4
    assert json.dumps(ds.summary())


def test_drop_duplicates_counts_repeated_rows(load: Load) -> None:
    from sklearn.datasets import load_iris

    data = load_iris()
    rows = np.column_stack([data.data, data.target])
    repeats = len(rows) - len(np.unique(rows, axis=0))
    ds = load(SklearnDatastore, dataset="iris", clean={"drop_duplicates": True})
    assert repeats > 0 and ds.preprocessing["dropped_duplicates"] == repeats
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 150 - repeats


def test_one_hot_is_refused_for_bundled_sets(load: Load) -> None:
    with pytest.raises(ValueError, match=r"^data\.preprocess\.one_hot: one-hot encoding applies to named columns"):
        load(SklearnDatastore, dataset="iris", preprocess={"one_hot": ["petal"]})
