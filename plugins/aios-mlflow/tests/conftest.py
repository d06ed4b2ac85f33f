"""Session fixtures: a real ``mlflow server`` on 127.0.0.1 and one stack run end to end against it."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aios_core.testing import run_aios

sys.path.insert(0, str(Path(__file__).parent))

from aios_mlflow_test_helpers import (  # noqa: E402
    REGISTERED,
    MlflowServer,
    TrackedRun,
    digits_stack,
    git_tree,
    only_run_dir,
    start_mlflow_server,
    tuner_site,
)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tracked_run(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> TrackedRun:
    project = tmp_path_factory.mktemp("project")
    (project / "stack.yaml").write_text(
        digits_stack(tuner=True, mlflow=f"tracking_uri: {mlflow_server.uri}\nregister: {REGISTERED}"),
        encoding="utf-8")
    commit = git_tree(project)
    site = tuner_site(tmp_path_factory.mktemp("tuner"))
    result = run_aios("run", "stack.yaml", cwd=project,
                      env={"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
                           "MLFLOW_TRACKING_URI": None})
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = only_run_dir(project)
    pointer = json.loads((run_dir / "mlflow.json").read_text(encoding="utf-8"))
    return TrackedRun(project, run_dir, result.stdout, commit, pointer["run_id"], mlflow_server)
