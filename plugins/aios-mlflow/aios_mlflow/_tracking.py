"""The MLflow side of the monitor: one MLflow run per AIOS run, written by a background thread.

Hooks only queue work, so training never waits for the tracking server: epochs are kept and sent
together every ``flush_interval_s`` (and before any other event), one ``log_batch`` per MLflow run,
since even a request on another thread takes the interpreter's lock from the training loop. The
first request that fails stops the queue: it is reported once on the console and in run.log, the
run goes on (metrics.jsonl stays complete), and with ``required: true`` the next hook inside a
phase raises ``MlflowUnavailable`` instead.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from aios_core import RunContext, RunDirectory, one_line, write_json

from aios_mlflow import MlflowUnavailable

log = logging.getLogger("aios.mlflow")

POINTER_FILE = "mlflow.json"
"""In the AIOS run directory: the tracking URI, experiment, MLflow run id and registered model version."""
RUN_FILES = ("stack.lock.yaml", "state.json", "data.json", "metrics.jsonl", "run.log")
FLUSH_TIMEOUT_S = 120.0
_BATCH = 100  # MLflow's log_batch takes at most 100 params (1000 metrics) per call
_STATUS = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED", "pruned": "KILLED"}


def server_problem(uri: str, timeout_s: float) -> str | None:
    """Why the tracking server at ``uri`` cannot be used, or None (its ``/health`` answers)."""
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s) as response:
            if response.status == 200:
                return None
            return f"the MLflow tracking server at {uri} answered /health with HTTP {response.status}"
    except OSError as error:
        return (f"no MLflow tracking server answers at {uri} ({one_line(error)}); start one "
                f"(mlflow server --host 127.0.0.1 --port PORT) or set required: false")


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """``(dotted.key, text)`` pairs of a resolved stack: ``model.hidden_units`` -> ``[128]``,
    ``compressors.0.mode`` -> ``auto``."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        for index, item in enumerate(value):
            yield from flatten(item, f"{prefix}.{index}")
    else:
        yield prefix, value if isinstance(value, str) else json.dumps(value)


def numeric(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of ``metrics`` (nested dicts flattened with dots), as MLflow metrics."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(numeric(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
                and abs(value) != float("inf"):
            out[f"{prefix}{key}"] = float(value)
    return out


def phase_metrics(phase: str, summary: dict[str, Any]) -> dict[str, float]:
    """The figures of a phase summary worth a chart: its time and resources, and per phase its outcome."""
    out = {f"{phase}.seconds": summary["seconds"]} if isinstance(summary.get("seconds"), (int, float)) else {}
    out.update(numeric(summary.get("resources") or {}, f"{phase}.resources."))
    if phase == "train":
        out.update(numeric(summary.get("final") or {}, "final."))
        if isinstance(summary.get("best_epoch"), int):
            out["best_epoch"] = float(summary["best_epoch"])
    elif phase == "tune" and isinstance(summary.get("best_value"), (int, float)):
        out["tune.best_value"] = float(summary["best_value"])
    elif phase == "evaluate":
        for result in summary.get("artifacts") or []:
            name = result.get("name", "model")
            out.update(numeric({k: result[k] for k in ("accuracy", "size_bytes") if k in result}, f"eval.{name}."))
            for batch, latency in (result.get("latency_ms") or {}).items():
                out.update(numeric(latency, f"eval.{name}.latency_ms.b{batch}."))
        out.update(numeric({"test_accuracy": summary.get("test_accuracy")}, "eval."))
        comparison = summary.get("comparison") or {}
        out.update(numeric({k: comparison.get(k) for k in ("accuracy_drop", "size_ratio")}, "eval.comparison."))
    return out


def git_commit(path: Path) -> str | None:
    """The commit checked out in the git tree holding ``path``, or None (not in a tree, or no git)."""
    try:
        result = subprocess.run(["git", "-C", str(path.parent), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


class _Marker(threading.Event):
    """A flush point in the queue: set when the worker reaches it, also after a failure."""

    def __call__(self) -> None:
        self.set()


class Tracker:
    """One AIOS run's MLflow run; hooks call it on the run's thread, a worker thread talks to MLflow."""

    def __init__(self, params: Any, run: RunContext, source: str | None) -> None:
        self.params = params
        self.run = run
        self.rundir = RunDirectory(run.dir)
        self.source = source
        self.experiment_name = params.experiment or run.name
        self.client: Any = None
        self.experiment_id: str | None = None
        self.run_id: str | None = None
        self.trial_runs: dict[int, str] = {}
        self._epochs: list[tuple[int | None, dict[str, float], int, int]] = []  # kept until sent
        self.worker_cpu_s = 0.0  # CPU the logging thread spent on tasks (benchmarks/monitoring reads it)
        self._sent = time.monotonic()
        self.error: BaseException | None = None
        self._reported = False
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="aios-mlflow", daemon=True)

    # ------------------------------------------------------------ the worker
    def _work(self) -> None:
        while True:
            task = self._queue.get()
            try:
                if task is None:
                    return
                if self.error is None or isinstance(task, _Marker):
                    started = time.thread_time()
                    task()
                    self.worker_cpu_s += time.thread_time() - started
            except Exception as error:  # the first failure stops all logging to MLflow
                self.error = error
                log.warning("MLflow logging stopped: %s", one_line(error), exc_info=True)
            finally:
                self._queue.task_done()

    def _submit(self, task: Callable[[], None], can_raise: bool = True) -> None:
        self.check(can_raise)
        if self.error is None:
            self._send_epochs()
            self._queue.put(task)

    def flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> bool:
        """Wait until the queued work is done (True) or ``timeout_s`` passed (False)."""
        done = _Marker()
        self._queue.put(done)
        return done.wait(timeout_s)

    def check(self, can_raise: bool = True) -> None:
        """Report a failure once; with ``required: true`` raise it (once) instead.

        The runner turns an exception into a failed run only inside a phase (``aios_on_phase_start``,
        the epoch, trial and artifact hooks), so elsewhere (``can_raise`` false) a required failure waits
        for the next of those; at run end, when every phase is over, it can only be reported (``end``).
        """
        if self.error is None or self._reported or (self.params.required and not can_raise):
            return
        if self.params.required:
            self._report("required: true, so the run stops")
            raise MlflowUnavailable(f"mlflow: the tracking server failed ({one_line(self.error)})") from self.error
        self._report(f"the run goes on without MLflow, {RunDirectory.METRICS} stays complete")

    def _report(self, outcome: str) -> None:
        self._reported = True
        print(f"  warning: mlflow: the tracking server failed ({one_line(self.error)}); {outcome}", flush=True)

    def phase_start(self) -> None:
        """With ``required: true`` the previous phase's logging must have succeeded before the next phase starts."""
        if self.params.required:
            self.flush()
        self.check()

    # ------------------------------------------------------------ run start
    def start(self) -> None:
        """Create (or, on resume, reopen) the MLflow run; synchronous, before the data phase."""
        for variable, value in (("MLFLOW_HTTP_REQUEST_TIMEOUT", self.params.request_timeout_s),
                                ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", self.params.request_retries)):
            os.environ.setdefault(variable, str(value))
        self._worker.start()
        self._queue.put(self._open)
        self.flush()
        self.check(can_raise=False)  # run start is outside every phase: a required failure waits for the first

    def _open(self) -> None:
        from mlflow import MlflowClient

        pointer = self.rundir.path / POINTER_FILE
        if self.run.resume and pointer.is_file():
            # the recorded URI is absolute: a resume from another directory still finds MLflow's local default
            recorded = json.loads(pointer.read_text(encoding="utf-8"))
            self.client = MlflowClient(tracking_uri=self.params.tracking_uri or recorded["tracking_uri"])
            self.experiment_id, self.run_id = recorded["experiment_id"], recorded["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            return
        self.client = MlflowClient(tracking_uri=self.params.tracking_uri)
        experiment = self.client.get_experiment_by_name(self.experiment_name)
        self.experiment_id = (experiment.experiment_id if experiment is not None
                              else self.client.create_experiment(self.experiment_name))
        created = self.client.create_run(self.experiment_id, run_name=self.rundir.name, tags=self._tags())
        self.run_id = created.info.run_id
        self._write_pointer()
        self._log_params(self.run_id, dict(flatten({k: v for k, v in self.run.stack.items() if k != "lock"})))

    def _tags(self) -> dict[str, str]:
        lock = (self.rundir.read_lock().get("lock") or {}) if self.rundir.lock_file.is_file() else {}
        tags = {"aios.stack": self.run.name, "aios.seed": str(self.run.seed),
                "aios.run_dir": str(self.rundir.path.resolve()), "aios.kernel_version": str(lock.get("aios_core")),
                "aios.python": str(lock.get("python"))}
        tags.update({f"aios.version.{dist}": str(version)
                     for dist, version in (lock.get("distributions") or {}).items()})
        if self.source:
            tags["mlflow.source.name"] = str(Path(self.source).resolve())
            commit = git_commit(Path(self.source).resolve())
            if commit:
                tags["mlflow.source.git.commit"] = tags["aios.git_commit"] = commit
        return tags

    def _write_pointer(self, **extra: Any) -> None:
        path = self.rundir.path / POINTER_FILE
        recorded = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        recorded.update(tracking_uri=self.client.tracking_uri, experiment_id=self.experiment_id,
                        experiment=self.experiment_name, run_id=self.run_id, **extra)
        if str(self.client.tracking_uri).startswith(("http://", "https://")):
            recorded["run_url"] = (f"{self.client.tracking_uri.rstrip('/')}/#/experiments/{self.experiment_id}"
                                   f"/runs/{self.run_id}")
        write_json(path, recorded)

    def _log_params(self, run_id: str, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(key, value[:6000]) for key, value in params.items()]
        for start in range(0, len(items), _BATCH):
            self.client.log_batch(run_id, params=items[start:start + _BATCH])

    def _log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        self._log_epochs([(run_id, metrics, step, int(time.time() * 1000))])

    def _log_epochs(self, epochs: list[tuple[str | int | None, dict[str, float], int, int]]) -> None:
        """``(run, metrics, step, milliseconds)`` rows, one ``log_batch`` per MLflow run; ``run`` is a run id, a
        trial's number or None (the AIOS run's own), resolved now that the runs those name exist."""
        from mlflow.entities import Metric

        by_run: dict[str, list[Any]] = {}
        for run, metrics, step, stamp in epochs:
            run_id = self.trial_runs[run] if isinstance(run, int) else run or self.run_id
            by_run.setdefault(run_id, []).extend(Metric(key, value, stamp, step) for key, value in metrics.items())
        for run_id, items in by_run.items():
            for start in range(0, len(items), 1000):
                self.client.log_batch(run_id, metrics=items[start:start + 1000])

    def _send_epochs(self) -> None:
        """Queue the epochs reported since the last send, as one task (main thread; keeps the hooks' order)."""
        if self._epochs:
            batch, self._epochs = self._epochs, []
            self._sent = time.monotonic()
            self._queue.put(lambda: self._log_epochs(batch))

    # ------------------------------------------------------------ during the run
    def epoch(self, phase: str, epoch: int, metrics: dict[str, float]) -> None:
        """Keep the epoch's metrics; send what was kept every ``flush_interval_s`` and before any other event."""
        self.check()
        if self.error is not None:
            return
        trial = max(self.trial_runs) if phase == "tune" and self.trial_runs else None
        self._epochs.append((trial, numeric(metrics), epoch, int(time.time() * 1000)))
        if time.monotonic() - self._sent >= self.params.flush_interval_s:
            self._send_epochs()

    def trial_start(self, trial: int, params: dict[str, Any]) -> None:
        self.trial_runs.setdefault(trial, "")

        def create() -> None:
            created = self.client.create_run(self.experiment_id, run_name=f"trial-{trial}",
                                             tags={"mlflow.parentRunId": self.run_id, "aios.trial": str(trial),
                                                   "aios.stack": self.run.name})
            self.trial_runs[trial] = created.info.run_id
            self._log_params(created.info.run_id, dict(flatten(params)))
        self._submit(create)

    def trial_end(self, trial: int, status: str, value: float | None, metrics: dict[str, float]) -> None:
        figures = {**numeric(metrics, "final."), **({"objective": float(value)} if value is not None else {})}

        def finish() -> None:
            run_id = self.trial_runs[trial]
            self._log_metrics(run_id, figures)
            self.client.set_tag(run_id, "aios.trial_status", status)
            self.client.set_terminated(run_id, status=_STATUS.get(status, "FINISHED"))
        self._submit(finish)

    def phase_end(self, phase: str, summary: dict[str, Any]) -> None:
        figures = phase_metrics(phase, summary)
        snapshot = json.loads(json.dumps(summary, default=str))

        def log() -> None:
            self._log_metrics(self.run_id, figures)
            self.client.log_dict(self.run_id, snapshot, f"aios/phases/{phase}.json")
            if phase == "data":
                self._log_dataset(snapshot)
        self._submit(log, can_raise=False)

    def _log_dataset(self, summary: dict[str, Any]) -> None:
        """The dataset as an MLflow dataset input: name, content hash as digest, its splits and features."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        self.client.set_tag(self.run_id, "aios.dataset.content_hash", summary.get("content_hash", ""))
        source = json.dumps({"datastore": (self.run.stack.get("data") or {}).get("plugin"),
                             "dataset": summary.get("name")})
        schema = json.dumps({"num_features": summary.get("num_features"), "num_classes": summary.get("num_classes"),
                             "class_names": summary.get("class_names"), "image_shape": summary.get("image_shape")})
        dataset = Dataset(name=str(summary.get("name", "dataset")), digest=str(summary.get("content_hash", ""))[:36],
                          source_type="aios", source=source, schema=schema,
                          profile=json.dumps({"sizes": summary.get("sizes")}))
        self.client.log_inputs(self.run_id, datasets=[
            DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])])

    # ------------------------------------------------------------ run end
    def end(self, status: str) -> None:
        """Upload the run directory's files, register the model, close the run; waits for the queue."""
        if self.error is None:
            self._send_epochs()
        if self.run_id is not None:
            self._queue.put(lambda: self._finish(status))
        if not self.flush():
            log.warning("MLflow logging did not finish within %.0f s", FLUSH_TIMEOUT_S)
        self._queue.put(None)
        if self.error is not None and not self._reported:
            self._report("required: true, but every phase was over: the run's own record is complete"
                         if self.params.required else
                         f"the run goes on without MLflow, {RunDirectory.METRICS} stays complete")
        elif self.error is None and self.run_id is not None:
            registered = f" (model {self.params.register})" if self.params.register and status == "completed" else ""
            print(f"  mlflow: run {self.run_id} in experiment '{self.experiment_name}' at "
                  f"{self.client.tracking_uri}{registered}", flush=True)

    def _finish(self, status: str) -> None:
        self._log_run_files()
        if self.params.register and status == "completed":
            from aios_mlflow._registry import register_final_model

            version = register_final_model(self.client, self.run_id, self.rundir, self.params.register)
            if version is not None:
                self._write_pointer(registered_model=self.params.register, model_version=version)
                self.client.log_artifact(self.run_id, str(self.rundir.path / POINTER_FILE), "aios")
        self.client.set_terminated(self.run_id, status=_STATUS.get(status, "FAILED"))

    def _log_run_files(self) -> None:
        path = self.rundir.path
        for name in RUN_FILES:
            if (path / name).is_file():
                self.client.log_artifact(self.run_id, str(path / name), "aios")
        if self.rundir.report_dir.is_dir():
            self.client.log_artifacts(self.run_id, str(self.rundir.report_dir), "aios/report")
        if self.params.log_models and self.rundir.artifacts_dir.is_dir():
            for file in sorted(self.rundir.artifacts_dir.iterdir()):
                if file.is_file() and not file.name.startswith("."):
                    self.client.log_artifact(self.run_id, str(file), "aios/artifacts")
