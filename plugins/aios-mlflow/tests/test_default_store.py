"""No ``tracking_uri``: MLflow's own local default in the directory ``aios run`` runs in, readable by
``MlflowClient`` and ``mlflow runs list``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from aios_mlflow_test_helpers import digits_stack, only_run_dir

from aios_core.testing import run_aios


def test_without_a_tracking_uri_the_run_lands_in_mlflows_local_default(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    (tmp_path / "stack.yaml").write_text(digits_stack(epochs=2, compress=False), encoding="utf-8")
    result = run_aios("run", "stack.yaml", cwd=tmp_path, env={"MLFLOW_TRACKING_URI": None})
    assert result.returncode == 0, result.stdout + result.stderr
    pointer = json.loads((only_run_dir(tmp_path) / "mlflow.json").read_text(encoding="utf-8"))
    # MLflow 3's default, sqlite:///mlflow.db in the directory aios ran in, recorded as an absolute path
    assert pointer["tracking_uri"] == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert (tmp_path / "mlflow.db").is_file()

    client = MlflowClient(tracking_uri=pointer["tracking_uri"])
    run = client.get_run(pointer["run_id"])
    assert run.info.status == "FINISHED"
    assert len(client.get_metric_history(run.info.run_id, "val_loss")) == 2
    assert client.list_artifacts(run.info.run_id, "aios/artifacts")  # the default artifact root is local too

    listed = subprocess.run([sys.executable, "-m", "mlflow", "runs", "list", "--experiment-id",
                             pointer["experiment_id"]], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert pointer["run_id"] in listed.stdout
