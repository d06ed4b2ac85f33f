"""The kserve deployer's bundle: a manifest KServe accepts, a Dockerfile, and a model repository that serves.

The manifest checks are the fields KServe's documentation requires of an
InferenceService with a custom predictor container ("Deploy a custom predictor",
serving.kserve.io/v1beta1 API reference): apiVersion and kind, a DNS-1035
``metadata.name``, ``spec.predictor`` with ``containers`` holding one container named
``kserve-container`` with an image and a single container port (Knative allows one; KServe's
convention is 8080), plus the probes and resources a production service needs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from aios_serve_test_helpers import CLASS_NAMES, ServerProcess, write_mlp

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle the kserve deployer writes for a run named ``Digits_Torch`` (not DNS-safe on purpose)."""
    from aios_serve import KServeDeployer
    from aios_serve._kserve import write_bundle
    from aios_serve._repository import ModelSpec

    from aios_core import ModelArtifact

    root = tmp_path_factory.mktemp("kserve")
    write_mlp(root / "model.onnx")
    artifact = ModelArtifact(name="onnx", path=root / "model.onnx", format="onnx", producer="test")
    spec = ModelSpec(name="Digits_Torch", version="20260101-000000", path=artifact.path, class_names=CLASS_NAMES,
                     preprocessing={"scaling": "none"})
    params = KServeDeployer.Params(token_env="DIGITS_TOKEN", namespace="models")
    write_bundle(artifact, spec, params, root / "kserve", "Digits_Torch")
    return root / "kserve"


@pytest.fixture(scope="module")
def manifest(bundle: Path) -> dict:
    return yaml.safe_load((bundle / "inferenceservice.yaml").read_text())


def test_manifest_is_an_inference_service(manifest: dict) -> None:
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1"
    assert manifest["kind"] == "InferenceService"
    assert DNS_1035.match(manifest["metadata"]["name"]) and len(manifest["metadata"]["name"]) <= 63
    assert manifest["metadata"]["namespace"] == "models"
    assert set(manifest["spec"]) == {"predictor"}


def test_predictor_is_one_custom_container_on_8080(manifest: dict) -> None:
    containers = manifest["spec"]["predictor"]["containers"]
    assert len(containers) == 1
    container = containers[0]
    assert container["name"] == "kserve-container"
    assert container["image"]
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"]["port"] == 8080
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert set(container["resources"]) == {"requests", "limits"}


def test_token_comes_from_a_secret_not_the_manifest(manifest: dict) -> None:
    container = manifest["spec"]["predictor"]["containers"][0]
    assert "--token-env=DIGITS_TOKEN" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert "secretKeyRef" in env["DIGITS_TOKEN"]["valueFrom"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"  # probes carry no token


def test_dockerfile_serves_the_bundled_repository_on_8080(bundle: Path) -> None:
    dockerfile = (bundle / "Dockerfile").read_text()
    assert re.search(r"^FROM \S+", dockerfile, re.MULTILINE)
    assert "COPY models/ /mnt/models/" in dockerfile
    assert '"-m", "aios_serve", "/mnt/models", "--host", "0.0.0.0", "--port", "8080"' in dockerfile
    assert "USER 1000" in dockerfile
    assert (bundle / "wheels").is_dir()


def test_bundle_holds_the_model_and_its_metadata(bundle: Path) -> None:
    model_dir = bundle / "models" / "Digits_Torch" / "20260101-000000"
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["class_names"] == CLASS_NAMES and meta["version"] == "20260101-000000"
    assert (model_dir / "model.onnx").stat().st_size > 0


def test_bundle_serves_locally_as_the_container_would(bundle: Path) -> None:
    process = ServerProcess(str(bundle / "models"), "--token-env", "DIGITS_TOKEN", env={"DIGITS_TOKEN": "k8s"})
    try:
        headers = {"Authorization": "Bearer k8s"}
        row = np.zeros((1, 64), dtype=np.float32)
        answer = httpx.post(f"{process.url}/v2/models/Digits_Torch/infer", headers=headers, json={"inputs": [
            {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": row.ravel().tolist()}]})
        assert answer.status_code == 200
        assert answer.json()["model_version"] == "20260101-000000"
        assert httpx.get(f"{process.url}/v2/health/ready").status_code == 200
    finally:
        assert process.terminate() == 0


def test_service_names_are_dns_1035_labels() -> None:
    from aios_serve._kserve import service_name

    for run_name in ("digits-torch", "Digits_Torch", "2024-model", "a" * 80, "--", "mnist.v2"):
        name = service_name(run_name)
        assert DNS_1035.match(name) and len(name) <= 63, (run_name, name)


def test_dockerfile_installs_aios_from_its_source_not_by_bare_name(bundle: Path) -> None:
    """On a public index, a bare aios-kernel or aios-serve could be someone else's project."""
    dockerfile = (bundle / "Dockerfile").read_text()
    arguments = dict(re.findall(r'^ARG (AIOS_\w+)="([^"]+)"', dockerfile, re.MULTILINE))
    assert set(arguments) == {"AIOS_KERNEL", "AIOS_SERVE"}
    assert arguments["AIOS_KERNEL"].startswith("aios-kernel @ https://")
    assert arguments["AIOS_SERVE"].startswith("aios-serve @ https://")
    assert arguments["AIOS_SERVE"].endswith("#subdirectory=plugins/aios-serve")
    assert 'pip install --no-cache-dir --find-links /wheels "$AIOS_KERNEL" "$AIOS_SERVE"' in dockerfile
