"""Training with ``model.fit``: deterministic for the run's seed, checkpointed, resumable.

One ``model.fit`` call trains every epoch. Its input is a ``tf.data`` pipeline of index
batches: epoch ``e`` visits the training rows in the order of a permutation drawn from
``(seed, e)`` alone, so an epoch's batches do not depend on the epochs before it and a
resumed run sees exactly the batches an uninterrupted one does.

What every epoch-based trainer shares comes from the kernel (``aios_core.training``):
``EpochProgress`` (history, best epoch, early stopping, the refusal of a non-finite
loss), ``report_steps``, ``check_resume_params`` and ``CheckpointWriter`` (the
checkpoint policy). This module keeps what is Keras': the callbacks, ``model.fit``, the
optimizer, and the checkpoint's content, ``last.npz``: every model variable (including
the dropout seed states), every optimizer variable, the best weights so far and the
progress, as plain arrays loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import functools
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
from aios_tf import _runtime

if TYPE_CHECKING:
    from aios_tf import KerasTrainerParams

CHECKPOINT_NAME = "last.npz"
CHECKPOINT_FORMAT = "aios-keras-checkpoint/1"
_EVAL_BATCH = 4096

Weights = list[np.ndarray]


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
    loss = params.loss_for(dataset.task)
    if dataset.task == "regression":
        losses = {"mse": keras.losses.MeanSquaredError, "mae": keras.losses.MeanAbsoluteError,
                  "huber": keras.losses.Huber}
        model.compile(optimizer=_optimizer(keras, params), loss=losses[loss](),
                      metrics=[keras.metrics.RootMeanSquaredError(name="rmse"),
                               keras.metrics.MeanAbsoluteError(name="mae")], jit_compile=False)
    else:
        model.compile(optimizer=_optimizer(keras, params), loss=keras.losses.SparseCategoricalCrossentropy(),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")], jit_compile=False)
    checkpoint = Path(run.checkpoint_dir) / CHECKPOINT_NAME
    progress, best_weights = EpochProgress(), None
    if run.resume and checkpoint.exists():
        progress, best_weights = _restore(checkpoint, params, model)
        run.log.info("keras trainer: resuming after epoch %d from %s", progress.epoch, checkpoint)
    if not progress.done(params.epochs):
        best_weights = _fit(model, dataset, run, params, progress, best_weights, checkpoint)
    if best_weights is not None:
        model.set_weights(best_weights)
    return TrainResult(model=model, history=[dict(row) for row in progress.history],
                       best_epoch=progress.best_epoch, stopped_early=progress.stopped_early)


def _fit(model: Any, dataset: Dataset, run: RunContext, params: KerasTrainerParams, progress: EpochProgress,
         best_weights: Weights | None, checkpoint: Path) -> Weights | None:
    """Train the remaining epochs with one ``model.fit``, recording them in ``progress``; return the best weights."""
    run_callback_class, step_reporter_class = _callback_classes()
    steps = math.ceil(len(dataset.y_train) / params.batch_size)
    writer = CheckpointWriter(checkpoint, _save_checkpoint, params.checkpoint_interval_s)
    callback = run_callback_class(run, params, progress, best_weights, writer, _error_scale(dataset, run))
    callbacks = [callback]
    if params.progress_updates:
        callbacks.append(step_reporter_class(run, steps, params.progress_updates))
    try:
        model.fit(
            _batches(dataset, run.seed, params.batch_size, first_epoch=progress.epoch, epochs=params.epochs),
            epochs=params.epochs, initial_epoch=progress.epoch, steps_per_epoch=steps,
            validation_data=(np.ascontiguousarray(dataset.x_val, dtype=np.float32), _labels(dataset.y_val)),
            validation_batch_size=_EVAL_BATCH, callbacks=callbacks, shuffle=False, verbose=0,
        )
    except BaseException:
        writer.close(interrupted=True)  # writes the newest snapshot; the interrupt (or error) wins
        raise
    writer.close()
    return callback.best_weights


def _error_scale(dataset: Dataset, run: RunContext) -> float:
    """What turns keras' RMSE and MAE of the scaled targets into the target's units (``Dataset.target_scale``):
    exact for one target; with several targets of different scales they stay on the scaled targets (logged)."""
    if dataset.task != "regression":
        return 1.0
    scales = set(dataset.target_scale)
    if len(scales) == 1:
        return scales.pop()
    run.log.warning("keras trainer: rmse, val_rmse and val_mae are of the standardized targets (%d targets of "
                    "different scales); evaluation reports them in the targets' units", dataset.num_targets)
    return 1.0


def _optimizer(keras: Any, params: KerasTrainerParams) -> Any:
    decay = params.weight_decay or None
    if params.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=params.learning_rate, momentum=params.momentum, weight_decay=decay)
    return keras.optimizers.Adam(learning_rate=params.learning_rate, weight_decay=decay)



def _labels(y: np.ndarray) -> np.ndarray:
    """Class indices as int64, regression targets as float32 (n, targets)."""
    if y.dtype.kind == "f":
        return np.ascontiguousarray(y.reshape(len(y), -1), dtype=np.float32)
    return np.ascontiguousarray(y, dtype=np.int64)


def epoch_order(seed: int, epoch: int, rows: int) -> np.ndarray:
    """The order in which 1-based ``epoch`` visits the training rows: a function of (seed, epoch) only."""
    return np.random.default_rng([seed, epoch]).permutation(rows).astype(np.int64)


def _batches(dataset: Dataset, seed: int, batch_size: int, *, first_epoch: int, epochs: int) -> Any:
    """Batches of (x, y) for epochs ``first_epoch + 1 .. epochs``, each epoch in ``epoch_order``."""
    tf = _runtime.tensorflow()
    x = tf.constant(np.ascontiguousarray(dataset.x_train, dtype=np.float32))
    y = tf.constant(_labels(dataset.y_train))
    rows = len(dataset.y_train)
    orders = np.stack([epoch_order(seed, epoch, rows) for epoch in range(first_epoch + 1, epochs + 1)])
    index = tf.data.Dataset.from_tensor_slices(orders).flat_map(
        lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
    return index.map(lambda rows: (tf.gather(x, rows), tf.gather(y, rows))).prefetch(2)


@functools.cache
def _callback_classes() -> tuple[type, type]:
    """The two ``keras.callbacks.Callback`` subclasses, defined on first use (keras is imported lazily)."""
    keras = _runtime.keras()

    class RunCallback(keras.callbacks.Callback):
        """Per epoch: set the scheduled lr, time the training pass, record the epoch, report it, checkpoint."""

        def __init__(self, run: RunContext, params: KerasTrainerParams, progress: EpochProgress,
                     best_weights: Weights | None, writer: CheckpointWriter, scale: float = 1.0) -> None:
            super().__init__()
            self.scale = scale  # RMSE and MAE of the scaled targets times this: in the target's units
            # not self.params: keras sets that to fit's own parameters
            self.run, self.settings, self.progress, self.writer = run, params, progress, writer
            self.best_weights = best_weights
            self.saved_params = params.model_dump(mode="json")
            self.started = self.trained = 0.0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.model.optimizer.learning_rate = self.settings.scheduled_learning_rate(epoch + 1)
            self.trained = 0.0
            self.started = time.perf_counter()

        def on_test_begin(self, logs: Any = None) -> None:
            if self.started and not self.trained:  # fit's validation begins: the training pass is over
                self.trained = time.perf_counter() - self.started

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = logs or {}
            seconds = self.trained or (time.perf_counter() - self.started)
            number = epoch + 1
            params = self.settings
            # the same keys as the torch trainer's: accuracy, or rmse with val_rmse and val_mae for regression
            scores = (("rmse", "val_rmse", "val_mae") if "rmse" in logs else ("accuracy", "val_accuracy"))
            metrics = {"epoch": number, "loss": float(logs["loss"]), "val_loss": float(logs["val_loss"]),
                       **{key: float(logs[key]) * (self.scale if key != "accuracy" and key != "val_accuracy" else 1.0)
                          for key in scores},
                       "lr": params.scheduled_learning_rate(number), "seconds": seconds}
            # raises TrainingDiverged on a non-finite loss: fit stops, the epoch is neither reported nor saved
            if self.progress.record(metrics, patience=params.early_stopping_patience,
                                    min_delta=params.early_stopping_min_delta):
                self.best_weights = self.model.get_weights()
            snapshot = _snapshot(self.saved_params, self.model, self.progress, self.best_weights)
            # A write in flight (the previous epoch's, with checkpoint_interval_s 0) is on disk before this
            # epoch is reported; this epoch's snapshot goes to the writer after the report, and its policy
            # decides whether to write it now (on a background thread, while the next epoch trains) or later.
            self.writer.wait()
            self.run.report_epoch(number, dict(metrics))
            self.writer.epoch_end(snapshot)
            if self.progress.stopped_early:
                self.model.stop_training = True

    class StepReporter(keras.callbacks.Callback):
        """Reports the running training loss ``updates`` times per epoch, evenly spread."""

        def __init__(self, run: RunContext, steps: int, updates: int) -> None:
            super().__init__()
            self.run, self.steps = run, steps
            self.report_steps = report_steps(steps, updates)
            self.epoch = 1

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.epoch = epoch + 1

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            step = batch + 1
            if step in self.report_steps:
                self.run.report_step(self.epoch, step, self.steps, {"loss": float((logs or {})["loss"])})

    return RunCallback, StepReporter


def _snapshot(saved_params: dict[str, Any], model: Any, progress: EpochProgress,
              best_weights: Weights | None) -> dict[str, np.ndarray]:
    """Everything a resumed run needs, as of now, as copies that later training steps leave alone."""
    state = {"format": CHECKPOINT_FORMAT, "params": saved_params, **progress.state(),
             "has_best": best_weights is not None}
    arrays: dict[str, np.ndarray] = {"state": np.array(json.dumps(state))}
    for number, variable in enumerate(model.variables):
        arrays[f"model_{number}"] = np.array(variable.numpy(), copy=True)
    for number, variable in enumerate(model.optimizer.variables):
        arrays[f"optimizer_{number}"] = np.array(variable.numpy(), copy=True)
    for number, weight in enumerate(best_weights or []):
        arrays[f"best_{number}"] = weight  # never changed after get_weights() made it
    return arrays


def _save_checkpoint(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Serialize a snapshot to ``path`` (the writer's temporary file; it renames it into place)."""
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _numbered(data: Any, prefix: str) -> list[np.ndarray]:
    keys = sorted((key for key in data.files if key.startswith(prefix)), key=lambda key: int(key[len(prefix):]))
    return [data[key] for key in keys]


def _restore(path: Path, params: KerasTrainerParams, model: Any) -> tuple[EpochProgress, Weights | None]:
    """Load ``path`` into the model and its optimizer; return the progress and the best weights it holds."""
    try:
        with np.load(path, allow_pickle=False) as data:
            state = json.loads(str(data["state"]))
            model_values, optimizer_values = _numbered(data, "model_"), _numbered(data, "optimizer_")
            best = _numbered(data, "best_")
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path}: not a checkpoint of the aios keras trainer ({error})") from error
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a checkpoint of the aios keras trainer (expected format {CHECKPOINT_FORMAT!r})")
    check_resume_params(state["params"], params.model_dump(mode="json"), path)
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
    return EpochProgress.from_state(state), (best if state["has_best"] else None)
