"""One ``aios run`` (digits, torch MLP, ONNX, int8, a two-trial tuner) logged to a real ``mlflow server``,
read back with ``MlflowClient``."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from aios_mlflow_test_helpers import REGISTERED, TrackedRun

from aios_core import RunDirectory, onnx_predictor


@pytest.fixture(scope="module")
def client(tracked_run: TrackedRun) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracked_run.server.uri)


@pytest.fixture(scope="module")
def mlflow_run(client: Any, tracked_run: TrackedRun) -> Any:
    return client.get_run(tracked_run.mlflow_run_id)


@pytest.fixture(scope="module")
def state(tracked_run: TrackedRun) -> Any:
    return RunDirectory(tracked_run.run_dir).read_state()


def test_one_finished_mlflow_run_in_the_stacks_experiment(client: Any, mlflow_run: Any,
                                                          tracked_run: TrackedRun) -> None:
    experiment = client.get_experiment(mlflow_run.info.experiment_id)
    assert experiment.name == "digits-mlflow-test"
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.info.run_name == tracked_run.run_dir.name
    top_level = client.search_runs([experiment.experiment_id], "tags.mlflow.parentRunId IS NULL")
    assert [r.info.run_id for r in top_level] == [tracked_run.mlflow_run_id]


def test_the_run_directory_and_the_mlflow_run_point_at_each_other(mlflow_run: Any, tracked_run: TrackedRun) -> None:
    pointer = json.loads((tracked_run.run_dir / "mlflow.json").read_text(encoding="utf-8"))
    assert pointer["tracking_uri"] == tracked_run.server.uri
    assert pointer["run_url"].endswith(f"/runs/{tracked_run.mlflow_run_id}")
    assert mlflow_run.data.tags["aios.run_dir"] == str(tracked_run.run_dir.resolve())
    assert f"run {tracked_run.mlflow_run_id}" in tracked_run.stdout


def test_params_are_the_resolved_stack_flattened(mlflow_run: Any) -> None:
    params = mlflow_run.data.params
    assert params["model.hidden_units"] == "[32]"
    assert params["model.architecture"] == "mlp"
    assert params["trainer.epochs"] == "3"
    assert params["compressors.0.mode"] == "static"
    assert params["data.dataset"] == "digits"
    assert not any(key.startswith("lock.") for key in params)


def test_every_epoch_is_a_metric_step_with_the_recorded_values(client: Any, tracked_run: TrackedRun,
                                                               state: Any) -> None:
    history = state.phases["train"]["history"]
    for key in ("loss", "val_loss", "val_accuracy"):
        logged = sorted(client.get_metric_history(tracked_run.mlflow_run_id, key), key=lambda m: m.step)
        assert [m.step for m in logged] == [row["epoch"] for row in history]
        assert [m.value for m in logged] == pytest.approx([row[key] for row in history])


def test_phase_summaries_and_each_artifacts_evaluation_figures(mlflow_run: Any, state: Any) -> None:
    metrics = mlflow_run.data.metrics
    for phase in ("data", "tune", "train", "export", "compress", "evaluate"):
        assert metrics[f"{phase}.seconds"] == pytest.approx(state.phases[phase]["seconds"])
        resources = state.phases[phase]["resources"]
        for key in ("wall_seconds", "cpu_seconds", "peak_rss_bytes", "children_peak_rss_bytes"):
            assert metrics[f"{phase}.resources.{key}"] == pytest.approx(resources[key]), (phase, key)
    evaluation = state.phases["evaluate"]
    assert {a["name"] for a in evaluation["artifacts"]} >= {"onnx", "int8"}
    for result in evaluation["artifacts"]:
        assert metrics[f"eval.{result['name']}.accuracy"] == pytest.approx(result["accuracy"])
        assert metrics[f"eval.{result['name']}.size_bytes"] == result["size_bytes"]
        assert metrics[f"eval.{result['name']}.latency_ms.b1.p50"] == pytest.approx(result["latency_ms"]["1"]["p50"])
    assert metrics["eval.test_accuracy"] == pytest.approx(evaluation["test_accuracy"])
    assert metrics["best_epoch"] == state.phases["train"]["best_epoch"]


def test_tags_name_the_stack_seed_data_versions_and_commit(mlflow_run: Any, tracked_run: TrackedRun) -> None:
    tags = mlflow_run.data.tags
    run = RunDirectory(tracked_run.run_dir)
    lock = run.read_lock()["lock"]
    assert tags["aios.stack"] == "digits-mlflow-test"
    assert tags["aios.seed"] == "7"
    assert tags["aios.dataset.content_hash"] == run.read_data_summary()["content_hash"]
    assert tags["aios.kernel_version"] == lock["aios_core"]
    assert tags["aios.version.aios-mlflow"] == lock["distributions"]["aios-mlflow"]
    assert tags["aios.version.aios-torch"] == lock["distributions"]["aios-torch"]
    if tracked_run.commit is None:
        pytest.skip("git is not installed: no commit to record")
    assert tags["mlflow.source.git.commit"] == tracked_run.commit


def test_the_dataset_is_an_mlflow_dataset_input(mlflow_run: Any, tracked_run: TrackedRun) -> None:
    summary = RunDirectory(tracked_run.run_dir).read_data_summary()
    (logged,) = mlflow_run.inputs.dataset_inputs
    assert logged.dataset.name == "digits"
    assert logged.dataset.digest == summary["content_hash"][:36]
    assert json.loads(logged.dataset.profile)["sizes"] == summary["sizes"]
    assert {t.key: t.value for t in logged.tags}["mlflow.data.context"] == "training"


def test_the_run_directorys_files_are_artifacts(client: Any, tracked_run: TrackedRun) -> None:
    def names(path: str) -> set[str]:
        return {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(tracked_run.mlflow_run_id, path)}

    assert names("aios") >= {"stack.lock.yaml", "state.json", "data.json", "metrics.jsonl", "mlflow.json"}
    assert names("aios/report") >= {"training_curves.png", "confusion_matrix.png", "evaluation.json"}
    assert names("aios/artifacts") >= {"model.onnx", "model.int8.onnx"}
    assert names("aios/phases") >= {"train.json", "evaluate.json"}
    local = client.download_artifacts(tracked_run.mlflow_run_id, "aios/artifacts/model.int8.onnx")
    assert open(local, "rb").read() == (tracked_run.run_dir / "artifacts" / "model.int8.onnx").read_bytes()


def test_tuner_trials_are_nested_runs_with_their_params_and_epochs(client: Any, mlflow_run: Any,
                                                                   tracked_run: TrackedRun, state: Any) -> None:
    children = client.search_runs([mlflow_run.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{tracked_run.mlflow_run_id}'",
                                  order_by=["tags.`aios.trial` ASC"])
    trials = state.phases["tune"]["trials"]
    assert [c.data.tags["aios.trial"] for c in children] == ["1", "2"]
    for child, trial in zip(children, trials, strict=True):
        assert child.info.status == "FINISHED"
        assert child.data.params == {"trainer.learning_rate": str(trial["params"]["trainer.learning_rate"])}
        assert child.data.metrics["objective"] == pytest.approx(trial["value"])
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "val_loss")]
        assert sorted(steps) == [1, 2, 3]
    # the trials' epochs went to the trials, not to the parent run's curves
    assert len(client.get_metric_history(tracked_run.mlflow_run_id, "val_loss")) == 3


def test_the_registered_model_predicts_as_the_runs_final_onnx_model(client: Any, tracked_run: TrackedRun) -> None:
    import mlflow

    (version,) = client.search_model_versions(f"name = '{REGISTERED}'")
    assert version.run_id == tracked_run.mlflow_run_id
    assert version.tags["aios.run_dir"] == str(tracked_run.run_dir.resolve())
    pointer = json.loads((tracked_run.run_dir / "mlflow.json").read_text(encoding="utf-8"))
    assert (pointer["registered_model"], pointer["model_version"]) == (REGISTERED, int(version.version))

    final = RunDirectory(tracked_run.run_dir).final_artifact(formats=("onnx",))
    assert final.name == "int8"
    from aios_core.testing import digits_dataset

    rows = digits_dataset(seed=7, image=False).x_test[:64]
    mlflow.set_tracking_uri(tracked_run.server.uri)
    model = mlflow.pyfunc.load_model(f"models:/{REGISTERED}/{version.version}")
    inputs = model.metadata.get_input_schema().inputs
    assert inputs[0].shape == (-1, 64) and inputs[0].type == np.dtype(np.float32)
    predicted = model.predict(rows)
    probabilities = next(iter(predicted.values())) if isinstance(predicted, dict) else np.asarray(predicted)
    np.testing.assert_allclose(probabilities, onnx_predictor(final.path)(rows), rtol=1e-5, atol=1e-6)
