"""Each step's image and resource requests, from the stack and the orchestrator's parameters (no kfp here)."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["default_image", "step_resources"]


def default_image(stack_name: str) -> str:
    """The steps' image when the orchestrator section names none: ``aios-STACKNAME:latest``."""
    return f"aios-{re.sub(r'[^a-z0-9.-]+', '-', stack_name.lower()).strip('-.') or 'stack'}:latest"


def _cpus(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{int(round(value * 1000))}m"


def step_resources(stack: Any, phase: str, options: Any) -> dict[str, Any]:
    """CPU and memory requests of a phase's task, and its accelerator (``type``, ``count``) when it trains on GPUs.

    Every task asks for the stack's ``threads`` CPUs unless ``--cpu``; ``tune``, ``train`` and ``compress-native``
    ask for the trainer's own (``num_workers`` x ``cpus_per_worker`` for ray-train) unless
    ``--train-cpu``, and for one accelerator per worker when the trainer has ``use_gpu: true``.
    """
    cpu = options.cpu or _cpus(stack.settings.threads)
    resources: dict[str, Any] = {"cpu": cpu, "memory": options.memory, "accelerator": None}
    if phase in ("tune", "train", "compress-native"):  # compress-native fine-tunes with the trainer
        trainer = stack.resolved.get("trainer") or {}
        workers = int(trainer.get("num_workers") or 1)
        per_worker = float(trainer.get("cpus_per_worker") or stack.settings.threads)
        resources["cpu"] = options.train_cpu or _cpus(workers * per_worker)
        resources["memory"] = options.train_memory or options.memory
        if trainer.get("use_gpu"):
            resources["accelerator"] = {"type": options.accelerator, "count": workers}
    return resources


