"""The drawn splits: scikit-learn's per-class counts, every row once, random order, the same rows for the same seed."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from aios_data import FilesDatastore
from aios_data._prepare import _random_split, _stratified_split

PARAMS = FilesDatastore.Params(path="unused.npz")


def _sklearn_counts(y: np.ndarray, validation: float, test: float, seed: int, classes: int) -> list[np.ndarray]:
    """Rows per class in train, validation and test as scikit-learn's two stratified ``train_test_split`` calls
    (test out of all rows, validation out of the rest) give them."""
    rest, test_rows = train_test_split(np.arange(len(y)), test_size=test, stratify=y, random_state=seed)
    train_rows, val_rows = train_test_split(rest, test_size=validation / (1 - test), stratify=y[rest],
                                            random_state=seed)
    return [np.bincount(y[rows], minlength=classes) for rows in (train_rows, val_rows, test_rows)]


@pytest.mark.parametrize(("rows", "classes", "validation", "test", "seed"),
                         [(100, 2, 0.15, 0.15, 0), (1797, 10, 0.15, 0.15, 42), (5000, 7, 0.2, 0.3, 7),
                          (333, 3, 0.1, 0.17647, 2**32 - 1), (4000, 300, 0.2, 0.2, 11)])
def test_each_class_gets_scikit_learns_share_of_each_split(rows: int, classes: int, validation: float, test: float,
                                                           seed: int) -> None:
    rng = np.random.default_rng(rows)
    weights = np.linspace(1, 3, classes)
    y = np.sort(rng.choice(classes, size=rows, p=weights / weights.sum()))  # sorted: a file ordered by class
    y[:3 * classes] = np.repeat(np.arange(classes), 3)  # every class with the 3 rows a stratified split needs
    y = np.sort(y)
    params = PARAMS.model_copy(update={"split": PARAMS.split.model_copy(update={"validation": validation,
                                                                                  "test": test})})
    splits = _stratified_split(y, [str(c) for c in range(classes)], params, seed, "t")
    for found, expected in zip(splits, _sklearn_counts(y, validation, test, seed, classes)):
        np.testing.assert_array_equal(np.bincount(y[found], minlength=classes), expected)
    every = np.concatenate(splits)
    np.testing.assert_array_equal(np.sort(every), np.arange(rows))  # each row in exactly one split
    for part in splits:
        assert len(part) < 3 or not (np.all(np.diff(part) > 0) or np.all(np.diff(part) < 0))  # drawn, not in order


def test_the_same_seed_draws_the_same_rows_and_another_seed_others() -> None:
    y = np.arange(3000) % 4
    names = [str(c) for c in range(4)]
    first, again, other = (_stratified_split(y, names, PARAMS, seed, "t") for seed in (5, 5, 6))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[2], other[2])
    # the test rows are a sample of each class, spread over the file: not its first or last rows
    assert 0.35 < np.mean(first[2]) / 3000 < 0.65


def test_the_rows_drawn_stay_the_same() -> None:
    """A change to how the rows are drawn changes every stack's split and metrics: it must be deliberate (and noted
    in the changelog). NumPy keeps ``RandomState``'s stream the same across versions, so this holds on any."""
    y = np.arange(1000) % 7
    splits = _stratified_split(y, [str(c) for c in range(7)], PARAMS, 42, "t")
    digest = hashlib.sha256(b"".join(part.astype("<i8").tobytes() for part in splits)).hexdigest()
    assert [len(part) for part in splits] == [700, 150, 150]
    assert digest[:16] == "dbc28b3b4a93229d"


def test_a_regression_split_draws_every_row_once_in_the_sizes_asked() -> None:
    train, val, test = _random_split(1001, PARAMS, 3, "t")
    assert (len(train), len(val), len(test)) == (700, 150, 151)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val, test])), np.arange(1001))
    again = _random_split(1001, PARAMS, 3, "t")
    assert np.array_equal(test, again[2]) and not np.array_equal(test, np.sort(test))
