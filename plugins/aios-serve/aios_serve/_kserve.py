"""The ``kserve`` deployer: a bundle that runs the aios-serve server on Kubernetes under KServe.

``artifacts/kserve/`` holds::

    Dockerfile               python base image + aios-serve, the model repository copied in
    inferenceservice.yaml    serving.kserve.io/v1beta1 InferenceService, custom predictor container
    models/<name>/<version>/ model.onnx and model.json (class names, preprocessing)
    README.md                build, push, apply, curl

The container runs ``python -m aios_serve /mnt/models --host 0.0.0.0 --port 8080``: the
same server as ``aios serve``, so the bundle is smoke-tested locally by serving
``models/`` exactly as the container will.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aios_serve._deploy import log_smoke_test, model_spec, reference_predictions, smoke_test
from aios_serve._repository import MODEL_FILE, MODEL_JSON, ModelSpec, spec_from_bundle

if TYPE_CHECKING:
    from aios_core import Dataset, ModelArtifact, RunContext
    from aios_serve import KServeParams

CONTAINER_PORT = 8080
SOURCE_ARCHIVE = "https://github.com/aios-ml/aios/archive/refs/heads/main.tar.gz"
"""The AIOS repository as a source archive (pip installs it without git, which slim images lack)."""
"""KServe routes to the predictor container's first port; 8080 is its convention."""


def service_name(run_name: str) -> str:
    """A DNS-1035 label from a run name (KServe names Knative services and hosts after it)."""
    name = re.sub(r"[^a-z0-9-]+", "-", run_name.lower()).strip("-")
    name = re.sub(r"^[^a-z]+", "", name)[:63].rstrip("-")
    return name or "aios-model"


def dockerfile(params: KServeParams, version: str) -> str:
    return f"""\
# Built by the aios-serve kserve deployer. Build from this directory:
#   docker build -t IMAGE . && docker push IMAGE
FROM {params.base_image}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# aios-kernel and aios-serve (with onnxruntime, starlette, uvicorn, prometheus-client), from
# the AIOS repository's source: neither is published on a package index yet, and a bare name
# there could be someone else's project. For reproducible images, put the wheels in wheels/
# and build with --build-arg AIOS_KERNEL=/wheels/<kernel>.whl --build-arg AIOS_SERVE=/wheels/<serve>.whl
ARG AIOS_KERNEL="aios-kernel @ {SOURCE_ARCHIVE}"
ARG AIOS_SERVE="aios-serve @ {SOURCE_ARCHIVE}#subdirectory=plugins/aios-serve"
COPY wheels/ /wheels/
RUN pip install --no-cache-dir --find-links /wheels "$AIOS_KERNEL" "$AIOS_SERVE" && rm -rf /wheels
COPY models/ /mnt/models/
RUN useradd --uid 1000 --no-create-home aios
USER 1000
EXPOSE {CONTAINER_PORT}
ENTRYPOINT ["python", "-m", "aios_serve", "/mnt/models", "--host", "0.0.0.0", "--port", "{CONTAINER_PORT}"]
"""


def manifest(params: KServeParams, name: str, image: str, spec: ModelSpec) -> dict[str, Any]:
    """The InferenceService: one custom predictor container speaking the Open Inference Protocol (v2 REST)."""
    args: list[str] = [f"--max-batch-size={params.max_batch_size}", f"--max-delay-ms={params.max_delay_ms}",
                       f"--max-body-bytes={params.max_body_bytes}"]
    env: list[dict[str, Any]] = []
    if params.token_env:
        args.append(f"--token-env={params.token_env}")
        env.append({"name": params.token_env,
                    "valueFrom": {"secretKeyRef": {"name": f"{name}-token", "key": "token"}}})
    if not params.repository_api:
        args.append("--no-repository-api")
    container: dict[str, Any] = {
        "name": "kserve-container",
        "image": image,
        "args": args,
        "ports": [{"containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": f"/v2/models/{spec.name}/ready", "port": CONTAINER_PORT}}
        if not params.token_env else {"httpGet": {"path": "/v2/health/ready", "port": CONTAINER_PORT}},
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": CONTAINER_PORT}},
        "resources": {"requests": {"cpu": params.cpu, "memory": params.memory},
                      "limits": {"cpu": params.cpu, "memory": params.memory}},
    }
    if env:
        container["env"] = env
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {"app.kubernetes.io/managed-by": "aios", "aios.dev/model": spec.name},
        "annotations": {"aios.dev/model-version": spec.version,
                        "aios.dev/protocol": "open-inference-protocol-v2-rest",
                        "prometheus.io/scrape": "true", "prometheus.io/port": str(CONTAINER_PORT),
                        "prometheus.io/path": "/metrics"},
    }
    if params.namespace:
        metadata["namespace"] = params.namespace
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": metadata,
            "spec": {"predictor": {"containers": [container]}}}


def write_bundle(artifact: ModelArtifact, spec: ModelSpec, params: KServeParams, folder: Path, run_name: str) -> dict[str, Any]:
    """Write the bundle under ``folder`` (replacing an older one); returns what was written."""
    import yaml

    from aios_core import write_json, write_text
    from aios_serve import __version__

    models = folder / "models" / spec.name / spec.version
    if folder.exists():
        shutil.rmtree(folder)
    models.mkdir(parents=True)
    (folder / "wheels").mkdir()
    write_text(folder / "wheels" / "README.md", "Wheels placed here are installable in the image "
               "(docker build --build-arg AIOS_KERNEL=/wheels/<kernel>.whl --build-arg AIOS_SERVE=/wheels/<serve>.whl).\n")
    shutil.copyfile(artifact.path, models / MODEL_FILE)
    write_json(models / MODEL_JSON, spec.to_json())
    name = params.service_name or service_name(run_name)
    image = params.image or f"aios-serve-{name}:{spec.version.lower()}"
    write_text(folder / "Dockerfile", dockerfile(params, __version__))
    document = manifest(params, name, image, spec)
    write_text(folder / "inferenceservice.yaml",
               "# Built by the aios-serve kserve deployer: kubectl apply -f inferenceservice.yaml\n"
               + yaml.safe_dump(document, sort_keys=False))
    write_text(folder / "README.md", _readme(name, image, spec))
    return {"dir": str(folder), "service": name, "image": image,
            "files": ["Dockerfile", "inferenceservice.yaml", f"models/{spec.name}/{spec.version}/{MODEL_FILE}",
                      f"models/{spec.name}/{spec.version}/{MODEL_JSON}", "README.md"]}


def _readme(name: str, image: str, spec: ModelSpec) -> str:
    return f"""# {name}: {spec.name} version {spec.version} on KServe

    docker build -t {image} .          # or with --build-arg AIOS_KERNEL=/wheels/... AIOS_SERVE=/wheels/... for wheels
    docker push {image}
    kubectl apply -f inferenceservice.yaml
    kubectl get inferenceservice {name}     # wait for READY, note the URL

    curl -s -H "Host: $SERVICE_HOSTNAME" http://$INGRESS_HOST:$INGRESS_PORT/v2/models/{spec.name}
    curl -s -H "Host: $SERVICE_HOSTNAME" -H 'Content-Type: application/json' \\
         http://$INGRESS_HOST:$INGRESS_PORT/v2/models/{spec.name}/infer -d @request.json

Locally, without a cluster: `python -m aios_serve models/ --port 8080`.
"""


def deploy_kserve(artifact: ModelArtifact, dataset: Dataset, run: RunContext, params: KServeParams) -> dict[str, Any]:
    from dataclasses import replace

    from aios_serve.server import BackgroundServer

    spec = model_spec(artifact, dataset, run)
    folder = Path(run.artifacts_dir) / "kserve"
    written = write_bundle(artifact, spec, params, folder, run.name)
    bundled = spec_from_bundle(folder / "models" / spec.name / spec.version)
    settings = replace(params.settings(run.threads), grpc_port=None, workers=1)  # the smoke test: REST, in-process
    rows = np.ascontiguousarray(dataset.x_test, dtype=np.float32)
    reference = reference_predictions(artifact, run, rows, params.smoke_requests)
    with BackgroundServer([folder / "models"], settings=settings) as server:
        smoke = smoke_test(server.url, bundled, rows, reference, settings, server.timing(spec.name, spec.version))
    smoke["served"] = "models/ (as the container serves /mnt/models)"
    run.log.info("kserve bundle written to %s", folder)
    log_smoke_test(run, "kserve bundle (local)", smoke)
    return {"protocol": "Open Inference Protocol v2 (REST)", "bundle": written,
            "model": {"name": spec.name, "version": spec.version}, "smoke_test": smoke,
            "next": f"cd {folder} && docker build -t {written['image']} . && docker push {written['image']} "
                    "&& kubectl apply -f inferenceservice.yaml"}
