"""The training loop each Ray Train worker runs: the ``torch`` trainer's loop, data-parallel over Ray Data shards.

A worker reads its shard of each split with ``ray.train.get_dataset_shard`` (nothing of
the data is in the loop's configuration). Every epoch it orders its shard by the
kernel's batch rule (``aios_core.batches.window_batches``): the windows (blocks) as they
come, the rows of each permuted by a generator seeded with ``(seed, epoch)`` (with one
worker: the kernel's own seeding, so the batches are ``Dataset.batches("train", ...)``'s
when the split is one window; with several workers ``(seed, epoch, rank)``), cut into
batches of ``batch_size // world_size`` rows. Ray Data gives every rank the same number
of rows, so the ranks take the same number of steps of the same size and DDP's average of
their mean losses is the mean loss of the ``world_size`` batches together. Validation runs
on each rank's shard of ``val`` and the sums are all-reduced. Dropout draws are seeded
per rank and epoch, and the order per epoch, so a restart from any checkpoint continues
exactly as if never interrupted.

The bookkeeping is the kernel's (``EpochProgress``, ``report_steps``); this module keeps
what is Ray's and DDP's: the sharding, the all-reduce of the epoch's figures, the
decisions every rank must take together (stop, checkpoint, diverged), and the
checkpoints Ray Train persists. Rank 0 sends each epoch's metrics to the driver through
the ``Channel`` actor as the epoch ends.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

CHECKPOINT_FILE = "aios-ray-train.pt"
PROGRESS_FILE = "progress.json"
CHECKPOINT_FORMAT = "aios-ray-train-checkpoint/3"
_SEED_STRIDE = 1_000_003


class Channel:
    """A small actor between the workers and the driver: progress one way, a stop request the other."""

    def __init__(self) -> None:
        self._items: list[tuple[Any, ...]] = []
        self._stop = False

    def put(self, item: tuple[Any, ...]) -> None:
        self._items.append(item)

    def drain(self) -> list[tuple[Any, ...]]:
        items, self._items = self._items, []
        return items

    def request_stop(self) -> None:
        self._stop = True

    def stop_requested(self) -> bool:
        return self._stop


def train_worker(config: dict[str, Any]) -> None:
    """Ray Train's ``train_loop_per_worker``: train, report to the channel, checkpoint through Ray Train."""
    import ray
    import ray.train
    import ray.train.torch
    import torch
    import torch.distributed as dist
    from aios_torch.training import (
        batch_score,
        epoch_score,
        loss_function,
        make_optimizer,
        make_scheduler,
        score_name,
        validation_metrics,
    )

    from aios_core import EpochProgress, TrainingDiverged, report_steps
    from aios_ray_train import RayTrainParams

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    seed, params, channel = config["seed"], config["params"], config["channel"]
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(max(1, int(params["cpus_per_worker"])))

    criterion = loss_function(config.get("loss", "cross_entropy"), config.get("target_scale"))  # RMSE in units
    shards = {name: ray.train.get_dataset_shard(name) for name in ("train", "val")}

    module = config["model"]
    progress, best_state = EpochProgress(), None
    restored = _restore(ray.train.get_checkpoint(), torch)
    if restored is not None:
        module.load_state_dict(restored["model"])
        progress, best_state = EpochProgress.from_state(restored), restored["best_state"]
    model = ray.train.torch.prepare_model(module)
    trainer_params = RayTrainParams.model_validate(params)
    optimizer = make_optimizer(model, trainer_params)
    scheduler = make_scheduler(optimizer, trainer_params)
    if restored is not None:
        optimizer.load_state_dict(restored["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(restored["scheduler"])
        if rank == 0:
            channel.put.remote(("resumed", progress.epoch, os.getpid()))

    batch_size = max(1, params["batch_size"] // world)  # each rank's part of a step's batch_size rows
    steps = math.ceil(config["train_rows"] // world / batch_size)  # Ray Data gives each rank rows // world rows
    reported_steps = report_steps(steps, params["progress_updates"])
    last_write = time.monotonic()  # the checkpoint policy counts from the start, as the kernel's CheckpointWriter
    while not progress.done(params["epochs"]):
        epoch = progress.epoch + 1
        started = time.perf_counter()
        lr = float(optimizer.param_groups[0]["lr"])
        torch.manual_seed((seed * _SEED_STRIDE + epoch) * 64 + rank)  # dropout: per rank and epoch
        model.train()
        loss_sum, correct, rows = 0.0, 0.0, 0  # as the torch trainer sums them: Python floats, batch by batch
        for step, (x, y) in enumerate(_batches(shards["train"], batch_size, seed, epoch, rank, world), start=1):
            inputs, targets = torch.from_numpy(x), torch.from_numpy(_labels(y, criterion))
            logits = model(inputs)
            loss = criterion(logits, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(targets)
            correct += batch_score(logits.detach(), targets, criterion)
            rows += len(targets)
            if rank == 0 and step in reported_steps:
                channel.put.remote(("step", epoch, step, steps, loss_sum / rows))
        totals = torch.tensor([loss_sum, correct, rows], dtype=torch.float64)
        if world > 1:
            dist.all_reduce(totals)
        seconds = time.perf_counter() - started
        validation = _validate(_unwrap(model), shards["val"], criterion, world, dist, torch, validation_metrics)
        if scheduler is not None:
            scheduler.step()
        metrics = {"epoch": epoch, "loss": float(totals[0] / totals[2]),
                   score_name(criterion): epoch_score(float(totals[1]), int(totals[2]), criterion),
                   **validation, "lr": lr, "seconds": seconds}
        diverged: TrainingDiverged | None = None
        try:
            if progress.record(metrics, patience=params["early_stopping_patience"],
                               min_delta=params["early_stopping_min_delta"]):
                best_state = {name: value.detach().clone() for name, value in _unwrap(model).state_dict().items()}
        except TrainingDiverged as error:
            diverged = error
        interval = params["checkpoint_interval_s"]
        stop, due, any_diverged = _agree(channel, rank, world, dist, torch, diverged=diverged is not None,
                                         due=time.monotonic() - last_write >= interval)
        if any_diverged:
            # Every rank returns instead of raising: to Ray Train a raise is a worker failure, which
            # max_failures would retry from the last checkpoint, to diverge again. The driver raises.
            if rank == 0:
                ray.get(channel.put.remote(("diverged", str(diverged or "training diverged on another rank"))))
            return
        last = progress.done(params["epochs"]) or stop
        if rank == 0:
            channel.put.remote(("epoch", epoch, metrics))
        if last or due:
            last_write = time.monotonic()
            _report(ray.train, torch, rank, metrics, progress, params, _unwrap(model), optimizer, scheduler,
                    best_state)
        if stop:
            return


def _batches(shard: Any, batch_size: int, seed: int, epoch: int, rank: int, world: int) -> Any:
    """This rank's batches of ``shard`` for ``epoch``: its windows as Ray Data hands them, by the kernel's rule."""
    import numpy as np

    from aios_core.batches import window_batches

    generator = np.random.default_rng([seed, epoch] if world == 1 else [seed, epoch, rank])
    return window_batches(_windows(shard), batch_size, generator)


def _windows(shard: Any) -> Any:
    """``(x, y)`` of each block of ``shard`` as it arrives (a window, or the part of one Ray gave this rank)."""
    for block in shard.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
        if len(block["y"]):
            yield block["x"], block["y"]


def _labels(y: Any, criterion: Any) -> Any:
    """Class indices as int64; regression targets as float32 (n, targets)."""
    import numpy as np

    if criterion.regression:
        return np.asarray(y, dtype=np.float32).reshape(len(y), -1)
    return np.asarray(y, dtype=np.int64)


def _validate(module: Any, shard: Any, criterion: Any, world: int, dist: Any, torch: Any,
              validation_metrics: Any) -> dict[str, float]:
    """The validation metrics of the whole ``val`` split: each rank's shard window by window, the sums all-reduced.

    One window on one rank (an in-memory split, one worker) gives the torch trainer's
    ``validation_metrics`` of the whole split as they are; otherwise the per-window figures
    are weighted by rows (loss, accuracy) or cells (RMSE, MAE) and added.
    """
    parts = []
    for x, y in _windows(shard):
        targets = torch.from_numpy(_labels(y, criterion))
        parts.append((validation_metrics(module, torch.from_numpy(x), targets, criterion), len(y), targets.numel()))
    if world == 1 and len(parts) == 1:
        return parts[0][0]
    names = sorted({name for metrics, _, _ in parts for name in metrics}) or (
        ["val_loss", "val_mae", "val_rmse"] if criterion.regression else ["val_accuracy", "val_loss"])
    sums = torch.zeros(len(names) + 2, dtype=torch.float64)  # each metric's weighted sum, rows, cells
    for metrics, rows, cells in parts:
        for index, name in enumerate(names):
            value = metrics[name]
            sums[index] += value * value * cells if name == "val_rmse" else (
                value * cells if name == "val_mae" else value * rows)
        sums[-2] += rows
        sums[-1] += cells
    if world > 1:
        dist.all_reduce(sums)
    rows, cells = float(sums[-2]), float(sums[-1])
    return {name: math.sqrt(float(sums[index]) / cells) if name == "val_rmse" else
            float(sums[index]) / (cells if name == "val_mae" else rows) for index, name in enumerate(names)}


def _unwrap(model: Any) -> Any:
    return model.module if hasattr(model, "module") else model


def _agree(channel: Any, rank: int, world: int, dist: Any, torch: Any, *, diverged: bool,
           due: bool) -> tuple[bool, bool, bool]:
    """What every rank does after this epoch, decided together: (stop, checkpoint, diverged).

    Rank 0 decides the stop (the driver's Ctrl-C) and whether a checkpoint is due (its
    clock); a divergence on any rank counts. A collective call every rank makes, so no
    rank waits for another that left the loop.
    """
    import ray

    flags = torch.tensor([0, 0, int(diverged)], dtype=torch.int64)
    if rank == 0:
        flags[0] = int(ray.get(channel.stop_requested.remote()))
        flags[1] = int(due)
    if world > 1:
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return bool(flags[0]), bool(flags[1]), bool(flags[2])


def _restore(checkpoint: Any, torch: Any) -> dict[str, Any] | None:
    """The payload of the checkpoint Ray Train restarts or resumes from, if any."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        return torch.load(Path(directory) / CHECKPOINT_FILE, map_location="cpu", weights_only=True)


def _report(train: Any, torch: Any, rank: int, metrics: dict[str, float], progress: Any, params: dict[str, Any],
            module: Any, optimizer: Any, scheduler: Any, best_state: Any) -> None:
    """Every rank reports; rank 0 attaches the checkpoint Ray Train persists (named by epoch)."""
    if rank != 0:
        train.report(metrics)
        return
    directory = tempfile.mkdtemp(prefix="aios-ray-ckpt-")
    try:
        payload = {
            "format": CHECKPOINT_FORMAT, "params": params,
            **progress.state(),  # epoch, history, best_epoch, best_val_loss, bad_epochs, stopped_early
            "model": module.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "best_state": best_state,
        }
        torch.save(payload, Path(directory) / CHECKPOINT_FILE)
        (Path(directory) / PROGRESS_FILE).write_text(
            json.dumps({"format": CHECKPOINT_FORMAT, "epoch": progress.epoch, "params": params}))
        train.report(metrics, checkpoint=train.Checkpoint.from_directory(directory),
                     checkpoint_dir_name=f"epoch_{progress.epoch:05d}")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
