"""The kernel's contract kit: the ray-train trainer passes the trainer contract (on the session's local Ray)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from aios_core import Monitor, hookimpl
from aios_core.testing import TrainerContract, Training, plugin_manager


class _Recorder(Monitor):
    """What the trainer reported, in the shape the kit's checks read (``Training.recorder``)."""

    def __init__(self) -> None:
        super().__init__(name="recorder")
        self.epochs: list[tuple[str, int, dict[str, float]]] = []
        self.steps: list[tuple[str, int, int, int]] = []

    @hookimpl
    def aios_on_epoch_end(self, phase: str, epoch: int, metrics: dict[str, float]) -> None:
        self.epochs.append((phase, epoch, dict(metrics)))

    @hookimpl
    def aios_on_step(self, phase: str, epoch: int, step: int, total_steps: int) -> None:
        self.steps.append((phase, epoch, step, total_steps))


@pytest.mark.usefixtures("local_ray")
class TestRayTrainer(TrainerContract):
    _trained: ClassVar[dict[str, Training]] = {}

    @pytest.fixture
    def component_name(self) -> str:
        return "ray-train"

    @pytest.fixture
    def component_params(self) -> dict:
        return {"num_workers": 2, "epochs": 4, "batch_size": 32, "learning_rate": 0.01, "progress_updates": 1}

    @pytest.fixture
    def invalid_params(self) -> list[dict]:
        return [{"not_a_parameter": 1}, {"num_workers": 0}, {"address": "not an address"},
                {"cpus_per_worker": 0}, {"optimizer": "lion"}, {"checkpoint_frequency": 2}]

    @pytest.fixture
    def training(self, component: Any, framework: Any, dataset: Any,
                 aios_run_context: Callable[..., Any]) -> Training:
        """The kit's training, done once for the class: a Ray Train fit starts processes (seconds, not ms)."""
        if "training" not in self._trained:
            recorder = _Recorder()
            pm = plugin_manager(framework, component, recorder)
            run = aios_run_context(pm)
            run.phase = "train"
            model = pm.hook.aios_build_model(dataset=dataset, run=run, overrides={})
            result = pm.hook.aios_train(model=model, dataset=dataset, run=run, overrides={})
            self._trained["training"] = Training(result=result, recorder=recorder, plugin_manager=pm, run=run)
        return self._trained["training"]
