"""Training data as Ray Data datasets: put in the object store once, or read window by window where tasks run.

The workers never get data in the loop's configuration: the driver hands Ray Train one
Ray Data dataset per split (``train``, ``val``) and each worker reads its shard with
``ray.train.get_dataset_shard``. A split comes from the AIOS ``Dataset`` in one of two ways:

- held in memory (the ``x_*`` / ``y_*`` arrays): Arrow tables over the arrays' buffers, put
  in the object store once (``ray.data.from_arrow``); a worker's shard is a slice of them;
- streamed (``Dataset.streams``, ``aios_core.batches.SplitStream``): a ``SplitDatasource``
  with one read task per window of ``window_rows`` rows, each calling
  ``split.read(start, stop)`` in the Ray task that runs it, on whichever node that is. The
  stream object is pickled into the tasks, so it must name its files by paths or URIs
  every node can open (shared storage, ``s3://``, ``gs://`` through pyarrow's file systems).

Each window is one block: a worker receives whole windows (Ray splits the last ones so
that every rank gets the same number of rows) and orders them by the kernel's rule
(``aios_core.batches.window_batches``). This module imports Ray Data; the driver imports
it when training starts.
"""

from __future__ import annotations

import copy
import functools
from typing import TYPE_CHECKING, Any

from ray.data import Datasource
from ray.data.block import BlockMetadata
from ray.data.datasource import ReadTask
from ray.train import DataConfig

if TYPE_CHECKING:
    import numpy as np
    import pyarrow

    from aios_core import Dataset
    from aios_core.batches import SplitStream

FEATURES, LABELS = "x", "y"
SPLITS = ("train", "val")


def ray_datasets(dataset: Dataset, workers: int = 1) -> dict[str, Any]:
    """``{"train": ..., "val": ...}``: Ray Data datasets of the two splits, streamed where the AIOS dataset streams.

    An in-memory ``train`` is one block (one window, as ``Dataset.batches`` sees it; Ray
    cuts it into equal shards); an in-memory ``val`` is ``workers`` blocks, so that each
    rank validates a part (views of the arrays, no copies before the object store's).
    """
    import numpy as np
    import ray.data

    made = {}
    for name in SPLITS:
        if name in dataset.streams:
            source = SplitDatasource(dataset.streams[name], name)
            # As many blocks as windows: Ray would otherwise cut each window into pieces to reach its default count.
            made[name] = ray.data.read_datasource(source, override_num_blocks=max(1, len(source.windows())))
            continue
        x, y = getattr(dataset, f"x_{name}"), getattr(dataset, f"y_{name}")
        parts = 1 if name == "train" else max(1, min(workers, len(y)))
        bounds = np.linspace(0, len(y), parts + 1).astype(int)
        made[name] = ray.data.from_arrow([window_table(x[start:stop], y[start:stop])
                                          for start, stop in zip(bounds[:-1], bounds[1:])])
        made[name].context.enable_progress_bars = False  # Ray's bars stay out of the run's console
    return made


def window_table(x: np.ndarray, y: np.ndarray) -> pyarrow.Table:
    """Features and labels as one Arrow table (tensor columns; the arrays' buffers, not copies)."""
    import numpy as np
    import pyarrow as pa
    from ray.data.extensions import ArrowTensorArray

    x = np.ascontiguousarray(x, dtype=np.float32)
    labels = ArrowTensorArray.from_numpy(np.ascontiguousarray(y)) if y.ndim > 1 else pa.array(y)
    return pa.table({FEATURES: ArrowTensorArray.from_numpy(x), LABELS: labels})


def _read_window(split: SplitStream, start: int, stop: int) -> list[pyarrow.Table]:
    x, y = split.read(start, stop)
    return [window_table(x, y)]


class SplitDatasource(Datasource):
    """A ``SplitStream`` as a Ray Data source: one read task (and block) per window of ``window_rows`` rows.

    Each task calls ``split.read(start, stop)`` where Ray runs it; the split travels pickled.
    """

    def __init__(self, split: SplitStream, name: str = "split") -> None:
        super().__init__()
        self.split, self.split_name = split, name

    def get_name(self) -> str:
        return f"AIOS{self.split_name.capitalize()}Split"

    def estimate_inmemory_data_size(self) -> int | None:
        return None  # the width of a row is known once a window is read

    def windows(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of each window, in the split's order."""
        rows = int(self.split.rows)
        window = max(1, min(int(self.split.window_rows or rows), rows or 1))
        return [(start, min(start + window, rows)) for start in range(0, rows, window)]

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context: Any = None) -> list[ReadTask]:
        # One task per window whatever parallelism Ray asks for: the window is what bounds a task's memory.
        return [ReadTask(functools.partial(_read_window, self.split, start, stop),
                         BlockMetadata(num_rows=stop - start, size_bytes=None, exec_stats=None),
                         per_task_row_limit=per_task_row_limit)
                for start, stop in self.windows()]



class Ingest(DataConfig):
    """How Ray Train shards the splits: ``train`` in equal parts (every rank takes the same steps), ``val`` whole.

    Ray Train's ``DataConfig`` splits every dataset with ``equal=True``, which leaves out
    up to ``num_workers - 1`` rows so the parts match; the training steps need that, the
    validation does not, so ``val`` is split with ``equal=False`` (all its rows, windows
    dealt to the ranks as they ask) and its figures cover the whole split. Order is
    preserved: each rank gets the same windows in the same order, run after run.
    """

    def __init__(self) -> None:
        options = DataConfig.default_ingest_options()
        options.preserve_order = True
        super().__init__(execution_options=options)
        self.options = options

    def configure(self, datasets: dict[str, Any], world_size: int, worker_handles: Any, worker_node_ids: Any,
                  **kwargs: Any) -> list[dict[str, Any]]:
        equal = {name: ds for name, ds in datasets.items() if name != "val"}
        shards = super().configure(equal, world_size, worker_handles, worker_node_ids, **kwargs)
        if "val" in datasets:
            val = datasets["val"]
            val.context.execution_options = copy.deepcopy(self.options)
            for rank, shard in enumerate(val.streaming_split(world_size, equal=False)):
                shards[rank]["val"] = shard
        return shards
