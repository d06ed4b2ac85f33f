"""Training with ``model.fit``: deterministic for the run's seed, checkpointed every epoch, resumable.

One ``model.fit`` call trains every epoch. Its input is a ``tf.data`` pipeline of index
batches: epoch ``e`` visits the training rows in the order of a permutation drawn from
``(seed, e)`` alone, so an epoch's batches do not depend on the epochs before it and a
resumed run sees exactly the batches an uninterrupted one does. ``_RunCallback`` feeds
the run's monitors each epoch (loss, accuracy, val_loss, val_accuracy, lr, seconds),
applies the learning-rate schedule and early stopping, and snapshots the checkpoint
``last.npz`` (every model variable, including the dropout seed states, every optimizer
variable, the best weights so far and the history, as plain arrays loaded with
``allow_pickle=False``), which one background thread writes while the next epoch trains.
"""

from __future__ import annotations

import json
import logging
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aios_core import Dataset, RunContext, TrainResult, atomic_path
from aios_tf import _runtime

if TYPE_CHECKING:
    from aios_tf import KerasTrainerParams

_log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.npz"
CHECKPOINT_FORMAT = "aios-keras-checkpoint/1"
_RESUMABLE_CHANGES = {"progress_updates"}
"""Trainer parameters that may differ between an interrupted run and its resumption."""
_EVAL_BATCH = 4096


@dataclass
class _Progress:
    """Everything besides the model and optimizer variables that a checkpoint must restore."""

    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_weights: list[np.ndarray] | None = None
    best_epoch: int = 0
    best_val_loss: float = math.inf
    bad_epochs: int = 0
    stopped_early: bool = False


def train(model: Any, dataset: Dataset, run: RunContext, params: KerasTrainerParams) -> TrainResult:
    """Train ``model`` on ``dataset.train`` with ``params``; see ``KerasTrainer``."""
    keras = _runtime.keras()
    if not isinstance(model, keras.Model):
        raise TypeError(f"the keras trainer trains keras.Model models, got {type(model).__name__}")
    if len(dataset.y_val) == 0:
        raise ValueError(
            f"dataset {dataset.name!r} has an empty validation split; the keras trainer validates "
            "every epoch (early stopping and best weights use val_loss): give the datastore a val split"
        )
    _runtime.configure(run.threads, deterministic=True)
    keras.utils.set_random_seed(run.seed)
    model.compile(optimizer=_optimizer(keras, params), loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")], jit_compile=False)
    checkpoint = Path(run.checkpoint_dir) / CHECKPOINT_NAME
    progress = _Progress()
    if run.resume and checkpoint.exists():
        progress = _restore(checkpoint, params, model)
        run.log.info("keras trainer: resuming after epoch %d from %s", progress.epoch, checkpoint)

    steps = math.ceil(len(dataset.y_train) / params.batch_size)
    if progress.epoch < params.epochs and not progress.stopped_early:
        writer = _CheckpointWriter(checkpoint)
        callbacks = [_RunCallback(run, params, progress, writer)]
        if params.progress_updates:
            callbacks.append(_StepReporter(run, steps, params.progress_updates))
        try:
            model.fit(
                _batches(dataset, run.seed, params.batch_size, first_epoch=progress.epoch, epochs=params.epochs),
                epochs=params.epochs, initial_epoch=progress.epoch, steps_per_epoch=steps,
                validation_data=(np.ascontiguousarray(dataset.x_val, dtype=np.float32),
                                 np.ascontiguousarray(dataset.y_val, dtype=np.int64)),
                validation_batch_size=_EVAL_BATCH, callbacks=callbacks, shuffle=False, verbose=0,
            )
        except BaseException:
            writer.close(raise_errors=False)  # the interrupt (or error) wins; the write in flight still completes
            raise
        writer.close()
    if progress.best_weights is not None:
        model.set_weights(progress.best_weights)
    best_epoch = progress.best_epoch or progress.epoch  # no finite val_loss: keep the last weights
    return TrainResult(model=model, history=[dict(row) for row in progress.history],
                       best_epoch=best_epoch, stopped_early=progress.stopped_early)


def _optimizer(keras: Any, params: KerasTrainerParams) -> Any:
    decay = params.weight_decay or None
    if params.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=params.learning_rate, momentum=params.momentum, weight_decay=decay)
    return keras.optimizers.Adam(learning_rate=params.learning_rate, weight_decay=decay)


def learning_rate(params: KerasTrainerParams, epoch: int) -> float:
    """The learning rate of 1-based ``epoch``, as torch's StepLR / CosineAnnealingLR(T_max=epochs) give it."""
    done = epoch - 1
    if params.lr_schedule == "step":
        return params.learning_rate * params.lr_gamma ** (done // params.lr_step_size)
    if params.lr_schedule == "cosine":
        return params.learning_rate * (1 + math.cos(math.pi * done / params.epochs)) / 2
    return params.learning_rate


def epoch_order(seed: int, epoch: int, rows: int) -> np.ndarray:
    """The order in which 1-based ``epoch`` visits the training rows: a function of (seed, epoch) only."""
    return np.random.default_rng([seed, epoch]).permutation(rows).astype(np.int64)


def _batches(dataset: Dataset, seed: int, batch_size: int, *, first_epoch: int, epochs: int) -> Any:
    """Batches of (x, y) for epochs ``first_epoch + 1 .. epochs``, each epoch in ``epoch_order``."""
    tf = _runtime.tensorflow()
    x = tf.constant(np.ascontiguousarray(dataset.x_train, dtype=np.float32))
    y = tf.constant(np.ascontiguousarray(dataset.y_train, dtype=np.int64))
    rows = len(dataset.y_train)
    orders = np.stack([epoch_order(seed, epoch, rows) for epoch in range(first_epoch + 1, epochs + 1)])
    index = tf.data.Dataset.from_tensor_slices(orders).flat_map(
        lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
    return index.map(lambda rows: (tf.gather(x, rows), tf.gather(y, rows))).prefetch(2)


class _RunCallback:
    """Defined as a keras Callback subclass on first use (keras is imported lazily); see ``_callback_class``."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return _callback_classes()["run"](*args, **kwargs)


class _StepReporter:
    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return _callback_classes()["steps"](*args, **kwargs)


_CLASSES: dict[str, type] = {}


def _callback_classes() -> dict[str, type]:
    if _CLASSES:
        return _CLASSES
    keras = _runtime.keras()

    class RunCallback(keras.callbacks.Callback):
        """Per epoch: set the scheduled lr, time the training pass, track the best, checkpoint, report."""

        def __init__(self, run: RunContext, params: KerasTrainerParams, progress: _Progress,
                     writer: _CheckpointWriter) -> None:
            super().__init__()
            # not self.params: keras sets that to fit's own parameters
            self.run, self.settings, self.progress, self.writer = run, params, progress, writer
            self.saved_params = params.model_dump(mode="json")
            self.started = self.trained = 0.0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.model.optimizer.learning_rate = learning_rate(self.settings, epoch + 1)
            self.trained = 0.0
            self.started = time.perf_counter()

        def on_test_begin(self, logs: Any = None) -> None:
            if self.started and not self.trained:  # fit's validation begins: the training pass is over
                self.trained = time.perf_counter() - self.started

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = logs or {}
            seconds = self.trained or (time.perf_counter() - self.started)
            number = epoch + 1
            progress, params = self.progress, self.settings
            metrics = {"epoch": number, "loss": float(logs["loss"]), "accuracy": float(logs["accuracy"]),
                       "val_loss": float(logs["val_loss"]), "val_accuracy": float(logs["val_accuracy"]),
                       "lr": learning_rate(params, number), "seconds": seconds}
            progress.epoch = number
            progress.history.append(metrics)
            if metrics["val_loss"] < progress.best_val_loss - params.early_stopping_min_delta:
                progress.best_val_loss, progress.best_epoch, progress.bad_epochs = metrics["val_loss"], number, 0
                progress.best_weights = self.model.get_weights()
            else:
                progress.bad_epochs += 1
                patience = params.early_stopping_patience
                progress.stopped_early = patience is not None and progress.bad_epochs >= patience
            # The previous epoch's checkpoint is on disk before this epoch is reported, as in the
            # torch trainer: a run killed at any point resumes from the epoch before the last one
            # it reported, or from the last one. This epoch's is written while the next one trains.
            arrays = _checkpoint_arrays(self.saved_params, self.model, progress)
            self.writer.wait()
            self.run.report_epoch(number, dict(metrics))
            self.writer.submit(arrays)
            if progress.stopped_early:
                self.model.stop_training = True

    class StepReporter(keras.callbacks.Callback):
        """Reports the running training loss ``updates`` times per epoch, evenly spread."""

        def __init__(self, run: RunContext, steps: int, updates: int) -> None:
            super().__init__()
            self.run, self.steps = run, steps
            count = min(updates, steps)
            self.report_steps = frozenset(math.ceil(i * steps / count) for i in range(1, count + 1))
            self.epoch = 1

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.epoch = epoch + 1

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            step = batch + 1
            if step in self.report_steps:
                self.run.report_step(self.epoch, step, self.steps, {"loss": float((logs or {})["loss"])})

    _CLASSES.update(run=RunCallback, steps=StepReporter)
    return _CLASSES


def _checkpoint_arrays(saved_params: dict[str, Any], model: Any, progress: _Progress) -> dict[str, np.ndarray]:
    """Everything a resumed run needs, as of now, as copies that later training steps leave alone."""
    state = {
        "format": CHECKPOINT_FORMAT, "params": saved_params, "epoch": progress.epoch,
        "history": progress.history, "best_epoch": progress.best_epoch,
        "best_val_loss": progress.best_val_loss if math.isfinite(progress.best_val_loss) else None,
        "bad_epochs": progress.bad_epochs, "stopped_early": progress.stopped_early,
        "has_best": progress.best_weights is not None,
    }
    arrays: dict[str, np.ndarray] = {"state": np.array(json.dumps(state))}
    for number, variable in enumerate(model.variables):
        arrays[f"model_{number}"] = np.array(variable.numpy(), copy=True)
    for number, variable in enumerate(model.optimizer.variables):
        arrays[f"optimizer_{number}"] = np.array(variable.numpy(), copy=True)
    for number, weight in enumerate(progress.best_weights or []):
        arrays[f"best_{number}"] = weight  # never changed after get_weights() made it
    return arrays


def _save_checkpoint(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` atomically (temporary file, fsync, rename): the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


class _CheckpointWriter:
    """Writes the checkpoints of one training run on one background thread, one at a time.

    ``submit`` hands a snapshot (``_checkpoint_arrays``) to the thread and returns; writing
    and fsync overlap the next epoch. ``wait`` blocks until the previous write is on disk
    and re-raises its error on the training thread. A write cut short by the process dying
    leaves the previous checkpoint intact (``atomic_path``); the thread is not a daemon, so
    on an exception the interpreter still lets the write in flight finish.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None

    def submit(self, arrays: dict[str, np.ndarray]) -> None:
        self.wait()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aios-keras-checkpoint")
        self._pending = self._executor.submit(_save_checkpoint, self.path, arrays)

    def wait(self) -> None:
        """Block until the write in flight, if any, is done; re-raise its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self, raise_errors: bool = True) -> None:
        """Wait for the last write and stop the thread; with ``raise_errors=False`` a failed write is only logged."""
        try:
            self.wait()
        except Exception:
            if raise_errors:
                raise
            _log.exception("keras trainer: writing the checkpoint %s failed", self.path)
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None


def _numbered(data: Any, prefix: str) -> list[np.ndarray]:
    keys = sorted((key for key in data.files if key.startswith(prefix)), key=lambda key: int(key[len(prefix):]))
    return [data[key] for key in keys]


def _restore(path: Path, params: KerasTrainerParams, model: Any) -> _Progress:
    try:
        with np.load(path, allow_pickle=False) as data:
            state = json.loads(str(data["state"]))
            model_values, optimizer_values = _numbered(data, "model_"), _numbered(data, "optimizer_")
            best = _numbered(data, "best_")
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path}: not a checkpoint of the aios keras trainer ({error})") from error
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a checkpoint of the aios keras trainer (expected format {CHECKPOINT_FORMAT!r})")
    saved = {k: v for k, v in state["params"].items() if k not in _RESUMABLE_CHANGES}
    current = {k: v for k, v in params.model_dump(mode="json").items() if k not in _RESUMABLE_CHANGES}
    if saved != current:
        changed = sorted(k for k in current if saved.get(k) != current[k])
        raise ValueError(
            f"{path}: cannot resume, trainer parameters changed since the checkpoint "
            + ", ".join(f"trainer.{k}: {saved.get(k)!r} -> {current[k]!r}" for k in changed)
            + "; restore them, or start a new run"
        )
    variables = model.variables
    if len(variables) != len(model_values):
        raise ValueError(f"{path}: the checkpoint holds {len(model_values)} model variables, the model has "
                         f"{len(variables)}; it was written for another model: start a new run")
    for variable, value in zip(variables, model_values, strict=True):
        variable.assign(value)
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    for variable, value in zip(optimizer.variables, optimizer_values, strict=True):
        variable.assign(value)
    best_val_loss = state["best_val_loss"]
    return _Progress(epoch=state["epoch"], history=list(state["history"]),
                     best_weights=best if state["has_best"] else None, best_epoch=state["best_epoch"],
                     best_val_loss=math.inf if best_val_loss is None else best_val_loss,
                     bad_epochs=state["bad_epochs"], stopped_early=state["stopped_early"])
