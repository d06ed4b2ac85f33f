"""The AIOS hook contract: every hook a plugin can implement, grouped by kind.

A component is a class registered under one of the entry-point groups in
``aios_core.plugins.GROUPS``. A run builds one instance of each component its stack
names (with the component's validated ``Params``) and registers those instances, and
only those, in the run's pluggy ``PluginManager``. Hooks are methods of the component
marked with ``@hookimpl``; a method may take any subset of the spec's arguments.

Hooks marked *first result wins* stop at the first implementation that returns a value
other than ``None``. The runner calls them with exactly the selected component of the
kind, so in practice they reach one implementation. Monitor hooks reach every selected
monitor and return nothing.

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

PROJECT_NAME = "aios"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# ---------------------------------------------------------------- every kind: before a run
@hookspec
def aios_validate(context: ValidationContext) -> list[tuple[str, str]] | None:
    """Check the component's parameters against the environment; called on every selected component.

    ``aios validate`` and ``aios run`` call it after the parameters validated and the
    components were found to fit, before a run directory exists. Return ``(field,
    message)`` pairs for what cannot work: a file that does not exist, a factory that does
    not import, an architecture the data cannot feed (``context.data``). ``field`` is a
    dotted path inside the component's own section (``path``, ``options.depth``); the
    message says what was found and what is expected. Must be quick: no data loading, no
    model building.
    """


# ---------------------------------------------------------------- datastore
@hookspec(firstresult=True)
def aios_describe_data(context: ValidationContext) -> DataDescription | None:
    """What ``aios_load_dataset`` will return, as far as it is known without loading the data; first result wins.

    Shown to the other components' ``aios_validate`` as ``context.data``, so a framework
    can refuse a ``cnn`` for rows without an image shape before a run starts. ``None``:
    unknown until loaded.
    """


@hookspec(firstresult=True)
def aios_load_dataset(run: RunContext) -> Dataset:
    """Load, clean, preprocess and split the stack's data; first result wins.

    Must be deterministic for ``run.seed``: the same stack gives the same splits and the
    same ``Dataset.content_hash``. Features are float32 rows of shape (n, features).
    """


# ---------------------------------------------------------------- framework
@hookspec(firstresult=True)
def aios_build_model(dataset: Dataset, run: RunContext, overrides: dict[str, Any]) -> Any:
    """Build an untrained native model sized for ``dataset``; first result wins.

    ``overrides`` holds model parameters chosen by a tuner trial (empty otherwise) and
    take precedence over the component's own ``params``.
    """


@hookspec(firstresult=True)
def aios_save_model(model: Any, path: Path) -> ModelArtifact:
    """Write ``model`` in the framework's native format to ``path`` (``model.<native_format>``), atomically.

    Returns the artifact (format = the framework's ``native_format``); first result wins.
    """


@hookspec(firstresult=True)
def aios_load_model(artifact: ModelArtifact) -> Any:
    """Load a native model written by ``aios_save_model``; first result wins.

    Must refuse to run code from the file (``weights_only`` / safe mode).
    """


@hookspec(firstresult=True)
def aios_export_model(model: Any, fmt: str, path: Path, dataset: Dataset) -> ModelArtifact:
    """Export ``model`` to ``fmt`` (one of the framework's ``export_formats``) at ``path``.

    The exported model takes a float32 batch (n, features) and returns class
    probabilities (n, classes). ``dataset`` supplies sample inputs for tracing and
    parity checks. First result wins.
    """


@hookspec(firstresult=True)
def aios_load_predictor(artifact: ModelArtifact, threads: int) -> Predictor | None:
    """Return a function mapping a float32 batch to class probabilities, or ``None``.

    ``threads`` is the number of intra-op threads the predictor should use (the stack's
    ``threads``), so measured latencies match the run's setting.

    A framework implements it for its native format; ``onnx`` artifacts are run by the
    kernel itself (``aios_core.inference``), whoever wrote them. The first non-``None``
    result wins. Used by evaluation and deployment smoke tests.
    """


# ---------------------------------------------------------------- trainer
@hookspec(firstresult=True)
def aios_train(model: Any, dataset: Dataset, run: RunContext, overrides: dict[str, Any]) -> TrainResult:
    """Train ``model`` on ``dataset.train``, validating on ``dataset.val``; first result wins.

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
def aios_tune(objective: Callable[[dict[str, Any]], float], run: RunContext) -> TuneResult:
    """Search parameters by calling ``objective`` and return the best; first result wins.

    ``objective(params)`` trains one trial with ``params`` (keys ``model.<field>`` and
    ``trainer.<field>``) and returns its validation loss, lower is better.
    """


# ---------------------------------------------------------------- compressor
@hookspec(firstresult=True)
def aios_compress(artifact: ModelArtifact, dataset: Dataset, run: RunContext) -> ModelArtifact:
    """Return a smaller or faster model derived from ``artifact``, written under ``run.artifacts_dir``.

    The runner calls each compressor of the stack in order, one at a time, passing the
    previous one's output. The result's ``metrics`` should report size, accuracy and
    latency of input and output.
    """


# ---------------------------------------------------------------- deployer
@hookspec(firstresult=True)
def aios_deploy(artifact: ModelArtifact, dataset: Dataset, run: RunContext) -> dict[str, Any]:
    """Deploy ``artifact`` and return a JSON-able report (endpoint, smoke-test results).

    A server deployer starts, checks its answers on ``dataset.test`` and stops, unless
    ``run.options.serve`` is true, in which case it serves until interrupted.
    """


@hookspec(firstresult=True)
def aios_serve(run_dirs: list[Path], host: str, port: int) -> None:
    """Serve the final models of existing run directories until interrupted (``aios serve``)."""


# ---------------------------------------------------------------- monitor (run lifecycle)
@hookspec
def aios_on_run_start(run: RunContext) -> None:
    """A run starts (or resumes: ``run.resume``); ``run.dir`` exists and holds the lock file."""


@hookspec
def aios_on_phase_start(run: RunContext, phase: str) -> None:
    """A phase starts: ``data``, ``tune``, ``train``, ``export``, ``compress``, ``evaluate`` or ``deploy``."""


@hookspec
def aios_on_step(run: RunContext, phase: str, epoch: int, step: int, total_steps: int, metrics: dict[str, float]) -> None:
    """Progress inside an epoch, reported every few steps (never every batch by default)."""


@hookspec
def aios_on_epoch_end(run: RunContext, phase: str, epoch: int, metrics: dict[str, float]) -> None:
    """An epoch ended; ``metrics`` holds loss, accuracy, validation metrics, lr and seconds."""


@hookspec
def aios_on_phase_end(run: RunContext, phase: str, summary: dict[str, Any]) -> None:
    """A phase ended; ``summary`` is the JSON-able outcome recorded in the run's state."""


@hookspec
def aios_on_artifact(run: RunContext, artifact: ModelArtifact) -> None:
    """An artifact was written (atomically) to ``artifact.path``."""


@hookspec
def aios_on_error(run: RunContext, phase: str, error: BaseException) -> None:
    """A phase failed with ``error``; ``aios_on_run_end`` follows with status ``failed``."""


@hookspec
def aios_on_run_end(run: RunContext, status: str, summary: dict[str, Any]) -> None:
    """The run ended with status ``completed``, ``failed`` or ``interrupted``."""
