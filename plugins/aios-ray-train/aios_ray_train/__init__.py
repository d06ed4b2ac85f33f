"""AIOS Ray Train plugin: the ``ray-train`` trainer, distributed data-parallel training of ``torch`` models.

A stack changes ``trainer: {plugin: torch}`` to ``trainer: {plugin: ray-train,
num_workers: N}`` and nothing else: the training parameters are the ``torch``
trainer's, and Ray Train's ``TorchTrainer`` runs the loop on N workers (DDP, gloo on
CPU, NCCL on GPUs). This module is what the entry point names, so it stays light:
ray and torch load inside ``aios_train``.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from aios_torch import TorchTrainerParams
from pydantic import Field, field_validator

from aios_core import Trainer, TrainResult, hookimpl
from aios_ray_train._errors import ClusterError, RayTrainFailed

if TYPE_CHECKING:
    from aios_core import Dataset, RunContext

__version__ = "0.1.0"
__all__ = ["ClusterError", "RayTrainFailed", "RayTrainParams", "RayTrainer", "__version__"]

_ADDRESS = re.compile(r"^(auto|(ray://)?[A-Za-z0-9_.\-\[\]:]+:\d{1,5})$")


class RayTrainParams(TorchTrainerParams):
    """The ``torch`` trainer's parameters plus where and how wide to run (a stack's ``trainer:`` section)."""

    num_workers: int = Field(2, ge=1, description="Training processes (DDP ranks); each trains on its shard.")
    cpus_per_worker: float = Field(1.0, gt=0.0, description="CPUs Ray reserves per worker; also its torch threads.")
    use_gpu: bool = Field(False, description="One GPU per worker and NCCL; false: CPU and gloo.")
    address: str | None = Field(
        None, description="null: start a local Ray on 127.0.0.1 for the run and stop it after; "
                          "auto, host:port or ray://host:port: use that existing cluster.")
    max_failures: int = Field(0, ge=-1, description="Worker-group restarts from the last checkpoint; -1: no limit.")
    checkpoint_frequency: None = Field(
        None, exclude=True, description="Removed: checkpoints follow checkpoint_interval_s, as with the torch trainer.")
    storage_path: str | None = Field(
        None, description="Where Ray Train persists checkpoints: a path every node can reach (relative: to the "
                          "directory aios run starts in) or a URI (s3://...); null: the run's checkpoints/ray.")
    start_timeout_s: float = Field(60.0, gt=0.0, description="Longest wait for the worker group to start (and, up to 10 s, to reach the cluster).")
    health_check_interval_s: float = Field(
        0.1, gt=0.0, description="How often Ray Train polls its workers; Ray's default, 2 s, adds up to 2 s per epoch.")

    @field_validator("checkpoint_frequency", mode="before")
    @classmethod
    def _checkpoint_frequency_removed(cls, value: Any) -> None:
        if value is not None:
            raise ValueError(
                "checkpoint_interval_s instead: checkpoint_frequency (epochs) was removed, checkpoints follow the "
                "torch trainer's policy (seconds since the last checkpoint, default 10; 0: every epoch)")

    @field_validator("address")
    @classmethod
    def _address_form(cls, value: str | None) -> str | None:
        if value is not None and not _ADDRESS.match(value):
            raise ValueError(f"expected null, auto, host:port or ray://host:port, got {value!r}")
        return value


class RayTrainer(Trainer):
    """Trains a ``torch`` framework model on Ray Train workers, with the ``torch`` trainer's semantics.

    Each worker reads its shard of the ``train`` and ``val`` splits through Ray Data (in
    memory: put in the object store once; streamed, ``Dataset.streams``: read window by
    window by Ray tasks) and orders it by the kernel's batch rule, ``batch_size //
    num_workers`` rows per step each, so one worker makes the steps of
    ``Dataset.batches``; rank 0's epoch metrics reach the monitors as each epoch ends; checkpoints go
    through Ray Train following ``checkpoint_interval_s`` (and at the end, and on Ctrl-C),
    so ``aios run --resume`` and ``max_failures`` continue from the last one. A non-finite
    loss stops it with ``aios_core.TrainingDiverged``, any other failure inside Ray with
    ``RayTrainFailed`` (Ray's last error line). The returned model holds the weights of
    the epoch with the lowest ``val_loss``.
    """

    Params = RayTrainParams
    frameworks = ("torch",)
    tasks = ("classification", "regression")
    streams = True  # streamed splits become Ray Data read tasks, one per window (aios_ray_train._data)
    # Keras would need Ray Train's TensorflowTrainer and TensorFlow in every worker; it is
    # not offered, so a stack with framework keras is refused before anything starts.

    def __init__(self, params: RayTrainParams | None = None, name: str | None = None) -> None:
        super().__init__(params, name or "ray-train")

    @classmethod
    def capabilities(cls) -> dict[str, Any]:
        return {**super().capabilities(), "distributed": "ray-train (DDP: gloo on CPU, nccl on GPU)"}

    @hookimpl
    def aios_validate(self) -> list[tuple[str, str]]:
        """Before a run: a worker group the local Ray (``address: null``) cannot hold on this machine's CPUs.

        An existing cluster's resources are checked when the run reaches it.
        """
        params = self.params
        if params.address is not None or params.use_gpu:
            return []
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        needed = params.num_workers * params.cpus_per_worker
        if needed <= cpus + 1e-9:
            return []
        fits = int(cpus // params.cpus_per_worker)
        return [("num_workers", (f"found {params.num_workers} workers x {params.cpus_per_worker:g} CPU = {needed:g} "
                                 f"CPUs, but the local Ray this run starts has this machine's {cpus}; expected at most "
                                 f"{fits} worker{'s' if fits != 1 else ''}, a lower cpus_per_worker, or an existing "
                                 "cluster (trainer.address)"))]

    @hookimpl
    def aios_train(self, model: Any, dataset: Dataset, run: RunContext, overrides: dict[str, Any]) -> TrainResult:
        from aios_ray_train import _driver

        params = RayTrainParams.model_validate({**self.params.model_dump(), **(overrides or {})})
        return _driver.train(model, dataset, run, params)

