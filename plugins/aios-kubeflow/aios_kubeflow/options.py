"""What shapes a compiled pipeline besides the stack: image, resource requests, retries, caching (no kfp here)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["PipelineOptions", "default_image", "step_resources"]

_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


@dataclass(frozen=True)
class PipelineOptions:
    """What ``aios pipeline compile`` takes besides the stack; None: derived from the stack."""

    image: str | None = None
    cpu: str | None = None
    memory: str = "2Gi"
    train_cpu: str | None = None
    train_memory: str | None = None
    accelerator: str = "nvidia.com/gpu"
    retries: int = 1
    caching: bool = True

    def check(self) -> None:
        """ValueError naming the option for a value Kubernetes would refuse."""
        for option, value in (("--cpu", self.cpu), ("--memory", self.memory), ("--train-cpu", self.train_cpu),
                              ("--train-memory", self.train_memory)):
            if value is not None and not _QUANTITY.match(value):
                raise ValueError(f"{option} {value!r} is not a Kubernetes quantity; expected e.g. "
                                 + ("'1', '500m'" if "cpu" in option else "'2Gi', '512Mi'"))
        if self.retries < 0:
            raise ValueError(f"--retries {self.retries}: expected 0 or more")
        if self.image is not None and (not self.image or any(c.isspace() for c in self.image)):
            raise ValueError(f"--image {self.image!r}: expected an image reference such as registry/aios-digits:1")


def default_image(stack_name: str) -> str:
    """The image name ``aios pipeline dockerfile`` suggests building for a stack."""
    return f"aios-{re.sub(r'[^a-z0-9.-]+', '-', stack_name.lower()).strip('-.') or 'stack'}:latest"


def _cpus(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{int(round(value * 1000))}m"


def step_resources(stack: Any, phase: str, options: PipelineOptions) -> dict[str, Any]:
    """CPU and memory requests of a phase's task, and its accelerator (``type``, ``count``) when it trains on GPUs.

    Every task asks for the stack's ``threads`` CPUs unless ``--cpu``; ``tune`` and ``train``
    ask for the trainer's own (``num_workers`` x ``cpus_per_worker`` for ray-train) unless
    ``--train-cpu``, and for one accelerator per worker when the trainer has ``use_gpu: true``.
    """
    cpu = options.cpu or _cpus(stack.settings.threads)
    resources: dict[str, Any] = {"cpu": cpu, "memory": options.memory, "accelerator": None}
    if phase in ("tune", "train"):
        trainer = stack.resolved.get("trainer") or {}
        workers = int(trainer.get("num_workers") or 1)
        per_worker = float(trainer.get("cpus_per_worker") or stack.settings.threads)
        resources["cpu"] = options.train_cpu or _cpus(workers * per_worker)
        resources["memory"] = options.train_memory or options.memory
        if trainer.get("use_gpu"):
            resources["accelerator"] = {"type": options.accelerator, "count": workers}
    return resources


