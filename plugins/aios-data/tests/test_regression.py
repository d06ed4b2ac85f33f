"""Regression data: the task declared or inferred from the target, numeric targets from CSV, Parquet and NPZ,
target standardization recorded and invertible, a random (not stratified) split, and the diabetes set."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from aios_core import Dataset

from aios_data import FilesDatastore, SklearnDatastore

Load = Callable[..., Dataset]


def _prices(rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    area = rng.uniform(30, 200, rows)
    return pd.DataFrame({"area": area, "rooms": rng.integers(1, 6, rows), "price": 3000 * area + rng.normal(0, 1e4, rows)})


def test_a_numeric_target_with_many_values_is_inferred_as_regression(load: Load, tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    _prices().to_csv(path, index=False)
    ds = load(FilesDatastore, path=path, target="price")
    assert ds.task == "regression" and ds.class_names == [] and ds.target_names == ["price"]
    assert ds.preprocessing["task"] == {"task": "regression", "declared": False, "reason": (
        "inferred: numeric target with 120 distinct values (> 20); set data.task to override")}
    assert ds.y_train.dtype == np.float32 and ds.y_train.shape == (len(ds.x_train), 1)


def test_the_target_is_standardized_on_the_train_split_and_unscales_exactly(load: Load, tmp_path: Path) -> None:
    frame = _prices()
    path = tmp_path / "prices.parquet"
    frame.to_parquet(path)
    ds = load(FilesDatastore, path=path, target="price")
    assert abs(float(ds.y_train.mean())) < 1e-5 and float(ds.y_train.std()) == pytest.approx(1.0, abs=1e-4)
    restored = np.sort(np.concatenate([ds.unscale_targets(y) for y in (ds.y_train, ds.y_val, ds.y_test)]).ravel())
    assert restored == pytest.approx(np.sort(frame["price"].to_numpy()), rel=1e-6)


def test_target_scaling_none_keeps_the_target_as_it_is(load: Load, tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    _prices().to_csv(path, index=False)
    ds = load(FilesDatastore, path=path, target="price", preprocess={"target_scaling": "none"})
    assert ds.target_scaling == {"scaling": "none"} and float(ds.y_train.max()) > 1e5


def test_a_declared_regression_task_reads_integer_targets_as_numbers(load: Load, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    path = tmp_path / "counts.npz"
    np.savez(path, x=rng.normal(size=(60, 3)), y=rng.integers(0, 5, 60))
    assert load(FilesDatastore, path=path).task == "classification"  # 5 distinct values: classes
    ds = load(FilesDatastore, path=path, task="regression")
    assert ds.task == "regression" and ds.preprocessing["task"]["declared"] is True


def test_a_declared_classification_task_keeps_a_many_valued_target_as_classes(load: Load, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    path = tmp_path / "many.npz"
    np.savez(path, x=rng.normal(size=(300, 2)), y=np.repeat(np.arange(25), 12))
    ds = load(FilesDatastore, path=path, task="classification")
    assert ds.task == "classification" and ds.num_classes == 25


def test_regression_needs_a_numeric_target(load: Load, tmp_path: Path) -> None:
    path = tmp_path / "animals.csv"
    pd.DataFrame({"w": np.arange(30.0), "target": ["cat", "dog"] * 15}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"data.task: regression needs a numeric target, .* holds text \(found 'cat'\)"):
        load(FilesDatastore, path=path, task="regression")


def test_the_regression_split_is_random_and_reproducible(load: Load, tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    _prices().to_csv(path, index=False)
    first, again = load(FilesDatastore, seed=4, path=path, target="price"), load(FilesDatastore, seed=4, path=path, target="price")
    other = load(FilesDatastore, seed=5, path=path, target="price")
    assert np.array_equal(first.y_test, again.y_test) and not np.array_equal(first.y_test, other.y_test)
    assert (len(first.y_train), len(first.y_val), len(first.y_test)) == (84, 18, 18)


def test_diabetes_is_a_bundled_regression_set(load: Load) -> None:
    ds = load(SklearnDatastore, dataset="diabetes")
    assert ds.task == "regression" and ds.num_features == 10 and ds.num_targets == 1
    assert ds.preprocessing["task"]["reason"] == "scikit-learn's diabetes data set is a regression data set"
    assert ds.summary()["target_scaling"]["scaling"] == "standardize"


# ---------------------------------------------------------------- several targets
def _two_targets(rows: int = 120) -> pd.DataFrame:
    frame = _prices(rows)
    return frame.assign(rent=frame["price"] / 250 + np.random.default_rng(3).normal(0, 5, rows))


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_several_target_columns_load_as_one_scaled_column_each(load: Load, tmp_path: Path, suffix: str) -> None:
    frame, path = _two_targets(), tmp_path / f"prices.{suffix}"
    frame.to_csv(path, index=False) if suffix == "csv" else frame.to_parquet(path)
    ds = load(FilesDatastore, path=path, target=["price", "rent"])
    assert ds.task == "regression" and ds.target_names == ["price", "rent"] and ds.num_targets == 2
    assert ds.num_features == 2 and ds.feature_names == ["area", "rooms"]
    assert ds.y_train.dtype == np.float32 and ds.y_train.shape == (len(ds.x_train), 2)
    assert np.abs(ds.y_train.mean(axis=0)).max() < 1e-5 and ds.y_train.std(axis=0) == pytest.approx([1, 1], abs=1e-4)
    assert ds.target_scaling["std"][0] > 100 * ds.target_scaling["std"][1]  # each column its own statistics
    restored = np.concatenate([ds.unscale_targets(y) for y in (ds.y_train, ds.y_val, ds.y_test)])
    expected = frame[["price", "rent"]].to_numpy()
    assert np.sort(restored, axis=0) == pytest.approx(np.sort(expected, axis=0), rel=1e-6)


def _findings(path: Path, **params: object) -> tuple[list[tuple[str, str]], str | None]:
    from aios_data._checks import inspect_files

    findings = inspect_files(FilesDatastore.Params(path=path, **params), "stack.yaml")
    return findings.problems, findings.task


def test_several_targets_are_regression_and_checked_before_loading(tmp_path: Path) -> None:
    frame = _two_targets().assign(label=["a", "b"] * 60)
    frame.to_parquet(tmp_path / "t.parquet")
    assert _findings(tmp_path / "t.parquet", target=["price", "rent"], preprocess={"one_hot": ["label"]}) == (
        [], "regression")
    (field, message), = _findings(tmp_path / "t.parquet", target=["price", "rnet"], preprocess={"one_hot": ["label"]})[0]
    assert field == "target.1" and "found 'rnet', which is not a column" in message and "did you mean 'rent'" in message
    (field, message), = _findings(tmp_path / "t.parquet", target=["price", "label"])[0]
    assert field == "target.1" and "several targets are regression targets; expected numeric columns" in message
    (field, message), = _findings(tmp_path / "t.parquet", target=["price", "rent"], task="classification",
                                  preprocess={"one_hot": ["label"]})[0]
    assert field == "task" and "names 2 columns, which are regression targets" in message
    np.savez(tmp_path / "t.npz", x=np.zeros((30, 2)), y=np.arange(30))
    (field, message), = _findings(tmp_path / "t.npz", target=["a", "b"])[0]
    assert field == "target" and "several targets only for a CSV or Parquet table" in message


def test_a_text_column_among_several_targets_is_refused_when_it_loads(load: Load, tmp_path: Path) -> None:
    _two_targets().assign(rent="high").to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ValueError, match="data.target: column 'rent' of .* is not numeric \\(found 'high'\\); several"):
        load(FilesDatastore, path=tmp_path / "t.csv", target=["price", "rent"])
