"""The contract kit (aios_core.testing): ``kubeflow`` is an orchestrator as the kernel loads and calls them."""

from __future__ import annotations

import pytest

from aios_core.testing import HEAVY_MODULES, OrchestratorContract


class TestKubeflowOrchestrator(OrchestratorContract):
    heavy_modules = (*HEAVY_MODULES, "kfp", "kubernetes", "google.protobuf")  # kfp loads in the hooks only

    @pytest.fixture
    def component_name(self) -> str:
        return "kubeflow"

    @pytest.fixture
    def component_params(self) -> dict:
        return {"image": "registry.example.com/aios/digits:1", "retries": 2}

    @pytest.fixture
    def invalid_params(self) -> list[dict]:
        return [{"memory": "2GB"}, {"retries": -1}, {"image": ""}, {"not_a_parameter": 1}]
