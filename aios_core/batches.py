"""How a trainer or an evaluation reads a split: in batches, from memory or streamed (``Dataset.batches``).

One rule orders an epoch's rows whether the split is held in memory or streamed from
files, so the two give the same batches when the split fits in one shuffle window:

- the split's rows are cut into consecutive *windows* of ``window_rows`` rows (an
  in-memory split is one window), or into the windows the stream gives (``windows``:
  ``(start, stop)`` ranges in order, say aligned with the row groups it decodes);
- a generator seeded with ``(seed, epoch)`` permutes the windows (when there are
  several), then the rows inside each window as it is read;
- the rows, in that order, are cut into batches of ``batch_size`` (the last may be
  shorter); batches run across window boundaries.

Without a seed the rows come in split order (evaluation, statistics). Only one
window is held at a time, so memory is bounded by ``window_rows`` whatever the split's size.

An ``IndexedSplit`` (a split held in memory as row numbers into one matrix, scaled as read)
is one window too, but is never gathered whole: each batch gathers and scales its own rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ArraySplit", "IndexedSplit", "SplitStream", "iter_batches", "window_batches"]


@runtime_checkable
class SplitStream(Protocol):
    """One split read a range of rows at a time instead of held whole (a streaming datastore provides these).

    ``rows`` is the split's size; ``window_rows`` the rows it reads at once when shuffling
    (what bounds memory); ``read(start, stop)`` returns the split's rows ``start:stop``
    (positions within the split, not the file) as float32 features and labels, in the
    same form as ``Dataset.x_*`` / ``y_*``. A stream may also have ``windows``, the
    ``(start, stop)`` ranges it reads best, in order and covering ``0..rows`` (none longer
    than ``window_rows``), used instead of equal windows when no ``window_rows`` is asked.
    """

    rows: int
    window_rows: int

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]: ...


class ArraySplit:
    """A split held in memory, seen through the ``SplitStream`` contract: one window, read without copying."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y
        self.rows = self.window_rows = len(y)

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        return self.x[start:stop], self.y[start:stop]

    def take(self, positions: np.ndarray) -> np.ndarray:
        """The features of the rows at ``positions`` (within the split)."""
        return self.x[positions]


class IndexedSplit:
    """A split held in memory as the numbers of its rows in one matrix ``x``, scaled as the rows are read.

    ``y`` holds the split's labels (in split order); row ``i`` of the split is row ``index[i]`` of
    ``x``, read as ``((x[index[i]] - shift) / divisor)`` computed in float64 and rounded once to
    float32 (``shift`` and ``divisor`` per feature, or scalars). Splits of one data set share ``x``:
    no scaled copy is made until someone asks for one (``read`` of a whole split). Batches
    (``iter_batches``) gather their own rows: one window, as an ``ArraySplit``, so both give the
    same batches.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, index: np.ndarray, shift: np.ndarray | float = 0.0,
                 divisor: np.ndarray | float = 1.0) -> None:
        import numpy as np

        self.x, self.y, self.index = x, y, index
        self.shift, self.divisor = shift, divisor
        self._identity = x.dtype == np.float32 and bool(np.all(np.asarray(shift) == 0) and np.all(np.asarray(divisor) == 1))
        self.rows = self.window_rows = len(index)

    @property
    def num_features(self) -> int:
        return int(self.x.shape[1])

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        return self.take(self.index[start:stop], numbers=True), self.y[start:stop]

    def take(self, positions: np.ndarray, *, numbers: bool = False) -> np.ndarray:
        """The scaled float32 features of the split's rows at ``positions`` (rows of ``x`` when ``numbers``)."""
        import numpy as np

        rows = np.asarray(positions if numbers else self.index[positions], dtype=np.intp)
        out = np.empty((len(rows), self.x.shape[1]), dtype=np.float32)
        block_rows = max(1, (1 << 21) // max(1, self.x.shape[1] * 8))  # a float64 block of 2 MiB stays in cache
        buffer = np.empty(0)
        for begin in range(0, len(rows), block_rows):
            part = rows[begin:begin + block_rows]
            block = out[begin:begin + len(part)]
            if buffer.shape != block.shape and not self._identity:
                buffer = np.empty(block.shape)
            gathered = block if self.x.dtype == np.float32 else buffer
            np.take(self.x, part, axis=0, out=gathered, mode="clip")  # "raise" would buffer; numbers are in range
            if not self._identity:
                np.subtract(gathered, self.shift, out=buffer)
                np.divide(buffer, self.divisor, out=block, casting="same_kind")  # in float64, rounded once
        return out

    def _rows(self, start: int, stop: int) -> tuple[_GatheredRows, np.ndarray]:
        """Rows ``start:stop`` as ``iter_batches`` reads a window: gathered a batch at a time, when indexed."""
        return _GatheredRows(self, start, stop), self.y[start:stop]


class _GatheredRows:
    """Rows ``start:stop`` of an ``IndexedSplit``, gathered only when indexed by positions (``rows[take]``)."""

    def __init__(self, split: IndexedSplit, start: int, stop: int) -> None:
        self.split, self.start, self.stop = split, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, positions: np.ndarray) -> np.ndarray:
        return self.split.take(self.split.index[self.start:self.stop][positions], numbers=True)


def iter_batches(split: SplitStream, batch_size: int, *, seed: int | None = None, epoch: int = 0,
                 window_rows: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(x, y)`` batches of ``split`` covering each row once, in the module's order (shuffled when ``seed`` is given).

    ``window_rows`` overrides the split's own window (never more than its rows). A batch
    is a new array (rows gathered by index), so a trainer may keep or modify it.
    """
    import numpy as np

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    rows = split.rows
    windows = getattr(split, "windows", None) if window_rows is None else None
    if windows is None:
        window = max(1, min(window_rows or split.window_rows or rows, rows or 1))
        windows = [(start, min(start + window, rows)) for start in range(0, rows, window)]
    generator = np.random.default_rng([seed, epoch]) if seed is not None else None
    if generator is not None and len(windows) > 1:
        windows = [windows[i] for i in generator.permutation(len(windows))]
    read = getattr(split, "_rows", split.read)  # an IndexedSplit's window is gathered a batch at a time
    yield from window_batches((read(start, stop) for start, stop in windows), batch_size, generator)


def window_batches(windows: Iterable[tuple[np.ndarray, np.ndarray]], batch_size: int,
                   generator: np.random.Generator | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(x, y)`` batches of ``windows`` taken in the order given: the module's rule after the windows' order.

    The rows of each window are permuted by ``generator`` as the window arrives (kept in
    order without one) and cut into batches of ``batch_size`` that run across window
    boundaries. ``iter_batches`` uses it after drawing the windows' order; a reader that
    is handed its windows (a Ray Data shard's blocks) uses it as they come.
    """
    import numpy as np

    pending: list[tuple[np.ndarray, np.ndarray]] = []
    pending_rows = 0
    for x, y in windows:
        order = generator.permutation(len(y)) if generator is not None else np.arange(len(y))
        offset = 0
        if pending_rows:  # finish the batch the previous window left open
            take = order[:batch_size - pending_rows]
            pending.append((x[take], y[take]))
            pending_rows += len(take)
            offset = len(take)
            if pending_rows == batch_size:
                yield _joined(pending)
                pending, pending_rows = [], 0
        for begin in range(offset, len(order), batch_size):
            take = order[begin:begin + batch_size]
            if len(take) == batch_size:
                yield x[take], y[take]
            else:
                pending, pending_rows = [(x[take], y[take])], len(take)
    if pending_rows:
        yield _joined(pending)


def _joined(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    if len(parts) == 1:
        return parts[0]
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])
