"""The ``{{ cookiecutter.plugin_name }}`` training loop: mini-batch gradient descent with momentum, resumable.

What every epoch-based trainer shares comes from the kernel (``aios_core.training``):
``EpochProgress`` (history, best epoch, early stopping, the refusal of a non-finite loss),
``report_steps``, ``check_resume_params`` and ``CheckpointWriter`` (the checkpoint policy,
``checkpoint_interval_s``). This module keeps what is NumPy's: the gradient step, the
learning rate of an epoch, and the checkpoint's content (``last.npz``: the weights, their
momentum and the best weights so far as plain arrays, read with ``allow_pickle=False``).
"""

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

from {{ cookiecutter.package }}._model import MLP, softmax

if TYPE_CHECKING:
    from {{ cookiecutter.package }} import {{ cookiecutter.__class_prefix }}TrainerParams

CHECKPOINT_NAME = "last.npz"
CHECKPOINT_FORMAT = "{{ cookiecutter.plugin_name }}-checkpoint/1"

Arrays = list[np.ndarray]
"""A model's weights then its biases, or the momentum of each, in that order."""


def train(model: MLP, dataset: Dataset, run: RunContext, params: {{ cookiecutter.__class_prefix }}TrainerParams) -> TrainResult:
    """Train ``model`` in place on ``dataset.x_train``, validating on ``dataset.x_val`` after each epoch."""
    if not isinstance(model, MLP):
        raise TypeError(f"the {{ cookiecutter.plugin_name }} trainer trains {{ cookiecutter.plugin_name }} models, "
                        f"got {type(model).__name__}")
    if len(dataset.y_val) == 0:
        raise ValueError(f"dataset {dataset.name!r} has an empty validation split; the trainer keeps the weights "
                         "of the epoch with the lowest val_loss, so give the datastore a validation split")
    settings = params.model_dump(mode="json")
    checkpoint = Path(run.checkpoint_dir) / CHECKPOINT_NAME
    progress, velocity, best = EpochProgress(), [np.zeros_like(array) for array in _arrays(model)], None
    if run.resume and checkpoint.exists():
        progress, velocity, best = _restore(checkpoint, model, settings, type(params)().model_dump(mode="json"))
        run.log.info("{{ cookiecutter.plugin_name }} trainer: resuming after epoch %d from %s", progress.epoch, checkpoint)

    x_train = np.ascontiguousarray(dataset.x_train, dtype=np.float32)
    y_train = np.asarray(dataset.y_train, dtype=np.int64)
    steps = math.ceil(len(y_train) / params.batch_size)
    report_at = report_steps(steps, params.progress_updates)
    writer = CheckpointWriter(checkpoint, _save, interval_s=params.checkpoint_interval_s)
    try:
        while not progress.done(params.epochs):
            epoch, started = progress.epoch + 1, time.perf_counter()
            lr = params.scheduled_learning_rate(epoch)
            order = np.random.default_rng([run.seed, epoch]).permutation(len(y_train))  # the same order on resume
            loss_sum, correct = 0.0, 0
            for step, begin in enumerate(range(0, len(order), params.batch_size), start=1):
                rows = order[begin:begin + params.batch_size]
                batch_loss, batch_correct = _step(model, velocity, x_train[rows], y_train[rows], lr, params)
                loss_sum += batch_loss * len(rows)
                correct += batch_correct
                if step in report_at:
                    run.report_step(epoch, step, steps, {"loss": loss_sum / (begin + len(rows))})
            seconds = time.perf_counter() - started
            val_loss, val_accuracy = evaluate(model, dataset.x_val, dataset.y_val)
            metrics = {"epoch": epoch, "loss": loss_sum / len(y_train), "accuracy": correct / len(y_train),
                       "val_loss": val_loss, "val_accuracy": val_accuracy, "lr": lr, "seconds": seconds}
            # Raises TrainingDiverged on a non-finite loss, before anything is reported or saved.
            if progress.record(metrics, patience=params.early_stopping_patience,
                               min_delta=params.early_stopping_min_delta):
                best = _arrays(model, copy=True)
            run.report_epoch(epoch, dict(metrics))
            writer.epoch_end({"model": _arrays(model, copy=True), "velocity": [v.copy() for v in velocity],
                              "best": best, "progress": progress.state(), "params": settings})
    except BaseException:
        writer.close(interrupted=True)  # the interrupt (or error) wins; the newest snapshot is still written
        raise
    writer.close()

    if best is not None:
        _set_arrays(model, best)
    return TrainResult(model=model, history=[dict(row) for row in progress.history],
                       best_epoch=progress.best_epoch, stopped_early=progress.stopped_early)



def evaluate(model: MLP, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on (x, y)."""
    probabilities = model.predict_proba(x)
    loss = -np.log(np.clip(probabilities[np.arange(len(y)), y], 1e-12, None)).mean()
    return float(loss), float((probabilities.argmax(axis=1) == y).mean())


def _step(model: MLP, velocity: Arrays, x: np.ndarray, y: np.ndarray, lr: float,
          params: {{ cookiecutter.__class_prefix }}TrainerParams) -> tuple[float, int]:
    """One gradient step on a batch; returns the batch's mean loss and correct count (before the step)."""
    outputs = model.hidden(x)
    probabilities = softmax(outputs[-1])
    loss = float(-np.log(np.clip(probabilities[np.arange(len(y)), y], 1e-12, None)).mean())
    correct = int((probabilities.argmax(axis=1) == y).sum())
    grad = probabilities
    grad[np.arange(len(y)), y] -= 1.0
    grad /= len(y)
    layers = len(model.weights)
    for layer in reversed(range(layers)):
        weight = model.weights[layer]
        grad_weight = outputs[layer].T @ grad + params.weight_decay * weight
        grad_bias = grad.sum(axis=0)
        if layer > 0:  # push the gradient through this layer and the activation before it
            grad = grad @ weight.T
            before = outputs[layer]
            grad = grad * (before > 0) if model.activation == "relu" else grad * (1.0 - before ** 2)
        for values, gradient, moving in ((weight, grad_weight, velocity[layer]),
                                         (model.biases[layer], grad_bias, velocity[layers + layer])):
            moving *= params.momentum
            moving -= lr * gradient
            values += moving
    return loss, correct


def _arrays(model: MLP, copy: bool = False) -> Arrays:
    """The model's weights then biases; with ``copy``, copies that later steps leave alone."""
    arrays = [*model.weights, *model.biases]
    return [array.copy() for array in arrays] if copy else arrays


def _set_arrays(model: MLP, arrays: Arrays) -> None:
    layers = len(model.weights)
    model.weights, model.biases = list(arrays[:layers]), list(arrays[layers:])


def _save(path: Path, payload: dict[str, Any]) -> None:
    """Write a checkpoint (``CheckpointWriter`` calls it on its thread, at a temporary path)."""
    arrays: dict[str, np.ndarray] = {
        "format": np.array(CHECKPOINT_FORMAT),
        "state": np.array(json.dumps({"progress": payload["progress"], "params": payload["params"]})),
    }
    for prefix in ("model", "velocity", "best"):
        arrays.update({f"{prefix}_{index}": array for index, array in enumerate(payload[prefix])})
    with open(path, "wb") as handle:  # a handle, so numpy keeps the temporary file's name as it is
        np.savez(handle, **arrays)


def _restore(path: Path, model: MLP, settings: dict[str, Any],
             defaults: dict[str, Any]) -> tuple[EpochProgress, Arrays, Arrays]:
    """Put the checkpoint's weights into ``model``; return the progress, the momentum and the best weights."""
    with np.load(path, allow_pickle=False) as data:
        if "format" not in data.files or str(data["format"]) != CHECKPOINT_FORMAT:
            raise ValueError(f"{path}: not a {CHECKPOINT_FORMAT} checkpoint; start a new run instead of resuming")
        state = json.loads(str(data["state"]))
        check_resume_params(state["params"], settings, path, defaults)
        count = sum(1 for name in data.files if name.startswith("model_"))
        saved = {prefix: [data[f"{prefix}_{index}"] for index in range(count)]
                 for prefix in ("model", "velocity", "best")}
    shapes = [array.shape for array in _arrays(model)]
    if [array.shape for array in saved["model"]] != shapes:
        raise ValueError(f"{path}: the checkpoint holds a model of shapes {[a.shape for a in saved['model']]}, "
                         f"this run builds {shapes}; start a new run instead of resuming")
    _set_arrays(model, saved["model"])
    return EpochProgress.from_state(state["progress"]), saved["velocity"], saved["best"]
