"""AIOS monitor ``mlflow``: each AIOS run is an MLflow run (tuner trials are nested runs), its final model a
registered model version.

Importing this package loads no MLflow: ``aios plugins list`` imports it, and MLflow's import costs
seconds. The tracker (``aios_mlflow._tracking``) loads when a run starts.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from aios_core import Monitor, Params, hookimpl

if TYPE_CHECKING:
    from aios_core import ModelArtifact, RunContext, ValidationContext

__all__ = ["MlflowMonitor", "MlflowUnavailable"]
__version__ = "0.1.0"


class MlflowUnavailable(RuntimeError):
    """The tracking server failed a request while the stack says ``required: true``."""


class MlflowMonitor(Monitor):
    """Logs the run to MLflow: parameters, per-epoch metrics, phase summaries, tags, the dataset, the run
    directory's files, and (``register``) the final ONNX model in the Model Registry."""

    # The stack key is `register`; pydantic warns that the name shadows ABCMeta.register of the model class,
    # which no code calls on parameters.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)

        class Params(Params):
            tracking_uri: str | None = Field(
                None, description="MLflow tracking URI (http://host:port, sqlite:///mlflow.db, a directory). Default: "
                                  "MLFLOW_TRACKING_URI, else MLflow's own local default in the working directory.")
            experiment: str | None = Field(None, description="MLflow experiment name. Default: the stack's name.")
            register: str | None = Field(None, min_length=1,
                                         description="Register the run's final ONNX model under this name in the "
                                                     "Model Registry (ONNX flavour, with a signature).")
            required: bool = Field(False, description="Fail the run when the tracking server cannot be reached; "
                                                      "otherwise report it once and go on.")
            log_models: bool = Field(True, description="Upload the model files of artifacts/ with the run's "
                                                       "other files.")
            flush_interval_s: float = Field(5.0, ge=0, le=3600,
                                            description="Send the epochs' metrics at most this often (and at every "
                                                        "phase, trial and run event); 0: every epoch.")
            request_timeout_s: int = Field(10, ge=1, le=600,
                                           description="Seconds one HTTP request to the tracking server may take "
                                                       "(MLFLOW_HTTP_REQUEST_TIMEOUT, when that is not set).")
            request_retries: int = Field(2, ge=0, le=10,
                                         description="Retries of a failed HTTP request "
                                                     "(MLFLOW_HTTP_REQUEST_MAX_RETRIES, when that is not set); "
                                                     "MLflow's own default, 7 with backoff, waits minutes for a "
                                                     "server that went away.")

    def __init__(self, params: Params | None = None, name: str | None = None) -> None:
        super().__init__(params, name)
        self._tracker: Any = None
        self._source: str | None = None

    # ------------------------------------------------------------ before the run
    @hookimpl
    def aios_validate(self, context: ValidationContext) -> list[tuple[str, str]] | None:
        self._source = context.source  # the git commit of the stack's tree is recorded as a tag
        uri = self.params.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not self.params.required or not uri or not uri.startswith(("http://", "https://")):
            return None
        from aios_mlflow._tracking import server_problem

        problem = server_problem(uri, self.params.request_timeout_s)
        return [("tracking_uri", problem)] if problem else None

    # ------------------------------------------------------------ the run
    @hookimpl
    def aios_on_run_start(self, run: RunContext) -> None:
        from aios_mlflow._tracking import Tracker

        source = self._source if self._source and Path(self._source).exists() else None
        self._tracker = Tracker(self.params, run, source)
        self._tracker.start()

    @hookimpl
    def aios_on_phase_start(self, run: RunContext, phase: str) -> None:
        if self._tracker is not None:
            self._tracker.phase_start()

    @hookimpl
    def aios_on_epoch_end(self, run: RunContext, phase: str, epoch: int, metrics: dict[str, float]) -> None:
        if self._tracker is not None:
            self._tracker.epoch(phase, epoch, metrics)

    @hookimpl
    def aios_on_trial_start(self, run: RunContext, trial: int, params: dict[str, Any]) -> None:
        if self._tracker is not None:
            self._tracker.trial_start(trial, params)

    @hookimpl
    def aios_on_trial_end(self, run: RunContext, trial: int, status: str, value: float | None,
                          metrics: dict[str, float]) -> None:
        if self._tracker is not None:
            self._tracker.trial_end(trial, status, value, metrics)

    @hookimpl
    def aios_on_artifact(self, run: RunContext, artifact: ModelArtifact) -> None:
        if self._tracker is not None:
            self._tracker.check()

    @hookimpl
    def aios_on_phase_end(self, run: RunContext, phase: str, summary: dict[str, Any]) -> None:
        if self._tracker is not None:
            self._tracker.phase_end(phase, summary)

    @hookimpl
    def aios_on_run_end(self, run: RunContext, status: str, summary: dict[str, Any]) -> None:
        tracker, self._tracker = self._tracker, None
        if tracker is not None:
            tracker.end(status)
