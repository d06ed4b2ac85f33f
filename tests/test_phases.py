"""Running chosen phases of a stack against one run directory (``aios run --phases``), as an orchestrator does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import aios_env, install_test_plugins, run_aios

SMALL = """\
name: small
seed: 3
data: {plugin: sklearn, dataset: digits}
model: {framework: torch, architecture: mlp, hidden_units: [32]}
trainer: {plugin: torch, epochs: 6, batch_size: 32}
compressors:
  - {plugin: onnx-quant, mode: static, calibration_samples: 64}
evaluate: {batch_sizes: [1], latency_runs: 5}
"""


def _stack(tmp_path: Path, text: str = SMALL) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(text)
    return path


def _state(run_dir: Path) -> dict:
    return json.loads((run_dir / "state.json").read_text())


def _accuracies(run_dir: Path) -> dict[str, float]:
    return {a["name"]: a["accuracy"] for a in _state(run_dir)["phases"]["evaluate"]["artifacts"]}


@pytest.fixture(scope="module")
def stepwise(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict]]:
    """The SMALL stack run whole, and again one phase per process into one run directory."""
    tmp = tmp_path_factory.mktemp("phases")
    stack = _stack(tmp)
    whole = tmp / "whole"
    result = run_aios("run", str(stack), "--run-dir", str(whole))
    assert result.returncode == 0, result.stderr
    steps = tmp / "steps"
    states = []
    result = run_aios("run", str(stack), "--run-dir", str(steps), "--phases", "data")
    assert result.returncode == 0, result.stderr
    states.append(_state(steps))
    for phase in ("train", "export", "compress", "evaluate"):
        result = run_aios("run", "--resume", str(steps), "--phases", phase)
        assert result.returncode == 0, result.stderr
        states.append(_state(steps))
    return whole, steps, states


@pytest.mark.slow
def test_phases_run_one_at_a_time_give_the_whole_run(stepwise: tuple[Path, Path, list[dict]]) -> None:
    whole, steps, _ = stepwise
    assert _accuracies(steps) == _accuracies(whole)
    strip = [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in _state(whole)["phases"]["train"]["history"]]
    assert [{k: v for k, v in e.items() if k != "seconds"} for e in _state(steps)["phases"]["train"]["history"]] == strip
    assert (steps / "artifacts/model.int8.onnx").is_file()


@pytest.mark.slow
def test_each_step_records_its_phase_and_stops_partial(stepwise: tuple[Path, Path, list[dict]]) -> None:
    _, _, states = stepwise
    assert [list(state["phases"]) for state in states] == [
        ["data"], ["data", "train"], ["data", "train", "export"], ["data", "train", "export", "compress"],
        ["data", "train", "export", "compress", "evaluate"]]
    assert [state["status"] for state in states] == ["partial"] * 4 + ["completed"]


@pytest.mark.slow
def test_a_phase_before_the_recorded_ones_is_refused_in_one_line(tmp_path: Path,
                                                                  stepwise: tuple[Path, Path, list[dict]]) -> None:
    result = run_aios("run", str(_stack(tmp_path)), "--run-dir", str(tmp_path / "new"), "--phases", "train")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'new'}: phase 'data' has not run; select it too (--phases data,train) or run it first"]
    assert not (tmp_path / "new").exists()


def test_an_unknown_or_absent_phase_is_refused_in_one_line(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    result = run_aios("run", str(stack), "--run-dir", str(tmp_path / "a"), "--phases", "data,trian")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --phases: 'trian' is not a phase of this run; the phases are data, train, export, compress, evaluate"]
    result = run_aios("run", str(stack), "--run-dir", str(tmp_path / "a"), "--phases", "data,deploy")
    assert result.stderr.strip().splitlines() == [
        "error: --phases: 'deploy' is not a phase of this run; the phases of small are data, train, export, "
        "compress, evaluate"]


def test_a_new_run_needs_an_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "file").write_text("x")
    result = run_aios("run", str(_stack(tmp_path)), "--run-dir", str(tmp_path / "used"), "--phases", "data")
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {tmp_path / 'used'}: not empty;")


def test_a_skipped_tune_phase_must_be_recorded(tmp_path: Path) -> None:
    site = install_test_plugins(tmp_path / "site")
    stack = _stack(tmp_path, SMALL + "tuner: {plugin: random, trials: 2, space: {trainer.learning_rate: [0.01, 0.02]}}\n")
    env = aios_env(site)
    run_dir = tmp_path / "run"
    result = run_aios("run", str(stack), "--run-dir", str(run_dir), "--phases", "data", env=env)
    assert result.returncode == 0, result.stderr
    result = run_aios("run", "--resume", str(run_dir), "--phases", "train", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: {run_dir}: phase 'tune' has not run; select it too "
                                     "(--phases tune,train) or run it first")
