"""``drift_reference`` reads its quantiles and shares off sorted samples: the same figures as NumPy's definition."""

from __future__ import annotations

import numpy as np
import pytest
from aios_core.batches import IndexedSplit
from aios_core.drift import SAMPLE_ROWS, bin_shares, drift_reference


def _by_definition(x: np.ndarray, bins: int = 10) -> tuple[list[list[float]], list[list[float]]]:
    """Cuts and shares as ``np.quantile`` over the rows and ``bin_shares`` of each feature give them."""
    x = x.astype(np.float64)
    quantiles = np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1], axis=0)
    cuts = [np.unique(np.round(quantiles[:, j], 6)) for j in range(x.shape[1])]
    shares = [np.round(bin_shares(x[:, j], c), 6).tolist() for j, c in enumerate(cuts)]
    return [c.tolist() for c in cuts], shares


@pytest.mark.parametrize("kind", ["normal", "pixels", "one row", "two rows", "five rows", "constant", "float64"])
def test_cuts_and_shares_equal_numpys_quantiles_and_bins(kind: str) -> None:
    rng = np.random.default_rng(7)
    x = {"normal": lambda: rng.normal(size=(3000, 6)).astype(np.float32),
         "pixels": lambda: rng.integers(0, 17, size=(2000, 8)).astype(np.float32),  # values on the cuts
         "one row": lambda: rng.normal(size=(1, 3)).astype(np.float32),
         "two rows": lambda: rng.normal(size=(2, 3)).astype(np.float32),
         "five rows": lambda: rng.normal(size=(5, 3)).astype(np.float32),
         "constant": lambda: np.full((50, 2), 3.25, dtype=np.float32),
         "float64": lambda: rng.normal(size=(999, 4)) * 1e3}[kind]()
    reference = drift_reference(x, np.zeros(len(x), dtype=np.int64), ["a", "b"])
    cuts, shares = _by_definition(x)
    assert reference["cuts"] == cuts and reference["shares"] == shares


def test_a_sample_of_an_indexed_split_is_the_scaled_rows_sample() -> None:
    """A split larger than the sample, held as row numbers and scaled as read: the sample's rows, scaled."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(SAMPLE_ROWS + 5000, 4)).astype(np.float32)
    index = rng.permutation(len(x))[:SAMPLE_ROWS + 1000]
    shift, divisor = np.array([0.5, 0.0, -1.0, 2.0]), np.array([2.0, 1.0, 0.5, 3.0])
    split = IndexedSplit(x, np.zeros(len(index), dtype=np.int64), index, shift, divisor)
    scaled = split.take(np.arange(split.rows))
    reference = drift_reference(split, split.y, ["a"], bounds=(scaled.min(axis=0), scaled.max(axis=0)))
    positions = np.sort(np.random.default_rng(0).choice(split.rows, SAMPLE_ROWS, replace=False))
    cuts, shares = _by_definition(scaled[positions])
    assert reference["sampled_rows"] == SAMPLE_ROWS and reference["rows"] == split.rows
    assert reference["cuts"] == cuts and reference["shares"] == shares


def test_a_missing_value_takes_numpys_own_path() -> None:
    x = np.random.default_rng(1).normal(size=(300, 3))
    x[5, 1] = np.nan
    with np.errstate(invalid="ignore"):
        reference = drift_reference(x, np.zeros(300, dtype=np.int64), ["a"])
        cuts, shares = _by_definition(x)
    assert repr(reference["cuts"]) == repr(cuts) and repr(reference["shares"]) == repr(shares)
