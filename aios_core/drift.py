"""What a live server needs to tell whether its inputs still look like the training data.

A datastore records ``drift_reference(x_train, y_train, ...)`` at data time (aios-data puts it in the
data summary's ``preprocessing``, so it travels with the model to a server or a bundle); a server
compares a window of live rows with it by ``psi``. numpy only, imported when used.

The reference holds, per feature, the cut points of its training deciles and the share of training
rows in each bin (a feature with few distinct values has fewer bins), the training range, and the
share of each class in the training labels.

Population stability index: ``sum((live - train) * ln(live / train))`` over the bins, with empty
bins counted as ``PSI_FLOOR``. The usual reading: below 0.1 no shift, 0.1-0.25 a moderate shift,
above ``PSI_ALERT`` = 0.25 a significant one. A window of n live rows scores about (bins - 1) / n
with no shift at all (sampling noise): 10 bins and 270 rows, about 0.03.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PSI_ALERT", "PSI_FLOOR", "bin_shares", "drift_reference", "psi"]

PSI_FLOOR = 1e-4
PSI_ALERT = 0.25
BINS = 10
SAMPLE_ROWS = 20_000


def drift_reference(x_train: Any, y_train: np.ndarray, class_names: list[str], bins: int = BINS,
                    feature_names: list[str] | None = None, *,
                    bounds: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    """Per-feature quantile bins, shares and range of the training rows, and the training class shares (JSON-able).

    Bins and shares come from at most ``SAMPLE_ROWS`` rows (a seeded sample of larger splits: MNIST's
    60,000 x 784 would otherwise take a float64 copy of several hundred MB); the range from all rows.
    ``x_train`` is an array, or a split with ``rows`` and ``take(positions)`` (``aios_core.batches.IndexedSplit``),
    of which only the sample is gathered; ``bounds`` (per feature, the min and max of all rows) then gives the range.
    """
    if isinstance(x_train, np.ndarray) or bounds is None:
        x = np.asarray(x_train)
        rows, take = len(x), x.__getitem__
        low, high = _down_columns(np.minimum, x).astype(np.float64), _down_columns(np.maximum, x).astype(np.float64)
    else:
        rows, take = x_train.rows, x_train.take
        low, high = (np.asarray(bound, dtype=np.float64) for bound in bounds)
    positions = (np.sort(np.random.default_rng(0).choice(rows, SAMPLE_ROWS, replace=False)) if rows > SAMPLE_ROWS
                 else np.arange(rows))
    # One feature per row, sorted: the quantiles are read off each row and a bin's share is where its cuts fall
    sample = take(positions)
    columns = np.array(sample.reshape(len(sample), -1).T, dtype=np.float64, order="C")
    columns.sort(axis=1)  # NaN last
    levels = np.linspace(0, 1, bins + 1)[1:-1]
    ordered = columns.size > 0 and not np.isnan(columns[:, -1]).any()
    quantiles = (_sorted_quantiles(columns, levels) if ordered
                 else np.quantile(columns, levels, axis=1))  # (bins - 1, features)
    # Rounded before the shares are counted, so a server binning live rows with the recorded (JSON) cuts
    # puts a training value in the same bin as here: discrete features (pixels) sit exactly on their cuts.
    cuts = [np.unique(np.round(quantiles[:, j], 6)) for j in range(len(columns))]
    shares = [(_sorted_bin_shares if ordered else bin_shares)(column, c) for column, c in zip(columns, cuts)]
    x = columns.T
    classes = np.bincount(np.asarray(y_train, dtype=np.int64), minlength=len(class_names)) / max(len(y_train), 1)
    return {"method": "psi", "bins": bins, "rows": int(rows), "sampled_rows": int(x.shape[0]),
            "features": list(feature_names) if feature_names else [str(j) for j in range(x.shape[1])],
            "cuts": [c.tolist() for c in cuts], "shares": [np.round(s, 6).tolist() for s in shares],
            # outward to 6 decimals: the training rows themselves are inside their recorded range
            "min": (np.floor(low * 1e6) / 1e6).tolist(), "max": (np.ceil(high * 1e6) / 1e6).tolist(),
            "classes": [str(name) for name in class_names], "class_shares": np.round(classes, 6).tolist()}


def _sorted_quantiles(columns: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """``np.quantile(columns, levels, axis=1)`` (its default, linear method) of rows already sorted, without NaN:
    the same interpolation between the same two order statistics, without NumPy's partition of every row."""
    count = columns.shape[1]
    virtual = (count - 1) * levels
    below = np.floor(virtual)
    gamma = (virtual - below)[:, None]
    below = below.astype(np.intp)
    above = np.minimum(below + 1, count - 1)  # as NumPy: one row reads its only value on both sides
    low, high = columns[:, below].T, columns[:, above].T  # (levels, features)
    difference = high - low
    result = low + difference * gamma
    np.subtract(high, difference * (1 - gamma), out=result, where=np.broadcast_to(gamma >= 0.5, result.shape))
    return result


def _sorted_bin_shares(column: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """``bin_shares(column, cuts)`` of a sorted ``column``: the values below each cut are where it would go."""
    below = np.searchsorted(column, cuts, side="left")
    return np.diff(below, prepend=0, append=len(column)) / max(len(column), 1)


def _down_columns(ufunc: np.ufunc, x: np.ndarray, fold: int = 64) -> np.ndarray:
    """``ufunc.reduce(x, axis=0)``: NumPy reduces down axis 0 a row at a time, so ``fold`` rows are made one first."""
    rows = len(x) - len(x) % fold
    if x.ndim != 2 or rows == 0 or not x.flags.c_contiguous:
        return ufunc.reduce(x, axis=0)
    folded = ufunc.reduce(x[:rows].reshape(-1, fold * x.shape[1]), axis=0).reshape(fold, -1)
    return ufunc.reduce(np.concatenate([folded, x[rows:]]), axis=0)


def bin_shares(values: np.ndarray, cuts: np.ndarray | list[float]) -> np.ndarray:
    """The share of ``values`` in each of the ``len(cuts) + 1`` bins (a value equal to a cut goes above it)."""
    counts = np.bincount(np.searchsorted(np.asarray(cuts), values, side="right"), minlength=len(cuts) + 1)
    return counts / max(len(values), 1)


def psi(expected: np.ndarray | list[float], actual: np.ndarray | list[float]) -> float:
    """The population stability index of ``actual`` shares against ``expected`` shares (same bins)."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), PSI_FLOOR)
    a = np.maximum(np.asarray(actual, dtype=np.float64), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))
