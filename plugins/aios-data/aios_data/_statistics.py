"""Feature statistics accumulated chunk by chunk, and the scaling they give, applied chunk by chunk in place.

One implementation for every way rows arrive: the in-memory path feeds the train split in
blocks of ``BLOCK_ROWS``, a streaming reader feeds each batch it reads. The same rows give the
same statistics whatever the chunks (up to float64 rounding), and the scaling of a chunk does
not depend on the chunk::

    statistics = ColumnStatistics()
    for chunk in train_chunks:          # float32 or float64, shape (n, features)
        statistics.update(chunk)
    scaling = fit_scaling(params.preprocess, statistics.finish())
    for chunk in chunks:                # any split, any chunking
        scaling.apply(chunk)            # in place: (x - shift) / divisor, computed in float64
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from aios_data import PreprocessParams

BLOCK_ROWS = 8192
"""Rows handled at a time by the whole-array helpers: a float64 block of 64 features is 4 MiB."""


@dataclass(frozen=True)
class Statistics:
    """Per feature, over the rows seen, ignoring NaN: count, mean, population std, min and max (float64).

    A feature without any value has count 0 and nan elsewhere.
    """

    count: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray

    @property
    def rows(self) -> int:
        """The most values any feature had: the number of rows when nothing was missing."""
        return int(self.count.max()) if self.count.size else 0


class ColumnStatistics:
    """Statistics of (n, features) chunks, merged as they come (Chan, Golub and LeVeque's pairwise update).

    Each chunk's sums are taken in float64 whatever its dtype, so float32 chunks are never copied whole
    in float64 (one block of ``BLOCK_ROWS`` at a time at most). NaN values are left out, per feature.
    """

    def __init__(self) -> None:
        self._count: np.ndarray | None = None
        self._mean = self._squares = self._low = self._high = np.empty(0)
        self._block, self._tiled = np.empty((0, 0)), np.empty(0)

    def update(self, chunk: np.ndarray) -> None:
        """Add the rows of ``chunk`` (2-D, one row per sample, the same width every time)."""
        if chunk.ndim != 2:
            raise ValueError(f"ColumnStatistics.update takes a 2-D (rows, features) array, not shape {chunk.shape}")
        width = chunk.shape[1]
        if self._count is None:
            self._count = np.zeros(width)
            self._mean, self._squares = np.zeros(width), np.zeros(width)
            self._low, self._high = np.full(width, np.nan), np.full(width, np.nan)
        elif width != len(self._count):
            raise ValueError(f"ColumnStatistics.update: a chunk of {width} features after chunks of {len(self._count)}")
        for start in range(0, len(chunk), BLOCK_ROWS):
            self._update_block(chunk[start:start + BLOCK_ROWS])

    def merge(self, other: ColumnStatistics) -> None:
        """Add the rows ``other`` has seen (the same width): as if they had been given here."""
        if other._count is None:
            return
        if self._count is None:
            self._count, self._mean, self._squares = other._count.copy(), other._mean.copy(), other._squares.copy()
            self._low, self._high = other._low.copy(), other._high.copy()
            return
        if len(other._count) != len(self._count):
            raise ValueError(f"ColumnStatistics.merge: statistics of {len(other._count)} features into "
                             f"statistics of {len(self._count)}")
        self._merge(other._count, other._mean, other._squares, other._low, other._high)

    def _update_block(self, block: np.ndarray) -> None:
        if len(block) == 0:
            return
        moments = self._block_moments(block)
        if moments is None:  # a NaN somewhere: per-feature counts and masks
            moments = self._block_moments_missing(block)
        self._merge(*moments)

    def _merge(self, count: np.ndarray, mean: np.ndarray, squares: np.ndarray, low: np.ndarray,
               high: np.ndarray) -> None:
        """Chan, Golub and LeVeque's pairwise update with the moments of more rows."""
        total = self._count + count
        delta = mean - self._mean
        share = count / np.maximum(total, 1)
        self._mean = self._mean + delta * share
        self._squares = self._squares + squares + delta**2 * self._count * share
        self._count = total
        self._low = np.fmin(self._low, low.astype(np.float64))
        self._high = np.fmax(self._high, high.astype(np.float64))

    def _block_moments(self, block: np.ndarray) -> tuple[np.ndarray, ...] | None:
        """Count, mean, sum of squared deviations, min and max of a block without NaN (None when it has one).

        One pass of shifted sums in float64: ``d = x - shift`` with ``shift`` the running mean (the first row
        for the first block), ``mean = shift + sum(d) / n`` and ``squares = sum(d**2) - sum(d)**2 / n``, exact
        enough because the shift is near the mean. ``_FOLD`` rows are folded into one long row, so NumPy's
        loops run over ``_FOLD * features`` values, not one row of a few features at a time.
        """
        rows, width = block.shape
        first = self._count is not None and self._count[0] > 0
        shift = self._mean if first and np.all(self._count == self._count[0]) else block[0].astype(np.float64)
        folded = rows - rows % _FOLD
        if not block.flags.c_contiguous or folded == 0:
            values = block - shift
            sums, squares = values.sum(axis=0), np.einsum("ij,ij->j", values, values)
            low, high = block.min(axis=0), block.max(axis=0)
        else:
            if self._block.shape != (folded // _FOLD, _FOLD * width):
                self._block = np.empty((folded // _FOLD, _FOLD * width))
                self._tiled = np.empty(_FOLD * width)
            values, tiled = self._block, self._tiled
            tiled.reshape(_FOLD, width)[...] = shift
            part = block[:folded].reshape(-1, _FOLD * width)
            values[...] = part  # then subtract in float64: a subtraction that casts as it goes is slower
            np.subtract(values, tiled, out=values)
            sums = np.add.reduce(values, axis=0).reshape(_FOLD, width).sum(axis=0)
            squares = np.einsum("ij,ij->j", values, values).reshape(_FOLD, width).sum(axis=0)
            low = np.minimum.reduce(part, axis=0).reshape(_FOLD, width).min(axis=0)
            high = np.maximum.reduce(part, axis=0).reshape(_FOLD, width).max(axis=0)
            if folded < rows:
                rest = block[folded:] - shift
                sums, squares = sums + rest.sum(axis=0), squares + np.einsum("ij,ij->j", rest, rest)
                low = np.minimum(low, block[folded:].min(axis=0))
                high = np.maximum(high, block[folded:].max(axis=0))
        if np.isnan(sums).any():
            return None
        offset = sums / rows
        return (np.full(width, float(rows)), shift + offset, np.maximum(squares - sums * offset, 0.0),
                low, high)

    @staticmethod
    def _block_moments_missing(block: np.ndarray) -> tuple[np.ndarray, ...]:
        values = block.astype(np.float64)
        present = ~np.isnan(values)
        count = present.sum(axis=0).astype(np.float64)
        values[~present] = 0.0
        mean = values.sum(axis=0) / np.maximum(count, 1)
        values -= mean
        values[~present] = 0.0
        squares = np.einsum("ij,ij->j", values, values)
        return count, mean, squares, np.fmin.reduce(block, axis=0), np.fmax.reduce(block, axis=0)

    def finish(self) -> Statistics:
        """The statistics of every row given so far (the accumulator can keep taking chunks)."""
        if self._count is None:
            raise ValueError("ColumnStatistics.finish: no rows were given")
        count = self._count
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, self._mean, np.nan)
            std = np.sqrt(self._squares / count)
        return Statistics(count=count.copy(), mean=mean, std=std, min=self._low.copy(), max=self._high.copy())


@dataclass
class Scaling:
    """``(x - shift) / divisor`` per feature, and its JSON record (``Dataset.preprocessing``)."""

    shift: np.ndarray | float
    divisor: np.ndarray | float
    record: dict[str, Any]

    @property
    def identity(self) -> bool:
        return self.record["scaling"] == "none"

    def apply(self, chunk: np.ndarray) -> np.ndarray:
        """Scale ``chunk`` (float32 or float64, (n, features)) in place and return it.

        Each block is computed in float64 and rounded once to the chunk's dtype, so a float32 row
        scaled here equals ``((row.astype(float64) - shift) / divisor).astype(float32)``, what a
        server computes from the record.
        """
        if self.identity:
            return chunk
        buffer = np.empty(0)
        for start in range(0, len(chunk), BLOCK_ROWS):
            block = chunk[start:start + BLOCK_ROWS]
            if block.dtype == np.float64:
                np.subtract(block, self.shift, out=block)
                np.divide(block, self.divisor, out=block)
                continue
            if buffer.shape != block.shape:
                buffer = np.empty(block.shape)
            np.subtract(block, self.shift, out=buffer)
            np.divide(buffer, self.divisor, out=block, casting="same_kind")  # in float64, rounded once
        return chunk


_FOLD = 64


def needs_statistics(preprocess: PreprocessParams) -> bool:
    """Whether ``fit_scaling`` needs the train rows' statistics (standardize, minmax) or only the parameters."""
    return preprocess.scaling in ("standardize", "minmax")


def fit_scaling(preprocess: PreprocessParams, statistics: Statistics | None = None) -> Scaling:
    """The scaling ``preprocess`` asks for; ``statistics`` of the train rows when ``needs_statistics``."""
    scaling = preprocess.scaling
    if scaling == "none":
        return Scaling(0.0, 1.0, {"scaling": "none"})
    if scaling == "scale":
        factor = preprocess.scale_factor
        return Scaling(0.0, factor, {"scaling": "scale", "factor": int(factor) if factor.is_integer() else factor})
    if statistics is None:
        raise ValueError(f"fit_scaling: scaling {scaling!r} needs the statistics of the train rows")
    shift, divisor = ((statistics.mean, statistics.std) if scaling == "standardize"
                      else (statistics.min, statistics.max - statistics.min))
    # a column without values (all missing, drop_missing off) is left as it is; a constant one is only shifted
    shift = np.where(np.isfinite(shift), shift, 0.0)
    divisor = np.where(np.isfinite(divisor) & (divisor > 0), divisor, 1.0)
    names = ("mean", "std") if scaling == "standardize" else ("min", "range")
    return Scaling(shift, divisor, {"scaling": scaling, names[0]: shift.tolist(), names[1]: divisor.tolist()})


def column_statistics(x: np.ndarray, advance: Callable[[int], None] | None = None) -> Statistics:
    """The statistics of all rows of ``x``, block by block (``advance(rows)`` after each block)."""
    statistics = ColumnStatistics()
    for start in range(0, max(len(x), 1), BLOCK_ROWS):
        statistics.update(x[start:start + BLOCK_ROWS])
        if advance is not None:
            advance(len(x[start:start + BLOCK_ROWS]))
    return statistics.finish()
