"""The search: one Optuna study in RDB storage, worked on by this process and ``n_workers - 1`` forked ones.

The study lives in storage, not in memory, so a run killed outright continues where it
stopped (``aios run --resume``): finished trials count toward the budget, and a trial that
was running when its process died is marked failed (``interrupted``) and not counted.
The budget is checked and the next trial asked under a file lock in the run directory,
so the workers on this machine finish exactly ``trials`` trials together.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import multiprocessing
import os
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aios_core import RunContext, TrialPruned, TuneResult, one_line
from aios_optuna import OBJECTIVES, OptunaParams
from aios_optuna._space import Dimension, parse_space

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("aios.optuna")

HOST = socket.gethostname()
STATE_NAMES = {"COMPLETE": "completed", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
               "WAITING": "waiting"}


@dataclass
class Search:
    """Everything a worker needs; plain values, so a forked worker rebuilds its own storage connection."""

    params: OptunaParams
    dimensions: list[Dimension]
    url: str
    name: str
    seed: int
    epochs: int | None
    lock_path: Path
    deadline: float | None
    errors: dict[int, BaseException] = field(default_factory=dict)

    @property
    def pruning_metric(self) -> str | None:
        """The per-epoch metric the pruner judges, or None when the search does not prune.

        One objective: itself, if the trainer reports it per epoch. Several (median only): val_loss.
        """
        if self.params.effective_pruner == "none":
            return None
        if len(self.params.objectives) > 1:
            return "val_loss"
        metric = self.params.objectives[0]
        return metric if metric in ("val_loss", "val_accuracy") else None


# ---------------------------------------------------------------- optuna objects
def storage_url(params: OptunaParams, run: RunContext) -> str:
    """The study's storage: the user's URL, or SQLite in the run directory."""
    if params.storage_env:
        url = os.environ.get(params.storage_env)
        if not url:
            raise ValueError(f"tuner.storage_env: the environment variable {params.storage_env} is not set")
        return url
    return params.storage or f"sqlite:///{run.dir / 'tune' / 'study.db'}"


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage; SQLite in write-ahead-log mode.

    Optuna commits every step of a trial (each parameter, each attribute), and SQLite's
    default journal syncs the disk at every commit (8 ms each here: a quarter of a small
    trial). In WAL mode with ``synchronous=NORMAL`` a commit is an append; the database
    survives a killed process (kill -9) intact, and loses at most the last commits on a
    power cut. Several processes on one machine share it; a network file system does not.
    """
    import optuna

    sqlite = url.startswith("sqlite")
    # Several processes write one SQLite file: wait for its lock instead of failing at once.
    storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}} if sqlite else {})
    if sqlite:
        from sqlalchemy import event

        def write_ahead(connection: Any, _: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        event.listen(storage.engine, "connect", write_ahead)
        storage.engine.dispose()  # connections opened while the tables were made reconnect with the pragmas
    return storage


def _distribution(dimension: Dimension) -> optuna.distributions.BaseDistribution:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if dimension.kind == "categorical":
        return CategoricalDistribution(dimension.labels())
    if dimension.kind == "int":
        return IntDistribution(int(dimension.low), int(dimension.high), log=dimension.log,
                               step=int(dimension.step or 1))
    return FloatDistribution(float(dimension.low), float(dimension.high), log=dimension.log,
                             step=None if dimension.step is None else float(dimension.step))


def make_sampler(params: OptunaParams, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler, seeded; random starts scale with the budget (Optuna's defaults assume hundreds of trials)."""
    import optuna

    budget = params.trials or 40
    startup = min(10, max(3, budget // 4))
    if params.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if params.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=startup)
    if params.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, budget // 4)))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


def make_pruner(params: OptunaParams, epochs: int | None) -> optuna.pruners.BasePruner:
    import optuna

    if params.effective_pruner == "median":
        # Optuna does not prune at a step below n_warmup_steps; steps are epochs, numbered from 1
        return optuna.pruners.MedianPruner(n_startup_trials=params.startup_trials, n_warmup_steps=params.min_epochs)
    if params.effective_pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=params.min_epochs, max_resource=epochs or "auto",
                                              reduction_factor=3)
    return optuna.pruners.NopPruner()


# ---------------------------------------------------------------- the budget
def _state(trial: optuna.trial.FrozenTrial) -> str:
    if trial.state.name == "FAIL" and trial.user_attrs.get("interrupted"):
        return "interrupted"
    return STATE_NAMES.get(trial.state.name, trial.state.name.lower())


def _counted(trials: list[optuna.trial.FrozenTrial]) -> int:
    """Trials that use up the budget: finished ones (an interrupted trial is not finished) and running ones."""
    return sum(_state(t) in ("completed", "pruned", "failed", "running") for t in trials)


@contextlib.contextmanager
def _ask_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, TypeError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def recover_interrupted(study: optuna.Study, storage: optuna.storages.BaseStorage) -> list[int]:
    """Mark trials left running by a dead process of this machine as failed (``interrupted``); their numbers.

    A trial running on another machine, or in a live process here, is left alone.
    """
    from optuna.trial import TrialState

    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker") or {}
        if worker.get("host") == HOST and not _alive(worker.get("pid")):
            storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            recovered.append(trial.number)
    return recovered


# ---------------------------------------------------------------- one worker
def _values(outcome: Any, objectives: list[str]) -> list[float]:
    if isinstance(outcome, dict):
        return [float(outcome[name]) for name in objectives]
    return [float(outcome)]


def _run_trial(search: Search, study: optuna.Study, trial: optuna.Trial, objective: Callable[..., Any]) -> None:
    from optuna.trial import TrialState

    params, metric = search.params, search.pruning_metric
    chosen = {d.name: d.value(trial.params[d.name]) for d in search.dimensions}
    epochs = [0]

    def report(epoch: int, metrics: dict[str, float]) -> None:
        epochs[0] = epoch
        value = metrics.get(metric) if metric else None
        if value is None or not math.isfinite(float(value)):
            return
        if epoch < params.min_epochs:
            if len(params.objectives) == 1:
                trial.report(float(value), epoch)
            return
        if len(params.objectives) == 1:
            trial.report(float(value), epoch)
            prune = trial.should_prune()
        else:
            prune = _worse_than_median(study, trial, epoch, float(value), params.startup_trials)
        if prune:
            raise TrialPruned(f"trial {trial.number} pruned after epoch {epoch} ({metric} {float(value):.4g})")

    kwargs: dict[str, Any] = {"number": trial.number, "report": report}
    if params.objectives != ["val_loss"]:
        kwargs["objectives"] = list(params.objectives)
    started = time.perf_counter()
    try:
        outcome = objective(chosen, **kwargs)
        values = _values(outcome, list(params.objectives))
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"trial {trial.number} returned {values}; an objective must be a finite number")
    except TrialPruned:
        _finish(trial, epochs[0], started)
        study.tell(trial, state=TrialState.PRUNED)
        return
    except KeyboardInterrupt:
        trial.set_user_attr("interrupted", True)
        _finish(trial, epochs[0], started)
        study.tell(trial, state=TrialState.FAIL)
        raise
    except Exception as error:  # noqa: BLE001 -- any trial may fail; it is recorded and the study goes on
        log.warning("optuna: trial %d failed: %s", trial.number, one_line(error), exc_info=error)
        search.errors[trial.number] = error
        trial.set_user_attr("error", one_line(error))
        _finish(trial, epochs[0], started)
        study.tell(trial, state=TrialState.FAIL)
        return
    _finish(trial, epochs[0], started)
    if isinstance(outcome, dict):
        # one attribute, one write: every set_user_attr is a transaction (an fsync with SQLite)
        trial.set_user_attr("metrics", {key: float(value) for key, value in outcome.items()
                                        if isinstance(value, (int, float)) and math.isfinite(float(value))})
    study.tell(trial, values if len(values) > 1 else values[0])


def _worse_than_median(study: optuna.Study, trial: optuna.Trial, epoch: int, value: float, startup: int) -> bool:
    """Median pruning for several objectives, which Optuna's pruners do not handle: stop the trial if its
    val_loss at ``epoch`` is above the median of the completed trials' val_loss at that epoch."""
    from optuna.trial import TrialState

    trial.set_user_attr(f"val_loss_epoch_{epoch}", value)  # what later trials compare with
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    key = f"val_loss_epoch_{epoch}"
    seen = [t.user_attrs[key] for t in completed if key in t.user_attrs]
    if len(completed) < max(1, startup) or not seen:
        return False
    return value > statistics.median(seen)


def _finish(trial: optuna.Trial, epochs: int, started: float) -> None:
    trial.set_user_attr("trained", {"epochs": epochs, "seconds": round(time.perf_counter() - started, 3)})


def work(search: Search, objective: Callable[..., Any], worker: int,
         storage: optuna.storages.BaseStorage | None = None) -> None:
    """Ask, run and tell trials until the budget or the time is spent (a forked worker opens its own storage)."""
    import optuna

    storage = storage or open_storage(search.url)
    existing = len(optuna.load_study(study_name=search.name, storage=storage).get_trials(deepcopy=False))
    # Each worker and each resumption draws its own random stream, so none repeats another's suggestions.
    sampler = make_sampler(search.params, search.seed + 7919 * worker + existing)
    study = optuna.load_study(study_name=search.name, storage=storage, sampler=sampler,
                              pruner=make_pruner(search.params, search.epochs))
    distributions = {d.name: _distribution(d) for d in search.dimensions}
    budget, ran = search.params.trials, 0
    while True:
        with _ask_lock(search.lock_path):
            if search.deadline is not None and ran and time.monotonic() >= search.deadline:
                return  # as Optuna's timeout: checked between trials, after at least one
            if budget is not None and _counted(study.get_trials(deepcopy=False)) >= budget:
                return
            trial = study.ask(distributions)
            trial.set_user_attr("worker", {"host": HOST, "pid": os.getpid(), "index": worker})
        _run_trial(search, study, trial, objective)
        ran += 1


def _child(search: Search, objective: Callable[..., Any], worker: int, parent: int) -> None:
    """A forked worker: stops when its parent dies (kill -9), so no trial runs for a run that is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="aios-optuna-parent").start()
    try:
        work(search, objective, worker)
    except KeyboardInterrupt:
        os._exit(130)


def run_workers(search: Search, objective: Callable[..., Any], storage: optuna.storages.BaseStorage) -> None:
    """Work on the study here and in ``n_workers - 1`` forked processes; wait for all."""
    import sys

    children = []
    if search.params.n_workers > 1:
        context = multiprocessing.get_context("fork")
        sys.stdout.flush()
        sys.stderr.flush()
        for worker in range(1, search.params.n_workers):
            child = context.Process(target=_child, args=(search, objective, worker, os.getpid()),
                                    name=f"aios-optuna-worker-{worker}", daemon=False)
            child.start()
            children.append(child)
    try:
        work(search, objective, 0, storage)
    finally:
        for child in children:
            child.join()
    failed = [child for child in children if child.exitcode not in (0, None)]
    if failed:
        log.warning("optuna: %d worker process(es) ended with exit codes %s", len(failed),
                    [child.exitcode for child in failed])


# ---------------------------------------------------------------- the whole search
def tune(params: OptunaParams, objective: Callable[..., Any], run: RunContext) -> TuneResult:
    """Create or continue the study, run the workers, and pick the trial the final training uses."""
    import optuna

    from aios_optuna._result import first_error, result_of

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dimensions, problems = parse_space(params.space)
    if problems:
        path, message = problems[0]
        raise ValueError(f"tuner.{'.'.join(map(str, path))}: {message}")
    url = storage_url(params, run)
    (run.dir / "tune").mkdir(parents=True, exist_ok=True)
    name = params.study_name or run.name
    directions = [OBJECTIVES[o] for o in params.objectives]
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name=name, directions=directions, load_if_exists=True)
    found = [d.name.lower() for d in study.directions]
    if found != directions:
        raise ValueError(f"the study '{name}' in {url} optimizes {found}, not {directions} "
                         f"(objectives {params.objectives}); name another study: tuner.study_name")
    recovered = recover_interrupted(study, storage)
    if recovered:
        log.info("optuna: trials %s were running when their process died; marked failed (interrupted), "
                 "not counted", recovered)
    epochs = (run.stack.get("trainer") or {}).get("epochs")
    search = Search(params=params, dimensions=dimensions, url=url, name=name, seed=run.seed,
                    epochs=epochs if isinstance(epochs, int) else None, lock_path=run.dir / "tune" / "ask.lock",
                    deadline=time.monotonic() + params.timeout_s if params.timeout_s else None)
    run_workers(search, objective, storage)
    study = optuna.load_study(study_name=name, storage=storage)
    if not any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
        raise first_error(study, search.errors)
    result = result_of(study, search)
    from aios_optuna._report import write_report

    started = time.perf_counter()
    result.summary["report"] = write_report(study, search, result, run.dir / "report")
    result.summary["report_seconds"] = round(time.perf_counter() - started, 3)
    return result
