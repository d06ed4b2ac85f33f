"""Test helpers (imported by conftest.py and the tests): a real ``mlflow server`` on 127.0.0.1 (SQLite
backend, local artifact root), small digits stacks, and a tiny tuner so a run has nested trials."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path



REGISTERED = "aios-digits-test"

# A tuner registered only for these tests, as a distribution on PYTHONPATH (entry point aios.tuners):
# it tries two learning rates, so the run holds two trials.
_TUNER_MODULE = '''
from aios_core import Tuner, TuneResult, hookimpl


class TwoRatesTuner(Tuner):
    @hookimpl
    def aios_tune(self, objective, run):
        trials = []
        for rate in (0.01, 0.003):
            params = {"trainer.learning_rate": rate}
            trials.append({"params": params, "value": objective(params)})
        best = min(trials, key=lambda t: t["value"])
        return TuneResult(best_params=best["params"], best_value=best["value"], trials=trials)
'''


@dataclass
class MlflowServer:
    uri: str
    process: subprocess.Popen[bytes]
    root: Path

    def stop(self) -> None:
        """Kill the server and its workers (its own process group: ``mlflow server`` runs uvicorn in a child)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_mlflow_server(root: Path) -> MlflowServer:
    """``mlflow server`` on a free loopback port, its store and artifacts under ``root``; waits for /health."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(root / "server.log", "wb")  # noqa: SIM115 - the server writes to it until it stops
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True,
        # no background job runner (eight huey consumers of ~240 MB each): these tests log and read runs only
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log_text = (root / "server.log").read_text()[-2000:]
            raise RuntimeError(f"mlflow server exited with {process.returncode}: {log_text}")
        try:
            with urllib.request.urlopen(uri + "/health", timeout=2) as response:
                if response.status == 200:
                    return MlflowServer(uri, process, root)
        except OSError:
            time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    log_text = (root / "server.log").read_text()[-2000:]
    raise RuntimeError(f"mlflow server did not answer /health within 180 s: {log_text}")


def tuner_site(root: Path) -> Path:
    """A site directory holding the test tuner as an installed distribution (for PYTHONPATH)."""
    site = root / "site"
    info = site / "aios_test_tuner-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (site / "aios_test_tuner.py").write_text(_TUNER_MODULE, encoding="utf-8")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: aios-test-tuner\nVersion: 0.1\n"
                                   "Requires-Dist: aios-kernel>=0.1,<0.2\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[aios.tuners]\ntwo-rates = aios_test_tuner:TwoRatesTuner\n",
                                           encoding="utf-8")
    return site


def digits_stack(*, epochs: int = 3, mlflow: str = "", tuner: bool = False, compress: bool = True) -> str:
    """A small digits stack: torch MLP, ONNX, (int8), monitors console, jsonl and ``mlflow`` (``mlflow``: its
    extra lines, indented under ``- plugin: mlflow``)."""
    return textwrap.dedent(f"""\
        name: digits-mlflow-test
        seed: 7
        threads: 1
        data:
          plugin: sklearn
          dataset: digits
        model:
          framework: torch
          architecture: mlp
          hidden_units: [32]
        trainer:
          plugin: torch
          epochs: {epochs}
          batch_size: 64
          learning_rate: 0.01
        """) + ("tuner:\n  plugin: two-rates\n" if tuner else "") + textwrap.dedent("""\
        compressors:
          - plugin: onnx-quant
            mode: static
            calibration_samples: 64
            latency_runs: 5
        """ if compress else "") + textwrap.dedent("""\
        evaluate:
          batch_sizes: [1]
          latency_runs: 5
        monitors:
          - plugin: console
          - plugin: jsonl
          - plugin: mlflow
        """) + "".join(f"    {line}\n" for line in mlflow.splitlines() if line)


def git_tree(path: Path) -> str | None:
    """Make ``path`` a git tree with one commit; its hash, or None without git."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org"}
    try:
        for args in (["init", "-q"], ["add", "stack.yaml"], ["commit", "-q", "-m", "stack"]):
            subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True)
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


@dataclass
class TrackedRun:
    """An ``aios run`` that logged to the session's MLflow server."""

    project: Path
    run_dir: Path
    stdout: str
    commit: str | None
    mlflow_run_id: str
    server: MlflowServer


def only_run_dir(project: Path) -> Path:
    runs = [p for p in (project / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


