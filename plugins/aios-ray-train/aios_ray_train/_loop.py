"""The training loop each Ray Train worker runs: the ``torch`` trainer's loop, data-parallel.

Every worker holds the whole training split and, each epoch, draws the same shuffled
order (seeded by the run's seed and the epoch); each global batch of ``batch_size``
rows is cut into one share per worker (rows ``rank::world_size``), and DDP averages
the gradients, so an epoch makes the same optimizer steps as the single-process
trainer on nearly the same batches. Seeding per epoch (not a running generator) makes
a restart from any checkpoint continue exactly as if never interrupted.

Rank 0 sends each epoch's metrics to the driver through the ``Channel`` actor as the
epoch ends, and writes the checkpoint Ray Train persists.
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
CHECKPOINT_FORMAT = "aios-ray-train-checkpoint/1"
_EVAL_BATCH = 4096
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
    from torch.nn import functional as F

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    seed, params, channel = config["seed"], config["params"], config["channel"]
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(max(1, int(params["cpus_per_worker"])))

    # Arrays in the loop config arrive read-only; torch wants writable memory.
    x_train = torch.from_numpy(np.array(config["x_train"], dtype=np.float32))
    y_train = torch.from_numpy(np.array(config["y_train"], dtype=np.int64))
    x_val = torch.from_numpy(np.array(config["x_val"], dtype=np.float32))
    y_val = torch.from_numpy(np.array(config["y_val"], dtype=np.int64))

    module = config["model"]
    progress = _Progress()
    checkpoint = ray.train.get_checkpoint()
    restored = None
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            restored = torch.load(Path(directory) / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
        module.load_state_dict(restored["model"])
        progress = _Progress.from_payload(restored)
    model = ray.train.torch.prepare_model(module)
    optimizer = _optimizer(model, params)
    scheduler = _scheduler(optimizer, params)
    if restored is not None:
        optimizer.load_state_dict(restored["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(restored["scheduler"])
        if rank == 0:
            channel.put.remote(("resumed", progress.epoch, os.getpid()))

    batch_size = params["batch_size"]
    steps = math.ceil(len(y_train) / batch_size)
    report_steps = _report_steps(steps, params["progress_updates"])
    while progress.epoch < params["epochs"] and not progress.stopped_early:
        epoch = progress.epoch + 1
        started = time.perf_counter()
        lr = float(optimizer.param_groups[0]["lr"])
        order = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(seed * _SEED_STRIDE + epoch))
        torch.manual_seed((seed * _SEED_STRIDE + epoch) * 64 + rank)  # dropout: per rank and epoch
        model.train()
        totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, rows
        for step, begin in enumerate(range(0, len(y_train), batch_size), start=1):
            batch = order[begin:begin + batch_size]
            if len(batch) < world:  # a last batch too small to give every rank a row
                break
            rows = batch[rank::world]
            logits = model(x_train[rows])
            loss = F.cross_entropy(logits, y_train[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            totals += torch.stack([loss.detach().double() * len(rows),
                                   (logits.detach().argmax(dim=1) == y_train[rows]).sum().double(),
                                   torch.tensor(float(len(rows)), dtype=torch.float64)])
            if rank == 0 and step in report_steps:
                channel.put.remote(("step", epoch, step, steps, float(totals[0] / totals[2])))
        if world > 1:
            dist.all_reduce(totals)
        seconds = time.perf_counter() - started
        val_loss, val_accuracy = _evaluate(model.module if world > 1 else model, x_val, y_val, F)
        if scheduler is not None:
            scheduler.step()
        metrics = {"epoch": epoch, "loss": float(totals[0] / totals[2]), "accuracy": float(totals[1] / totals[2]),
                   "val_loss": val_loss, "val_accuracy": val_accuracy, "lr": lr, "seconds": seconds}
        progress.advance(metrics, _unwrap(model), params)
        stop = _stop_requested(channel, rank, world, dist, torch)
        last = progress.epoch >= params["epochs"] or progress.stopped_early or stop
        if rank == 0:
            channel.put.remote(("epoch", epoch, metrics))
        if last or epoch % params["checkpoint_frequency"] == 0:
            _report(ray.train, torch, rank, metrics, progress, params, _unwrap(model), optimizer, scheduler)
        if stop:
            return


def _unwrap(model: Any) -> Any:
    return model.module if hasattr(model, "module") else model


def _stop_requested(channel: Any, rank: int, world: int, dist: Any, torch: Any) -> bool:
    """Whether the driver asked to stop (Ctrl-C), decided by rank 0 so every rank stops after the same epoch."""
    import ray

    flag = torch.tensor([1 if rank == 0 and ray.get(channel.stop_requested.remote()) else 0])
    if world > 1:
        dist.broadcast(flag, src=0)
    return bool(flag.item())


class _Progress:
    """What besides the torch objects a checkpoint restores (as in the ``torch`` trainer)."""

    def __init__(self) -> None:
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self.best_state: dict[str, Any] | None = None
        self.best_epoch = 0
        self.best_val_loss = math.inf
        self.bad_epochs = 0
        self.stopped_early = False

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> _Progress:
        progress = cls()
        for name in ("epoch", "history", "best_state", "best_epoch", "best_val_loss", "bad_epochs", "stopped_early"):
            setattr(progress, name, payload[name])
        return progress

    def advance(self, metrics: dict[str, float], module: Any, params: dict[str, Any]) -> None:
        self.epoch = int(metrics["epoch"])
        self.history.append(metrics)
        if metrics["val_loss"] < self.best_val_loss - params["early_stopping_min_delta"]:
            self.best_val_loss, self.best_epoch, self.bad_epochs = metrics["val_loss"], self.epoch, 0
            self.best_state = {name: value.detach().clone() for name, value in module.state_dict().items()}
        else:
            self.bad_epochs += 1
            patience = params["early_stopping_patience"]
            self.stopped_early = patience is not None and self.bad_epochs >= patience


def _report(train: Any, torch: Any, rank: int, metrics: dict[str, float], progress: _Progress,
            params: dict[str, Any], module: Any, optimizer: Any, scheduler: Any) -> None:
    """Every rank reports; rank 0 attaches the checkpoint Ray Train persists (named by epoch)."""
    if rank != 0:
        train.report(metrics)
        return
    directory = tempfile.mkdtemp(prefix="aios-ray-ckpt-")
    try:
        payload = {
            "format": CHECKPOINT_FORMAT, "params": params, "epoch": progress.epoch,
            "model": module.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "history": progress.history, "best_state": progress.best_state, "best_epoch": progress.best_epoch,
            "best_val_loss": progress.best_val_loss, "bad_epochs": progress.bad_epochs,
            "stopped_early": progress.stopped_early,
        }
        torch.save(payload, Path(directory) / CHECKPOINT_FILE)
        (Path(directory) / PROGRESS_FILE).write_text(json.dumps({"epoch": progress.epoch, "params": params}))
        train.report(metrics, checkpoint=train.Checkpoint.from_directory(directory),
                     checkpoint_dir_name=f"epoch_{progress.epoch:05d}")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _optimizer(model: Any, params: dict[str, Any]) -> Any:
    import torch

    if params["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=params["learning_rate"], momentum=params["momentum"],
                               weight_decay=params["weight_decay"])
    return torch.optim.Adam(model.parameters(), lr=params["learning_rate"], weight_decay=params["weight_decay"])


def _scheduler(optimizer: Any, params: dict[str, Any]) -> Any:
    import torch

    if params["lr_schedule"] == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=params["lr_step_size"], gamma=params["lr_gamma"])
    if params["lr_schedule"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=params["epochs"])
    return None


def _report_steps(steps: int, updates: int) -> frozenset[int]:
    count = min(updates, steps)
    return frozenset(math.ceil(i * steps / count) for i in range(1, count + 1)) if count else frozenset()


def _evaluate(module: Any, x: Any, y: Any, F: Any) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on the whole validation split (every rank computes the same)."""
    import torch

    module.eval()
    with torch.inference_mode():
        total_loss = torch.zeros((), dtype=torch.float64)
        correct = torch.zeros((), dtype=torch.int64)
        for begin in range(0, len(y), _EVAL_BATCH):
            logits = module(x[begin:begin + _EVAL_BATCH])
            total_loss += F.cross_entropy(logits, y[begin:begin + _EVAL_BATCH], reduction="sum").double()
            correct += (logits.argmax(dim=1) == y[begin:begin + _EVAL_BATCH]).sum()
    return float(total_loss.item() / len(y)), float(correct.item() / len(y))
