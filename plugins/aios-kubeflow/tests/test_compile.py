"""``aios pipeline compile``: the YAML loads back with kfp's own loader, one task per phase, in order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubeflow_test_helpers import aios, aios_process, install_grid_tuner
from google.protobuf.json_format import MessageToDict
from kfp.components import load_component_from_file


def _spec(path: Path) -> dict[str, Any]:
    """The compiled pipeline as kfp's loader reads it (PipelineSpec as a dict)."""
    component = load_component_from_file(str(path))
    return MessageToDict(component.pipeline_spec)


def _chain(spec: dict[str, Any]) -> list[str]:
    """The tasks' display names, following the run directory from the task that receives none."""
    tasks = spec["root"]["dag"]["tasks"]
    receives = {name: t["inputs"].get("artifacts", {}).get("previous", {}).get("taskOutputArtifact", {})
                .get("producerTask") for name, t in tasks.items()}
    order, current = [], None
    while True:
        following = [name for name, producer in receives.items() if producer == current]
        if not following:
            break
        assert len(following) == 1, following
        current = following[0]
        order.append(tasks[current]["taskInfo"]["name"])
    assert len(order) == len(tasks), f"the tasks are not one chain: {sorted(tasks)}"
    return order


def _task(spec: dict[str, Any], phase: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A phase's task, its component and its container."""
    task = next(t for t in spec["root"]["dag"]["tasks"].values() if t["taskInfo"]["name"] == phase)
    component = spec["components"][task["componentRef"]["name"]]
    container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
    return task, component, container


def test_the_default_stack_is_one_task_per_phase_in_order(default_pipeline: Path) -> None:
    spec = _spec(default_pipeline)
    assert spec["pipelineInfo"]["name"] == "aios-digits-torch"
    assert _chain(spec) == ["data", "train", "export", "compress", "evaluate", "deploy"]


def test_each_step_runs_its_phase_in_the_stack_image_on_the_previous_run_directory(default_pipeline: Path) -> None:
    spec = _spec(default_pipeline)
    previous = None
    for phase in ("data", "train", "export", "compress", "evaluate", "deploy"):
        task, component, container = _task(spec, phase)
        assert container["image"] == "aios-digits-torch:latest"
        assert "kfp.dsl.executor_main" in " ".join(container["command"] + container.get("args", []))
        assert "pip install" not in " ".join(container["command"])  # kfp is in the image
        inputs = task["inputs"]
        assert inputs["parameters"]["phases"]["runtimeValue"]["constant"] == phase
        assert "run_dir" in component["outputDefinitions"]["artifacts"]
        if previous is None:
            assert "stack_digest" in inputs["parameters"] and "lock" in inputs["parameters"]
        else:
            artifact = inputs["artifacts"]["previous"]["taskOutputArtifact"]
            assert (artifact["outputArtifactKey"], artifact["producerTask"]) == ("run_dir", previous)
            assert inputs["parameters"]["data_hash"]["taskOutputParameter"]["outputParameterKey"] == "Output"
        previous = next(n for n, t in spec["root"]["dag"]["tasks"].items() if t["taskInfo"]["name"] == phase)


def test_requests_retries_and_caching(default_pipeline: Path) -> None:
    spec = _spec(default_pipeline)
    for phase in ("data", "train", "evaluate"):
        task, _, container = _task(spec, phase)
        resources = container["resources"]
        assert (resources["resourceCpuRequest"], resources["resourceMemoryRequest"]) == ("1", "2Gi")
        assert "accelerator" not in resources
        assert task["retryPolicy"]["maxRetryCount"] == 1
        assert task["cachingOptions"]["enableCache"] is True


def test_the_evaluate_step_outputs_kfp_metrics(default_pipeline: Path) -> None:
    spec = _spec(default_pipeline)
    _, component, _ = _task(spec, "evaluate")
    assert component["outputDefinitions"]["artifacts"]["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    others = [_task(spec, phase)[1] for phase in ("data", "train", "deploy")]
    assert all("metrics" not in c["outputDefinitions"]["artifacts"] for c in others)


def test_the_lock_file_travels_in_the_pipeline(default_pipeline: Path) -> None:
    import yaml

    task, _, _ = _task(_spec(default_pipeline), "data")
    lock = yaml.safe_load(task["inputs"]["parameters"]["lock"]["runtimeValue"]["constant"])
    assert lock["name"] == "digits-torch" and lock["trainer"]["plugin"] == "torch"
    assert "aios-torch" in lock["lock"]["distributions"]


def test_options_and_set_shape_the_pipeline(tmp_path: Path) -> None:
    output = tmp_path / "p.yaml"
    code, _, err = aios("pipeline", "compile", "-o", str(output), "--set", "orchestrator.image=registry.local/aios:7",
                        "--set", "orchestrator.cpu=500m", "--set", "orchestrator.memory=1Gi",
                        "--set", "orchestrator.train_cpu=2", "--set", "orchestrator.retries=0",
                        "--set", "orchestrator.caching=false", "--set", "trainer.epochs=3", "--set", "deployer=null")
    assert code == 0, err
    spec = _spec(output)
    assert _chain(spec) == ["data", "train", "export", "compress", "evaluate"]
    task, _, container = _task(spec, "train")
    assert container["image"] == "registry.local/aios:7"
    assert container["resources"]["resourceCpuRequest"] == "2"
    assert container["resources"]["resourceMemoryRequest"] == "1Gi"
    assert _task(spec, "data")[2]["resources"]["resourceCpuRequest"] == "500m"
    assert "retryPolicy" not in task
    assert task["cachingOptions"] == {} or task["cachingOptions"].get("enableCache") in (None, False)


def test_a_ray_train_stack_asks_for_its_workers_cpus_and_gpus(tmp_path: Path) -> None:
    pytest.importorskip("aios_ray_train", reason="the test extra installs aios-ray-train")
    stack = tmp_path / "ray.yaml"
    stack.write_text("""\
name: digits-ray
seed: 1
data: {plugin: sklearn, dataset: digits}
model: {framework: torch, architecture: mlp}
trainer: {plugin: ray-train, epochs: 2, num_workers: 4, cpus_per_worker: 2, use_gpu: true}
""")
    output = tmp_path / "p.yaml"
    code, _, err = aios("pipeline", "compile", str(stack), "-o", str(output),
                        "--set", "orchestrator.accelerator=nvidia.com/gpu")
    assert code == 0, err
    spec = _spec(output)
    assert _chain(spec) == ["data", "train", "export", "evaluate"]
    resources = _task(spec, "train")[2]["resources"]
    assert resources["resourceCpuRequest"] == "8"
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert resources["accelerator"]["resourceCount"] == "4"
    assert "accelerator" not in _task(spec, "export")[2]["resources"]


def test_a_stack_with_a_tuner_has_a_tune_step(tmp_path: Path) -> None:
    site = install_grid_tuner(tmp_path / "site")
    stack = tmp_path / "tuned.yaml"
    stack.write_text("""\
name: tuned
data: {plugin: sklearn, dataset: digits}
model: {framework: torch, architecture: mlp}
trainer: {plugin: torch, epochs: 2}
tuner: {plugin: grid, values: [0.01, 0.003]}
""")
    output = tmp_path / "p.yaml"
    result = aios_process("pipeline", "compile", str(stack), "-o", str(output), env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    spec = _spec(output)
    assert _chain(spec) == ["data", "tune", "train", "export", "evaluate"]
    assert _task(spec, "tune")[2]["resources"]["resourceCpuRequest"] == "1"


@pytest.mark.parametrize(("override", "message"), [
    ("orchestrator.memory=2GB", "error: --set: orchestrator.memory: found '2GB', expected a Kubernetes quantity, e.g. 1, "
                                "500m (CPU) or 2Gi, 512Mi (memory)"),
    ("orchestrator.cpu=one", "error: --set: orchestrator.cpu: found 'one', expected a Kubernetes quantity, e.g. 1, "
                             "500m (CPU) or 2Gi, 512Mi (memory)"),
    ("orchestrator.retries=-1", "error: --set: orchestrator.retries: found -1, expected greater than or equal to 0"),
    ("orchestrator.image=", "error: --set: orchestrator.image: found '', expected an image reference such as "
                            "registry.example.com/aios/digits-torch:1"),
    ("trainer.epochs=0", None),
])
def test_bad_options_are_one_line_errors(tmp_path: Path, override: str, message: str | None) -> None:
    code, out, err = aios("pipeline", "compile", "-o", str(tmp_path / "p.yaml"), "--set", override)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    if message:
        assert lines[0] == message
    else:
        assert "trainer.epochs" in lines[0]
    assert not (tmp_path / "p.yaml").exists()


def test_a_stack_file_names_the_orchestrator_and_its_parameters(tmp_path: Path) -> None:
    stack = tmp_path / "stack.yaml"
    stack.write_text("""\
name: small
data: {plugin: sklearn, dataset: digits}
model: {framework: torch, architecture: mlp}
trainer: {plugin: torch, epochs: 2}
orchestrator: {plugin: kubeflow, memory: 3Gi, retries: 4}
""")
    output = tmp_path / "p.yaml"
    code, out, err = aios("pipeline", "compile", str(stack), "-o", str(output))
    assert code == 0, err
    assert out.strip() == f"wrote {output} (kubeflow pipeline of small: data, train, export, evaluate)"
    task, _, container = _task(_spec(output), "train")
    assert container["resources"]["resourceMemoryRequest"] == "3Gi" and task["retryPolicy"]["maxRetryCount"] == 4
    stack.with_name("bad.yaml").write_text(stack.read_text().replace("memory: 3Gi", "memory: 3GB"))
    code, _, err = aios("validate", str(stack.with_name("bad.yaml")))
    assert code == 2 and err.strip() == (f"error: {stack.with_name('bad.yaml')}:5: orchestrator.memory: found '3GB', "
                                         "expected a Kubernetes quantity, e.g. 1, 500m (CPU) or 2Gi, 512Mi (memory)")


def test_an_output_in_a_missing_directory_is_a_one_line_error(tmp_path: Path) -> None:
    code, _, err = aios("pipeline", "compile", "-o", str(tmp_path / "missing" / "p.yaml"))
    assert code == 2
    assert err.strip() == f"error: --output {tmp_path / 'missing' / 'p.yaml'}: the directory {tmp_path / 'missing'} does not exist"


def test_run_needs_local_or_host() -> None:
    code, _, err = aios("pipeline", "run")
    assert code == 2
    assert err.strip() == "error: give either --local (run it on this machine) or --host URL (submit it to an endpoint)"


def test_a_stack_that_prunes_gets_a_compress_native_task_with_the_trainers_resources(tmp_path: Path) -> None:
    stack = tmp_path / "prune.yaml"
    stack.write_text("name: prune\ndata: {plugin: sklearn, dataset: digits}\nmodel: {framework: torch, architecture: mlp}\n"
                     "trainer: {plugin: torch, epochs: 2}\n"
                     "compressors: [{plugin: torch-prune, sparsity: 0.5}, {plugin: onnx-quant}]\n")
    output = tmp_path / "p.yaml"
    code, _, err = aios("pipeline", "compile", str(stack), "-o", str(output), "--set", "orchestrator.train_cpu=2")
    assert code == 0, err
    spec = _spec(output)
    assert _chain(spec) == ["data", "train", "compress-native", "export", "compress", "evaluate"]
    resources = _task(spec, "compress-native")[2]["resources"]
    assert resources["resourceCpuRequest"] == "2" == _task(spec, "train")[2]["resources"]["resourceCpuRequest"]
