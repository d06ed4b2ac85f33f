"""No ``tracking_uri``: MLflow's own local default in the directory ``aios run`` runs in, readable by
``MlflowClient`` and ``mlflow runs list``; and ``aios run --resume`` continues the MLflow run the
interrupted run started (``mlflow.json``). One run, interrupted with Ctrl-C after epoch 3, then resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aios_mlflow_test_helpers import digits_stack, only_run_dir

from aios_core import RunDirectory
from aios_core.testing import run_aios


@dataclass
class ResumedRun:
    project: Path
    run_dir: Path
    pointer: dict[str, Any]
    status_when_interrupted: str
    resumed: subprocess.CompletedProcess[str]


def _interrupt_after_epoch(project: Path, epoch: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AIOS_RUNS_DIR", "MLFLOW_TRACKING_URI")}
    process = subprocess.Popen([sys.executable, "-m", "aios_core", "run", "stack.yaml"], cwd=project, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        runs = list((project / "runs").glob("*/metrics.jsonl"))
        if runs and any(r.get("event") == "epoch" and r.get("epoch", 0) >= epoch
                        for r in RunDirectory(runs[0].parent).read_metrics()):
            break
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory: pytest.TempPathFactory) -> ResumedRun:
    from mlflow import MlflowClient

    project = tmp_path_factory.mktemp("default-store")
    (project / "stack.yaml").write_text(digits_stack(epochs=30, compress=False), encoding="utf-8")
    interrupted = _interrupt_after_epoch(project, epoch=3)
    assert interrupted.returncode not in (0, 1), interrupted.stdout + interrupted.stderr
    run_dir = only_run_dir(project)
    pointer = json.loads((run_dir / "mlflow.json").read_text(encoding="utf-8"))
    status = MlflowClient(tracking_uri=pointer["tracking_uri"]).get_run(pointer["run_id"]).info.status
    resumed = run_aios("run", "--resume", str(run_dir), cwd=project, env={"MLFLOW_TRACKING_URI": None})
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    return ResumedRun(project, run_dir, pointer, status, resumed)


def test_without_a_tracking_uri_the_run_lands_in_mlflows_local_default(resumed_run: ResumedRun) -> None:
    from mlflow import MlflowClient

    project, pointer = resumed_run.project, resumed_run.pointer
    # MLflow 3's default, sqlite:///mlflow.db in the directory aios ran in, recorded as an absolute path
    assert pointer["tracking_uri"] == f"sqlite:///{project / 'mlflow.db'}"
    assert (project / "mlflow.db").is_file()
    client = MlflowClient(tracking_uri=pointer["tracking_uri"])
    assert client.get_experiment(pointer["experiment_id"]).name == "digits-mlflow-test"
    assert client.list_artifacts(pointer["run_id"], "aios/artifacts")  # the default artifact root is local too
    assert (project / "mlruns").is_dir()

    listed = subprocess.run([sys.executable, "-m", "mlflow", "runs", "list", "--experiment-id",
                             pointer["experiment_id"]], cwd=project, capture_output=True, text=True, check=True)
    assert pointer["run_id"] in listed.stdout


def test_a_resumed_run_continues_its_mlflow_run(resumed_run: ResumedRun) -> None:
    from mlflow import MlflowClient

    pointer, run_dir = resumed_run.pointer, resumed_run.run_dir
    assert resumed_run.status_when_interrupted == "KILLED"
    assert json.loads((run_dir / "mlflow.json").read_text(encoding="utf-8"))["run_id"] == pointer["run_id"]
    client = MlflowClient(tracking_uri=pointer["tracking_uri"])
    assert client.get_run(pointer["run_id"]).info.status == "FINISHED"
    assert [r.info.run_id for r in client.search_runs([pointer["experiment_id"]])] == [pointer["run_id"]]
    steps = {m.step for m in client.get_metric_history(pointer["run_id"], "val_loss")}
    epochs = [row["epoch"] for row in RunDirectory(run_dir).read_state().phases["train"]["history"]]
    assert steps == set(epochs) and len(epochs) == 30  # before and after the interruption, in one history
