"""kill -9 in the middle of tuning, then ``aios run --resume``: the study goes on, no finished trial runs again."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

from conftest import stack_text

TRIALS = 6


def _trials(study_db: Path) -> dict[int, tuple[str, dict, list | None]]:
    """The study's trials by number: state, parameters, values (read as optuna-dashboard would)."""
    import optuna

    if not _study_created(study_db):
        return {}
    # skip_table_creation: a reader that created the schema would race the run doing the same
    # ("table trial_values already exists" in the run)
    try:
        storage = optuna.storages.RDBStorage(f"sqlite:///{study_db}", skip_table_creation=True)
        study = optuna.load_study(study_name="automl-test", storage=storage)
    except Exception:  # noqa: BLE001 -- the run has not finished creating its study yet
        return {}
    return {t.number: (t.state.name, t.params, t.values) for t in study.get_trials(deepcopy=False)}


def _study_created(study_db: Path) -> bool:
    """Whether the run has written its schema's version row and its study (read-only: no lock, no write)."""
    try:
        with closing(sqlite3.connect(f"file:{study_db}?mode=ro", uri=True)) as connection:
            return all(connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608
                       for table in ("version_info", "studies"))
    except sqlite3.Error:  # no file or no tables yet
        return False


def _finished(study_db: Path) -> dict[int, tuple[str, dict, list | None]]:
    return {number: trial for number, trial in _trials(study_db).items() if trial[0] != "RUNNING"}


def _aios(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "aios_core", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)})


def test_a_killed_run_resumes_its_study_without_repeating_finished_trials(tmp_path) -> None:
    stack = tmp_path / "stack.yaml"
    # 5 epochs of a wide MLP with a checkpoint every epoch, so a trial lasts long enough to be killed in
    stack.write_text(stack_text({"trials": TRIALS, "sampler": "random", "pruner": "none",
                                 "space": {"trainer.learning_rate": {"low": 1e-3, "high": 3e-2, "log": True}}},
                                model={"framework": "torch", "architecture": "mlp", "hidden_units": [512, 512]},
                                trainer={"plugin": "torch", "epochs": 5, "batch_size": 8,
                                         "checkpoint_interval_s": 0}))
    runs = tmp_path / "runs"
    process = _aios("run", str(stack), "--runs-dir", str(runs), cwd=tmp_path)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        found = list(runs.glob("*/tune/study.db"))
        seen = _trials(found[0]) if found else {}
        if len(seen) >= 3 and seen[max(seen)][0] == "RUNNING":  # two finished, the third running: kill it
            break
        time.sleep(0.1)
    assert process.poll() is None, process.stderr.read() if process.stderr else ""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    run_dir = next(runs.iterdir())
    before = _finished(run_dir / "tune" / "study.db")
    assert 2 <= len(before) < TRIALS
    assert json.loads((run_dir / "state.json").read_text())["status"] == "running"  # killed: nothing recorded it

    resumed = _aios("run", "--resume", str(run_dir), cwd=tmp_path)
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "completed" and state["resumed"] == 1
    trials = state["phases"]["tune"]["trials"]
    counted = [t for t in trials if t["state"] in ("completed", "pruned", "failed")]
    assert len(counted) == TRIALS
    after = _finished(run_dir / "tune" / "study.db")
    for number, trial in before.items():
        assert after[number] == trial  # finished before the kill: untouched, not run again
    interrupted = [t for t in trials if t["state"] == "interrupted"]
    assert [t["number"] for t in interrupted] == [len(before)]  # the trial killed mid-way: failed, not counted
    assert len(trials) == TRIALS + 1
    seconds = [t["seconds"] for t in counted]
    assert min(seconds) > 0.5, seconds  # long enough for the kill to land inside one
