"""The ``{{ cookiecutter.plugin_name }}`` training loop: mini-batch gradient descent, checkpointed every epoch, resumable."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from aios_core import Dataset, RunContext, TrainResult, atomic_path

from {{ cookiecutter.package }}._model import MLP, softmax

if TYPE_CHECKING:
    from {{ cookiecutter.package }} import {{ cookiecutter.__class_prefix }}TrainerParams

CHECKPOINT_NAME = "last.npz"
CHECKPOINT_FORMAT = "{{ cookiecutter.plugin_name }}-checkpoint/1"
_RESUMABLE_CHANGES = {"progress_updates"}
"""Trainer parameters that may differ between an interrupted run and its resumption."""


def train(model: MLP, dataset: Dataset, run: RunContext, params: {{ cookiecutter.__class_prefix }}TrainerParams) -> TrainResult:
    """Train ``model`` in place on ``dataset.x_train``, validating on ``dataset.x_val`` after each epoch."""
    if not isinstance(model, MLP):
        raise TypeError(f"the {{ cookiecutter.plugin_name }} trainer trains {{ cookiecutter.plugin_name }} models, "
                        f"got {type(model).__name__}")
    if len(dataset.y_val) == 0:
        raise ValueError(f"dataset {dataset.name!r} has an empty validation split; the trainer keeps the weights "
                         "of the epoch with the lowest val_loss, so give the datastore a validation split")
    state = _State.start(model, params)
    checkpoint = Path(run.checkpoint_dir) / CHECKPOINT_NAME
    if run.resume and checkpoint.exists():
        state.restore(checkpoint, model, params)
        run.log.info("{{ cookiecutter.plugin_name }} trainer: resuming after epoch %d from %s", state.epoch, checkpoint)

    x_train = np.ascontiguousarray(dataset.x_train, dtype=np.float32)
    y_train = np.asarray(dataset.y_train, dtype=np.int64)
    steps = math.ceil(len(y_train) / params.batch_size)
    report_at = _report_steps(steps, params.progress_updates)
    while state.epoch < params.epochs:
        epoch = state.epoch + 1
        started = time.perf_counter()
        order = np.random.default_rng([run.seed, epoch]).permutation(len(y_train))  # the same order on resume
        loss_sum, correct = 0.0, 0
        for step, begin in enumerate(range(0, len(order), params.batch_size), start=1):
            rows = order[begin:begin + params.batch_size]
            batch_loss, batch_correct = _step(model, state, x_train[rows], y_train[rows], params)
            loss_sum += batch_loss * len(rows)
            correct += batch_correct
            if step in report_at:
                run.report_step(epoch, step, steps, {"loss": loss_sum / (begin + len(rows))})
        seconds = time.perf_counter() - started
        val_loss, val_accuracy = evaluate(model, dataset.x_val, dataset.y_val)
        metrics = {"epoch": epoch, "loss": loss_sum / len(y_train), "accuracy": correct / len(y_train),
                   "val_loss": val_loss, "val_accuracy": val_accuracy, "lr": params.learning_rate,
                   "seconds": seconds}
        state.epoch = epoch
        state.history.append(metrics)
        if val_loss < state.best_val_loss:
            state.best_val_loss, state.best_epoch = val_loss, epoch
            state.best = [array.copy() for array in (*model.weights, *model.biases)]
        run.report_epoch(epoch, dict(metrics))
        state.save(checkpoint, model, params)

    if state.best is not None:
        layers = len(model.weights)
        model.weights, model.biases = state.best[:layers], state.best[layers:]
    return TrainResult(model=model, history=[dict(row) for row in state.history],
                       best_epoch=state.best_epoch or state.epoch)


def evaluate(model: MLP, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on (x, y)."""
    probabilities = model.predict_proba(x)
    loss = -np.log(np.clip(probabilities[np.arange(len(y)), y], 1e-12, None)).mean()
    return float(loss), float((probabilities.argmax(axis=1) == y).mean())


def _step(model: MLP, state: _State, x: np.ndarray, y: np.ndarray,
          params: {{ cookiecutter.__class_prefix }}TrainerParams) -> tuple[float, int]:
    """One gradient step on a batch; returns the batch's mean loss and correct count (before the step)."""
    outputs = model.hidden(x)
    probabilities = softmax(outputs[-1])
    loss = float(-np.log(np.clip(probabilities[np.arange(len(y)), y], 1e-12, None)).mean())
    correct = int((probabilities.argmax(axis=1) == y).sum())
    grad = probabilities
    grad[np.arange(len(y)), y] -= 1.0
    grad /= len(y)
    for layer in reversed(range(len(model.weights))):
        weight = model.weights[layer]
        grad_weight = outputs[layer].T @ grad + params.weight_decay * weight
        grad_bias = grad.sum(axis=0)
        if layer > 0:  # push the gradient through this layer and the activation before it
            grad = grad @ weight.T
            before = outputs[layer]
            grad = grad * (before > 0) if model.activation == "relu" else grad * (1.0 - before ** 2)
        bias_velocity = state.velocity[len(model.weights) + layer]
        for values, gradient, velocity in ((weight, grad_weight, state.velocity[layer]),
                                           (model.biases[layer], grad_bias, bias_velocity)):
            velocity *= params.momentum
            velocity -= params.learning_rate * gradient
            values += velocity
    return loss, correct


def _report_steps(steps: int, updates: int) -> frozenset[int]:
    """The 1-based steps after which to report progress: ``updates`` of them, evenly spread."""
    count = min(updates, steps)
    return frozenset(math.ceil(i * steps / count) for i in range(1, count + 1)) if count else frozenset()


class _State:
    """What a checkpoint holds besides the model's weights: epoch, momentum, history and the best weights."""

    def __init__(self, velocity: list[np.ndarray]) -> None:
        self.epoch = 0
        self.velocity = velocity
        self.history: list[dict[str, float]] = []
        self.best: list[np.ndarray] | None = None
        self.best_epoch = 0
        self.best_val_loss = math.inf

    @classmethod
    def start(cls, model: MLP, params: Any) -> _State:
        return cls([np.zeros_like(array) for array in (*model.weights, *model.biases)])

    def save(self, path: Path, model: MLP, params: Any) -> None:
        arrays: dict[str, np.ndarray] = {
            "format": np.array(CHECKPOINT_FORMAT),
            "progress": np.array(json.dumps({
                "epoch": self.epoch, "history": self.history, "best_epoch": self.best_epoch,
                "best_val_loss": self.best_val_loss, "params": _resumable(params)})),
        }
        for index, array in enumerate((*model.weights, *model.biases)):
            arrays[f"model_{index}"] = array
            arrays[f"velocity_{index}"] = self.velocity[index]
            if self.best is not None:
                arrays[f"best_{index}"] = self.best[index]
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    def restore(self, path: Path, model: MLP, params: Any) -> None:
        with np.load(path, allow_pickle=False) as data:
            if str(data["format"]) != CHECKPOINT_FORMAT:
                raise ValueError(f"{path}: not a {CHECKPOINT_FORMAT} checkpoint")
            progress = json.loads(str(data["progress"]))
            if progress["params"] != _resumable(params):
                raise ValueError(f"{path}: the checkpoint was written with other trainer parameters "
                                 f"({progress['params']}); start a new run instead of resuming")
            count = len(model.weights) + len(model.biases)
            restored = [data[f"model_{i}"] for i in range(count)]
            if [a.shape for a in restored] != [a.shape for a in (*model.weights, *model.biases)]:
                raise ValueError(f"{path}: the checkpoint holds a model of another shape")
            layers = len(model.weights)
            model.weights, model.biases = restored[:layers], restored[layers:]
            self.velocity = [data[f"velocity_{i}"] for i in range(count)]
            self.best = [data[f"best_{i}"] for i in range(count)] if "best_0" in data.files else None
        self.epoch, self.history = progress["epoch"], progress["history"]
        self.best_epoch, self.best_val_loss = progress["best_epoch"], progress["best_val_loss"]


def _resumable(params: Any) -> dict[str, Any]:
    return {k: v for k, v in params.model_dump(mode="json").items() if k not in _RESUMABLE_CHANGES}
