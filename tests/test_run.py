"""End-to-end runs through the real CLI: run directory, resume after SIGKILL, lock files, every kind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from support import aios_env, install_test_plugins, run_aios

pytestmark = pytest.mark.slow

SMALL = """\
name: small
seed: 3
data: {plugin: sklearn, dataset: digits}
model: {framework: torch, architecture: mlp, hidden_units: [32]}
trainer: {plugin: torch, epochs: 12, batch_size: 32}
compressors:
  - {plugin: onnx-quant, mode: static, calibration_samples: 64}
evaluate: {batch_sizes: [1, 64], latency_runs: 20}
"""


def _stack(tmp_path: Path, text: str = SMALL, name: str = "stack.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _only_run(runs: Path) -> Path:
    found = [p for p in runs.iterdir() if p.is_dir()]
    assert len(found) == 1, found
    return found[0]


def _outcome(run_dir: Path) -> dict:
    """What must not depend on interruptions: per-epoch metrics (not timings) and test accuracies."""
    state = json.loads((run_dir / "state.json").read_text())
    history = [{k: v for k, v in h.items() if k != "seconds"} for h in state["phases"]["train"]["history"]]
    accuracies = {a["name"]: a["accuracy"] for a in state["phases"]["evaluate"]["artifacts"]}
    epochs = [{k: v for k, v in r.items() if k not in ("seconds", "time")}
              for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if r["event"] == "epoch"]
    return {"history": history, "accuracies": accuracies, "epochs": epochs}


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    runs = tmp_path_factory.mktemp("runs")
    result = run_aios("run", "--runs-dir", str(runs), env=aios_env(AIOS_EPOCHS="20"))
    return result, runs


def test_default_stack_runs_end_to_end(default_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    result, runs = default_run
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = _only_run(runs)
    assert run_dir.name.endswith("-digits-torch")
    for name in ("stack.lock.yaml", "state.json", "data.json", "metrics.jsonl", "run.log", "checkpoints/last.pt",
                 "artifacts/model.torch", "artifacts/model.onnx", "artifacts/model.int8.onnx",
                 "report/evaluation.json", "report/training_curves.png", "report/confusion_matrix.png"):
        assert (run_dir / name).is_file(), name
    assert not list(run_dir.rglob(".*")), "a temporary file was left behind"
    report = json.loads((run_dir / "report/evaluation.json").read_text())
    assert report["final"] == "int8" and report["test_accuracy"] >= 0.97
    assert report["comparison"]["size_ratio"] <= 0.35 and report["comparison"]["accuracy_drop"] <= 0.01
    assert (run_dir / "report/training_curves.png").read_bytes()[:4] == b"\x89PNG"
    lock = yaml.safe_load((run_dir / "stack.lock.yaml").read_text())
    assert lock["lock"]["distributions"] == {"aios-kernel": "0.1.0", "aios-data": "0.1.0", "aios-onnx-quant": "0.1.0",
                                             "aios-serve": "0.1.0", "aios-torch": "0.1.0"}
    state = json.loads((run_dir / "state.json").read_text())
    assert state["phases"]["deploy"]["smoke_test"]["passed"] is True
    assert lock["trainer"]["epochs"] == 20 and lock["trainer"]["batch_size"] == 64
    assert "test accuracy" in result.stdout and "int8 size" in result.stdout and "batch-1 latency" in result.stdout
    assert "torchvision" not in result.stdout + result.stderr, "library noise must go to run.log"


def test_runs_list_and_show(default_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, runs = default_run
    run_dir = _only_run(runs)
    listing = run_aios("runs", "list", "--runs-dir", str(runs))
    assert listing.returncode == 0 and run_dir.name in listing.stdout and "completed" in listing.stdout
    shown = run_aios("runs", "show", run_dir.name, "--runs-dir", str(runs))
    assert shown.returncode == 0, shown.stderr
    for expected in ("framework: torch", "val_accuracy", "model.int8.onnx", "evaluation (test split)", "int8"):
        assert expected in shown.stdout
    assert run_aios("runs", "show", "no-such-run", "--runs-dir", str(runs)).returncode == 2


def _wait_for_epoch(metrics: Path, epoch: int, process: subprocess.Popen, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if metrics.exists() and f'"epoch": {epoch}' in metrics.read_text():
            return
        assert process.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.01)
    raise AssertionError("no progress")


LONG = SMALL.replace("epochs: 12", "epochs: 40")


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The long stack run without interruption, to compare resumed runs with."""
    tmp = tmp_path_factory.mktemp("straight")
    result = run_aios("run", str(_stack(tmp, LONG)), "--runs-dir", str(tmp / "runs"))
    assert result.returncode == 0, result.stderr
    return _only_run(tmp / "runs")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["kill-9", "ctrl-c", "sigterm"])
def test_interrupted_run_resumes_to_the_same_result(tmp_path: Path, straight_run: Path, how: signal.Signals) -> None:
    stack = _stack(tmp_path, LONG)
    runs = tmp_path / "interrupted"
    process = subprocess.Popen([sys.executable, "-m", "aios_core", "run", str(stack), "--runs-dir", str(runs)],
                               env=aios_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(runs.glob("*/metrics.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.01)
    run_dir = _only_run(runs)
    _wait_for_epoch(run_dir / "metrics.jsonl", 3, process)
    process.send_signal(how)
    _, stderr = process.communicate(timeout=60)
    state = json.loads((run_dir / "state.json").read_text())
    assert "evaluate" not in state["phases"]
    if how == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
    else:
        assert process.returncode == 130
        assert f"continue with: aios run --resume {run_dir}" in stderr
        assert state["status"] == "interrupted"

    resumed = run_aios("run", "--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming" in resumed.stdout
    assert _outcome(run_dir) == _outcome(straight_run)


def test_a_completed_run_is_not_resumed(straight_run: Path) -> None:
    result = run_aios("run", "--resume", str(straight_run))
    assert result.returncode == 2
    assert "this run already completed; to run it again: aios run --lock" in result.stderr


def test_lock_file_reproduces_the_run(tmp_path: Path) -> None:
    first = tmp_path / "first"
    assert run_aios("run", str(_stack(tmp_path)), "--runs-dir", str(first), "--set", "trainer.epochs=3").returncode == 0
    lock = _only_run(first) / "stack.lock.yaml"
    again = tmp_path / "again"
    result = run_aios("run", "--lock", str(lock), "--runs-dir", str(again))
    assert result.returncode == 0, result.stderr
    assert _outcome(_only_run(again)) == _outcome(_only_run(first))

    text = lock.read_text().replace("aios-torch: 0.1.0", "aios-torch: 0.0.9")
    tampered = _stack(tmp_path, text, "tampered.lock.yaml")
    result = run_aios("run", "--lock", str(tampered), "--runs-dir", str(again))
    assert result.returncode == 2
    assert ("lock.distributions.aios-torch: found aios-torch 0.1.0 installed, expected 0.0.9 as locked; "
            "pip install aios-torch==0.0.9") in result.stderr


def test_every_kind_through_real_plugins(tmp_path: Path) -> None:
    """Tuner, deployer and monitor from an installed third-party distribution, beside the first-party ones."""
    site = install_test_plugins(tmp_path / "site")
    stack = _stack(tmp_path, SMALL.replace("epochs: 12", "epochs: 3") + """\
tuner:
  plugin: random
  trials: 2
  space: {model.hidden_units: [[16], [48]], trainer.learning_rate: [0.01, 0.003]}
deployer: {plugin: bundle, rows: 32}
monitors:
  - plugin: jsonl
  - plugin: recorder
""")
    runs = tmp_path / "runs"
    result = run_aios("run", str(stack), "--runs-dir", str(runs), env=aios_env(site))
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = _only_run(runs)
    state = json.loads((run_dir / "state.json").read_text())
    assert len(state["phases"]["tune"]["trials"]) == 2
    assert state["phases"]["tune"]["best_params"] in [t["params"] for t in state["phases"]["tune"]["trials"]]
    assert state["phases"]["deploy"]["smoke_accuracy"] > 0.8
    assert (run_dir / "bundle" / "model.int8.onnx").is_file()
    events = json.loads((run_dir / "events.json").read_text())
    phases = [e.split(":")[1] for e in events if e.startswith("phase_start")]
    assert phases == ["data", "tune", "train", "export", "compress", "evaluate", "deploy"]
    assert events[0] == "run_start" and events[-1] == "run_end:completed"
    assert events.index("epoch:train:3") < events.index("phase_end:train")
    assert sum(e.startswith("epoch:tune:") for e in events) == 6


def test_failing_phase_exits_1_with_one_line_and_logs_the_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,target\n1,2,x\n")
    stack = _stack(tmp_path, SMALL.replace("{plugin: sklearn, dataset: digits}", f"{{plugin: files, path: {bad}}}"))
    runs = tmp_path / "runs"
    result = run_aios("run", str(stack), "--runs-dir", str(runs))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: phase 'data' failed: ValueError: ")
    assert "Traceback" in (_only_run(runs) / "run.log").read_text()
    assert json.loads((_only_run(runs) / "state.json").read_text())["status"] == "failed"


def test_missed_gate_fails_the_run(tmp_path: Path) -> None:
    stack = _stack(tmp_path, SMALL.replace("latency_runs: 20}", "latency_runs: 20, min_accuracy: 0.999}"))
    result = run_aios("run", str(stack), "--runs-dir", str(tmp_path / "runs"), "--set", "trainer.epochs=1")
    assert result.returncode == 1
    assert "GateFailed: int8 test accuracy" in result.stderr and "< min_accuracy 0.999" in result.stderr
