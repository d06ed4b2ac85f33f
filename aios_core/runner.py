"""The stack runner: data -> tune -> train -> compress-native -> export -> compress -> evaluate -> deploy.

The one place that knows the phase order. Each finished phase is recorded in the run
record (``aios_core.rundir``); ``--resume`` skips finished phases and lets the trainer
continue from its last checkpoint. A run may go through only some phases (``aios run --phases``):
an orchestrator runs each phase as its own step against the same run directory, every step
continuing from what the earlier ones recorded (``select_phases`` checks a selection).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aios_core.components import streaming_refusal, task_refusal
from aios_core.context import RunContext, RunOptions
from aios_core.errors import one_line
from aios_core.plugins import new_plugin_manager, register
from aios_core.records import Dataset, ModelArtifact
from aios_core.resources import PhaseMeter
from aios_core.rundir import RunDirectory, RunState, final_artifact
from aios_core.stack import Stack
from aios_core.training import wait_for_checkpoints
from aios_core.vocabulary import PHASES

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class RunFailed(Exception):
    """A phase raised; the run directory holds what was done and ``run.log`` the traceback."""

    def __init__(self, run_dir: Path, phase: str, error: BaseException) -> None:
        super().__init__(f"phase '{phase}' failed: {one_line(error, phase=phase)} (run directory: {run_dir})")
        self.run_dir, self.phase, self.error = run_dir, phase, error


class RunInterrupted(Exception):
    """The run was interrupted (Ctrl-C); it can be continued with ``aios run --resume``."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(f"interrupted; continue with: aios run --resume {run_dir}")
        self.run_dir = run_dir


class GateFailed(Exception):
    """The evaluation did not meet a gate of the stack's ``evaluate`` section."""


class SmokeTestFailed(Exception):
    """The deployer's smoke test found the deployed model answering differently from the run's model."""


class _SelectionDone(Exception):
    """The phases after the selected ones are not run: the run stops ``partial``."""


def select_phases(stack: Stack, state: RunState, phases: Sequence[str], where: Path) -> tuple[str, ...]:
    """Check that ``phases`` can run now in the run directory ``where`` (holding ``state``); ValueError if not.

    Each must be a phase of the stack, and each phase of the stack before the last selected
    one must be selected too or already recorded; a selected ``deploy`` needs a recorded
    ``evaluate`` whose gates passed. Returns the selection in run order.
    """
    own = stack.phases
    for phase in phases:
        if phase not in own:
            known = f"the phases of {stack.name} are" if phase in PHASES else "the phases are"
            raise ValueError(f"--phases: '{phase}' is not a phase of this run; {known} {', '.join(own)}")
    chosen = tuple(phase for phase in own if phase in phases)
    for phase in own[:own.index(chosen[-1])]:
        if phase not in chosen and state.phase(phase) is None:
            raise ValueError(f"{where}: phase '{phase}' has not run; select it too (--phases {phase},"
                             f"{','.join(chosen)}) or run it first")
    evaluation = state.phase("evaluate")
    if "deploy" in chosen and "evaluate" not in chosen and evaluation:
        failed = [gate["message"] for gate in evaluation.get("gates", []) if not gate["passed"]]
        if failed:
            raise ValueError(f"{where}: the evaluation missed its gates ({'; '.join(failed)}); nothing to deploy")
    return chosen


@contextmanager
def _run_log(path: Path, debug: bool) -> Iterator[None]:
    """Send logs, warnings and anything libraries print to stderr into ``run.log``.

    Monitors own the console (stdout). With ``debug``, stderr is left alone.
    """
    import sys

    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    logging.captureWarnings(True)
    saved_stderr = None
    if not debug:
        sys.stderr.flush()
        saved_stderr = os.dup(2)
        os.dup2(handler.stream.fileno(), 2)
    try:
        yield
    finally:
        if saved_stderr is not None:
            sys.stderr.flush()
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
        logging.captureWarnings(False)
        root.removeHandler(handler)
        root.setLevel(previous_level)
        handler.close()


class StackRun:
    """One run of a stack in one run directory (new or resumed)."""

    def __init__(self, stack: Stack, run_dir: RunDirectory, options: RunOptions, resume: bool,
                 phases: Sequence[str] | None = None) -> None:
        self.stack = stack
        self.dir = run_dir
        self.state: RunState = run_dir.read_state()
        self.phases = None if phases is None else select_phases(stack, self.state, phases, run_dir.path)
        self.pm = new_plugin_manager()
        for role, component in stack.components.items():
            register(self.pm, component, role)
        self.context = RunContext(name=stack.name, seed=stack.settings.seed, threads=stack.settings.threads,
                                  dir=run_dir.path, stack=stack.resolved, hook=self.pm.hook, resume=resume,
                                  options=options, checkpoint_dir=run_dir.checkpoints_dir)

    # -------------------------------------------------------------- helpers
    def _call(self, role: str, hook: str, **kwargs: Any) -> Any:
        """Call ``hook`` on exactly the component in ``role``."""
        others = [c for r, c in self.stack.components.items() if r != role]
        return self.pm.subset_hook_caller(hook, remove_plugins=others)(**kwargs)

    def _artifact_written(self, artifact: ModelArtifact) -> ModelArtifact:
        self.pm.hook.aios_on_artifact(run=self.context, artifact=artifact)
        return artifact

    def _save_state(self) -> None:
        self.dir.write_state(self.state)

    @contextmanager
    def _phase(self, name: str) -> Iterator[dict[str, Any]]:
        """Run a phase: notify monitors, record its summary in state.json when it ends."""
        if self._skipped(name):
            raise _SelectionDone(name)
        self.context.phase = name
        summary: dict[str, Any] = {}
        started = time.perf_counter()
        meter = PhaseMeter()
        try:
            self.pm.hook.aios_on_phase_start(run=self.context, phase=name)  # a monitor that raises fails the phase
            yield summary
        except KeyboardInterrupt:
            raise
        except Exception as error:
            logging.getLogger("aios.run").exception("phase %s failed", name)
            self.state.error = f"{name}: {one_line(error, phase=name)}"
            self.pm.hook.aios_on_error(run=self.context, phase=name, error=error)
            raise RunFailed(self.dir.path, name, error) from error
        summary["seconds"] = round(time.perf_counter() - started, 3)
        summary["resources"] = meter.usage()
        self.state.phases[name] = summary
        self._save_state()
        self.pm.hook.aios_on_phase_end(run=self.context, phase=name, summary=summary)

    def _done(self, name: str) -> dict[str, Any] | None:
        return self.state.phase(name) if self.context.resume else None

    def _skipped(self, name: str) -> bool:
        """Not among the selected phases (``--phases``): recorded by an earlier step, or left for a later one."""
        return self.phases is not None and name not in self.phases

    # -------------------------------------------------------------- phases
    def _data(self) -> Dataset:
        if self._skipped("data"):  # a later step of an orchestrated run: the same data again, not recorded
            try:
                return self._checked_data()
            except Exception as error:
                self.state.error = f"data: {one_line(error, phase='data')}"
                raise RunFailed(self.dir.path, "data", error) from error
        with self._phase("data") as summary:
            dataset = self._checked_data()
            summary.update(dataset.summary())
            self.dir.write_data_summary(dataset.summary())
        return dataset

    def _checked_data(self) -> Dataset:
        """The stack's dataset; on resume, refused if its content hash is not the recorded one."""
        dataset = self._call("data", "aios_load_dataset", run=self.context)
        recorded = (self.state.phase("data") or {}).get("content_hash")
        if self.context.resume and recorded and recorded != dataset.content_hash:
            raise ValueError(f"the data changed since the run started (content hash {dataset.content_hash[:12]} "
                             f"!= {recorded[:12]}); start a new run instead of resuming")
        for component in self.stack.components.values():  # an inferred task is known only now
            refusal = task_refusal(component, dataset.task) or streaming_refusal(component, dataset.streaming)
            if refusal:
                raise ValueError(refusal)
        return dataset

    def _objective(self, dataset: Dataset) -> Callable[..., Any]:
        from aios_core.tuning import TrialObjective

        return TrialObjective(self.stack, self.context, self.pm.hook, self._call, dataset)

    def _tune(self, dataset: Dataset) -> dict[str, Any]:
        if "tuner" not in self.stack.components:
            return {}
        done = self._done("tune")
        if done:
            return done["best_params"]
        with self._phase("tune") as summary:
            result = self._call("tuner", "aios_tune", objective=self._objective(dataset), run=self.context)
            summary.update(best_params=result.best_params, best_value=result.best_value, trials=result.trials,
                           **result.summary)
            from aios_core.tuning import tuned_lock

            self.dir.write_lock(tuned_lock(self.stack.lock(), result))  # aios run --lock retrains without tuning
        return result.best_params

    def _train(self, dataset: Dataset, best: dict[str, Any]) -> tuple[Any, ModelArtifact]:
        done = self._done("train")
        if done:
            return None, self.dir.artifact_from_json(done["artifact"])
        with self._phase("train") as summary:
            model_overrides = {k.removeprefix("model."): v for k, v in best.items() if k.startswith("model.")}
            trainer_overrides = {k.removeprefix("trainer."): v for k, v in best.items() if k.startswith("trainer.")}
            model = self._call("model", "aios_build_model", dataset=dataset, run=self.context,
                               overrides=model_overrides)
            result = self._call("trainer", "aios_train", model=model, dataset=dataset, run=self.context,
                                overrides=trainer_overrides)
            native_path = self.dir.artifacts_dir / f"model.{self.stack.components['model'].native_format}"
            artifact = self._call("model", "aios_save_model", model=result.model, path=native_path)
            wait_for_checkpoints()  # the trainer's final checkpoint, written while the model was saved
            self._artifact_written(artifact)
            summary.update(history=result.history, best_epoch=result.best_epoch, stopped_early=result.stopped_early,
                           final=result.final_metrics, artifact=self.dir.artifact_to_json(artifact))
        return result.model, artifact

    def _export(self, model: Any, natives: list[ModelArtifact], dataset: Dataset) -> list[ModelArtifact]:
        """Export the trained model and, after native-format compressors, their last output (named after it)."""
        done = self._done("export")
        if done:
            return [self.dir.artifact_from_json(a) for a in done["artifacts"]]
        framework = self.stack.components["model"]
        with self._phase("export") as summary:
            exported = []
            for native in natives[:1] + natives[1:][-1:]:
                if (model is None or native is not natives[0]) and framework.export_formats:
                    model = self._call("model", "aios_load_model", artifact=native)
                prefix = "" if native is natives[0] else f"{native.name}."
                for fmt in framework.export_formats:
                    artifact = self._call("model", "aios_export_model", model=model, fmt=fmt,
                                          path=self.dir.artifacts_dir / f"model.{prefix}{fmt}", dataset=dataset)
                    artifact.name = f"{prefix}{artifact.name}"
                    exported.append(self._artifact_written(artifact))
            summary["artifacts"] = [self.dir.artifact_to_json(a) for a in exported]
        return exported

    def _compress(self, artifacts: list[ModelArtifact], dataset: Dataset, native: bool = False) -> list[ModelArtifact]:
        """The compressors of the native model (``compress-native``, before export) or the others (``compress``)."""
        roles = self.stack.compressor_roles(native)
        if not roles:
            return []
        phase = "compress-native" if native else "compress"
        done = self._done(phase)
        if done:
            return [self.dir.artifact_from_json(a) for a in done["artifacts"]]
        with self._phase(phase) as summary:
            compressed: list[ModelArtifact] = []
            for role in roles:
                compressor = self.stack.components[role]
                source = final_artifact(artifacts + compressed, compressor.input_formats)
                output = self._call(role, "aios_compress", artifact=source, dataset=dataset, run=self.context)
                compressed.append(self._artifact_written(output))
            summary["artifacts"] = [self.dir.artifact_to_json(a) for a in compressed]
        return compressed

    def _evaluate(self, artifacts: list[ModelArtifact], dataset: Dataset) -> dict[str, Any]:
        from aios_core.evaluation import evaluate

        recorded = self.state.phase("evaluate")
        if self._skipped("evaluate") and recorded:  # an earlier step's; select_phases checked its gates
            return recorded
        with self._phase("evaluate") as summary:
            history = self.state.phases["train"]["history"]
            report = evaluate(artifacts, dataset, self.context.load_predictor, self.stack.settings.evaluate,
                              history, self.dir.report_dir, progress=self.context.report_progress)
            summary.update(report)
        failed = [gate["message"] for gate in report["gates"] if not gate["passed"]]
        if failed:
            error = GateFailed("; ".join(failed))
            self.state.error = f"evaluate: {one_line(error)}"
            raise RunFailed(self.dir.path, "evaluate", error)
        return report

    def _deploy(self, artifacts: list[ModelArtifact], dataset: Dataset) -> None:
        if "deployer" not in self.stack.components:
            return
        deployer = self.stack.components["deployer"]
        artifact = final_artifact(artifacts, deployer.formats)
        with self._phase("deploy") as summary:
            summary.update(self._call("deployer", "aios_deploy", artifact=artifact, dataset=dataset,
                                      run=self.context) or {})
            smoke = summary.get("smoke_test")
            if isinstance(smoke, dict) and smoke.get("passed") is False:
                logging.getLogger("aios.run").warning("deploy report: %s", summary)
                problems = "; ".join(str(p) for p in smoke.get("problems") or []) or "no reason given"
                raise SmokeTestFailed(f"deployer '{deployer.name}' smoke test failed: {problems}")

    # -------------------------------------------------------------- the run
    def execute(self) -> RunState:
        """Run every phase; returns the final state. Raises RunFailed or RunInterrupted."""
        for variable in _THREAD_VARIABLES:
            os.environ[variable] = str(self.stack.settings.threads)
        self.state.status, self.state.error = "running", None
        self.state.resumed += 1
        self.state.started = self.state.started or time.strftime("%Y-%m-%dT%H:%M:%S")
        self._save_state()
        with _run_log(self.dir.log_file, self.context.options.debug):
            self.pm.hook.aios_on_run_start(run=self.context)
            status = "failed"
            try:
                dataset = self._data()
                best = self._tune(dataset)
                model, native = self._train(dataset, best)
                natives = [native, *self._compress([native], dataset, native=True)]
                artifacts = [*natives, *self._export(model, natives, dataset)]
                artifacts += self._compress(artifacts, dataset)
                self._evaluate(artifacts, dataset)
                self._deploy(artifacts, dataset)
                status = "completed"
            except _SelectionDone:
                status = "partial"
            except KeyboardInterrupt:
                status = "interrupted"
                raise RunInterrupted(self.dir.path) from None
            finally:
                self.state.status, self.state.finished = status, time.strftime("%Y-%m-%dT%H:%M:%S")
                self._save_state()
                self.pm.hook.aios_on_run_end(run=self.context, status=status, summary=self.state.to_json())
        return self.state


def start_run(stack: Stack, runs_root: Path, options: RunOptions | None = None, phases: Sequence[str] | None = None,
              at: Path | None = None) -> StackRun:
    """A new run directory for ``stack`` (under ``runs_root``, or exactly ``at``), holding its lock file.

    ``phases``: run only those (from ``data`` on; see ``select_phases``); ValueError before
    anything is written if they cannot run.
    """
    if phases is not None:
        select_phases(stack, RunState(), phases, at or runs_root)
    run_dir = RunDirectory.create_at(at) if at else RunDirectory.create(runs_root, stack.name)
    run_dir.write_lock(stack.lock())
    return StackRun(stack, run_dir, options or RunOptions(), resume=False, phases=phases)


def resume_run(run_dir: RunDirectory, options: RunOptions | None = None,
               phases: Sequence[str] | None = None) -> StackRun:
    """Continue an interrupted (or ``partial``) run from its lock file, state and checkpoints; only ``phases``
    if given (an orchestrator's next step)."""
    from aios_core.stack import load_stack

    if run_dir.read_state().status == "completed":
        raise ValueError(f"{run_dir.path}: this run already completed; to run it again: aios run --lock {run_dir.lock_file}")
    stack = load_stack(run_dir.lock_file, locked=True)
    return StackRun(stack, run_dir, options or RunOptions(), resume=True, phases=phases)
