"""End to end, with the ``aios`` command in a subprocess: the default stack deploys and serves; a run whose
deployed model answers differently from its in-process model fails.

The default stack trains its CNN for a few epochs (``AIOS_EPOCHS``) with the accuracy gate
lowered to match, so it takes seconds, not the full run's minute.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from aios_serve_test_helpers import REPLACER, ServerProcess, install_replacer

from aios_core import RunDirectory
from aios_core.testing import run_aios


def test_the_deploy_phase_ends_with_a_passing_smoke_test(finished_run: RunDirectory) -> None:
    state = finished_run.read_state()
    smoke = state.phase("deploy")["smoke_test"]
    assert state.status == "completed"
    assert smoke["passed"] is True and smoke["requests"] == 51
    assert state.phase("deploy")["model"]["path"].endswith("model.int8.onnx")


def test_auto_quantization_deploys_a_batch_independent_model(finished_run: RunDirectory) -> None:
    int8 = finished_run.final_artifact(["onnx"])
    assert int8 is not None and int8.metrics["chosen"] == "static" and int8.metrics["batch_independent"] is True
    assert finished_run.read_state().phase("deploy")["smoke_test"]["batch_dependent"] is False


def test_the_finished_run_serves_its_final_model(served_run: ServerProcess) -> None:
    pixels = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0,
              0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0]
    answer = httpx.post(f"{served_run.url}/v2/models/digits-torch/infer", json={
        "parameters": {"raw": True},
        "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": pixels}]})
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    assert outputs["probabilities"]["shape"] == [1, 10]
    assert outputs["label"]["data"] == ["0"]  # the first image of sklearn's digits, a zero


STACK = f"""\
name: replaced-model
seed: 0
threads: 1
data:
  plugin: sklearn
  dataset: digits
  preprocess:
    scaling: standardize
  split:
    validation: 0.15
    test: 0.15
model:
  framework: torch
  architecture: mlp
  hidden_units: [32]
trainer:
  plugin: torch
  epochs: 1
deployer:
  plugin: oip
  port: 0
  smoke_requests: 20
monitors:
  - plugin: console
  - plugin: {REPLACER}
"""


def test_a_run_whose_served_model_answers_differently_fails(tmp_path: Path) -> None:
    """The model file is replaced after the in-process predictor loaded it (``ModelReplacer``, installed as a
    monitor plugin for the child process): the smoke test fails, so the run does, with one line saying why."""
    stack = tmp_path / "replaced-model.yaml"
    stack.write_text(STACK, encoding="utf-8")
    env = {**install_replacer(tmp_path / "plugins"), "AIOS_STRICT_PLUGINS": "1"}
    result = run_aios("run", str(stack), "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    (run,) = (tmp_path / "runs").iterdir()
    state = RunDirectory.open(run).read_state()
    assert state.status == "failed"
    assert state.error is not None and state.error.startswith("deploy:") and "smoke test failed" in state.error
    reasons = [line for line in result.stderr.splitlines() if "smoke test failed" in line]
    assert len(reasons) == 1 and "differ from the in-process predictions" in reasons[0], result.stderr


def test_an_unset_token_variable_is_refused_before_the_run_starts(tmp_path: Path) -> None:
    """token_env naming an unset variable would fail the smoke test after training: aios validate says so first."""
    (tmp_path / "stack.yaml").write_text("name: tok\ndata: {plugin: sklearn, dataset: digits}\nmodel: {framework: torch}\n"
                                         "deployer: {plugin: oip, token_env: AIOS_SERVE_TEST_UNSET_TOKEN}\n")
    for command in ("validate", "run"):
        result = run_aios(command, "stack.yaml", cwd=tmp_path, env={"AIOS_SERVE_TEST_UNSET_TOKEN": None})
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        expected = ("error: stack.yaml:4: deployer.token_env: found 'AIOS_SERVE_TEST_UNSET_TOKEN', but that "
                    "environment variable is not set (or is empty); expected the bearer token in it: export "
                    "AIOS_SERVE_TEST_UNSET_TOKEN=<token>, or drop token_env")
        assert result.returncode == 2 and errors == [expected], result.stderr
    assert not (tmp_path / "runs").exists()
    accepted = run_aios("validate", "stack.yaml", cwd=tmp_path, env={"AIOS_SERVE_TEST_UNSET_TOKEN": "s3cret"})
    assert accepted.returncode == 0, accepted.stderr
