"""The contract kit against the installed components: what AIOS relies on from a framework and a trainer."""

from __future__ import annotations

import pytest
from aios_core.testing import FrameworkContract, TrainerContract


class TestNearestCentroidFramework(FrameworkContract):
    @pytest.fixture(params=[{}, {"priors": "frequency"}], ids=["uniform", "frequency"])
    def component_params(self, request: pytest.FixtureRequest) -> dict:
        return request.param

    @pytest.fixture
    def component_name(self) -> str:
        return "nearest-centroid"

    @pytest.fixture
    def invalid_params(self) -> list[dict]:
        return [{"priors": "learned"}, {"min_variance": 0}, {"hidden_units": [64]}]


class TestNearestCentroidTrainer(TrainerContract):
    @pytest.fixture
    def component_name(self) -> str:
        return "nearest-centroid"

    @pytest.fixture
    def invalid_params(self) -> list[dict]:
        return [{"epochs": 0}, {"learning_rate": 0.1}]
