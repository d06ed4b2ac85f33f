{%- set P = cookiecutter.__class_prefix -%}
"""The {{ cookiecutter.plugin_name }} datastore: deterministic stratified splits, blobs or a CSV file."""

from __future__ import annotations

import numpy as np
import pytest

from {{ cookiecutter.package }} import {{ P }}Datastore, {{ P }}DatastoreParams


def load(run_with, seed: int = 0, **params):
    datastore = {{ P }}Datastore({{ P }}DatastoreParams(**params))
    return datastore.aios_load_dataset(run=run_with(datastore, seed=seed))


def test_the_same_seed_gives_the_same_splits_and_hash(run_with):
    first, second = load(run_with, seed=3), load(run_with, seed=3)
    np.testing.assert_array_equal(first.x_train, second.x_train)
    np.testing.assert_array_equal(first.y_test, second.y_test)
    assert first.content_hash == second.content_hash


def test_another_seed_draws_other_splits(run_with):
    first, second = load(run_with, seed=0), load(run_with, seed=1)
    assert not np.array_equal(first.y_train, second.y_train)
    assert first.content_hash != second.content_hash


def test_every_class_is_in_every_split_in_proportion(run_with):
    dataset = load(run_with, samples=300, classes=3, validation=0.2, test=0.2)
    for labels in (dataset.y_train, dataset.y_val, dataset.y_test):
        counts = np.bincount(labels, minlength=3)
        assert counts.min() == counts.max()
    assert (len(dataset.y_train), len(dataset.y_val), len(dataset.y_test)) == (180, 60, 60)
    assert dataset.x_train.dtype == np.float32 and dataset.num_features == 8


def test_a_csv_file_is_read_with_its_label_column(run_with, tmp_path):
    rows = ["a,b,species"] + [f"{i},{i % 3 * 10},{'xyz'[i % 3]}" for i in range(60)]
    (tmp_path / "flowers.csv").write_text("\n".join(rows) + "\n")
    dataset = load(run_with, csv=tmp_path / "flowers.csv", target="species")
    assert dataset.class_names == ["x", "y", "z"]
    assert dataset.feature_names == ["a", "b"]
    assert len(dataset.y_train) + len(dataset.y_val) + len(dataset.y_test) == 60


def test_a_missing_label_column_is_named(run_with, tmp_path):
    (tmp_path / "table.csv").write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(ValueError, match="no column 'target'"):
        load(run_with, csv=tmp_path / "table.csv")
