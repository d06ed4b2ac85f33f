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
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ArraySplit", "SplitStream", "iter_batches", "window_batches"]


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
    yield from window_batches((split.read(start, stop) for start, stop in windows), batch_size, generator)


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
