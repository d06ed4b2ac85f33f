"""End-to-end runs through the real CLI: run directory, resume after SIGKILL, lock files, every kind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from documented_commands import CloneRun
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
def default_run(default_stack_run: CloneRun) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The default stack run with its own 20 epochs, from a fresh clone's root: the session's one run of it
    (tests/conftest.py; tests/test_documented_commands.py serves it, beside a copy under another name)."""
    return default_stack_run.result, default_stack_run.run


def test_default_stack_runs_end_to_end(default_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    result, run_dir = default_run
    assert result.returncode == 0, result.stdout + result.stderr
    assert run_dir.name.endswith("-digits-torch") and run_dir.parent.name == "runs"
    for name in ("stack.lock.yaml", "state.json", "data.json", "metrics.jsonl", "run.log", "checkpoints/last.pt",
                 "artifacts/model.torch", "artifacts/model.onnx", "artifacts/model.int8.onnx",
                 "report/evaluation.json", "report/training_curves.png", "report/confusion_matrix.png"):
        assert (run_dir / name).is_file(), name
    assert not list(run_dir.rglob(".*")), "a temporary file was left behind"
    report = json.loads((run_dir / "report/evaluation.json").read_text())
    assert report["final"] == "int8" and report["test_accuracy"] >= 0.97
    assert report["comparison"]["size_ratio"] <= 0.35 and report["comparison"]["accuracy_drop"] <= 0.01
    messages = {gate["gate"]: gate["message"] for gate in report["gates"] if gate["passed"]}  # worded as passed
    assert " >= min_accuracy 0.97" in messages["min_accuracy"] and " <= max_accuracy_drop " in messages[
        "max_accuracy_drop"], messages
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
    _, run_dir = default_run
    runs = run_dir.parent
    listing = run_aios("runs", "list", "--runs-dir", str(runs))
    assert listing.returncode == 0 and run_dir.name in listing.stdout and "completed" in listing.stdout
    shown = run_aios("runs", "show", run_dir.name, "--runs-dir", str(runs))
    assert shown.returncode == 0, shown.stderr
    for expected in ("framework: torch", "val_accuracy", "model.int8.onnx", "evaluation (test split)", "int8"):
        assert expected in shown.stdout
    assert run_aios("runs", "show", "no-such-run", "--runs-dir", str(runs)).returncode == 2


def _epochs_done(metrics: Path) -> int:
    """The highest epoch ``metrics.jsonl`` records so far (0 before the first)."""
    if not metrics.exists():
        return 0
    done = [json.loads(line).get("epoch", 0) for line in metrics.read_text().splitlines()
            if line.startswith("{") and line.endswith("}") and '"event": "epoch"' in line]
    return max(done, default=0)


def _wait_for_epoch(metrics: Path, epoch: int, process: subprocess.Popen, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if _epochs_done(metrics) >= epoch:
            return
        if process.poll() is not None:
            stdout, stderr = process.communicate()
            raise AssertionError(f"the run ended (exit {process.returncode}) before epoch {epoch}, when it was to be "
                                 f"interrupted:\n{stdout[-2000:]}\n{stderr[-2000:]}")
        time.sleep(0.01)
    raise AssertionError("no progress")


LONG = SMALL.replace("epochs: 12", "epochs: 24")
SIGNALS = {"ctrl-c": signal.SIGINT, "sigterm": signal.SIGTERM, "kill-9": signal.SIGKILL}
"""The interruptions, in the order one run receives them."""


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The long stack run without interruption, to compare resumed runs with."""
    tmp = tmp_path_factory.mktemp("straight")
    result = run_aios("run", str(_stack(tmp, LONG)), "--runs-dir", str(tmp / "runs"))
    assert result.returncode == 0, result.stderr
    return _only_run(tmp / "runs")


@dataclass
class Interruption:
    """One interrupted process of the run: how it ended and what the run directory held then."""

    returncode: int
    stdout: str
    stderr: str
    state: dict


@dataclass
class InterruptedRun:
    run_dir: Path
    interruptions: dict[str, Interruption]
    resumed: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory: pytest.TempPathFactory) -> InterruptedRun:
    """The long stack run interrupted three times, each signal three epochs after the last start, then resumed.

    One run takes every interruption (Ctrl-C, then SIGTERM of the resumed process, then kill -9
    of the next), so the export, compression and evaluation run once, not once per signal.
    """
    tmp = tmp_path_factory.mktemp("interrupted")
    stack, runs = _stack(tmp, LONG), tmp / "runs"
    command = [sys.executable, "-m", "aios_core", "run", str(stack), "--runs-dir", str(runs)]
    interruptions: dict[str, Interruption] = {}
    run_dir: Path | None = None
    for name, how in SIGNALS.items():
        process = subprocess.Popen(command, env=aios_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if run_dir is None:
            deadline = time.monotonic() + 60
            while not list(runs.glob("*/metrics.jsonl")) and time.monotonic() < deadline:
                time.sleep(0.01)
            run_dir = _only_run(runs)
            command = [sys.executable, "-m", "aios_core", "run", "--resume", str(run_dir)]
        _wait_for_epoch(run_dir / "metrics.jsonl", _epochs_done(run_dir / "metrics.jsonl") + 3, process)
        process.send_signal(how)
        stdout, stderr = process.communicate(timeout=60)
        interruptions[name] = Interruption(process.returncode, stdout, stderr,
                                           json.loads((run_dir / "state.json").read_text()))
    assert run_dir is not None
    return InterruptedRun(run_dir, interruptions, run_aios("run", "--resume", str(run_dir)))


@pytest.mark.parametrize("name", SIGNALS)
def test_an_interrupted_run_stops_before_evaluating(interrupted_run: InterruptedRun, name: str) -> None:
    stopped = interrupted_run.interruptions[name]
    assert "evaluate" not in stopped.state["phases"]
    if SIGNALS[name] == signal.SIGKILL:
        assert stopped.returncode == -signal.SIGKILL
    else:
        assert stopped.returncode == 130, stopped.stdout + stopped.stderr
        assert f"continue with: aios run --resume {interrupted_run.run_dir}" in stopped.stderr
        assert stopped.state["status"] == "interrupted"
    if name != "ctrl-c":  # the processes after the first are resumed ones
        assert "resuming" in stopped.stdout


def test_a_run_interrupted_three_ways_resumes_to_the_same_result(interrupted_run: InterruptedRun,
                                                                 straight_run: Path) -> None:
    resumed = interrupted_run.resumed
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming" in resumed.stdout
    assert _outcome(interrupted_run.run_dir) == _outcome(straight_run)


def test_a_completed_run_is_not_resumed(straight_run: Path) -> None:
    result = run_aios("run", "--resume", str(straight_run))
    assert result.returncode == 2
    assert "this run already completed; to run it again: aios run --lock" in result.stderr


def test_lock_file_reproduces_the_run(tmp_path: Path, straight_run: Path) -> None:
    lock = straight_run / "stack.lock.yaml"
    again = tmp_path / "again"
    result = run_aios("run", "--lock", str(lock), "--runs-dir", str(again))
    assert result.returncode == 0, result.stderr
    assert _outcome(_only_run(again)) == _outcome(straight_run)


def test_a_lock_file_naming_another_plugin_version_is_refused(tmp_path: Path, straight_run: Path) -> None:
    text = (straight_run / "stack.lock.yaml").read_text().replace("aios-torch: 0.1.0", "aios-torch: 0.0.9")
    tampered = _stack(tmp_path, text, "tampered.lock.yaml")
    result = run_aios("run", "--lock", str(tampered), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2
    assert ("lock.distributions.aios-torch: found aios-torch 0.1.0 installed, expected 0.0.9 as locked; "
            "aios plugins install aios-torch==0.0.9") in result.stderr
    assert not (tmp_path / "runs").exists()


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


def test_the_console_shows_the_progress_of_the_data_and_evaluate_phases(
        default_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    lines = default_run[0].stdout.splitlines()
    data, evaluate = lines.index("▸ data"), lines.index("▸ evaluate")
    in_data = lines[data:next(i for i in range(data + 1, len(lines)) if lines[i].startswith("▸ "))]
    assert "  statistics: 1,257/1,257 rows" in in_data  # the splits are views, scaled as read: no scaling pass
    assert not any(line.startswith("  scaling: ") for line in in_data)
    shown = [line for line in lines[evaluate:] if line.startswith("  evaluating: ")]
    assert shown == ["  evaluating: 1/3 models", "  evaluating: 2/3 models", "  evaluating: 3/3 models"]


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


def test_every_phase_records_its_resource_usage(default_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """state.json, metrics.jsonl, the console and ``aios runs show`` carry each phase's resources (issue 13)."""
    result, run_dir = default_run
    runs = run_dir.parent
    state = json.loads((run_dir / "state.json").read_text())
    for phase, summary in state["phases"].items():
        usage = summary["resources"]
        assert usage["wall_seconds"] >= 0 and usage["cpu_seconds"] >= 0, phase
        assert usage["peak_rss_bytes"] > 10 * 1024 * 1024 and usage["peak_rss_scope"] == "phase", phase
        assert usage["gpu_peak_bytes"] is None, phase  # no GPU on the machines this runs on
    assert state["phases"]["train"]["resources"]["cpu_seconds"] > 0
    ends = {r["phase"]: r for r in (json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines())
            if r["event"] == "phase_end"}
    assert {phase: r["resources"] for phase, r in ends.items()} == {p: s["resources"] for p, s in state["phases"].items()}
    assert "resources" not in json.loads((run_dir / "data.json").read_text())
    assert result.stdout.count("resources: ") == len(state["phases"])
    shown = run_aios("runs", "show", run_dir.name, "--runs-dir", str(runs))
    assert "resources" in shown.stdout and "peak RSS MiB" in shown.stdout
