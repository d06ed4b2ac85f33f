"""AIOS deployers ``oip`` and ``kserve``: serve ONNX models with the Open Inference Protocol.

``oip`` serves a run's final ONNX model (fp32 or int8) with ONNX Runtime behind an ASGI
server speaking the Open Inference Protocol's REST form (KServe v2, Triton, MLServer);
``kserve`` writes a container build file and a KServe InferenceService manifest that
run the same server on Kubernetes, with the model bundled.

Importing this module is cheap: the server (starlette, uvicorn, onnxruntime, numpy)
loads only when a hook runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, PositiveInt

from aios_core import Deployer, Params, hookimpl

if TYPE_CHECKING:
    from aios_core import Dataset, ModelArtifact, RunContext

__version__ = "0.1.0"
__all__ = ["KServeDeployer", "KServeParams", "OipDeployer", "OipParams"]


class ServerParams(Params):
    """How the server batches, limits and authenticates requests."""

    max_batch_size: PositiveInt = Field(32, le=4096, description="Rows per ONNX Runtime call when batching "
                                        "concurrent requests; 1 turns micro-batching off.")
    max_delay_ms: float = Field(2.0, ge=0.0, le=1000.0, description="Longest a request waits for others to batch "
                                "with (only while more requests are arriving).")
    max_body_bytes: PositiveInt = Field(8 * 1024 * 1024, description="Largest request body accepted (413 above).")
    token_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description=(
        "Environment variable holding a bearer token every request but health checks must present."))
    repository_api: bool | None = Field(None, description="Allow loading and unloading models over HTTP "
                                        "(POST /v2/repository/models/{name}/load|unload); default: on only "
                                        "when token_env is set.")
    grpc_port: int | None = Field(8081, ge=0, le=65535, description="Port of the protocol's gRPC form "
                                  "(inference.GRPCInferenceService) when serving; 0: a free one; null: no gRPC.")
    smoke_requests: PositiveInt = Field(200, description="Single-row requests the smoke test sends (test rows).")
    max_inflight_bytes: PositiveInt = Field(64 * 1024 * 1024, description="Request bodies being read or parsed at "
                                            "once, in bytes (the admission limit; 503 with Retry-After above).")
    header_timeout_s: float = Field(10.0, gt=0.0, le=600.0, description="Seconds a connection may take to send a "
                                    "request's headers (408 and closed after).")
    body_timeout_s: float = Field(30.0, gt=0.0, le=3600.0, description="Seconds a request's body may take to "
                                  "arrive once its headers did (408 after).")
    max_connections: PositiveInt = Field(2048, description="Open connections per worker; a new one beyond gets 503.")
    workers: PositiveInt | None = Field(None, le=64, description="Server processes sharing the port when serving "
                                        "(aios serve, aios run --serve), each with its own ONNX Runtime sessions; "
                                        "default: the cores this process may use, at most 8.")

    def environment_problems(self) -> list[tuple[str, str]]:
        """Before a run: a ``token_env`` whose variable is unset would stop the smoke test after training."""
        if self.token_env and not os.environ.get(self.token_env):
            return [("token_env", (f"found '{self.token_env}', but that environment variable is not set (or is "
                                   f"empty); expected the bearer token in it: export {self.token_env}=<token>, or "
                                   "drop token_env"))]
        return []

    def settings(self, threads: int = 2) -> Any:
        from aios_serve._workers import default_workers
        from aios_serve.server import settings_from

        return settings_from(self.token_env, max_batch_size=self.max_batch_size, max_delay_ms=self.max_delay_ms,
                             max_body_bytes=self.max_body_bytes, repository_api=self.repository_api,
                             inference_threads=max(2, threads), grpc_port=self.grpc_port,
                             workers=self.workers or default_workers(), max_inflight_bytes=self.max_inflight_bytes,
                             header_timeout=self.header_timeout_s, body_timeout=self.body_timeout_s,
                             max_connections=self.max_connections)


class OipParams(ServerParams):
    """Parameters of the ``oip`` deployer."""

    host: str = Field("127.0.0.1", description="Address aios run --serve binds (0.0.0.0 exposes it to the network).")
    port: int = Field(8080, ge=0, le=65535, description="Port aios run --serve listens on; 0 picks a free port. "
                      "The smoke test always uses a free port on 127.0.0.1.")


class OipDeployer(Deployer):
    """Serves ONNX models over the Open Inference Protocol (REST), with micro-batching and Prometheus metrics."""

    Params: ClassVar[type[OipParams]] = OipParams
    formats: ClassVar[tuple[str, ...]] = ("onnx",)
    params: OipParams

    def __init__(self, params: OipParams | None = None, name: str | None = None) -> None:
        super().__init__(params, name or "oip")

    @hookimpl
    def aios_validate(self) -> list[tuple[str, str]]:
        return self.params.environment_problems()

    @hookimpl
    def aios_deploy(self, artifact: ModelArtifact, dataset: Dataset, run: RunContext) -> dict[str, Any]:
        """Smoke-test the server on the test split; with ``aios run --serve``, then serve until interrupted."""
        from aios_serve import _deploy

        return _deploy.deploy_oip(artifact, dataset, run, self.params)

    @hookimpl
    def aios_serve(self, run_dirs: list[Path], host: str, port: int) -> None:
        """Serve the final ONNX models of ``run_dirs`` until SIGTERM or Ctrl-C (``aios serve``)."""
        from dataclasses import replace

        from aios_serve.server import serve

        settings = self.params.settings()
        if port == 0 and settings.grpc_port is not None:
            settings = replace(settings, grpc_port=0)  # a free HTTP port: a free gRPC port too

        def started(url: str, grpc: str | None = None) -> None:
            print(f"aios serve: serving {len(run_dirs)} run(s) on {url}/v2" + (f" and gRPC {grpc}" if grpc else "")
                  + " (Ctrl-C stops)", flush=True)

        serve(run_dirs, host, port, settings=settings, on_started=started)

    @classmethod
    def capabilities(cls) -> dict[str, Any]:
        return {**super().capabilities(), "protocol": "open-inference-protocol-v2-rest+grpc",
                "extensions": ["model_repository", "metrics", "raw_input", "binary_tensor_data"]}


class KServeParams(ServerParams):
    """Parameters of the ``kserve`` deployer."""

    service_name: str | None = Field(None, pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", description=(
        "InferenceService name (a DNS-1035 label); default: the run's name."))
    namespace: str | None = Field(None, description="Kubernetes namespace of the InferenceService (default: none "
                                  "written, kubectl's current one).")
    image: str | None = Field(None, description="Container image reference the manifest uses "
                              "(default: aios-serve-<service name>:<version>); build and push it with the Dockerfile.")
    base_image: str = Field("python:3.11-slim", description="Base image of the Dockerfile.")
    cpu: str = Field("1", description="CPU request and limit of the predictor container.")
    memory: str = Field("1Gi", description="Memory request and limit of the predictor container.")


class KServeDeployer(Deployer):
    """Writes a Dockerfile and a KServe InferenceService manifest (Open Inference Protocol), model bundled."""

    Params: ClassVar[type[KServeParams]] = KServeParams
    formats: ClassVar[tuple[str, ...]] = ("onnx",)
    params: KServeParams

    def __init__(self, params: KServeParams | None = None, name: str | None = None) -> None:
        super().__init__(params, name or "kserve")

    @hookimpl
    def aios_validate(self) -> list[tuple[str, str]]:
        return self.params.environment_problems()

    @hookimpl
    def aios_deploy(self, artifact: ModelArtifact, dataset: Dataset, run: RunContext) -> dict[str, Any]:
        """Write ``artifacts/kserve/`` and smoke-test the bundle with the same server, locally."""
        from aios_serve import _kserve

        return _kserve.deploy_kserve(artifact, dataset, run, self.params)

    @classmethod
    def capabilities(cls) -> dict[str, Any]:
        return {**super().capabilities(), "protocol": "open-inference-protocol-v2-rest",
                "writes": ["Dockerfile", "inferenceservice.yaml", "models/<name>/<version>/"]}
