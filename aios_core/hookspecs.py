"""The AIOS hook contract: every hook a plugin can implement, grouped by kind.

A component is a class registered under one of the entry-point groups in
``aios_core.vocabulary.KIND_GROUPS``. A run builds one instance of each component its stack
names (with the component's validated ``Params``) and registers those instances, and
only those, in the run's pluggy ``PluginManager``. Hooks are methods of the component
marked with ``@hookimpl``; a method may take any subset of the spec's arguments.

Hooks marked *first result wins* stop at the first implementation that returns a value
other than ``None``. The runner calls them with exactly the selected component of the
kind, so in practice they reach one implementation. Monitor hooks reach every selected
monitor and return nothing. Each docstring says who calls the hook and when: the
runner (``aios_core.runner``, phase by phase), the stack checks (``aios validate``,
and ``aios run`` before it starts), a ``RunContext`` method or ``aios serve``.

The types named below live in ``aios_core``: ``RunContext`` (the running run),
``Dataset`` (the splits), ``ModelArtifact`` (a model file and its format),
``TrainResult`` and ``TuneResult``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from aios_core.context import RunContext, ValidationContext
    from aios_core.records import DataDescription, Dataset, ModelArtifact, Predictor, TrainResult, TuneResult
    from aios_core.stack import Stack

PROJECT_NAME = "aios"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# ---------------------------------------------------------------- every kind: before a run
@hookspec
def aios_validate(context: ValidationContext) -> list[tuple[str, str]] | None:
    """Check the component's parameters against the environment; called on every selected component.

    Not first result wins: each component's pairs are collected. ``aios validate`` and
    ``aios run`` call it on each component of the stack after the parameters validated and the
    components were found to fit, before a run directory exists. Return ``(field,
    message)`` pairs for what cannot work: a file that does not exist, a factory that does
    not import, an architecture the data cannot feed (``context.data``). ``field`` is a
    dotted path inside the component's own section (``path``, ``options.depth``), or a tuple
    of its keys when a key holds a dot (``("space", "model.hidden_units", 0)``); the
    message says what was found and what is expected. ``context.components`` holds the
    stack's other components, so a tuner checks its search space against their ``Params``.
    Must be quick: no data loading, no model building.
    """


# ---------------------------------------------------------------- datastore
@hookspec(firstresult=True)
def aios_describe_data(context: ValidationContext) -> DataDescription | None:
    """What ``aios_load_dataset`` will return, as far as it is known without loading the data; first result wins.

    ``aios validate`` and ``aios run`` ask the stack's datastore just before the
    ``aios_validate`` calls, which see the answer as ``context.data``, so a framework
    can refuse a ``cnn`` for rows without an image shape before a run starts. ``None``:
    unknown until loaded.
    """


@hookspec(firstresult=True)
def aios_load_dataset(run: RunContext) -> Dataset:
    """Load, clean, preprocess and split the stack's data; first result wins.

    The runner calls it on the stack's datastore in the ``data`` phase, the first, also
    when a run resumes (the ``content_hash`` must then equal the recorded one). Must be
    deterministic for ``run.seed``: the same stack gives the same splits and the same
    ``Dataset.content_hash``. Features are float32 rows of shape (n, features).
    """


# ---------------------------------------------------------------- framework
@hookspec(firstresult=True)
def aios_build_model(dataset: Dataset, run: RunContext, overrides: dict[str, Any]) -> Any:
    """Build an untrained native model sized for ``dataset``; first result wins.

    The runner calls it on the stack's framework at the start of the ``train`` phase, and
    once per tuner trial. ``overrides`` holds model parameters chosen by the tuner (empty
    otherwise) and take precedence over the component's own ``params``. The model need
    not hold weights yet (an estimator that is fitted later), but it must save, load and
    predict class probabilities as it is (for a ``dataset.task`` of ``regression``:
    ``dataset.num_targets`` values per row).
    """


@hookspec(firstresult=True)
def aios_save_model(model: Any, path: Path) -> ModelArtifact:
    """Write ``model`` in the framework's native format to ``path`` (``model.<native_format>``), atomically.

    The runner calls it at the end of the ``train`` phase with ``TrainResult.model``, at
    ``artifacts/model.<native_format>``. Returns the artifact (format = the framework's
    ``native_format``); first result wins.
    """


@hookspec(firstresult=True)
def aios_load_model(artifact: ModelArtifact) -> Any:
    """Load a native model written by ``aios_save_model``; first result wins.

    The runner calls it in the ``export`` phase of a resumed run (the trained model is no
    longer in memory) and for the output of a native-format compressor, when the framework
    has export formats. Must refuse to run code from the file (``weights_only`` / safe
    mode, ``allow_pickle=False``): raise ``ValueError`` or return ``None`` for a file that
    is not one of its models.
    """


@hookspec(firstresult=True)
def aios_export_model(model: Any, fmt: str, path: Path, dataset: Dataset) -> ModelArtifact:
    """Export ``model`` to ``fmt`` (one of the framework's ``export_formats``) at ``path``.

    The exported model takes a float32 batch (n, features) and returns class
    probabilities (n, classes), or for a regression ``dataset`` one output named
    ``predictions`` (n, targets) in the units the model learned. ``dataset`` supplies sample inputs for tracing and
    parity checks. The runner calls it in the ``export`` phase, after ``train``, once per
    export format, at ``artifacts/model.<fmt>``. First result wins.
    """


@hookspec(firstresult=True)
def aios_load_predictor(artifact: ModelArtifact, threads: int) -> Predictor | None:
    """Return a function mapping a float32 batch to class probabilities (regression: predictions), or ``None``.

    ``threads`` is the number of intra-op threads the predictor should use (the stack's
    ``threads``), so measured latencies match the run's setting.

    A framework implements it for its native format; ``onnx`` artifacts are run by the
    kernel itself (``aios_core.inference``), whoever wrote them. The first non-``None``
    result wins. Called through ``RunContext.load_predictor``, which asks every selected
    component: by the ``evaluate`` phase for each artifact, and by deployers' smoke tests.
    """


# ---------------------------------------------------------------- trainer
@hookspec(firstresult=True)
def aios_train(model: Any, dataset: Dataset, run: RunContext, overrides: dict[str, Any]) -> TrainResult:
    """Train ``model`` on ``dataset.train``, validating on ``dataset.val``; first result wins.

    The runner calls it on the stack's trainer in the ``train`` phase, after
    ``aios_build_model``, and once per tuner trial (``run`` is then the trial's context);
    a compressor that fine-tunes calls it through ``RunContext.train`` (``run.phase`` is then
    ``compress-native`` and ``run.checkpoint_dir`` the compressor's own folder).
    Report each epoch with ``run.report_epoch`` (and, sparingly, ``run.report_step``),
    checkpoint under ``run.checkpoint_dir`` by the policy of ``aios_core.CheckpointWriter``
    (at most every ``checkpoint_interval_s`` seconds, always at the end and when
    interrupted), and, when ``run.resume`` is true, continue from the newest checkpoint
    there so the result equals an uninterrupted run with the same seed. A non-finite loss
    raises ``aios_core.TrainingDiverged``. ``overrides`` holds trainer parameters chosen
    by a tuner trial.
    """


# ---------------------------------------------------------------- tuner
@hookspec(firstresult=True)
def aios_tune(objective: Callable[..., Any], run: RunContext) -> TuneResult:
    """Search parameters by calling ``objective`` and return the best; first result wins.

    The runner calls it on the stack's tuner in the ``tune`` phase, after ``data``, when
    the stack has a tuner; the best parameters then override the stack's in ``train`` and
    are written into the run's lock file. ``objective(params)`` trains one trial with
    ``params`` (keys ``model.<field>`` and ``trainer.<field>``) and returns its validation
    loss, lower is better. It takes three optional keyword arguments:

    - ``number``: the tuner's own trial number (monitors see it; the trial's files go
      under ``trials/<number>``); default: the runner counts calls.
    - ``report``: ``report(epoch, metrics)`` is called after each epoch of the trial (the
      trainer's ``run.report_epoch``, after the monitors). To prune the trial, raise
      ``aios_core.TrialPruned`` from it: the objective records the trial as ``pruned``
      and re-raises it.
    - ``objectives``: metric names (``val_loss``, ``val_accuracy``, any metric the
      trainer reports, ``size_bytes`` and ``latency_ms`` of the model after the stack's
      export and compressors, with ``latency_noise``); the objective then returns a dict of
      the trial's final metrics holding those values, instead of the validation loss.

    A trial that fails raises its error (a non-finite loss: ``aios_core.TrainingDiverged``);
    a tuner records it and goes on. With ``run.resume`` the tuner continues the search it
    began in ``run.dir`` without repeating finished trials.
    """


# ---------------------------------------------------------------- compressor
@hookspec(firstresult=True)
def aios_compress(artifact: ModelArtifact, dataset: Dataset, run: RunContext) -> ModelArtifact:
    """Return a smaller or faster model derived from ``artifact``, written under ``run.artifacts_dir``.

    The runner calls each compressor of the stack in order in the ``compress`` phase, after
    ``export``, one at a time; ``artifact`` is the newest one in the compressor's
    ``input_formats`` (the previous compressor's output when it fits). The result's ``metrics`` should report size, accuracy and
    latency of input and output.

    A compressor of the framework's native model (``native_format`` in and out:
    ``Compressor.works_before_export``) runs earlier, in the ``compress-native`` phase after
    ``train``; ``export`` then exports its output too, and the others compress that export.
    Such compressors come first in a stack's list (``aios validate`` refuses one listed
    after a compressor of the exported model). One that trains (fine-tuning, distillation)
    calls ``run.train(model, dataset, checkpoint_dir=..., overrides=...)``: the stack's
    trainer, with its monitors and checkpoints, resuming from ``checkpoint_dir`` when
    ``run.resume``.
    """


# ---------------------------------------------------------------- deployer
@hookspec(firstresult=True)
def aios_deploy(artifact: ModelArtifact, dataset: Dataset, run: RunContext) -> dict[str, Any]:
    """Deploy ``artifact`` and return a JSON-able report (endpoint, smoke-test results).

    The runner calls it on the stack's deployer in the ``deploy`` phase, the last, with
    the newest artifact in the deployer's ``formats``; ``smoke_test.passed: false`` in the
    report fails the run.
    A server deployer starts, checks its answers on ``dataset.test`` and stops, unless
    ``run.options.serve`` is true, in which case it serves until interrupted.
    """


@hookspec(firstresult=True)
def aios_serve(run_dirs: list[Path], host: str, port: int) -> None:
    """Serve the final models of existing run directories until interrupted; first result wins.

    ``aios serve RUN...`` calls it, outside any run, on the deployer named by ``--deployer``.
    """


# ---------------------------------------------------------------- monitor (run lifecycle)
@hookspec
def aios_on_run_start(run: RunContext) -> None:
    """A run starts (or resumes: ``run.resume``, also each later step of an orchestrated run); ``run.dir``
    exists and holds the lock file.

    The runner calls it first, before the ``data`` phase.
    """


@hookspec
def aios_on_phase_start(run: RunContext, phase: str) -> None:
    """A phase starts: ``data``, ``tune``, ``train``, ``export``, ``compress``, ``evaluate`` or ``deploy``.

    ``compress-native`` (between ``train`` and ``export``) runs when a stack has compressors of the native model.

    The runner calls it for each phase it runs; a resumed run skips the phases it finished.
    An exception raised here fails the phase, as one raised by the phase's own work would.
    """


@hookspec
def aios_on_step(run: RunContext, phase: str, epoch: int, step: int, total_steps: int, metrics: dict[str, float]) -> None:
    """Progress inside an epoch, reported every few steps (never every batch by default).

    The trainer causes it by calling ``run.report_step`` (see ``aios_core.report_steps``).
    """


@hookspec
def aios_on_progress(run: RunContext, phase: str, task: str, done: int, total: int | None, unit: str) -> None:
    """Progress of a long piece of work that is not an epoch: rows read, a pass over the data, files written.

    A component causes it by calling ``run.report_progress(task, done, total, unit)`` a few
    dozen times at most per task (the datastore: ``reading`` in row groups or bytes, then the
    ``statistics`` and ``scaling`` passes; the runner: ``evaluating``, once per model).
    ``task`` names the work; ``done`` of ``total`` ``unit`` (``rows``) are finished; ``total``
    is ``None`` when unknown. The last report of a task has ``done == total``.
    """


@hookspec
def aios_on_epoch_end(run: RunContext, phase: str, epoch: int, metrics: dict[str, float]) -> None:
    """An epoch ended; ``metrics`` holds loss, accuracy, validation metrics, lr and seconds.

    The trainer causes it by calling ``run.report_epoch`` after each epoch (``train`` and
    ``tune`` phases).
    """


@hookspec
def aios_on_trial_start(run: RunContext, trial: int, params: dict[str, Any]) -> None:
    """A tuner trial starts: ``trial`` is its number, ``params`` the parameters it tries.

    The runner calls it in the ``tune`` phase before building the trial's model; ``run``
    is the trial's context (its own ``checkpoint_dir``), so epoch reports that follow
    belong to this trial until ``aios_on_trial_end``.
    """


@hookspec
def aios_on_trial_end(run: RunContext, trial: int, status: str, value: float | None, metrics: dict[str, float]) -> None:
    """A tuner trial ended with status ``completed``, ``pruned`` or ``failed``.

    ``value`` is the objective it returned (``None`` unless completed) and ``metrics``
    the trainer's final metrics (empty when it failed). The runner calls it in the
    ``tune`` phase whatever happened to the trial.
    """


@hookspec
def aios_on_phase_end(run: RunContext, phase: str, summary: dict[str, Any]) -> None:
    """A phase ended; ``summary`` is the JSON-able outcome recorded in the run's state.

    The runner calls it after writing ``summary`` to ``state.json`` (``aios_core.rundir``).
    """


@hookspec
def aios_on_artifact(run: RunContext, artifact: ModelArtifact) -> None:
    """An artifact was written (atomically) to ``artifact.path``.

    The runner calls it for the native model (``train``), each export and each
    compressor's output.
    """


@hookspec
def aios_on_error(run: RunContext, phase: str, error: BaseException) -> None:
    """A phase failed with ``error``; ``aios_on_run_end`` follows with status ``failed``.

    The runner calls it when a phase raises (not on Ctrl-C: the run ends ``interrupted``).
    """


@hookspec
def aios_on_run_end(run: RunContext, status: str, summary: dict[str, Any]) -> None:
    """The run ended with status ``completed``, ``failed`` or ``interrupted``, or ``partial`` when it ran only
    the phases ``aios run --phases`` selected (an orchestrator's step; a later step continues it).

    The runner calls it last, whatever happened; ``summary`` is the run's ``state.json``.
    """


# ---------------------------------------------------------------- orchestrator
@hookspec(firstresult=True)
def aios_compile_pipeline(stack: Stack, phases: list[str], output: Path) -> Path:
    """Write ``stack`` as this orchestrator's pipeline definition at ``output``; return ``output``. First result wins.

    ``aios pipeline compile`` calls it on the stack's orchestrator (its ``orchestrator``
    section) after the stack loaded and validated. ``phases`` are the stack's phases in the
    runner's order (``Stack.phases``); each becomes one step that runs the
    kernel's runner for that phase on the run directory the step before wrote:
    ``aios run --lock LOCK --run-dir DIR --phases data`` starts it, ``aios run --resume DIR
    --phases PHASE`` continues it (``aios_core.runner.start_run``/``resume_run`` with
    ``phases`` in Python). ``stack.lock()`` is the resolved stack the steps must run.
    """


@hookspec(firstresult=True)
def aios_run_pipeline(stack: Stack, phases: list[str], runs_root: Path, target: str | None) -> str:
    """Run ``stack`` as this orchestrator's pipeline; first result wins.

    ``aios pipeline run`` calls it. ``target`` None (``--local``): run it on this machine
    and return the final run directory, copied under ``runs_root``. Otherwise ``target`` is
    the orchestrator's endpoint (``--host URL``): submit it and return the submitted run's
    id. A failed step raises, its message one line naming the phase and the reason.
    """
