"""The training loop each Ray Train worker runs: the ``torch`` trainer's loop, data-parallel.

Each epoch every worker draws the ``torch`` trainer's order (one generator seeded with
the run's seed, one permutation per epoch; its state travels in the checkpoint) and
takes its share of every global batch of ``batch_size`` rows (rows ``rank::world_size``).
Each rank's loss is its rows' summed loss scaled by ``world_size / len(batch)``, so the
average DDP takes over the ranks is the gradient of the whole batch's mean loss, even
when the shares differ by a row: each optimizer step is the ``torch`` trainer's step on
the same batch, up to the order of float additions. Dropout draws are seeded per rank
and epoch, so a restart from any checkpoint continues exactly as if never interrupted.

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
CHECKPOINT_FORMAT = "aios-ray-train-checkpoint/2"
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
    import numpy as np
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

    # Arrays in the loop config arrive read-only; torch wants writable memory.
    x_train = torch.from_numpy(np.array(config["x_train"], dtype=np.float32))
    criterion = loss_function(config.get("loss", "cross_entropy"), config.get("target_scale"))  # RMSE in units
    # class indices as int64; regression targets as float32 (n, targets)
    labels = (lambda y: np.array(y, dtype=np.float32).reshape(len(y), -1)) if criterion.regression else (
        lambda y: np.array(y, dtype=np.int64))
    y_train = torch.from_numpy(labels(config["y_train"]))
    x_val = torch.from_numpy(np.array(config["x_val"], dtype=np.float32))
    y_val = torch.from_numpy(labels(config["y_val"]))

    module = config["model"]
    progress, best_state = EpochProgress(), None
    order_generator = torch.Generator().manual_seed(seed)
    restored = _restore(ray.train.get_checkpoint(), torch)
    if restored is not None:
        module.load_state_dict(restored["model"])
        progress, best_state = EpochProgress.from_state(restored), restored["best_state"]
        order_generator.set_state(restored["generator"])
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

    batch_size = params["batch_size"]
    steps = math.ceil(len(y_train) / batch_size)
    reported_steps = report_steps(steps, params["progress_updates"])
    last_write = time.monotonic()  # the checkpoint policy counts from the start, as the kernel's CheckpointWriter
    while not progress.done(params["epochs"]):
        epoch = progress.epoch + 1
        started = time.perf_counter()
        lr = float(optimizer.param_groups[0]["lr"])
        order = torch.randperm(len(y_train), generator=order_generator)
        torch.manual_seed((seed * _SEED_STRIDE + epoch) * 64 + rank)  # dropout: per rank and epoch
        model.train()
        totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, rows
        for step, begin in enumerate(range(0, len(y_train), batch_size), start=1):
            batch = order[begin:begin + batch_size]
            if len(batch) < world:  # a last batch too small to give every rank a row
                break
            rows = batch[rank::world]
            logits = model(x_train[rows])
            loss_sum = criterion(logits, y_train[rows], reduction="sum")
            if criterion.regression:
                loss_sum = loss_sum / y_train.shape[1]  # per row, as the cross-entropy's sum is
            optimizer.zero_grad(set_to_none=True)
            (loss_sum * (world / len(batch))).backward()  # DDP's average over ranks: the batch's mean loss
            optimizer.step()
            totals += torch.stack([loss_sum.detach().double(),
                                   torch.tensor(batch_score(logits.detach(), y_train[rows], criterion),
                                                dtype=torch.float64),
                                   torch.tensor(float(len(rows)), dtype=torch.float64)])
            if rank == 0 and step in reported_steps:
                channel.put.remote(("step", epoch, step, steps, float(totals[0] / totals[2])))
        if world > 1:
            dist.all_reduce(totals)
        seconds = time.perf_counter() - started
        validation = validation_metrics(_unwrap(model), x_val, y_val, criterion)
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
                    order_generator, best_state)
        if stop:
            return


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
            module: Any, optimizer: Any, scheduler: Any, order_generator: Any, best_state: Any) -> None:
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
            "generator": order_generator.get_state(), "best_state": best_state,
        }
        torch.save(payload, Path(directory) / CHECKPOINT_FILE)
        (Path(directory) / PROGRESS_FILE).write_text(
            json.dumps({"format": CHECKPOINT_FORMAT, "epoch": progress.epoch, "params": params}))
        train.report(metrics, checkpoint=train.Checkpoint.from_directory(directory),
                     checkpoint_dir_name=f"epoch_{progress.epoch:05d}")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
