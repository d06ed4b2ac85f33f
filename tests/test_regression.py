"""Regression through the whole stack, by the real CLI: a CSV with a numeric target, the task inferred and
declared, refusals of classification-only components and gates. The diabetes example itself runs from a fresh
clone, with torch and with keras, against Ridge (``ridge_rmse``), in tests/test_documented_commands.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import refusal, run_aios

pytestmark = pytest.mark.slow

CSV_STACK = """\
name: csv-regression
seed: 7
data: {{plugin: files, path: {path}, target: progression{task}}}
model: {{framework: torch, architecture: mlp, hidden_units: [16]}}
trainer: {{plugin: torch, epochs: 30, batch_size: 32, learning_rate: 0.01}}
evaluate: {{batch_sizes: [1], latency_runs: 5, max_rmse: 80, min_r2: 0.2}}
deployer: {{plugin: oip, port: 0, smoke_requests: 10}}
monitors: [{{plugin: jsonl}}]
"""

DIABETES = """\
name: diabetes
data: {plugin: sklearn, dataset: diabetes}
model: {framework: torch, architecture: mlp}
trainer: {plugin: torch, epochs: 2}
"""


@pytest.fixture(scope="module")
def diabetes_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's diabetes as a CSV file: ten feature columns and the numeric target ``progression``."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame.rename(columns={"target": "progression"})
    path = tmp_path_factory.mktemp("csv") / "diabetes.csv"
    frame.to_csv(path, index=False)
    return path


def _run(tmp_path: Path, stack: str) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(stack)
    result = run_aios("run", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    return run_dir


def test_a_csv_with_a_numeric_target_runs_end_to_end_with_the_task_inferred(tmp_path: Path, diabetes_csv: Path) -> None:
    run_dir = _run(tmp_path, CSV_STACK.format(path=diabetes_csv, task=""))
    data = json.loads((run_dir / "data.json").read_text())
    assert data["task"] == "regression" and data["num_classes"] == 0 and data["target_names"] == ["progression"]
    assert data["preprocessing"]["task"]["declared"] is False
    assert "inferred: numeric target with 214 distinct values" in data["preprocessing"]["task"]["reason"]
    assert data["target_scaling"]["scaling"] == "standardize" and data["target_scaling"]["std"][0] > 50
    report = json.loads((run_dir / "report" / "evaluation.json").read_text())
    assert report["task"] == "regression" and "test_accuracy" not in report
    assert 30 < report["test_rmse"] < 80 and report["test_r2"] > 0.2  # in the target's units (it spans 25..346)
    assert {gate["gate"]: gate["passed"] for gate in report["gates"]} == {"max_rmse": True, "min_r2": True}
    messages = {gate["gate"]: gate["message"] for gate in report["gates"]}  # a passed gate's record says so
    assert " <= max_rmse " in messages["max_rmse"] and " >= min_r2 " in messages["min_r2"], messages
    onnx = next(a for a in report["artifacts"] if a["format"] == "onnx")
    assert {"rmse", "mae", "r2"} <= set(onnx) and "confusion_matrix" not in onnx
    assert (run_dir / "report" / "predicted_vs_true.png").stat().st_size > 1000
    assert (run_dir / "report" / "residuals.png").stat().st_size > 1000
    assert not (run_dir / "report" / "confusion_matrix.png").exists()
    phases = json.loads((run_dir / "state.json").read_text())["phases"]
    history = phases["train"]["history"]
    assert {"loss", "rmse", "val_loss", "val_rmse", "val_mae"} <= set(history[0]) and "val_accuracy" not in history[0]
    smoke = phases["deploy"]["smoke_test"]  # served predictions, in the target's units, equal the in-process ones
    assert smoke["passed"] and smoke["task"] == "regression" and smoke["max_abs_diff"] <= smoke["tolerance"]


def test_a_declared_task_overrides_the_inference(tmp_path: Path) -> None:
    """Integer scores 0..24 (25 distinct values) would be inferred as regression; task: classification keeps classes."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3))
    score = np.clip(np.round(12 + 4 * x[:, 0]), 0, 24).astype(int)
    rows = ["a,b,c,progression"] + [f"{a:.4f},{b:.4f},{c:.4f},{s}" for (a, b, c), s in zip(x, score)]
    csv = tmp_path / "scores.csv"
    csv.write_text("\n".join(rows) + "\n")
    stack = CSV_STACK.format(path=csv, task=", task: classification").replace(
        ", max_rmse: 80, min_r2: 0.2", "").replace("epochs: 30", "epochs: 2")
    # 25 classes, some rare: the stratified split refuses them by name, which shows the declared task won
    path = tmp_path / "stack.yaml"
    path.write_text(stack)
    result = run_aios("run", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode != 0
    assert "data.split: class" in result.stderr and "stratified" in result.stderr


def test_a_classification_only_component_is_refused_on_a_regression_stack(tmp_path: Path) -> None:
    stack = DIABETES + "compressors: [{plugin: torch-prune}]\n"
    line = refusal(tmp_path, stack)
    assert line.endswith("compressors.0: compressor 'torch-prune' supports classification only, but the data's "
                         "task is regression; choose a compressor that declares regression (aios plugins info "
                         "NAME shows its tasks)"), line


def test_a_task_inferred_from_a_files_target_refuses_a_classification_only_component_at_validate(
        tmp_path: Path, diabetes_csv: Path) -> None:
    """task: auto on a CSV: the datastore reads the target column before the run, so validate knows the task."""
    stack = CSV_STACK.format(path=diabetes_csv, task="") + "compressors: [{plugin: torch-prune}]\n"
    line = refusal(tmp_path, stack, run=True)
    assert line.endswith("compressors.0: compressor 'torch-prune' supports classification only, but the data's "
                         "task is regression; choose a compressor that declares regression (aios plugins info "
                         "NAME shows its tasks)"), line


def test_several_numeric_target_columns_run_end_to_end_as_one_model_of_several_outputs(
        tmp_path: Path, diabetes_csv: Path) -> None:
    """target: [progression, s5]: one MLP of two outputs, ONNX `predictions` (n, 2), int8, evaluation pooled and
    per target in each target's units, served predictions equal to the in-process ones."""
    import numpy as np
    import onnxruntime

    stack = CSV_STACK.format(path=diabetes_csv, task="").replace("target: progression", "target: [progression, s5]")
    stack += "compressors: [{plugin: onnx-quant, mode: static, max_metric_drop: 0.5}]\n"
    run_dir = _run(tmp_path, stack)
    data = json.loads((run_dir / "data.json").read_text())
    assert data["task"] == "regression" and data["target_names"] == ["progression", "s5"]
    assert "2 target columns" in data["preprocessing"]["task"]["reason"] and data["num_features"] == 9
    assert len(data["target_scaling"]["std"]) == 2 and data["target_scaling"]["std"][0] > 50 > data["target_scaling"]["std"][1]
    (onnx,) = (run_dir / "artifacts").glob("**/*model.onnx")
    session = onnxruntime.InferenceSession(str(onnx))
    (output,) = session.get_outputs()
    outputs = session.run(None, {session.get_inputs()[0].name: np.zeros((3, 9), dtype=np.float32)})[0]
    assert output.name == "predictions" and outputs.shape == (3, 2)
    report = json.loads((run_dir / "report" / "evaluation.json").read_text())
    final = next(a for a in report["artifacts"] if a["name"] == report["final"] == "int8")
    per_target = final["per_target"]
    assert set(per_target) == {"progression", "s5"}
    assert per_target["progression"]["rmse"] > 30 > 1 > per_target["s5"]["rmse"]  # each in its own units
    # both outputs learned: each explains a share of its target's variance (a short run: 0.16-0.45 seen)
    assert per_target["progression"]["r2"] > 0.1 and per_target["s5"]["r2"] > 0.1
    assert final["r2"] == pytest.approx((per_target["progression"]["r2"] + per_target["s5"]["r2"]) / 2, abs=1e-5)
    history = json.loads((run_dir / "state.json").read_text())["phases"]["train"]["history"]
    assert history[-1]["val_rmse"] > 10  # pooled over both targets, in their units (scaled it would be < 1.5)
    smoke = json.loads((run_dir / "state.json").read_text())["phases"]["deploy"]["smoke_test"]
    assert smoke["passed"] and smoke["task"] == "regression" and smoke["max_abs_diff"] <= smoke["tolerance"]


def test_several_target_columns_with_a_classification_task_are_refused_at_validate(
        tmp_path: Path, diabetes_csv: Path) -> None:
    stack = CSV_STACK.format(path=diabetes_csv, task=", task: classification").replace(
        "target: progression", "target: [progression, s5]").replace(", max_rmse: 80, min_r2: 0.2", "")
    line = refusal(tmp_path, stack, run=True)
    assert line.endswith("data.task: found 'classification', but data.target names 2 columns, which are regression "
                         "targets; expected auto or regression, or one target column"), line


def test_a_classification_gate_is_refused_on_a_regression_stack(tmp_path: Path) -> None:
    line = refusal(tmp_path, DIABETES + "evaluate: {min_accuracy: 0.9}\n")
    assert "evaluate.min_accuracy: a classification gate, but the data's task is regression" in line


def test_a_regression_task_on_a_classification_set_is_refused(tmp_path: Path) -> None:
    line = refusal(tmp_path, DIABETES.replace("dataset: diabetes", "dataset: digits, task: regression"))
    assert "data.task: found 'regression', but scikit-learn's digits is a classification data set" in line


def ridge_rmse(run_dir: Path) -> float:
    """scikit-learn's Ridge (alpha 1) on the run's own splits and preprocessing, RMSE in the target's units."""
    import numpy as np
    from aios_data import SklearnDatastore
    from sklearn.linear_model import Ridge

    from aios_core import RunContext, RunDirectory
    from aios_core.testing import plugin_manager

    stack = RunDirectory(run_dir).read_lock()
    params = {key: value for key, value in stack["data"].items() if key != "plugin"}
    pm = plugin_manager(SklearnDatastore(SklearnDatastore.Params(**params)))
    context = RunContext(name="ridge", seed=stack["seed"], threads=1, dir=run_dir, stack=stack, hook=pm.hook)
    dataset = pm.hook.aios_load_dataset(run=context)
    model = Ridge(alpha=1.0).fit(dataset.x_train, dataset.unscale_targets(dataset.y_train))
    predicted = model.predict(dataset.x_test).reshape(-1, 1)
    return float(np.sqrt(np.mean((predicted - dataset.unscale_targets(dataset.y_test)) ** 2)))


AUTOML = """\
name: diabetes-automl
seed: 1
data: {plugin: sklearn, dataset: diabetes}
model: {framework: torch, architecture: mlp, hidden_units: [16]}
trainer: {plugin: torch, epochs: 6, batch_size: 32, learning_rate: 0.01}
tuner:
  plugin: optuna
  trials: 3
  space:
    model.hidden_units: [[8], [32]]
evaluate: {batch_sizes: [1], latency_runs: 5}
monitors: [{plugin: jsonl}]
"""


def test_automl_minimizes_the_validation_error_of_a_regression_stack_without_extra_configuration(tmp_path: Path) -> None:
    """The tuner's default objective, val_loss, is the validation MSE here (loss auto: mse): RMSE's ranking."""
    run_dir = _run(tmp_path, AUTOML)
    tune = json.loads((run_dir / "state.json").read_text())["phases"]["tune"]
    assert tune["objectives"] == {"val_loss": "minimize"}
    completed = [trial for trial in tune["trials"] if trial["state"] == "completed"]
    assert completed, tune["trials"]
    assert tune["best_value"] == min(trial["values"]["val_loss"] for trial in completed)
    report = json.loads((run_dir / "report" / "evaluation.json").read_text())
    assert report["task"] == "regression" and report["test_rmse"] < 80


def test_a_classification_objective_is_refused_on_a_regression_stack(tmp_path: Path) -> None:
    line = refusal(tmp_path, AUTOML.replace("  trials: 3\n", "  trials: 3\n  objectives: [val_accuracy]\n"))
    assert "tuner.objectives.0: found val_accuracy, a classification metric, but the data's task is regression; " \
           "use val_loss or val_rmse" in line
