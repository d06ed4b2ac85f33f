"""The objective the runner gives a tuner: one trial builds and trains a model with the tuner's parameters.

Every trainer gets pruning for free: the trial's ``RunContext`` forwards each
``report_epoch`` to the tuner's ``report`` callable, which may raise ``TrialPruned``.
With ``objectives`` that cost a deployed model (``size_bytes``, ``latency_ms``), the
trial's model goes through the stack's export and compressors into the trial's own
directory and is measured there, as the evaluate phase would run it.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from aios_core.context import TrialPruned
from aios_core.rundir import final_artifact
from aios_core.training import TrainingDiverged

if TYPE_CHECKING:
    from aios_core.context import RunContext
    from aios_core.records import Dataset, ModelArtifact, Predictor, TuneResult
    from pluggy import HookRelay

    from aios_core.stack import Stack

__all__ = ["DEPLOYED_OBJECTIVES", "TrialObjective", "measure_latency", "split_params", "tuned_lock"]

DEPLOYED_OBJECTIVES = ("size_bytes", "latency_ms")
"""Objectives measured on the model as it would ship (after export and the compressors), not the trainer's."""
LATENCY_ROUNDS = 7
LATENCY_RUNS = 30


def split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``model.<field>`` and ``trainer.<field>`` keys as the framework's and the trainer's overrides."""
    unknown = sorted(k for k in params if not k.startswith(("model.", "trainer.")))
    if unknown:
        raise ValueError(f"tuner parameters must start with model. or trainer.: {', '.join(unknown)}")
    model = {k.removeprefix("model."): v for k, v in params.items() if k.startswith("model.")}
    trainer = {k.removeprefix("trainer."): v for k, v in params.items() if k.startswith("trainer.")}
    return model, trainer


def tuned_lock(lock: dict[str, Any], result: TuneResult) -> dict[str, Any]:
    """The run's lock file after tuning: the best parameters in the model and trainer sections, no tuner.

    ``aios run --lock`` then retrains the chosen model without tuning; ``lock.tuned``
    records what the tuner chose and the section it was configured with.
    """
    import copy

    tuned = copy.deepcopy(lock)  # copies, so the YAML holds no anchors and aliases
    best = copy.deepcopy(result.best_params)
    model_overrides, trainer_overrides = split_params(copy.deepcopy(best))
    tuned["model"] = {**tuned.get("model", {}), **model_overrides}
    tuned["trainer"] = {**tuned.get("trainer", {}), **trainer_overrides}
    tuner = tuned.pop("tuner", None)
    tuned["lock"] = {**tuned.get("lock", {}), "tuned": {"params": best, "value": result.best_value,
                                                        "tuner": tuner}}
    return tuned


def measure_latency(predict: Predictor, x: Any, batch_size: int = 1, *, rounds: int = LATENCY_ROUNDS,
                    runs: int = LATENCY_RUNS, reference: Predictor | None = None) -> dict[str, float]:
    """The median latency (ms) of ``predict`` on batches of ``batch_size`` rows, measured to survive a busy machine.

    ``rounds`` rounds of ``runs`` calls each; the value is the median of the rounds' medians
    and ``noise`` the spread of the round medians (interquartile range / median). With a
    ``reference`` predictor, each round also times it, interleaved call by call, so load that
    slows one slows both; ``ratio`` is then the median of the rounds' latency ratios.
    """
    import numpy as np

    batch = np.resize(np.asarray(x, dtype=np.float32), (batch_size, np.asarray(x).shape[1]))
    contenders = [predict] if reference is None else [predict, reference]
    for function in contenders:
        for _ in range(3):
            function(batch)
    medians: list[list[float]] = [[] for _ in contenders]
    for _ in range(rounds):
        timings: list[list[float]] = [[] for _ in contenders]
        for _ in range(runs):
            for index, function in enumerate(contenders):
                started = time.perf_counter()
                function(batch)
                timings[index].append((time.perf_counter() - started) * 1000)
        for index in range(len(contenders)):
            medians[index].append(statistics.median(timings[index]))
    value = statistics.median(medians[0])
    quartiles = statistics.quantiles(medians[0], n=4) if rounds > 1 else [value, value, value]
    result = {"latency_ms": round(value, 5), "noise": round((quartiles[2] - quartiles[0]) / value, 4) if value else 0.0,
              "rounds": rounds, "runs": runs, "batch_size": batch_size}
    if reference is not None:
        result["ratio"] = round(statistics.median(a / b for a, b in zip(medians[0], medians[1]) if b), 4)
        result["reference_ms"] = round(statistics.median(medians[1]), 5)
    return result


class TrialObjective:
    """``objective(params, *, number=None, report=None, objectives=None)``, as the ``aios_tune`` hookspec says."""

    def __init__(self, stack: Stack, context: RunContext, hook: HookRelay, call: Callable[..., Any],
                 dataset: Dataset) -> None:
        """``call(role, hook_name, **kwargs)`` calls a hook on exactly the stack's component in ``role``."""
        self._stack, self._context, self._hook, self._call = stack, context, hook, call
        self._dataset = dataset
        self._count = itertools.count(1)

    def __call__(self, params: dict[str, Any], *, number: int | None = None,
                 report: Callable[[int, dict[str, float]], None] | None = None,
                 objectives: Iterable[str] | None = None) -> Any:
        model_overrides, trainer_overrides = split_params(params)
        number = next(self._count) if number is None else int(number)
        last: dict[str, float] = {}

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            last.clear()
            last.update(metrics)
            if report is not None:
                report(epoch, metrics)

        call, hook = self._call, self._hook
        trial = self._context.for_trial(number, on_epoch)
        hook.aios_on_trial_start(run=trial, trial=number, params=params)
        wanted = list(objectives or ())
        try:
            model = call("model", "aios_build_model", dataset=self._dataset, run=trial, overrides=model_overrides)
            result = call("trainer", "aios_train", model=model, dataset=self._dataset, run=trial,
                          overrides=trainer_overrides)
            metrics = dict(result.final_metrics)
            value = float(metrics.get("val_loss", math.nan))
            if not math.isfinite(value):
                raise TrainingDiverged(f"trial {number} ended with val_loss = {value}; a trial must end with a "
                                       "finite validation loss")
            if any(name in DEPLOYED_OBJECTIVES for name in wanted):
                metrics.update(self._deployed_cost(result.model, trial))
            missing = [name for name in wanted if name not in metrics]
            if missing:
                raise ValueError(f"the trial has no {', '.join(missing)} to optimize; the trainer reported "
                                 f"{', '.join(sorted(metrics))}")
        except TrialPruned:
            hook.aios_on_trial_end(run=trial, trial=number, status="pruned", value=None, metrics=dict(last))
            raise
        except BaseException:
            hook.aios_on_trial_end(run=trial, trial=number, status="failed", value=None, metrics={})
            raise
        values = {name: float(metrics[name]) for name in wanted}
        hook.aios_on_trial_end(run=trial, trial=number, status="completed",
                               value=values[wanted[0]] if wanted else value, metrics=metrics)
        return {**metrics, **values} if wanted else value

    def _deployed_cost(self, model: Any, trial: RunContext) -> dict[str, float]:
        """Size and batch-1 latency of the trial's model after the stack's export and compressors."""
        stack, call, dataset = self._stack, self._call, self._dataset
        framework = stack.components["model"]
        folder = trial.artifacts_dir
        folder.mkdir(parents=True, exist_ok=True)
        artifacts: list[ModelArtifact] = [call("model", "aios_save_model", model=model,
                                               path=folder / f"model.{framework.native_format}")]

        def compress(native: bool) -> None:  # in the runner's order: native-model compressors before export
            for role in stack.compressor_roles(native):
                source = final_artifact(artifacts, stack.components[role].input_formats)
                artifacts.append(call(role, "aios_compress", artifact=source, dataset=dataset, run=trial))

        compress(native=True)
        if len(artifacts) > 1:  # export what the native compressors made (a pruned model, a student)
            model = call("model", "aios_load_model", artifact=artifacts[-1])
        for fmt in framework.export_formats:
            artifacts.append(call("model", "aios_export_model", model=model, fmt=fmt, path=folder / f"model.{fmt}",
                                  dataset=dataset))
        compress(native=False)
        shipped = artifacts[-1]
        predict = trial.load_predictor(shipped)
        if predict is None:
            raise ValueError(f"no component runs {shipped.format} models, so the trial's latency cannot be measured")
        latency = measure_latency(predict, dataset.x_val, 1)
        return {"size_bytes": float(shipped.size_bytes), "latency_ms": latency["latency_ms"],
                "latency_noise": latency["noise"]}
