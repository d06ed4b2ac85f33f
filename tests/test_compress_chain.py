"""Compression chains through the real CLI: native-format compressors before export, ONNX ones after.

``examples/digits-compress.yaml`` (prune, then quantize) as documented, distillation
then int8, a run killed with SIGKILL inside pruning's fine-tuning and resumed, and the
orders ``aios validate`` refuses.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from documented_commands import CloneRun
from support import aios_env, run_aios

pytestmark = pytest.mark.slow


DISTILL = """\
name: distill
seed: 3
data: {plugin: sklearn, dataset: digits, preprocess: {scaling: standardize}}
model: {framework: torch, architecture: mlp, hidden_units: [128, 64]}
trainer: {plugin: torch, epochs: 6, batch_size: 32}
compressors:
  - {plugin: distill, student: {architecture: mlp, hidden_units: [16]}, temperature: 4, alpha: 0.7, epochs: 12,
     learning_rate: 0.01, max_accuracy_drop: 0.05}
  - {plugin: onnx-quant, mode: static, calibration_samples: 64, latency_runs: 20}
evaluate: {batch_sizes: [1, 64], latency_runs: 20}
"""

KILLED = """\
name: killed
seed: 5
data: {plugin: sklearn, dataset: digits}
model: {framework: torch, architecture: mlp, hidden_units: [48]}
trainer: {plugin: torch, epochs: 2, batch_size: 4, checkpoint_interval_s: 0}
compressors:
  - {plugin: torch-prune, sparsity: 0.5, steps: 2, finetune_epochs: 4, max_accuracy_drop: 0.2}
evaluate: {batch_sizes: [1], latency_runs: 5}
monitors: [{plugin: jsonl}]
"""


def _only_run(runs: Path) -> Path:
    found = [p for p in runs.iterdir() if p.is_dir()]
    assert len(found) == 1, found
    return found[0]


def _report(run_dir: Path) -> dict:
    return json.loads((run_dir / "report" / "evaluation.json").read_text())


@pytest.fixture(scope="module")
def example_run(compress_example_run: CloneRun) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The example as docs/compression.md runs it, from a fresh clone's root: the session's one run of it
    (tests/conftest.py; tests/test_documented_commands.py checks its console table)."""
    return compress_example_run.result, compress_example_run.run


def test_the_example_prunes_before_export_and_quantizes_after(example_run: tuple) -> None:
    _, run_dir = example_run
    state = json.loads((run_dir / "state.json").read_text())
    assert list(state["phases"]) == ["data", "train", "compress-native", "export", "compress", "evaluate"]
    names = [a["name"] for a in _report(run_dir)["artifacts"]]
    assert names[:4] == ["native", "pruned", "onnx", "pruned.onnx"]  # then onnx-quant's: int8 or fp32 kept
    assert names[4] in ("int8", "fp32") and len(names) == 5
    for name in ("model.torch", "model.pruned.torch", "model.onnx", "model.pruned.onnx"):
        assert (run_dir / "artifacts" / name).is_file(), name
    quant = state["phases"]["compress"]["artifacts"][0]["metrics"]
    assert quant["variants"]["fp32"]["size_bytes"] == (run_dir / "artifacts" / "model.pruned.onnx").stat().st_size


def test_the_evaluation_table_shows_the_gain_over_the_unpruned_export(example_run: tuple) -> None:
    _, run_dir = example_run
    report = _report(run_dir)
    by_name = {a["name"]: a for a in report["artifacts"]}
    assert report["comparison"]["baseline"] == "onnx"  # the trained model's own export
    assert by_name["pruned.onnx"]["size_bytes"] < 0.4 * by_name["onnx"]["size_bytes"]
    assert report["comparison"]["size_ratio"] < 0.4
    assert report["comparison"]["accuracy_drop"] <= 0.02  # the stack's gate
    pruned = by_name["pruned"]["metrics"]
    assert pruned["widths"] == {"before": [16, 32, 128], "after": [8, 16, 64]}
    shown = run_aios("runs", "show", run_dir.name, "--runs-dir", str(run_dir.parent))
    assert shown.returncode == 0 and "pruned.onnx" in shown.stdout, shown.stderr


def test_a_distilled_student_replaces_the_model_for_the_rest_of_the_chain(tmp_path: Path) -> None:
    stack = tmp_path / "distill.yaml"
    stack.write_text(DISTILL)
    result = run_aios("run", str(stack), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = _only_run(tmp_path / "runs")
    report = _report(run_dir)
    names = [a["name"] for a in report["artifacts"]]
    assert names == ["native", "student", "onnx", "student.onnx", "int8"]
    by_name = {a["name"]: a for a in report["artifacts"]}
    student = by_name["student"]["metrics"]
    assert student["parameter_ratio"] < 0.15 and student["student"]["hidden_units"] == [16]
    assert by_name["student.onnx"]["size_bytes"] < 0.2 * by_name["onnx"]["size_bytes"]
    assert by_name["student.onnx"]["accuracy"] >= by_name["onnx"]["accuracy"] - 0.1
    quant = json.loads((run_dir / "state.json").read_text())["phases"]["compress"]["artifacts"][0]["metrics"]
    assert quant["variants"]["fp32"]["size_bytes"] == by_name["student.onnx"]["size_bytes"]


def _fine_tune_epochs(metrics: Path) -> int:
    if not metrics.exists():
        return 0
    lines = [json.loads(line) for line in metrics.read_text().splitlines()
             if line.startswith("{") and line.endswith("}")]
    return sum(1 for r in lines if r.get("event") == "epoch" and r.get("phase") == "compress-native")


def _pruned_outcome(run_dir: Path) -> dict:
    state = json.loads((run_dir / "state.json").read_text())
    pruned = state["phases"]["compress-native"]["artifacts"][0]["metrics"]
    return {"val_accuracy": pruned["val_accuracy"], "widths": pruned["widths"],
            "steps": [{k: v for k, v in s.items() if k not in ("finetune_seconds", "resumed")}
                      for s in pruned["steps"]],
            "accuracies": {a["name"]: a["accuracy"] for a in _report(run_dir)["artifacts"]}}


def test_a_run_killed_inside_fine_tuning_resumes_to_the_same_pruned_model(tmp_path: Path) -> None:
    stack = tmp_path / "killed.yaml"
    stack.write_text(KILLED)
    straight = run_aios("run", str(stack), "--runs-dir", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stdout + straight.stderr
    runs = tmp_path / "runs"
    process = subprocess.Popen([sys.executable, "-m", "aios_core", "run", str(stack), "--runs-dir", str(runs)],
                               env=aios_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while _fine_tune_epochs(next(iter(runs.glob("*/metrics.jsonl")), runs / "none")) < 6:  # step 2, epoch 2
        assert process.poll() is None, "the run ended before it could be killed inside fine-tuning"
        assert time.monotonic() < deadline, "no fine-tuning progress"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    run_dir = _only_run(runs)
    state = json.loads((run_dir / "state.json").read_text())
    assert "compress-native" not in state["phases"] and "train" in state["phases"]
    assert (run_dir / "checkpoints" / "model.pruned" / "step-1.torch").is_file()
    resumed = run_aios("run", "--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    steps = json.loads((run_dir / "state.json").read_text())["phases"]["compress-native"]["artifacts"][0]
    assert [s.get("resumed", False) for s in steps["metrics"]["steps"]] == [True, False]  # step 2 was continued
    assert _pruned_outcome(run_dir) == _pruned_outcome(_only_run(tmp_path / "straight"))


@pytest.mark.parametrize(("compressors", "expected"), [
    ("[{plugin: onnx-quant}, {plugin: torch-prune}]",
     ("compressors.1.plugin: compressor 'torch-prune' works on the native torch model before export, so it cannot "
      "follow compressor 'onnx-quant', which works on the exported model; list 'torch-prune' before 'onnx-quant'")),
    ("[{plugin: onnx-quant}, {plugin: distill}]", "list 'distill' before 'onnx-quant'"),
])
def test_an_order_that_cannot_work_is_refused_at_validate(tmp_path: Path, compressors: str, expected: str) -> None:
    stack = tmp_path / "stack.yaml"
    stack.write_text(KILLED.split("compressors:")[0] + f"compressors: {compressors}\n")
    result = run_aios("validate", str(stack))
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_the_chains_of_the_issue_validate(tmp_path: Path) -> None:
    for compressors in ("[{plugin: torch-prune, sparsity: 0.5}, {plugin: onnx-quant, mode: auto}]",
                        "[{plugin: distill, student: {hidden_units: [32]}}, {plugin: onnx-quant}]",
                        "[{plugin: torch-prune}, {plugin: distill}, {plugin: onnx-quant}]"):
        stack = tmp_path / "stack.yaml"
        stack.write_text(KILLED.split("compressors:")[0] + f"compressors: {compressors}\n")
        result = run_aios("validate", str(stack))
        assert result.returncode == 0, compressors + result.stdout + result.stderr
