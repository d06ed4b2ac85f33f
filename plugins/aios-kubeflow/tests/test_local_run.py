"""``aios pipeline run --local``: the compiled pipeline run end to end by kfp.local, as ``aios run`` would."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from kubeflow_test_helpers import aios_process

pytestmark = pytest.mark.slow

FEWER_EPOCHS = ("--set", "trainer.epochs=4", "--set", "evaluate.min_accuracy=0.8")


def _only_run(runs: Path) -> Path:
    found = [p for p in runs.iterdir() if (p / "stack.lock.yaml").is_file()]
    assert len(found) == 1, found
    return found[0]


def _state(run_dir: Path) -> dict:
    return json.loads((run_dir / "state.json").read_text())


@pytest.fixture(scope="module")
def both_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    """The default stack (fewer epochs) as a local pipeline, and with aios run, same seed."""
    tmp = tmp_path_factory.mktemp("local")
    piped = aios_process("pipeline", "run", "--local", "--runs-dir", str(tmp / "piped"), *FEWER_EPOCHS)
    assert piped.returncode == 0, piped.stdout[-4000:] + piped.stderr
    direct = aios_process("run", "--runs-dir", str(tmp / "direct"), *FEWER_EPOCHS)
    assert direct.returncode == 0, direct.stderr
    return piped, _only_run(tmp / "piped"), _only_run(tmp / "direct")


def test_the_pipeline_gives_the_same_model_as_aios_run(both_runs: tuple) -> None:
    _, piped, direct = both_runs
    evaluation = _state(piped)["phases"]["evaluate"]
    assert evaluation["final"] == _state(direct)["phases"]["evaluate"]["final"] == "int8"
    assert evaluation["test_accuracy"] == _state(direct)["phases"]["evaluate"]["test_accuracy"]
    accuracies = {a["name"]: a["accuracy"] for a in evaluation["artifacts"]}
    assert accuracies == {a["name"]: a["accuracy"] for a in _state(direct)["phases"]["evaluate"]["artifacts"]}
    history = [{k: v for k, v in h.items() if k != "seconds"} for h in _state(piped)["phases"]["train"]["history"]]
    assert history == [{k: v for k, v in h.items() if k != "seconds"}
                       for h in _state(direct)["phases"]["train"]["history"]]


def test_every_phase_ran_as_its_own_step_and_the_run_completed(both_runs: tuple) -> None:
    piped_result, piped, _ = both_runs
    state = _state(piped)
    assert state["status"] == "completed"
    assert list(state["phases"]) == ["data", "train", "export", "compress", "evaluate", "deploy"]
    assert state["phases"]["deploy"]["smoke_test"]["passed"] is True
    assert state["resumed"] == 5  # one start and five continuations: a process per phase
    for name in ("artifacts/model.torch", "artifacts/model.onnx", "artifacts/model.int8.onnx",
                 "report/evaluation.json", "metrics.jsonl"):
        assert (piped / name).is_file(), name
    assert f"kubeflow pipeline of digits-torch succeeded; run directory: {piped}" in piped_result.stdout


def test_the_evaluate_step_logged_its_figures_as_kfp_metrics(both_runs: tuple) -> None:
    _, piped, _ = both_runs
    outputs = [json.loads(p.read_text()) for p in (piped.parent / "kfp-local").rglob("executor_output.json")]
    logged = [artifact["metadata"] for output in outputs
              for artifact in output.get("artifacts", {}).get("metrics", {}).get("artifacts", [])]
    assert len(logged) == 1, "one step (evaluate) logs metrics"
    metrics, evaluation = logged[0], _state(piped)["phases"]["evaluate"]
    assert metrics["test_accuracy"] == evaluation["test_accuracy"]
    final = next(a for a in evaluation["artifacts"] if a["name"] == "int8")
    assert metrics["size_bytes"] == final["size_bytes"]
    assert metrics["latency_ms_p50_batch1"] == final["latency_ms"]["1"]["p50"]
    assert metrics["size_ratio"] == evaluation["comparison"]["size_ratio"]


def test_a_missed_gate_fails_the_pipeline_with_the_gates_message(tmp_path: Path) -> None:
    result = aios_process("pipeline", "run", "--local", "--runs-dir", str(tmp_path / "runs"),
                          "--set", "trainer.epochs=1", "--set", "evaluate.min_accuracy=0.999", "--set", "deployer=null")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: pipeline aios-digits-torch failed: evaluate: GateFailed: int8 test accuracy")
    assert "< min_accuracy 0.999" in lines[-1]
    assert not [p for p in (tmp_path / "runs").iterdir() if (p / "stack.lock.yaml").is_file()]
