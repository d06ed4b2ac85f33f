"""The training loop: deterministic for the run's seed, checkpointed every epoch, resumable bit-for-bit.

The loop is a plain PyTorch loop on purpose: tensors are made once, each epoch gathers
one shuffled copy and slices it into batches (no DataLoader), the batch losses are summed
as floats and the predictions stay on tensors that are read once per epoch, so the loop
costs about what a hand-written one does. The ``seconds`` metric is the wall time of the
training pass alone (validation and the checkpoint come after it), so it compares directly
with such a loop.

Each epoch's checkpoint is a snapshot taken on the training thread (tensors copied, a
fraction of a millisecond) and written to disk by one background thread while the next
epoch trains; see ``_CheckpointWriter``.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from aios_core import Dataset, RunContext, TrainResult, atomic_path

if TYPE_CHECKING:
    from aios_torch import TorchTrainerParams

_log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"
CHECKPOINT_FORMAT = "aios-torch-checkpoint/1"
_RESUMABLE_CHANGES = {"progress_updates"}
"""Trainer parameters that may differ between an interrupted run and its resumption."""
_EVAL_BATCH = 4096


@dataclass
class _Progress:
    """Everything besides the torch objects that a checkpoint must restore."""

    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch: int = 0
    best_val_loss: float = math.inf
    bad_epochs: int = 0
    stopped_early: bool = False


def train(model: Any, dataset: Dataset, run: RunContext, params: TorchTrainerParams) -> TrainResult:
    """Train ``model`` on ``dataset.train`` with ``params``; see ``TorchTrainer``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"the torch trainer trains torch.nn.Module models, got {type(model).__name__}")
    if len(dataset.y_val) == 0:
        raise ValueError(
            f"dataset {dataset.name!r} has an empty validation split; the torch trainer validates "
            "every epoch (early stopping and best weights use val_loss): give the datastore a val split"
        )
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.manual_seed(run.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(max(1, int(run.threads)))
    try:
        return _train(model, dataset, run, params)
    finally:
        torch.use_deterministic_algorithms(was_deterministic, warn_only=was_warn_only)


def _train(model: nn.Module, dataset: Dataset, run: RunContext, params: TorchTrainerParams) -> TrainResult:
    x_train, y_train = _tensors(dataset.x_train, dataset.y_train)
    x_val, y_val = _tensors(dataset.x_val, dataset.y_val)
    optimizer = _optimizer(model, params)
    scheduler = _scheduler(optimizer, params)
    generator = torch.Generator().manual_seed(run.seed)
    checkpoint = Path(run.checkpoint_dir) / CHECKPOINT_NAME
    progress = _Progress()
    if run.resume and checkpoint.exists():
        progress = _restore(checkpoint, params, model, optimizer, scheduler, generator)
        run.log.info("torch trainer: resuming after epoch %d from %s", progress.epoch, checkpoint)

    steps = math.ceil(len(y_train) / params.batch_size)
    report_steps = _report_steps(steps, params.progress_updates)
    saved_params = params.model_dump(mode="json")
    writer = _CheckpointWriter(checkpoint)
    try:
        while progress.epoch < params.epochs and not progress.stopped_early:
            epoch = progress.epoch + 1
            started = time.perf_counter()
            lr = float(optimizer.param_groups[0]["lr"])
            loss, accuracy = _train_epoch(model, optimizer, x_train, y_train, generator, params.batch_size,
                                          lambda step, loss: run.report_step(epoch, step, steps, {"loss": loss}),
                                          report_steps)
            seconds = time.perf_counter() - started
            val_loss, val_accuracy = evaluate(model, x_val, y_val)
            if scheduler is not None:
                scheduler.step()
            metrics = {"epoch": epoch, "loss": loss, "accuracy": accuracy, "val_loss": val_loss,
                       "val_accuracy": val_accuracy, "lr": lr, "seconds": seconds}
            progress.epoch = epoch
            progress.history.append(metrics)
            if val_loss < progress.best_val_loss - params.early_stopping_min_delta:
                progress.best_val_loss, progress.best_epoch, progress.bad_epochs = val_loss, epoch, 0
                progress.best_state = _copy_state(model.state_dict())
            else:
                progress.bad_epochs += 1
                patience = params.early_stopping_patience
                progress.stopped_early = patience is not None and progress.bad_epochs >= patience
            # The previous epoch's checkpoint is on disk before this epoch is reported, as when
            # checkpoints were written synchronously: a run killed at any point resumes from
            # the epoch before the last one it reported, or from the last one.
            writer.wait()
            run.report_epoch(epoch, dict(metrics))
            writer.submit(_checkpoint_payload(saved_params, model, optimizer, scheduler, generator, progress))
    except BaseException:
        writer.close(raise_errors=False)  # the interrupt (or error) wins; the in-flight write still completes
        raise
    writer.close()

    if progress.best_state is not None:
        model.load_state_dict(progress.best_state)
    best_epoch = progress.best_epoch or progress.epoch  # no finite val_loss: keep the last weights
    model.eval()
    return TrainResult(model=model, history=[dict(row) for row in progress.history],
                       best_epoch=best_epoch, stopped_early=progress.stopped_early)


def _tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)))


def _optimizer(model: nn.Module, params: TorchTrainerParams) -> torch.optim.Optimizer:
    if params.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=params.learning_rate, momentum=params.momentum,
                               weight_decay=params.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)


def _scheduler(optimizer: torch.optim.Optimizer, params: TorchTrainerParams) -> Any:
    if params.lr_schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=params.lr_step_size, gamma=params.lr_gamma)
    if params.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=params.epochs)
    return None


def _report_steps(steps: int, updates: int) -> frozenset[int]:
    """The 1-based steps after which to report progress: ``updates`` of them, evenly spread."""
    count = min(updates, steps)
    return frozenset(math.ceil(i * steps / count) for i in range(1, count + 1)) if count else frozenset()


def _train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                 generator: torch.Generator, batch_size: int, report: Any,
                 report_steps: frozenset[int]) -> tuple[float, float]:
    """One pass over (x, y) in shuffled batches; returns the mean training loss and accuracy.

    The loss is summed as a Python float (``item()`` on a CPU scalar is a read, not a sync),
    so the progress reports cost no tensor work; predictions stay on tensors until the end.
    """
    model.train()
    order = torch.randperm(len(y), generator=generator)
    x, y = x[order], y[order]
    loss_sum = 0.0  # sum of per-row losses: batch mean x batch rows
    predictions: list[torch.Tensor] = []
    for step, begin in enumerate(range(0, len(y), batch_size), start=1):
        inputs, targets = x[begin:begin + batch_size], y[begin:begin + batch_size]
        logits = model(inputs)
        loss = F.cross_entropy(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        rows = len(targets)
        loss_sum += loss.item() * rows
        predictions.append(logits.detach().argmax(dim=1))
        if step in report_steps:
            report(step, loss_sum / (begin + rows))
    accuracy = (torch.cat(predictions) == y).sum().item() / len(y)
    return loss_sum / len(y), accuracy


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on (x, y), in eval mode."""
    model.eval()
    with torch.inference_mode():
        total_loss = torch.zeros((), dtype=torch.float64)
        correct = torch.zeros((), dtype=torch.int64)
        for begin in range(0, len(y), _EVAL_BATCH):
            inputs, targets = x[begin:begin + _EVAL_BATCH], y[begin:begin + _EVAL_BATCH]
            logits = model(inputs)
            total_loss += F.cross_entropy(logits, targets, reduction="sum").double()
            correct += (logits.argmax(dim=1) == targets).sum()
    return float(total_loss.item() / len(y)), float(correct.item() / len(y))


def _copy_state(value: Any) -> Any:
    """A copy of a ``state_dict`` that later training steps leave alone: tensors cloned, containers rebuilt.

    Faster than ``copy.deepcopy`` (a fifth of the time for an Adam state); an ``OrderedDict``
    keeps its ``_metadata`` (module versions), as ``load_state_dict`` reads it.
    """
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        copied = type(value)((key, _copy_state(item)) for key, item in value.items())
        metadata = getattr(value, "_metadata", None)
        if metadata is not None:
            copied._metadata = metadata  # type: ignore[attr-defined]  # made afresh by every state_dict()
        return copied
    if type(value) in (list, tuple):
        return type(value)(_copy_state(item) for item in value)
    return value


def _checkpoint_payload(saved_params: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
                        scheduler: Any, generator: torch.Generator, progress: _Progress) -> dict[str, Any]:
    """Everything a resumed run needs, as of now: tensors and plain values (``weights_only`` loadable).

    Every tensor is a copy (or, for the best weights, a tensor that is never changed), so
    the payload can be written while training goes on. When this epoch is the best one the
    model entry *is* the best-weights copy, and ``torch.save`` stores those tensors once.
    """
    model_state = progress.best_state if progress.best_epoch == progress.epoch else _copy_state(model.state_dict())
    return {
        "format": CHECKPOINT_FORMAT,
        "params": saved_params,
        "epoch": progress.epoch,
        "model": model_state,
        "optimizer": _copy_state(optimizer.state_dict()),
        "scheduler": copy.deepcopy(scheduler.state_dict()) if scheduler is not None else None,  # plain values
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": list(progress.history),  # rows are never changed once appended
        "best_state": progress.best_state,
        "best_epoch": progress.best_epoch,
        "best_val_loss": progress.best_val_loss,
        "bad_epochs": progress.bad_epochs,
        "stopped_early": progress.stopped_early,
    }


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (temporary file, fsync, rename): the old file or the new one."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


class _CheckpointWriter:
    """Writes the checkpoints of one training run on one background thread, one at a time.

    ``submit`` hands a snapshot (``_checkpoint_payload``) to the thread and returns at once;
    serializing it, writing the file and fsync (about 4 ms for the default CNN) then overlap
    the next epoch as far as the GIL lets them: torch's kernels release it, but ``torch.save``
    holds it while it pickles, so a loop of long kernels hides most of the write and a loop
    of tiny ops little of it (``benchmarks/RESULTS.md``). At most one write is in flight:
    ``wait`` blocks until the previous one is on disk and re-raises its error, if any, on
    the training thread; ``submit`` and ``close`` wait first. A write interrupted by the
    process dying leaves the previous checkpoint intact (``atomic_path``); the thread is not
    a daemon, so on an exception the interpreter still lets the in-flight write finish.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None

    def submit(self, payload: dict[str, Any]) -> None:
        self.wait()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aios-torch-checkpoint")
        self._pending = self._executor.submit(_save_checkpoint, self.path, payload)

    def wait(self) -> None:
        """Block until the write in flight, if any, is done; re-raise its error."""
        pending = self._pending
        if pending is None:
            return
        try:
            pending.result()
        finally:
            if pending.done():  # not when the wait itself was interrupted: ``close`` waits again
                self._pending = None

    def close(self, raise_errors: bool = True) -> None:
        """Wait for the last write and stop the thread; with ``raise_errors=False`` a failed write is only logged."""
        try:
            self.wait()
        except Exception:
            if raise_errors:
                raise
            _log.exception("torch trainer: writing the checkpoint %s failed", self.path)
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None


def _restore(path: Path, params: TorchTrainerParams, model: nn.Module, optimizer: torch.optim.Optimizer,
             scheduler: Any, generator: torch.Generator) -> _Progress:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a checkpoint of the aios torch trainer (expected format {CHECKPOINT_FORMAT!r})")
    saved = {k: v for k, v in payload["params"].items() if k not in _RESUMABLE_CHANGES}
    current = {k: v for k, v in params.model_dump(mode="json").items() if k not in _RESUMABLE_CHANGES}
    if saved != current:
        changed = sorted(k for k in current if saved.get(k) != current[k])
        raise ValueError(
            f"{path}: cannot resume, trainer parameters changed since the checkpoint "
            + ", ".join(f"trainer.{k}: {saved.get(k)!r} -> {current[k]!r}" for k in changed)
            + "; restore them, or start a new run"
        )
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(payload["scheduler"])
    generator.set_state(payload["generator"])
    torch.set_rng_state(payload["torch_rng"])
    return _Progress(epoch=payload["epoch"], history=list(payload["history"]), best_state=payload["best_state"],
                     best_epoch=payload["best_epoch"], best_val_loss=payload["best_val_loss"],
                     bad_epochs=payload["bad_epochs"], stopped_early=payload["stopped_early"])
