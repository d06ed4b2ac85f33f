"""The stratified split gives exactly what scikit-learn's ``train_test_split`` gives, for the same seed."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from aios_data._prepare import _stratified_cut


@pytest.mark.parametrize(("rows", "classes", "test_size", "state"),
                         [(100, 2, 0.15, 0), (1797, 10, 0.15, 42), (5000, 7, 0.3, 7), (333, 3, 0.17647, 2**32 - 1)])
def test_stratified_cut_equals_train_test_split(rows: int, classes: int, test_size: float, state: int) -> None:
    rng = np.random.default_rng(rows)
    y = rng.choice(classes, size=rows, p=np.linspace(1, 3, classes) / np.linspace(1, 3, classes).sum())
    indices = np.sort(rng.choice(rows * 2, size=rows, replace=False))  # rows that are not 0..n-1
    expected = train_test_split(indices, test_size=test_size, stratify=y, random_state=state)
    found = _stratified_cut(indices, y, test_size, state)
    assert all(np.array_equal(a, b) for a, b in zip(found, expected))


@pytest.mark.parametrize("kind", ["gaps", "negative", "text", "many", "uint8"])
def test_stratified_cut_equals_train_test_split_for_any_labels(kind: str) -> None:
    """Labels with unused codes between them, negative ones, text, more than 256 classes, a byte dtype: the same
    rows as scikit-learn (which numbers the classes by ``np.unique``), the whole set not given (``rows`` None)."""
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 300 if kind == "many" else 6, size=4000)
    y = {"gaps": codes * 7 + 3, "negative": codes - 3, "text": np.array([f"c{c}" for c in codes], dtype=object),
         "many": codes, "uint8": codes.astype(np.uint8)}[kind]
    expected = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=11)
    found = _stratified_cut(None, y, 0.2, 11)
    assert all(np.array_equal(a, b) for a, b in zip(found, expected))
