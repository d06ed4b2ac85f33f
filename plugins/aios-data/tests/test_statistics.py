"""ColumnStatistics and Scaling: the same figures whatever the chunks, scaling as a server computes it."""

from __future__ import annotations

import numpy as np
import pytest
from aios_data import PreprocessParams
from aios_data._statistics import ColumnStatistics, column_statistics, fit_scaling


def _rows(seed: int = 0, rows: int = 20_000, features: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(rows, features)) * [1, 10, 100, 0.01, 1] + [0, 5, 1e4, -3, 7]).astype(np.float32)


@pytest.mark.parametrize("sizes", [[20_000], [1, 9_999, 10_000], [8192, 8192, 3616], [7] * 2000 + [6000]])
def test_chunked_statistics_equal_numpys_over_all_rows(sizes: list[int]) -> None:
    x = _rows()
    statistics = ColumnStatistics()
    for start, size in zip(np.cumsum([0, *sizes[:-1]]), sizes):
        statistics.update(x[start:start + size])
    found = statistics.finish()
    exact = x.astype(np.float64)
    assert np.array_equal(found.count, np.full(5, 20_000.0))
    assert np.allclose(found.mean, exact.mean(axis=0), rtol=1e-12, atol=1e-12)
    assert np.allclose(found.std, exact.std(axis=0), rtol=1e-10)
    assert np.array_equal(found.min, exact.min(axis=0)) and np.array_equal(found.max, exact.max(axis=0))


def test_missing_values_are_left_out_per_feature() -> None:
    x = _rows(rows=1000)
    x[::3, 1] = np.nan
    x[:, 4] = np.nan
    found = column_statistics(x)
    kept = x[~np.isnan(x[:, 1]), 1].astype(np.float64)
    assert found.count.tolist() == [1000, len(kept), 1000, 1000, 0]
    assert np.isclose(found.mean[1], kept.mean()) and np.isclose(found.std[1], kept.std())
    assert np.isnan(found.mean[4]) and np.isnan(found.min[4])


def test_a_chunk_of_another_width_is_refused() -> None:
    statistics = ColumnStatistics()
    statistics.update(np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="a chunk of 5 features after chunks of 4"):
        statistics.update(np.zeros((3, 5), dtype=np.float32))


def test_standardizing_in_place_equals_a_float64_computation_rounded_once() -> None:
    x = _rows()
    statistics = column_statistics(x)
    scaling = fit_scaling(PreprocessParams(scaling="standardize"), statistics)
    expected = ((x.astype(np.float64) - statistics.mean) / statistics.std).astype(np.float32)
    chunk = x.copy()
    assert scaling.apply(chunk) is chunk
    assert np.array_equal(chunk, expected)
    assert scaling.record["mean"] == statistics.mean.tolist()


def test_minmax_leaves_a_constant_column_shifted_only() -> None:
    x = np.array([[1.0, 2.0], [3.0, 2.0], [5.0, 2.0]], dtype=np.float32)
    scaling = fit_scaling(PreprocessParams(scaling="minmax"), column_statistics(x))
    assert scaling.apply(x).tolist() == [[0.0, 0.0], [0.5, 0.0], [1.0, 0.0]]
    assert scaling.record == {"scaling": "minmax", "min": [1.0, 2.0], "range": [4.0, 1.0]}


def test_scale_and_none_need_no_statistics() -> None:
    x = np.array([[255.0, 0.0]], dtype=np.float32)
    assert fit_scaling(PreprocessParams(scaling="scale", scale_factor=255)).apply(x).tolist() == [[1.0, 0.0]]
    assert fit_scaling(PreprocessParams(scaling="none")).apply(x).tolist() == [[1.0, 0.0]]


def test_merged_statistics_are_those_of_all_the_rows() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(50.0, 3.0, size=(5000, 5))
    x[17, 2] = np.nan
    whole, first, second, empty = ColumnStatistics(), ColumnStatistics(), ColumnStatistics(), ColumnStatistics()
    whole.update(x)
    first.update(x[:1234])
    second.update(x[1234:])
    first.merge(second)
    first.merge(empty)
    empty.merge(first)
    for merged in (first.finish(), empty.finish()):
        expected = whole.finish()
        np.testing.assert_array_equal(merged.count, expected.count)
        np.testing.assert_allclose(merged.mean, expected.mean, rtol=1e-13)
        np.testing.assert_allclose(merged.std, expected.std, rtol=1e-11)
        np.testing.assert_array_equal(merged.min, expected.min)
        np.testing.assert_array_equal(merged.max, expected.max)
    with pytest.raises(ValueError, match="statistics of 3 features into statistics of 5"):
        first.merge(_seen(np.ones((2, 3))))


def _seen(x: np.ndarray) -> ColumnStatistics:
    statistics = ColumnStatistics()
    statistics.update(x)
    return statistics


def test_the_train_rows_statistics_on_two_threads_equal_one_pass() -> None:
    """A matrix large enough for the second thread: the same figures as one pass over the gathered rows, every
    train row reported once."""
    from aios_data._prepare import _TWO_THREADS_ROWS, Reporter, _rows_statistics

    rng = np.random.default_rng(12)
    x = (rng.normal(size=(_TWO_THREADS_ROWS + 999, 3)) * [1.0, 10.0, 1e-3] + [0.0, 1e4, -5.0]).astype(np.float32)
    rows = rng.permutation(len(x))[: len(x) * 7 // 10]
    reports: list[tuple] = []
    reporter = Reporter(lambda *report: reports.append(report), "statistics", len(rows))
    got = _rows_statistics(x, rows, reporter).finish()
    reporter.finish()
    expected = _seen(x[np.sort(rows)]).finish()
    np.testing.assert_array_equal(got.count, expected.count)
    np.testing.assert_allclose(got.mean, expected.mean, rtol=1e-12)
    np.testing.assert_allclose(got.std, expected.std, rtol=1e-10)
    np.testing.assert_array_equal(got.min, expected.min)
    np.testing.assert_array_equal(got.max, expected.max)
    assert reports[-1] == ("statistics", len(rows), len(rows), "rows")
    assert [done for _, done, *_ in reports] == sorted(done for _, done, *_ in reports)
