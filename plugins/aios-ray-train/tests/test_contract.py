"""The kernel's contract kit: the ray-train trainer passes the trainer contract (on the session's local Ray)."""

from __future__ import annotations

import pytest

from aios_core.testing import TrainerContract


@pytest.mark.usefixtures("local_ray")
class TestRayTrainer(TrainerContract):
    share_training = True  # a Ray Train fit starts processes (seconds, not milliseconds): train once for the class

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
