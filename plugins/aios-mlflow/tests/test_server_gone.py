"""A tracking server that goes away: reported once and the run goes on, unless ``required: true``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from aios_mlflow_test_helpers import MlflowServer, digits_stack, only_run_dir, start_mlflow_server

from aios_core import RunDirectory
from aios_core.testing import run_aios


def _run_killing_the_server_after_epoch(project: Path, server: MlflowServer,
                                        epoch: int) -> subprocess.CompletedProcess[str]:
    """``aios run stack.yaml`` in ``project``; the server is killed once the run has reported ``epoch``."""
    env = {k: v for k, v in os.environ.items() if k not in ("AIOS_RUNS_DIR", "MLFLOW_TRACKING_URI")}
    process = subprocess.Popen([sys.executable, "-m", "aios_core", "run", "stack.yaml"], cwd=project, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        runs = list((project / "runs").glob("*/metrics.jsonl"))
        if runs and any(r.get("event") == "epoch" and r.get("epoch", 0) >= epoch
                        for r in RunDirectory(runs[0].parent).read_metrics()):
            break
        time.sleep(0.05)
    server.stop()
    stdout, stderr = process.communicate(timeout=600)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_a_server_killed_mid_run_is_reported_once_and_the_run_completes(tmp_path: Path) -> None:
    server = start_mlflow_server(tmp_path / "server")
    project = tmp_path / "project"
    project.mkdir()
    (project / "stack.yaml").write_text(digits_stack(epochs=12, compress=False,
                                                     mlflow=f"tracking_uri: {server.uri}"), encoding="utf-8")
    try:
        result = _run_killing_the_server_after_epoch(project, server, epoch=1)
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stdout.splitlines() if "warning: mlflow:" in line]
    assert len(warnings) == 1, result.stdout
    assert "the run goes on without MLflow" in warnings[0]
    records = RunDirectory(only_run_dir(project)).read_metrics()
    epochs = [r["epoch"] for r in records if r.get("event") == "epoch" and r.get("phase") == "train"]
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) >= 2
    assert records[-1] == {**records[-1], "event": "run_end", "status": "completed"}


def test_with_required_a_server_killed_mid_run_fails_the_run(tmp_path: Path) -> None:
    server = start_mlflow_server(tmp_path / "server")
    project = tmp_path / "project"
    project.mkdir()
    (project / "stack.yaml").write_text(digits_stack(epochs=12, compress=False,
                                                     mlflow=f"tracking_uri: {server.uri}\nrequired: true"),
                                        encoding="utf-8")
    try:
        result = _run_killing_the_server_after_epoch(project, server, epoch=1)
    finally:
        server.stop()
    assert result.returncode != 0, result.stdout
    assert "required: true, so the run stops" in result.stdout
    assert "Traceback" not in result.stderr
    state = RunDirectory(only_run_dir(project)).read_state()
    assert state.status == "failed" and "the tracking server failed" in (state.error or "")


def test_validate_refuses_required_tracking_with_no_server(tmp_path: Path) -> None:
    from aios_mlflow_test_helpers import free_port

    stack = tmp_path / "stack.yaml"
    stack.write_text(digits_stack(compress=False, mlflow=f"tracking_uri: http://127.0.0.1:{free_port()}\n"
                                                         "required: true"), encoding="utf-8")
    result = run_aios("validate", str(stack), cwd=tmp_path)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "tracking_uri" in message and "no MLflow tracking server answers" in message, message
    assert "Traceback" not in message
