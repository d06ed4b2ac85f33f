"""The running run, as components see it: where to write, the seed, and how to report."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pluggy import HookRelay

    from aios_core.records import DataDescription


class TrialPruned(Exception):  # noqa: N818 -- named like optuna.TrialPruned, which tuner authors know
    """Stop this tuner trial now: its epochs so far were not promising.

    A tuner raises it from the ``report`` callable it gave the objective; it leaves the
    trainer through ``run.report_epoch`` (trainers let it through, as any exception), and
    the objective records the trial as ``pruned`` and re-raises it to the tuner.
    """


@dataclass(frozen=True)
class RunOptions:
    """Command-line choices that change how a run behaves, not what it computes."""

    serve: bool = False
    debug: bool = False


@dataclass(frozen=True)
class ValidationContext:
    """Passed to ``aios_validate`` and ``aios_describe_data``: the stack as resolved, before any run exists.

    ``stack`` is the resolved stack (every section with its validated parameters);
    ``source`` is the stack file's path; ``data`` is what the datastore says its data will
    look like (``None`` while the datastore is being asked, or if it cannot tell).
    """

    stack: dict[str, Any]
    seed: int
    threads: int
    source: str
    data: DataDescription | None = None
    components: Mapping[str, Any] = field(default_factory=dict)
    """The stack's configured components by role (``model``, ``trainer``, ``compressors.0``, ...), so a
    component can check names against another's ``Params`` (a tuner's search space)."""


class RunContext:
    """Passed to every hook that works for a run.

    Components read ``seed``, ``threads`` and the directories, and report progress
    through ``report_epoch`` / ``report_step`` (``report_progress`` outside epochs), which
    reach every selected monitor.
    ``resume`` is true when continuing an interrupted run: a trainer then continues from
    its newest checkpoint in ``checkpoint_dir``.
    """

    def __init__(self, *, name: str, seed: int, threads: int, dir: Path, stack: dict[str, Any],
                 hook: HookRelay, resume: bool = False, options: RunOptions | None = None,
                 checkpoint_dir: Path | None = None) -> None:
        self.name = name
        self.seed = seed
        self.threads = threads
        self.dir = dir
        self.stack = stack
        self.resume = resume
        self.options = options or RunOptions()
        self.phase = "setup"
        self.checkpoint_dir = checkpoint_dir or dir / "checkpoints"
        self.trial: int | None = None
        """The tuner's trial number when this is a trial's context (``for_trial``), else None."""
        self._on_epoch: Callable[[int, dict[str, float]], None] | None = None
        self._hook = hook
        self.log = logging.getLogger(f"aios.run.{name}")

    @property
    def artifacts_dir(self) -> Path:
        """Where models are written: ``artifacts/`` of the run, a trial's own directory for a trial."""
        return self.dir / "artifacts" if self.trial is None else self.checkpoint_dir

    def report_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """Report the metrics of a finished epoch (1-based) to every monitor, then, in a tuner trial, to the tuner.

        In a trial this may raise ``aios_core.TrialPruned`` (the tuner stops the trial): let it through.
        """
        self._hook.aios_on_epoch_end(run=self, phase=self.phase, epoch=epoch, metrics=metrics)
        if self._on_epoch is not None:
            self._on_epoch(epoch, dict(metrics))

    def report_step(self, epoch: int, step: int, total_steps: int, metrics: dict[str, float] | None = None) -> None:
        """Report progress inside an epoch; call every few steps, not every batch. Free when no monitor listens."""
        if self._hook.aios_on_step.get_hookimpls():
            self._hook.aios_on_step(run=self, phase=self.phase, epoch=epoch, step=step,
                                    total_steps=total_steps, metrics=metrics or {})

    def report_progress(self, task: str, done: int, total: int | None = None, unit: str = "rows") -> None:
        """Report ``done`` of ``total`` ``unit`` of ``task`` (``reading``, ``scaling``), for work that is not an
        epoch; call a few dozen times per task at most, the last time with ``done == total``. Free when no
        monitor listens."""
        if self._hook.aios_on_progress.get_hookimpls():
            self._hook.aios_on_progress(run=self, phase=self.phase, task=task, done=int(done),
                                        total=None if total is None else int(total), unit=unit)

    def load_predictor(self, artifact: Any) -> Any:
        """A predictor for ``artifact`` from whichever selected component runs its format, or None."""
        return self._hook.aios_load_predictor(artifact=artifact, threads=self.threads)

    def train(self, model: Any, dataset: Any, *, checkpoint_dir: Path,
              overrides: dict[str, Any] | None = None) -> Any:
        """Train ``model`` with the stack's trainer, for a compressor that fine-tunes or distills.

        The trainer reports epochs to the monitors in the current phase and checkpoints
        under ``checkpoint_dir`` (a folder of the compressor's own under ``checkpoint_dir``
        of this run); in a resumed run it continues from the checkpoint there. ``overrides``
        are trainer parameters (``{"epochs": 2}``). Returns the ``TrainResult``; ValueError
        when the stack has no trainer.
        """
        context = RunContext(name=self.name, seed=self.seed, threads=self.threads, dir=self.dir, stack=self.stack,
                             hook=self._hook, resume=self.resume, options=self.options, checkpoint_dir=checkpoint_dir)
        context.phase = self.phase
        result = self._hook.aios_train(model=model, dataset=dataset, run=context, overrides=dict(overrides or {}))
        if result is None:
            raise ValueError("this compressor trains with the stack's trainer, but the stack has none; "
                             "add a trainer: section (e.g. trainer: {plugin: torch})")
        return result

    def for_trial(self, number: int, on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> RunContext:
        """A context for tuner trial ``number``: its own directory (checkpoints, models), never resumed.

        ``on_epoch(epoch, metrics)`` is called after the monitors by every ``report_epoch``;
        it may raise ``TrialPruned``.
        """
        trial = RunContext(name=self.name, seed=self.seed, threads=self.threads, dir=self.dir,
                           stack=self.stack, hook=self._hook, resume=False, options=self.options,
                           checkpoint_dir=self.dir / "trials" / f"{number:04d}")
        trial.phase, trial.trial, trial._on_epoch = "tune", number, on_epoch
        return trial
