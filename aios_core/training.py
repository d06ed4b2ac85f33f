"""What every epoch-based trainer needs besides its library: bookkeeping, progress steps, resuming, checkpoints.

A trainer plugin keeps only what is specific to its library (the step, the model's
state) and uses these for the rest, so a fix here reaches every trainer:

- ``EpochProgress``: the history, the best epoch by ``val_loss``, early stopping, and
  the refusal of a non-finite loss (``TrainingDiverged``);
- ``report_steps``: which steps of an epoch report progress;
- ``check_resume_params``: a resumed run must train with the parameters it started with;
- ``CheckpointWriter``: writes snapshots on a background thread, following the
  checkpoint policy (``TrainingParams.checkpoint_interval_s``).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aios_core.atomic import atomic_path

__all__ = ["RESUMABLE_CHANGES", "CheckpointWriter", "EpochProgress", "TrainingDiverged", "check_resume_params",
           "report_steps", "wait_for_checkpoints"]

_log = logging.getLogger(__name__)

RESUMABLE_CHANGES = frozenset({"progress_updates", "checkpoint_interval_s"})
"""Trainer parameters that may differ between an interrupted run and its resumption: they change how a
run reports and checkpoints, not what it computes."""


class TrainingDiverged(ValueError):
    """An epoch ended with a loss that is not a finite number; the model is not worth evaluating."""


@dataclass
class EpochProgress:
    """Where training stands after each epoch: the history, the best epoch by ``val_loss``, early stopping.

    The trainer keeps the weights of the best epoch itself (``record`` says when to); the
    rest is plain values, saved in a checkpoint with ``state()`` and restored with
    ``from_state``.
    """

    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = math.inf
    bad_epochs: int = 0
    stopped_early: bool = False

    def record(self, metrics: Mapping[str, float], *, patience: int | None, min_delta: float = 0.0) -> bool:
        """Add one epoch's metrics (with ``epoch``, ``loss`` and ``val_loss``); True if it is the best so far.

        Raises ``TrainingDiverged`` if the loss or the validation loss is NaN or infinite.
        """
        epoch = int(metrics["epoch"])
        for key in ("loss", "val_loss"):
            value = float(metrics[key])
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"training diverged: epoch {epoch} ended with {key} = {value}; lower trainer.learning_rate "
                    "or check the data for extreme values (scale them: data.preprocess.scaling)")
        self.epoch = epoch
        self.history.append(dict(metrics))
        if float(metrics["val_loss"]) < self.best_val_loss - min_delta:
            self.best_val_loss, self.best_epoch, self.bad_epochs = float(metrics["val_loss"]), epoch, 0
            return True
        self.bad_epochs += 1
        self.stopped_early = patience is not None and self.bad_epochs >= patience
        return False

    def done(self, epochs: int) -> bool:
        """Whether training is over: ``epochs`` reached or stopped early."""
        return self.epoch >= epochs or self.stopped_early

    def state(self) -> dict[str, Any]:
        """A JSON-able copy of everything but the weights, for a checkpoint (rows are never changed once recorded)."""
        return {"epoch": self.epoch, "history": list(self.history), "best_epoch": self.best_epoch,
                "best_val_loss": self.best_val_loss if math.isfinite(self.best_val_loss) else None,
                "bad_epochs": self.bad_epochs, "stopped_early": self.stopped_early}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> EpochProgress:
        best = state.get("best_val_loss")
        return cls(epoch=int(state["epoch"]), history=[dict(row) for row in state["history"]],
                   best_epoch=int(state["best_epoch"]), best_val_loss=math.inf if best is None else float(best),
                   bad_epochs=int(state["bad_epochs"]), stopped_early=bool(state["stopped_early"]))


def report_steps(steps: int, updates: int) -> frozenset[int]:
    """The 1-based steps of an epoch of ``steps`` after which to report progress: ``updates`` of them, evenly spread."""
    count = min(updates, steps)
    return frozenset(math.ceil(i * steps / count) for i in range(1, count + 1)) if count else frozenset()


def check_resume_params(saved: Mapping[str, Any], current: Mapping[str, Any], source: Path | str,
                        defaults: Mapping[str, Any] | None = None) -> None:
    """Refuse to resume from ``source`` if a trainer parameter that changes the result differs; ValueError naming each.

    A parameter the checkpoint does not record (it was written before the parameter
    existed) counts as its value in ``defaults`` (e.g. ``Params().model_dump()``), or as
    unchanged when no default is given.
    """
    saved = {**{key: (defaults or {}).get(key, value) for key, value in current.items()}, **saved}
    changed = sorted(key for key in set(saved) | set(current)
                     if key not in RESUMABLE_CHANGES and saved.get(key) != current.get(key))
    if changed:
        raise ValueError(
            f"{source}: cannot resume, trainer parameters changed since the checkpoint "
            + ", ".join(f"trainer.{key}: {saved.get(key)!r} -> {current.get(key)!r}" for key in changed)
            + "; restore them, or start a new run")


_FINAL_WRITES: set[Future[None]] = set()
"""Final checkpoints still being written after their trainer returned (``CheckpointWriter.close``)."""
_WRITER_THREAD: list[ThreadPoolExecutor] = []


def _forget_writer_thread() -> None:
    """In a forked child (a tuner's worker process) the parent's writer thread does not exist: start a new one."""
    _WRITER_THREAD.clear()
    _FINAL_WRITES.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_writer_thread)


def _writer_thread() -> ThreadPoolExecutor:
    """The process's one checkpoint-writing thread, started on first use and joined when the interpreter exits."""
    if not _WRITER_THREAD:
        _WRITER_THREAD.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="aios-checkpoint"))
    return _WRITER_THREAD[0]


def wait_for_checkpoints() -> None:
    """Block until every final checkpoint a trainer handed over is on disk; re-raise the first write's error.

    The runner calls it before it records the train phase, so a recorded phase always
    has its final checkpoint; a test reading a checkpoint right after training calls it too.
    """
    errors = []
    for future in list(_FINAL_WRITES):
        try:
            future.result()
        except Exception as error:  # noqa: BLE001 -- a write's own error, raised below
            errors.append(error)
        _FINAL_WRITES.discard(future)
    if errors:
        raise errors[0]


class CheckpointWriter:
    """Writes one training run's checkpoints to ``path`` on a background thread, following the checkpoint policy.

    The trainer hands it a snapshot at the end of every epoch (``epoch_end``): a payload
    of copies that later training steps leave alone. The policy: a snapshot is written
    when ``interval_s`` seconds have passed since the last write began (0: every epoch),
    and the newest one is always written at the end (``close``) and when training is
    interrupted or fails (``close(interrupted=True)``: Ctrl-C, SIGTERM, an error), so a
    process killed outright loses at most ``interval_s`` seconds of training plus the
    epoch in progress (snapshots are taken at epoch ends).

    ``save(tmp_path, payload)`` serializes a payload; the writer wraps it in
    ``atomic_path`` (temporary file, fsync, rename), so the checkpoint on disk is always a
    whole one. Writes happen on the process's one background thread, at most one of a
    writer's at a time; a write's error is raised on the training thread at the next
    ``epoch_end`` or ``close``. The final write (``close()``) goes on after the trainer
    returns, overlapping what the run does next; ``wait_for_checkpoints()`` waits for it
    (the runner does before recording the train phase). When training is interrupted,
    ``close(interrupted=True)`` returns when the checkpoint is on disk. The thread is not a
    daemon, so the interpreter lets a write in flight finish before it exits.
    """

    def __init__(self, path: Path, save: Callable[[Path, Any], None], interval_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.interval_s = interval_s
        self.written = 0
        self._save = save
        self._clock = clock
        self._last_write = clock()
        self._unwritten: Any = None
        self._pending: Future[None] | None = None

    def epoch_end(self, payload: Any) -> None:
        """Hand over this epoch's snapshot; it is written now if the policy says so, else kept for ``close``."""
        self._unwritten = payload
        if self._clock() - self._last_write >= self.interval_s:
            self._submit()

    def _submit(self) -> None:
        self.wait()
        payload, self._unwritten = self._unwritten, None
        if payload is None:
            return
        self._last_write = self._clock()
        self._pending = _writer_thread().submit(self._write, payload)
        self.written += 1

    def _write(self, payload: Any) -> None:
        with atomic_path(self.path) as tmp:
            self._save(tmp, payload)

    def wait(self) -> None:
        """Block until the write in flight, if any, is on disk; re-raise its error."""
        pending = self._pending
        if pending is None:
            return
        try:
            pending.result()
        finally:
            if pending.done():  # not when the wait itself was interrupted: close waits again
                self._pending = None

    def close(self, interrupted: bool = False) -> None:
        """Write the newest snapshot if it is not on disk yet.

        Normally the write goes on in the background (``wait_for_checkpoints``). With
        ``interrupted`` (the trainer is unwinding from Ctrl-C, SIGTERM or an error) it is on
        disk when ``close`` returns, and a failed write is logged rather than raised, so the
        original exception wins.
        """
        if not interrupted:
            self._submit()
            if self._pending is not None:
                _FINAL_WRITES.add(self._pending)
                self._pending = None
            return
        for step in (self.wait, self._submit, self.wait):
            try:
                step()
            except Exception:  # noqa: BLE001 -- logged: the interrupt or error being raised wins
                _log.exception("writing the checkpoint %s failed", self.path)
