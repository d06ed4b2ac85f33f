"""End to end: the default stack with ``deployer: oip`` ends with a passing smoke test, and the run serves.

Trains the default stack's CNN for a few epochs (``AIOS_EPOCHS``) with the accuracy gate
lowered to match, so it takes seconds, not the full run's minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from aios_serve_test_helpers import ServerProcess


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import aios_core

    root = tmp_path_factory.mktemp("e2e")
    default = Path(aios_core.__file__).parent / "stacks" / "digits-torch.yaml"
    stack = root / "digits-oip.yaml"
    stack.write_text(default.read_text(encoding="utf-8") + "\ndeployer:\n  plugin: oip\n  port: 0\n  smoke_requests: 50\n",
                     encoding="utf-8")
    aios = Path(sys.executable).with_name("aios")
    result = subprocess.run([str(aios), "run", str(stack), "--runs-dir", str(root / "runs"),
                             "--set", "evaluate.min_accuracy=0.5"],
                            env={**os.environ, "AIOS_EPOCHS": "3"}, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return next((root / "runs").iterdir())


def test_the_deploy_phase_ends_with_a_passing_smoke_test(finished_run: Path) -> None:
    state = json.loads((finished_run / "state.json").read_text())
    deploy = state["phases"]["deploy"]
    assert state["status"] == "completed"
    assert deploy["smoke_test"]["passed"] is True
    assert deploy["smoke_test"]["requests"] == 51
    assert deploy["model"]["path"].endswith("model.int8.onnx")


def test_the_finished_run_serves_its_final_model(finished_run: Path) -> None:
    process = ServerProcess(str(finished_run))
    try:
        pixels = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0,
                  0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0]
        answer = httpx.post(f"{process.url}/v2/models/digits-torch/infer", json={
            "parameters": {"raw": True},
            "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": pixels}]})
        assert answer.status_code == 200, answer.text
        outputs = {o["name"]: o for o in answer.json()["outputs"]}
        assert outputs["probabilities"]["shape"] == [1, 10]
        assert outputs["label"]["data"] == ["0"]  # the first image of sklearn's digits, a zero
    finally:
        process.terminate()
