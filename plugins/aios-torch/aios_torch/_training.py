"""The torch training loop: deterministic for the run's seed, resumable bit-for-bit.

What every epoch-based trainer needs besides torch is the kernel's (``aios_core.training``):
the history, best epoch, early stopping and divergence check (``EpochProgress``), the
progress steps (``report_steps``), the resume check (``check_resume_params``) and the
checkpoint policy with its writer thread (``CheckpointWriter``). This module keeps what is
torch's: the epoch step, the optimizer and scheduler, snapshots of the torch state, and
saving and restoring torch objects.

The loop is a plain PyTorch loop on purpose: it reads train and validation through
``Dataset.batches`` (the kernel's batch contract: seeded by the run's seed and the epoch,
each batch gathered by index, no shuffled copy of the split per epoch, no DataLoader), so
the same loop trains on arrays held in memory and on splits streamed from files. The batch
losses are summed as floats and the logits are counted for the accuracy once per 4096 rows,
so the loop costs about what a hand-written one does. The ``seconds`` metric is the wall time of the
training pass alone (validation and the checkpoint come after it), so it compares directly
with such a loop.

Each epoch ends with a snapshot of the torch state (tensors copied, a fraction of a
millisecond) handed to the kernel's ``CheckpointWriter``, which writes it on its own thread
when ``checkpoint_interval_s`` has passed since its last write, and always at the end and
on an interrupt.
"""

from __future__ import annotations

import copy
import math
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from aios_core import (
    CheckpointWriter,
    Dataset,
    EpochProgress,
    RunContext,
    TrainResult,
    check_resume_params,
    report_steps,
)

if TYPE_CHECKING:
    from aios_core import TrainingParams
    from aios_torch import TorchTrainerParams

TRAINING_LOSS = "aios_training_loss"
"""A model may carry a callable ``(logits, targets, inputs) -> loss`` under this attribute: the training steps
then minimize it instead of the cross-entropy (``distill`` sets it on its student); validation stays cross-entropy."""
CHECKPOINT_NAME = "last.pt"
CHECKPOINT_FORMAT = "aios-torch-checkpoint/1"
_EVAL_BATCH = 4096
_ACCURACY_ROWS = 4096
"""Training rows whose logits are kept before their predictions are counted (bounds the memory kept)."""


def train(model: Any, dataset: Dataset, run: RunContext, params: TorchTrainerParams) -> TrainResult:
    """Train ``model`` on ``dataset.train`` with ``params``; see ``TorchTrainer``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"the torch trainer trains torch.nn.Module models, got {type(model).__name__}")
    if dataset.rows("val") == 0:
        raise ValueError(
            f"dataset {dataset.name!r} has an empty validation split; the torch trainer validates "
            "every epoch (early stopping and best weights use val_loss): give the datastore a val split"
        )
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    was_filling = torch.utils.deterministic.fill_uninitialized_memory
    torch.manual_seed(run.seed)
    torch.use_deterministic_algorithms(True)
    # Deterministic mode also fills every uninitialized tensor torch allocates, a debugging aid
    # for operations that read memory they did not write; the operations of a training step
    # write all they allocate, and the fill costs the default CNN about 1 % of its step.
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.set_num_threads(max(1, int(run.threads)))
    try:
        return _train(model, dataset, run, params)
    finally:
        torch.use_deterministic_algorithms(was_deterministic, warn_only=was_warn_only)
        torch.utils.deterministic.fill_uninitialized_memory = was_filling


def _train(model: nn.Module, dataset: Dataset, run: RunContext, params: TorchTrainerParams) -> TrainResult:
    loss_name = params.loss_for(dataset.task)
    criterion = loss_function(loss_name, dataset.target_scale if dataset.task == "regression" else None)
    optimizer = make_optimizer(model, params)
    scheduler = make_scheduler(optimizer, params)
    checkpoint = Path(run.checkpoint_dir) / CHECKPOINT_NAME
    progress, best_state = EpochProgress(), None
    if run.resume and checkpoint.exists():
        progress, best_state = _restore(checkpoint, params, model, optimizer, scheduler)
        run.log.info("torch trainer: resuming after epoch %d from %s", progress.epoch, checkpoint)

    steps = math.ceil(dataset.rows("train") / params.batch_size)
    reported_steps = report_steps(steps, params.progress_updates)
    saved_params = params.model_dump(mode="json")
    writer = CheckpointWriter(checkpoint, _save_checkpoint, params.checkpoint_interval_s)
    try:
        while not progress.done(params.epochs):
            epoch = progress.epoch + 1
            started = time.perf_counter()
            lr = float(optimizer.param_groups[0]["lr"])
            # the epoch's order depends on (seed, epoch) only: a resumed run reads the same batches
            batches = dataset.batches("train", params.batch_size, seed=run.seed, epoch=epoch)
            loss, score = _train_epoch(model, optimizer, batches,
                                       lambda step, loss, epoch=epoch: run.report_step(epoch, step, steps, {"loss": loss}),
                                       reported_steps, getattr(model, TRAINING_LOSS, None), criterion)
            seconds = time.perf_counter() - started
            validation = _validation(model, (_tensors(x, y) for x, y in dataset.batches("val", _EVAL_BATCH)),
                                     criterion)
            if scheduler is not None:
                scheduler.step()
            metrics = {"epoch": epoch, "loss": loss, score_name(criterion): score, **validation, "lr": lr,
                       "seconds": seconds}
            # Raises TrainingDiverged on a non-finite loss, before anything is reported or saved.
            if progress.record(metrics, patience=params.early_stopping_patience,
                               min_delta=params.early_stopping_min_delta):
                best_state = _copy_model_state(model)
            # A write in flight (the previous epoch's, with checkpoint_interval_s 0) is on disk before
            # this epoch is reported: a run killed after the report loses at most this epoch.
            writer.wait()
            run.report_epoch(epoch, dict(metrics))
            writer.epoch_end(_snapshot(saved_params, model, optimizer, scheduler, progress, best_state))
    except BaseException:
        writer.close(interrupted=True)  # the interrupt (or error) wins; the newest snapshot is still written
        raise
    writer.close()

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model=model, history=[dict(row) for row in progress.history],
                       best_epoch=progress.best_epoch, stopped_early=progress.stopped_early)


def _tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Features as float32; labels as int64 class indices, or float32 (n, targets) for regression."""
    regression = y.dtype.kind == "f"
    return (torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(y.reshape(len(y), -1) if regression else y,
                                                  dtype=np.float32 if regression else np.int64)))


_REGRESSION_LOSSES = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": F.huber_loss}


def loss_function(name: str = "cross_entropy", target_scale: list[float] | None = None) -> Any:
    """``(outputs, targets, reduction) -> loss`` for ``TrainingParams.loss_for``'s name; carries ``regression`` and
    ``scale``, the factors (``Dataset.target_scale``) that turn a regression error into the target's units."""
    function = F.cross_entropy if name == "cross_entropy" else _REGRESSION_LOSSES[name]

    def loss(outputs: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return function(outputs, targets, reduction=reduction)

    loss.regression = name != "cross_entropy"  # type: ignore[attr-defined]
    loss.scale = torch.tensor(target_scale, dtype=torch.float32) if target_scale else None  # type: ignore[attr-defined]
    return loss


def _errors(outputs: torch.Tensor, targets: torch.Tensor, criterion: Any) -> torch.Tensor:
    """``outputs - targets`` in the target's units (the model learns scaled targets)."""
    difference = outputs - targets
    scale = getattr(criterion, "scale", None)
    return difference if scale is None else difference * scale


def score_name(criterion: Any) -> str:
    """The metric a training epoch reports besides its loss: ``accuracy``, or ``rmse`` for regression."""
    return "rmse" if criterion.regression else "accuracy"


def batch_score(outputs: torch.Tensor, targets: torch.Tensor, criterion: Any) -> float:
    """Correct predictions (classification) or the sum of squared errors per target (regression, in the target's
    units) of a batch."""
    if criterion.regression:
        return float((_errors(outputs, targets, criterion) ** 2).sum().item()) / max(1, targets.shape[1])
    return float((outputs.argmax(dim=1) == targets).sum().item())


def epoch_score(total: float, rows: int, criterion: Any) -> float:
    """``batch_score`` summed over an epoch, as the metric ``score_name`` names (accuracy or RMSE)."""
    return math.sqrt(total / rows) if criterion.regression else total / rows


def make_optimizer(model: nn.Module, params: TrainingParams) -> torch.optim.Optimizer:
    """The optimizer ``params`` name (``adam`` or ``sgd``) for ``model``'s parameters."""
    if params.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=params.learning_rate, momentum=params.momentum,
                               weight_decay=params.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, params: TrainingParams) -> Any:
    """The learning-rate schedule ``params`` name, stepped once per epoch; None for ``none``."""
    if params.lr_schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=params.lr_step_size, gamma=params.lr_gamma)
    if params.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=params.epochs)
    return None


def _train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable[tuple[np.ndarray, np.ndarray]],
                 report: Any, report_steps: frozenset[int], training_loss: Any = None,
                 criterion: Any = None) -> tuple[float, float]:
    """One pass over ``batches`` (``Dataset.batches``); returns the mean training loss and accuracy (RMSE for regression).

    The loss is summed as a Python float (``item()`` on a CPU scalar is a read, not a sync),
    so the progress reports cost no tensor work. The batches' logits are kept (detached)
    and counted for the accuracy every ``_ACCURACY_ROWS`` rows: one argmax for many small
    batches rather than one per step, which a small model's step would notice (3 %).
    """
    criterion = criterion or loss_function()
    model.train()
    loss_sum = 0.0  # sum of per-row losses: batch mean x batch rows
    correct, seen = 0.0, 0
    kept: list[tuple[torch.Tensor, torch.Tensor]] = []  # (logits, targets) not counted yet
    kept_rows = 0
    for step, (x, y) in enumerate(batches, start=1):
        inputs, targets = _tensors(x, y)
        logits = model(inputs)
        loss = criterion(logits, targets) if training_loss is None else training_loss(logits, targets, inputs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        rows = len(targets)
        seen += rows
        loss_sum += loss.item() * rows
        kept.append((logits.detach(), targets))
        kept_rows += rows
        if kept_rows >= _ACCURACY_ROWS:
            correct += _kept_score(kept, criterion)
            kept, kept_rows = [], 0
        if step in report_steps:
            report(step, loss_sum / seen)
    if kept:
        correct += _kept_score(kept, criterion)
    return loss_sum / max(seen, 1), epoch_score(correct, max(seen, 1), criterion)


def _kept_score(kept: list[tuple[torch.Tensor, torch.Tensor]], criterion: Any) -> float:
    return batch_score(torch.cat([logits for logits, _ in kept]), torch.cat([targets for _, targets in kept]), criterion)


def _slices(x: torch.Tensor, y: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for begin in range(0, len(y), _EVAL_BATCH):
        yield x[begin:begin + _EVAL_BATCH], y[begin:begin + _EVAL_BATCH]


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on (x, y), in eval mode."""
    metrics = _validation(model, _slices(x, y), loss_function())
    return metrics["val_loss"], metrics["val_accuracy"]


def validation_metrics(model: nn.Module, x: torch.Tensor, y: torch.Tensor, criterion: Any) -> dict[str, float]:
    """``val_loss`` and ``val_accuracy``, or for regression ``val_loss`` (the training loss, on the scaled targets
    the model learns), ``val_rmse`` and ``val_mae`` (in the target's units, by ``criterion.scale``)."""
    return _validation(model, _slices(x, y), criterion)


def _validation(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], criterion: Any) -> dict[str, float]:
    """``validation_metrics`` over ``(inputs, targets)`` tensor batches, summed in double precision as Python numbers."""
    model.eval()
    total_loss, correct, squares, absolute, rows, cells = 0.0, 0, 0.0, 0.0, 0, 0
    with torch.inference_mode():
        for inputs, targets in batches:
            outputs = model(inputs)
            rows += len(targets)
            if not criterion.regression:
                total_loss += F.cross_entropy(outputs, targets, reduction="sum").item()
                correct += int((outputs.argmax(dim=1) == targets).sum().item())
                continue
            total_loss += criterion(outputs, targets, reduction="sum").item() / targets.shape[1]
            errors = _errors(outputs, targets, criterion)
            squares += (errors ** 2).sum().item()
            absolute += errors.abs().sum().item()
            cells += targets.numel()
    rows = max(rows, 1)
    if not criterion.regression:
        return {"val_loss": total_loss / rows, "val_accuracy": correct / rows}
    return {"val_loss": total_loss / rows, "val_rmse": math.sqrt(squares / max(cells, 1)),
            "val_mae": absolute / max(cells, 1)}


def _copy_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's ``state_dict`` with every tensor cloned, so later training steps leave it alone.

    It keeps the ``_metadata`` (module versions) that ``load_state_dict`` reads.
    """
    state = model.state_dict()
    copied = OrderedDict((key, value.detach().clone()) for key, value in state.items())
    copied._metadata = getattr(state, "_metadata", None)  # type: ignore[attr-defined]
    return copied


def _copy_optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's ``state_dict`` with its tensors cloned.

    ``state_dict()`` builds fresh containers every call and its parameter groups hold
    plain values, so only the per-parameter tensors (Adam's moments, ...) need copying:
    a quarter of the time of a generic deep copy, noticed by a small model's epoch.
    """
    state = optimizer.state_dict()
    state["state"] = {index: {key: value.detach().clone() if isinstance(value, torch.Tensor) else value
                              for key, value in entry.items()}
                      for index, entry in state["state"].items()}
    return state


def _snapshot(saved_params: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
              progress: EpochProgress,
              best_state: dict[str, torch.Tensor] | None) -> dict[str, Any]:
    """Everything a resumed run needs, as of now: tensors and plain values (``weights_only`` loadable).

    Every tensor is a copy (or, for the best weights, a tensor that is never changed), so
    the writer thread can write it while training goes on. When this epoch is the best one
    the model entry *is* the best-weights copy, and ``torch.save`` stores those tensors once.
    """
    model_state = best_state if progress.best_epoch == progress.epoch else _copy_model_state(model)
    return {
        "format": CHECKPOINT_FORMAT,
        "params": saved_params,
        **progress.state(),  # epoch, history, best_epoch, best_val_loss, bad_epochs, stopped_early
        "model": model_state,
        "optimizer": _copy_optimizer_state(optimizer),
        "scheduler": copy.deepcopy(scheduler.state_dict()) if scheduler is not None else None,  # plain values
        "torch_rng": torch.get_rng_state(),
        "best_state": best_state,
    }


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Serialize a snapshot to ``path`` (the writer's temporary file; it makes the write atomic)."""
    torch.save(payload, path)


def _restore(path: Path, params: TorchTrainerParams, model: nn.Module, optimizer: torch.optim.Optimizer,
             scheduler: Any) -> tuple[EpochProgress, dict[str, torch.Tensor] | None]:
    """Load ``path`` into the torch objects; the progress and the best weights it holds."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a checkpoint of the aios torch trainer (expected format {CHECKPOINT_FORMAT!r})")
    check_resume_params(payload["params"], params.model_dump(mode="json"), path)
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(payload["scheduler"])
    torch.set_rng_state(payload["torch_rng"])
    return EpochProgress.from_state(payload), payload["best_state"]
