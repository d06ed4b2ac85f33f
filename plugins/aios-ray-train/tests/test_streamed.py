"""Streamed splits (``Dataset.streams``) reach the workers through Ray Data read tasks, one window per task."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray_train_helpers
from aios_ray_train import RayTrainer, RayTrainParams
from aios_torch import TorchFramework
from ray_train_helpers import ParquetSplit, kernel_order_losses, write_parquet

from aios_core import ModelParams, RunContext
from aios_core.testing import plugin_manager

pytestmark = pytest.mark.usefixtures("local_ray")

TRAINING = {"epochs": 4, "batch_size": 64, "learning_rate": 0.003, "progress_updates": 0, "checkpoint_interval_s": 0}


@pytest.fixture(scope="module")
def streamed(tmp_path_factory: pytest.TempPathFactory, digits_dataset: Any) -> Any:
    """The kit's digits with ``train`` and ``val`` streamed from Parquet files (train: one window; val: 100-row
    windows over 64-row row groups); the arrays stay as the sample a streaming datastore would keep."""
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(ray_train_helpers)  # the workers cannot import the tests' helpers
    directory = tmp_path_factory.mktemp("parquet")
    streams = {}
    for name, window in (("train", len(digits_dataset.y_train)), ("val", 100)):
        path = directory / f"{name}.parquet"
        x = getattr(digits_dataset, f"x_{name}")
        write_parquet(path, x.reshape(len(x), -1), getattr(digits_dataset, f"y_{name}"), row_group_rows=64)
        streams[name] = ParquetSplit(str(path), window_rows=window)
    return dataclasses.replace(digits_dataset, streams=streams)


def test_a_split_stream_reads_one_window_per_ray_task(streamed: Any) -> None:
    import ray

    from aios_ray_train._data import ray_datasets

    val = ray_datasets(streamed)["val"]
    blocks = list(val.iter_batches(batch_size=None, batch_format="numpy"))
    assert [len(block["y"]) for block in sorted(blocks, key=lambda block: block["y"].size)][-1] == 100
    assert sorted(len(block["y"]) for block in blocks) == sorted([100, 100, 100, len(streamed.y_val) - 300])
    rows = np.concatenate([block["x"] for block in blocks])
    assert sorted(map(bytes, rows)) == sorted(map(bytes, streamed.x_val.reshape(len(rows), -1)))
    assert streamed.streams["val"].reads == [], "the driver read the split itself; the Ray tasks should"
    assert ray.is_initialized()


@pytest.mark.timeout(240)
def test_a_streamed_dataset_makes_the_steps_of_the_kernels_batch_order(tmp_path: Path, streamed: Any,
                                                                      digits_dataset: Any) -> None:
    """One worker, the train split one window read by a Ray task: the steps of a plain loop over the in-memory
    ``Dataset.batches``, as from the object store; val read in four windows, its figures added up to the whole's."""
    pm = plugin_manager(TorchFramework(ModelParams(architecture="mlp", hidden_units=[64])),
                        RayTrainer(RayTrainParams(**TRAINING, num_workers=1)))
    run = RunContext(name="t", seed=7, threads=1, dir=tmp_path, stack={}, hook=pm.hook,
                     checkpoint_dir=tmp_path / "checkpoints")
    run.phase = "train"
    model = pm.hook.aios_build_model(dataset=streamed, run=run, overrides={})
    result = pm.hook.aios_train(model=model, dataset=streamed, run=run, overrides={})
    losses = [row[key] for row in result.history for key in ("loss", "val_loss")]
    assert losses == pytest.approx(kernel_order_losses(tmp_path / "loop", digits_dataset, TRAINING), rel=1e-5)
