"""aios-kubeflow: the ``kubeflow`` orchestrator. A stack becomes a Kubeflow Pipelines (KFP v2) pipeline, one step
per phase, run on this machine with kfp.local or submitted to a cluster.

``aios pipeline compile STACK -o pipeline.yaml``, ``aios pipeline run STACK --local`` (or ``--host URL``);
the parameters are the stack's ``orchestrator`` section (``--set orchestrator.image=...``). Importing this
package imports neither kfp nor any ML library: kfp loads in the hooks.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from aios_core import Orchestrator, Params, hookimpl

__all__ = ["KubeflowOrchestrator", "KubeflowParams"]
__version__ = "0.1.0"

_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


class KubeflowParams(Params):
    """The ``orchestrator`` section of a stack run on Kubeflow Pipelines."""

    image: str | None = Field(None, description="The steps' image (default: aios-STACKNAME:latest; aios pipeline dockerfile "
                                          "writes its Dockerfile).")
    cpu: str | None = Field(None, description="CPU request of every step, e.g. 1 or 500m (default: the stack's threads).")
    memory: str = Field("2Gi", description="Memory request of every step, e.g. 2Gi or 512Mi.")
    train_cpu: str | None = Field(None, description="CPU request of tune and train (default: the trainer's: "
                                                    "num_workers x cpus_per_worker for ray-train, else threads).")
    train_memory: str | None = Field(None, description="Memory request of tune and train (default: memory).")
    accelerator: str = Field("nvidia.com/gpu", description="Accelerator type of tune and train when the trainer has "
                                                           "use_gpu: true (one per worker).")
    retries: int = Field(1, ge=0, le=10, description="Retries of a failed step, 30 s apart and doubling "
                                                     "(a local run makes none unless this is set).")
    caching: bool = Field(True, description="KFP's caching; every step's inputs include the stack's digest and "
                                            "the data's hash.")
    experiment: str = Field("aios", min_length=1, description="The KFP experiment of a run submitted with --host.")
    pipeline_root: str | None = Field(None, description="Where a local run (kfp.local) writes the steps' outputs "
                                                        "(default: RUNS_DIR/kfp-local).")

    @field_validator("cpu", "memory", "train_cpu", "train_memory", mode="before")
    @classmethod
    def _quantity(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # cpu: 2 in YAML is a number; Kubernetes takes "2"
        if value is not None and not (isinstance(value, str) and _QUANTITY.match(value)):
            raise ValueError("a Kubernetes quantity, e.g. 1, 500m (CPU) or 2Gi, 512Mi (memory)")
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(c.isspace() for c in value)):
            raise ValueError("an image reference such as registry.example.com/aios/digits-torch:1")
        return value


class KubeflowOrchestrator(Orchestrator):
    """Compiles a stack to a KFP v2 pipeline (one task per phase, the run directory an artifact between them) and
    runs it with kfp.local or on a Kubeflow Pipelines endpoint."""

    Params = KubeflowParams
    params: KubeflowParams

    @hookimpl
    def aios_compile_pipeline(self, stack: Any, phases: list[str], output: Path) -> Path:
        from aios_kubeflow.pipeline import compile_pipeline

        return compile_pipeline(stack, phases, Path(output), self.params)

    @hookimpl
    def aios_run_pipeline(self, stack: Any, phases: list[str], runs_root: Path, target: str | None) -> str:
        if target:
            from aios_kubeflow.local import submit

            return submit(stack, phases, self.params, target)
        from aios_kubeflow.local import run_local

        params = self.params
        if "retries" not in params.model_fields_set:  # a retry here would meet the same machine again
            params = params.model_copy(update={"retries": 0})
        root = Path(params.pipeline_root) if params.pipeline_root else Path(runs_root) / "kfp-local"
        return str(run_local(stack, phases, params, root, Path(runs_root)))
