"""The nearest-centroid trainer: an epoch is one pass of ``partial_fit`` over the training split, in batches."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from aios_core import (
    CheckpointWriter,
    Dataset,
    EpochProgress,
    RunContext,
    TrainResult,
    check_resume_params,
    report_steps,
)

from aios_nearest_centroid._model import NearestCentroid

if TYPE_CHECKING:
    from aios_nearest_centroid import NearestCentroidTrainerParams

CHECKPOINT_NAME = "last.npz"
CHECKPOINT_FORMAT = "nearest-centroid-checkpoint/1"


def train(model: NearestCentroid, dataset: Dataset, run: RunContext,
          params: NearestCentroidTrainerParams) -> TrainResult:
    """Fit ``model`` in place, one pass over ``dataset.x_train`` per epoch, validating after each pass."""
    if not isinstance(model, NearestCentroid):
        raise TypeError(f"the nearest-centroid trainer trains nearest-centroid models, got {type(model).__name__}")
    if len(dataset.y_val) == 0:
        raise ValueError(f"dataset {dataset.name!r} has an empty validation split; the trainer reports val_loss "
                         "after each epoch, so give the datastore a validation split")
    settings = params.model_dump(mode="json")
    checkpoint = Path(run.checkpoint_dir) / CHECKPOINT_NAME
    progress, best = EpochProgress(), model.copy()
    if run.resume and checkpoint.exists():
        progress, best = _restore(checkpoint, model, settings, type(params)().model_dump(mode="json"))
        run.log.info("nearest-centroid trainer: resuming after epoch %d from %s", progress.epoch, checkpoint)

    x, y = np.asarray(dataset.x_train, dtype=np.float32), np.asarray(dataset.y_train, dtype=np.int64)
    steps = math.ceil(len(y) / params.batch_size)
    report_at = report_steps(steps, params.progress_updates)
    writer = CheckpointWriter(checkpoint, _save, interval_s=params.checkpoint_interval_s)
    interrupted = True
    try:
        while not progress.done(params.epochs):
            epoch, started = progress.epoch + 1, time.perf_counter()
            order = np.random.default_rng([run.seed, epoch]).permutation(len(y))  # the same order on resume
            loss_sum, correct = 0.0, 0
            for step, begin in enumerate(range(0, len(order), params.batch_size), start=1):
                rows = order[begin:begin + params.batch_size]
                # Score each batch before learning from it (progressive validation), as a gradient
                # trainer's loss is each batch's before its step: the first pass starts unfitted.
                batch_loss, batch_correct = _score(model, x[rows], y[rows])
                loss_sum, correct = loss_sum + batch_loss, correct + batch_correct
                model.partial_fit(x[rows], y[rows])
                if step in report_at:
                    run.report_step(epoch, step, steps, {"loss": loss_sum / (begin + len(rows))})
            val_loss, val_correct = _score(model, dataset.x_val, dataset.y_val)
            metrics = {"epoch": epoch, "loss": loss_sum / len(y), "accuracy": correct / len(y),
                       "val_loss": val_loss / len(dataset.y_val), "val_accuracy": val_correct / len(dataset.y_val),
                       "seconds": time.perf_counter() - started}  # no "lr": nothing here has a learning rate
            if progress.record(metrics, patience=None):
                best = model.copy()
            run.report_epoch(epoch, dict(metrics))
            writer.epoch_end({"model": model.copy(), "best": best, "progress": progress.state(),
                              "params": settings})
        interrupted = False
    finally:
        writer.close(interrupted=interrupted)
    return TrainResult(model=best, history=[dict(row) for row in progress.history],
                       best_epoch=progress.best_epoch or progress.epoch)


def _score(model: NearestCentroid, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """Summed cross-entropy and the number of correct rows of ``model`` on (x, y)."""
    probabilities = model.predict_proba(x)
    loss = -np.log(np.clip(probabilities[np.arange(len(y)), y], 1e-12, None)).sum()
    return float(loss), int((probabilities.argmax(axis=1) == y).sum())


def _save(path: Path, payload: dict[str, Any]) -> None:
    """Write a checkpoint (``CheckpointWriter`` calls it on its thread, at a temporary path)."""
    arrays: dict[str, np.ndarray] = {
        "format": np.array(CHECKPOINT_FORMAT),
        "state": np.array(json.dumps({"progress": payload["progress"], "params": payload["params"]})),
    }
    for prefix in ("model", "best"):
        model = payload[prefix]
        arrays.update({f"{prefix}_counts": model.counts, f"{prefix}_sums": model.sums,
                       f"{prefix}_squares": model.squares})
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _restore(path: Path, model: NearestCentroid, settings: dict[str, Any],
             defaults: dict[str, Any]) -> tuple[EpochProgress, NearestCentroid]:
    """Put the checkpoint's sums into ``model``; return the progress and the best model so far."""
    with np.load(path, allow_pickle=False) as data:
        if "format" not in data.files or str(data["format"]) != CHECKPOINT_FORMAT:
            raise ValueError(f"{path}: not a {CHECKPOINT_FORMAT} checkpoint")
        state = json.loads(str(data["state"]))
        check_resume_params(state["params"], settings, path, defaults)
        if data["model_sums"].shape != model.sums.shape:
            raise ValueError(f"{path}: the checkpoint holds a model of shape {data['model_sums'].shape}, this run "
                             f"builds {model.sums.shape}; start a new run instead of resuming")
        model.counts, model.sums, model.squares = data["model_counts"], data["model_sums"], data["model_squares"]
        best = NearestCentroid(data["best_counts"], data["best_sums"], data["best_squares"], model.priors,
                               model.min_variance)
    return EpochProgress.from_state(state["progress"]), best
