"""Runs of small digits stacks with the optuna tuner, in this process (the kernel's runner, as ``aios run`` does).

Every run trains tiny MLPs for a few epochs; the expensive ones are session fixtures
shared by the tests that read them.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

BASE: dict[str, Any] = {
    "name": "automl-test",
    "seed": 7,
    "data": {"plugin": "sklearn", "dataset": "digits"},
    "model": {"framework": "torch", "architecture": "mlp", "hidden_units": [16]},
    "trainer": {"plugin": "torch", "epochs": 3, "batch_size": 64},
    "evaluate": {"batch_sizes": [1], "latency_runs": 5},
    "monitors": [{"plugin": "jsonl"}],
}


def stack_text(tuner: dict[str, Any], **sections: Any) -> str:
    """A stack file's text: the small digits stack with ``tuner`` and any section replaced."""
    return yaml.safe_dump({**BASE, **sections, "tuner": {"plugin": "optuna", **tuner}}, sort_keys=False)


@dataclass
class Finished:
    """A run that ended: its directory, ``state.json``, and the error if it failed."""

    path: Path
    state: dict[str, Any]
    error: BaseException | None = None

    @property
    def tune(self) -> dict[str, Any]:
        return self.state["phases"]["tune"]

    def lock(self) -> dict[str, Any]:
        return yaml.safe_load((self.path / "stack.lock.yaml").read_text())

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (self.path / "metrics.jsonl").read_text().splitlines()]


def run_stack(folder: Path, text: str, *, locked: bool = False) -> Finished:
    """Write ``text`` as a stack (or lock) file in ``folder`` and run it with the kernel's runner."""
    from aios_core.runner import RunFailed, start_run
    from aios_core.stack import load_stack

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ("stack.lock.yaml" if locked else "stack.yaml")
    path.write_text(text)
    stack_run = start_run(load_stack(path, locked=locked), folder / "runs")
    error = None
    try:
        stack_run.execute()
    except RunFailed as failure:
        error = failure
    return Finished(stack_run.dir.path, json.loads((stack_run.dir.path / "state.json").read_text()), error)


SEARCH = {
    "trials": 8,
    "pruner": "median",
    "startup_trials": 2,
    "space": {
        "model.hidden_units": [[8], [32], [64, 32]],
        "trainer.learning_rate": {"low": 1e-4, "high": 3e-2, "log": True},
        "trainer.batch_size": {"low": 32, "high": 128, "step": 32},
    },
}


@pytest.fixture(scope="session")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    """One tuned run: 8 trials of 3 epochs over width, learning rate and batch size, median pruning."""
    finished = run_stack(tmp_path_factory.mktemp("tuned"), stack_text(SEARCH))
    assert finished.error is None, finished.error
    return finished
