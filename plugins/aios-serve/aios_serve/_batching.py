"""Adaptive micro-batching: concurrent requests to one model run as one ONNX Runtime call.

Like Triton's dynamic batcher, requests wait at most ``max_delay_ms`` and a batch holds
at most ``max_batch_size`` rows. The wait is adaptive: the batcher waits only while
more requests for the model are on their way (received by the server, still being
parsed); a lone request runs at once, so batching costs nothing at one client. While a
batch runs, new requests queue and form the next batch.
"""

from __future__ import annotations

import asyncio
import collections
from concurrent.futures import Executor
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from aios_serve._metrics import ModelMetrics
    from aios_serve._repository import LoadedModel


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
        self._queue: collections.deque[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = collections.deque()
        self._rows = 0
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    def arriving(self) -> None:
        """A request for this model was received; its rows will come through ``infer`` or ``abandon``."""
        self.incoming += 1

    def abandon(self) -> None:
        """An announced request will not come (bad input): stop waiting for it."""
        self.incoming -= 1
        self._wakeup.set()

    async def infer(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities for ``batch``, computed alone or together with concurrent requests."""
        self.incoming -= 1
        loop = asyncio.get_running_loop()
        if self.max_batch_size <= 1 or len(batch) >= self.max_batch_size:
            self.metrics.batch_size.observe(len(batch))
            return await loop.run_in_executor(self.executor, self.model.predict, batch)
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._queue.append((batch, future))
        self._rows += len(batch)
        self.metrics.queue_depth.inc()
        self._wakeup.set()
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._work())
        return await future

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            if self._rows < self.max_batch_size and self.incoming > 0:
                deadline = loop.time() + self.max_delay
                while self._rows < self.max_batch_size and self.incoming > 0:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    self._wakeup.clear()
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), remaining)
                    except TimeoutError:
                        break
            parts, futures, rows = [], [], 0
            while self._queue and rows + len(self._queue[0][0]) <= self.max_batch_size:
                part, future = self._queue.popleft()
                parts.append(part)
                futures.append(future)
                rows += len(part)
            self._rows -= rows
            self.metrics.queue_depth.dec(len(parts))
            self.metrics.batch_size.observe(rows)
            batch = parts[0] if len(parts) == 1 else np.concatenate(parts)
            try:
                probabilities = await loop.run_in_executor(self.executor, self.model.predict, batch)
            except Exception as error:  # the requests of this batch fail; the batcher goes on
                for future in futures:
                    if not future.done():
                        future.set_exception(error)
                continue
            start = 0
            for part, future in zip(parts, futures, strict=True):
                if not future.done():  # a client that went away cancels its future
                    future.set_result(probabilities[start:start + len(part)])
                start += len(part)
