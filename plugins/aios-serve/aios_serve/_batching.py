"""Adaptive micro-batching: concurrent requests to one model run as one ONNX Runtime call.

Like Triton's dynamic batcher, a batch holds at most ``max_batch_size`` rows and a
request waits at most ``max_delay_ms``. The wait is adaptive:

- a request that finds no other request queued or arriving runs at once, so batching
  costs nothing at one client;
- the batcher waits for more rows only while more requests for the model have arrived
  and are still being read, and never longer than one model call takes (waiting longer
  than running the batch already gathered would cost more than it saves);
- requests that arrive while a model call runs (a batch, or a request that ran alone) form
  the next batch.

Calls of models whose one-row call (timed when loaded) is faster than ``INLINE_SECONDS``
run in the event loop: handing them to a thread
costs about as much as the call. Slower ones run in the server's thread pool, so the
loop keeps reading requests meanwhile.

Such quick models also coalesce with zero delay (``soon``): the requests read in one turn
of the event loop (one wake-up of the poller delivers the reads of every ready socket, and
each request is decoded in its read's callback) run as one model call at the end of that
turn, scheduled with ``call_soon`` by the first of them. Both uvloop and asyncio run
``call_soon`` callbacks only after every I/O callback of the current poll, and before the
next poll's, so nothing waits for anything that has not already arrived. A request that
ran in a turn alone is answered as ``run_now`` would. The HTTP connection offers a request
for coalescing only when the previous one came from another connection, so one busy client
(even among idle connections) is answered at once, with ``run_now``, as before.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from aios_serve._metrics import ModelMetrics
    from aios_serve._repository import LoadedModel

INLINE_SECONDS = 0.0003
"""A model call expected to take less than this runs in the event loop instead of a thread."""
INLINE_ROWS = 64
"""Larger requests always run in the thread pool, whatever the model's one-row time."""
LATER = object()
"""Returned instead of an answer when the request went to ``Batcher.soon``: its answer follows later in this turn."""

Done = Callable[["np.ndarray | None", "BaseException | None"], None]
"""What ``soon`` calls with a request's probabilities, or with the error of its model call."""

log = logging.getLogger("aios.serve")


class Batcher:
    """Gathers the requests of one loaded model version; lives in the server's event loop."""

    def __init__(self, model: LoadedModel, executor: Executor, metrics: ModelMetrics,
                 max_batch_size: int, max_delay_ms: float) -> None:
        self.model = model
        self.executor = executor
        self.metrics = metrics
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay_ms / 1000.0
        self.incoming = 0
        self.inline = model.call_seconds < INLINE_SECONDS
        self.wait = min(self.max_delay, model.call_seconds)
        self._queue: collections.deque[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = collections.deque()
        self._rows = 0
        self._running = 0  # model calls in flight, alone or batched
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._soon: list[tuple[np.ndarray, Done]] = []

    def arriving(self) -> None:
        """A request for this model was received; its rows will come through ``infer`` or ``abandon``."""
        self.incoming += 1

    def abandon(self) -> None:
        """An announced request will not come (bad input, client gone): stop waiting for it."""
        self.incoming -= 1
        self._wakeup.set()

    def runs_at_once(self) -> bool:
        """Whether a request arriving now would run alone, at once, in the event loop (a quick model, nothing
        queued, running or arriving): then ``run_now`` may answer it without a task."""
        return self.inline and not self._queue and not self._running and self.incoming == 0

    def run_now(self, batch: np.ndarray) -> np.ndarray:
        """One model call in this thread (for a request ``runs_at_once`` allowed)."""
        self.metrics.batch_size.observe(len(batch))
        return self.model.predict(batch)

    def soon(self, rows: np.ndarray, done: Done) -> None:
        """Run ``rows`` at the end of this turn of the event loop, in one model call with the rows of every other
        request given to ``soon`` in the turn (at most ``max_batch_size`` rows a call); then ``done(probabilities,
        None)``, or ``done(None, error)`` when its model call failed. For a request ``runs_at_once`` allowed, with
        ``max_batch_size`` above 1."""
        self._soon.append((rows, done))
        if len(self._soon) == 1:
            asyncio.get_running_loop().call_soon(self._run_soon)

    def _run_soon(self) -> None:
        waiting, self._soon = self._soon, []
        if len(waiting) == 1:  # alone in its turn: as ``run_now``
            self._call(waiting)
            return
        limit = max(1, min(self.max_batch_size, INLINE_ROWS))
        start = 0
        while start < len(waiting):
            end, rows = start + 1, len(waiting[start][0])
            while end < len(waiting) and rows + len(waiting[end][0]) <= limit:
                rows += len(waiting[end][0])
                end += 1
            self._call(waiting[start:end])
            start = end

    def _call(self, group: list[tuple[np.ndarray, Done]]) -> None:
        """One model call for ``group``'s requests; each gets its rows' share. When a call of several requests
        fails, each runs alone, so that only the requests whose own call fails get the error."""
        batch = group[0][0] if len(group) == 1 else np.concatenate([rows for rows, _ in group])
        self.metrics.batch_size.observe(len(batch))
        try:
            probabilities = self.model.predict(batch)
        except Exception as error:  # noqa: BLE001 - handed to the requests; the server goes on
            if len(group) > 1:
                for one in group:
                    self._call([one])
                return
            _tell(group[0][1], None, error)
            return
        start = 0
        for rows, done in group:
            _tell(done, probabilities[start:start + len(rows)], None)
            start += len(rows)

    async def infer(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities for ``batch``, computed alone or together with concurrent requests."""
        self.incoming -= 1
        alone = not self._queue and not self._running and self.incoming == 0
        if self.max_batch_size <= 1 or len(batch) >= self.max_batch_size or alone:
            return await self._run(batch)  # counted as running: requests arriving meanwhile batch
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._queue.append((batch, future))
        self._rows += len(batch)
        self.metrics.queue_depth.inc()
        self._wakeup.set()
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._work())
        return await future

    async def _run(self, batch: np.ndarray) -> np.ndarray:
        """One model call, inline when it is quick and small, else in the thread pool."""
        self.metrics.batch_size.observe(len(batch))
        if self.inline and len(batch) <= INLINE_ROWS:
            return self.model.predict(batch)
        self._running += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, self.model.predict, batch)
        finally:
            self._running -= 1

    async def _gather(self) -> None:
        """Wait for announced requests, at most ``max_delay`` and one model call's time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        while self._rows < self.max_batch_size and self.incoming > 0:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    async def _work(self) -> None:
        while self._queue:
            if self._rows < self.max_batch_size and self.incoming > 0:
                if self.wait < INLINE_SECONDS:
                    await asyncio.sleep(0)  # one turn of the loop: requests already read queue up
                else:
                    await self._gather()
            parts, futures, rows = [], [], 0
            while self._queue and rows + len(self._queue[0][0]) <= self.max_batch_size:
                part, future = self._queue.popleft()
                parts.append(part)
                futures.append(future)
                rows += len(part)
            self._rows -= rows
            self.metrics.queue_depth.dec(len(parts))
            batch = parts[0] if len(parts) == 1 else np.concatenate(parts)
            try:
                probabilities = await self._run(batch)
            except Exception as error:  # noqa: BLE001 - the requests of this batch fail with it; the batcher goes on
                for future in futures:
                    if not future.done():
                        future.set_exception(error)
                continue
            start = 0
            for part, future in zip(parts, futures, strict=True):
                if not future.done():  # a client that went away cancels its future
                    future.set_result(probabilities[start:start + len(part)])
                start += len(part)


def _tell(done: Done, probabilities: np.ndarray | None, error: BaseException | None) -> None:
    """Call ``done``; its own failure is logged, never passed to the other requests of its call."""
    try:
        done(probabilities, error)
    except Exception:  # noqa: BLE001 - one request's answer must not stop the others'
        log.exception("unexpected error answering a coalesced request")
