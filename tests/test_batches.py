"""The batch contract: one ordering rule for in-memory and streamed splits (aios_core.batches)."""

from __future__ import annotations

import numpy as np
import pytest

from aios_core import Dataset
from aios_core.batches import ArraySplit, IndexedSplit, iter_batches, window_batches


class _Windowed:
    """A stream over arrays that reads at most ``window_rows`` rows at a time, and counts what it read."""

    def __init__(self, x: np.ndarray, y: np.ndarray, window_rows: int) -> None:
        self.x, self.y, self.rows, self.window_rows = x, y, len(y), window_rows
        self.largest_read = 0

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        self.largest_read = max(self.largest_read, stop - start)
        return self.x[start:stop].copy(), self.y[start:stop].copy()


def _data(rows: int = 103) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)
    return x, np.arange(rows, dtype=np.int64)


@pytest.mark.parametrize("seed", [None, 7])
@pytest.mark.parametrize("window", [5, 32, 103])
def test_every_row_once_in_batches_of_the_size_asked(seed: int | None, window: int) -> None:
    x, y = _data()
    stream = _Windowed(x, y, window)
    batches = list(iter_batches(stream, 10, seed=seed))
    assert [len(b) for _, b in batches] == [10] * 10 + [3]
    seen = np.concatenate([b for _, b in batches])
    assert sorted(seen.tolist()) == list(range(103))
    for xb, yb in batches:  # features stay with their labels
        np.testing.assert_array_equal(xb[:, 0], yb * 3)
    assert stream.largest_read <= window
    if seed is None:
        assert seen.tolist() == list(range(103))
    else:
        assert seen.tolist() != list(range(103))


def test_one_window_stream_orders_rows_exactly_as_the_in_memory_split() -> None:
    x, y = _data()
    for epoch in (0, 1):
        held = [b for _, b in iter_batches(ArraySplit(x, y), 16, seed=3, epoch=epoch)]
        streamed = [b for _, b in iter_batches(_Windowed(x, y, 1000), 16, seed=3, epoch=epoch)]
        assert [b.tolist() for b in held] == [b.tolist() for b in streamed]
    first, second = ([b for _, b in iter_batches(ArraySplit(x, y), 16, seed=3, epoch=e)] for e in (0, 1))
    assert np.concatenate(first).tolist() != np.concatenate(second).tolist()


def test_dataset_batches_serve_arrays_and_streams_alike() -> None:
    x, y = _data(40)
    held = Dataset("d", x, y, x[:5], y[:5], x[:5], y[:5], ["a"], "h")
    streamed = Dataset("d", x[:4], y[:4], x[:5], y[:5], x[:5], y[:5], ["a"], "h",
                       streams={"train": _Windowed(x, y, 40)})
    assert not held.streaming and streamed.streaming
    assert held.rows("train") == streamed.rows("train") == 40
    assert streamed.summary()["sizes"]["train"] == 40 and streamed.summary()["streaming"] is True
    assert ([b.tolist() for _, b in held.batches("train", 8, seed=1)]
            == [b.tolist() for _, b in streamed.batches("train", 8, seed=1)])


def test_a_batch_size_below_one_is_refused() -> None:
    x, y = _data(4)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        list(iter_batches(ArraySplit(x, y), 0))


class _Grouped(_Windowed):
    """A stream that reads best in its own windows (as a Parquet stream reads whole row groups)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, bounds: list[int]) -> None:
        super().__init__(x, y, max(b - a for a, b in zip(bounds, bounds[1:])))
        self.windows = list(zip(bounds, bounds[1:]))
        self.reads: list[tuple[int, int]] = []

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        self.reads.append((start, stop))
        return super().read(start, stop)


def test_a_stream_that_gives_its_windows_is_read_in_them() -> None:
    x, y = _data()
    stream = _Grouped(x, y, [0, 30, 41, 80, 103])
    batches = list(iter_batches(stream, 16, seed=2))
    assert sorted(stream.reads) == stream.windows and stream.reads != stream.windows  # each once, shuffled
    assert sorted(np.concatenate([b for _, b in batches]).tolist()) == list(range(103))
    stream.reads.clear()
    list(iter_batches(stream, 16, window_rows=50))  # an explicit window_rows wins
    assert stream.reads == [(0, 50), (50, 100), (100, 103)]
def test_windows_handed_over_in_order_give_the_rules_batches() -> None:
    """``window_batches`` is the rule after the windows' order: a reader handed the windows (a Ray Data shard)
    in the order ``iter_batches`` draws gets ``iter_batches``'s batches."""
    x, y = _data()
    generator = np.random.default_rng([3, 1])
    starts = [list(range(0, 103, 32))[i] for i in generator.permutation(4)]
    handed = [b for _, b in window_batches(((x[s:s + 32], y[s:s + 32]) for s in starts), 10, generator)]
    drawn = [b for _, b in iter_batches(_Windowed(x, y, 32), 10, seed=3, epoch=1)]
    assert [b.tolist() for b in handed] == [b.tolist() for b in drawn]


def _scaled_copy(x: np.ndarray, index: np.ndarray, shift: np.ndarray, divisor: np.ndarray) -> np.ndarray:
    """What a datastore held before views: the rows gathered, scaled in float64 and rounded once to float32."""
    return ((x[index].astype(np.float64) - shift) / divisor).astype(np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_an_indexed_split_reads_and_batches_as_the_scaled_copy_it_replaces(dtype: type) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5000, 7)).astype(dtype)
    index = rng.permutation(5000)[:3001]  # more rows than one gathering block of 7 features holds
    y = rng.integers(0, 3, size=3001)
    shift, divisor = rng.normal(size=7), rng.uniform(0.5, 2.0, size=7)
    view, copy = IndexedSplit(x, y, index, shift, divisor), _scaled_copy(x, index, shift, divisor)
    assert view.rows == 3001 and view.num_features == 7
    features, labels = view.read(10, 2900)
    assert features.dtype == np.float32
    np.testing.assert_array_equal(features, copy[10:2900])
    np.testing.assert_array_equal(labels, y[10:2900])
    np.testing.assert_array_equal(view.take(np.array([3000, 0, 5])), copy[[3000, 0, 5]])
    for epoch in (0, 1):
        held = list(iter_batches(ArraySplit(copy, y), 64, seed=9, epoch=epoch))
        viewed = list(iter_batches(view, 64, seed=9, epoch=epoch))
        assert len(held) == len(viewed) == 47
        for (xa, ya), (xb, yb) in zip(held, viewed):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)


def test_an_unscaled_float32_view_reads_the_matrix_rows_themselves() -> None:
    x, y = _data(50)
    view = IndexedSplit(x, y[::-1].copy(), np.arange(50)[::-1].copy())
    np.testing.assert_array_equal(view.read(0, 50)[0], x[::-1])


def test_a_dataset_of_views_gathers_a_split_only_when_its_array_is_asked_for() -> None:
    x, y = _data(60)
    shift, divisor = np.full(3, 1.0), np.full(3, 2.0)
    parts = {"train": np.arange(0, 40), "val": np.arange(40, 50), "test": np.arange(50, 60)}
    views = {name: IndexedSplit(x, y[rows], rows, shift, divisor) for name, rows in parts.items()}
    dataset = Dataset("d", None, views["train"].y, None, views["val"].y, None, views["test"].y,  # type: ignore[arg-type]
                      ["a"], "h", views=views)
    assert "x_train" not in vars(dataset) and dataset.num_features == 3 and not dataset.streaming
    assert dataset.split("train") is views["train"] and dataset.rows("train") == 40
    batches = list(dataset.batches("train", 8, seed=2))
    sample = dataset.sample("train", 5, seed=3)
    assert "x_train" not in vars(dataset)  # batches and a sample gather their own rows alone
    expected = _scaled_copy(x, parts["train"], shift, divisor)
    rows = np.sort(np.random.default_rng(3).choice(40, size=5, replace=False))
    np.testing.assert_array_equal(sample, expected[rows])
    np.testing.assert_array_equal(np.concatenate([b for b, _ in batches])[np.argsort(np.concatenate([l for _, l in batches]))],
                                  expected)
    np.testing.assert_array_equal(dataset.x_train, expected)  # gathered now, and kept
    assert dataset.x_train is dataset.x_train
    assert dataset.summary()["sizes"] == {"train": 40, "val": 10, "test": 10}
    with pytest.raises(AttributeError, match="x_other"):
        dataset.x_other  # noqa: B018
