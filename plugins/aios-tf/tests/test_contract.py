"""The aios-core contract kit: the keras framework (MLP and CNN) and the keras trainer pass it."""

from __future__ import annotations

import pytest

from aios_core.testing import FrameworkContract, TrainerContract


class TestKerasFramework(FrameworkContract):
    @pytest.fixture
    def component_name(self) -> str:
        return "keras"

    @pytest.fixture(params=[{"architecture": "mlp", "hidden_units": [32]},
                            {"architecture": "cnn", "conv_channels": [8], "hidden_units": [32]}],
                    ids=["mlp", "cnn"])
    def component_params(self, request: pytest.FixtureRequest) -> dict:
        return request.param

    @pytest.fixture
    def invalid_params(self) -> list[dict]:
        return [{"not_a_parameter": 1}, {"architecture": "transformer"}, {"dropout": 1.5}, {"hidden_units": []}]


class TestKerasTrainer(TrainerContract):
    @pytest.fixture
    def component_name(self) -> str:
        return "keras"

    @pytest.fixture
    def framework_name(self) -> str:
        return "keras"

    @pytest.fixture
    def component_params(self) -> dict:
        return {"epochs": 5, "batch_size": 32, "learning_rate": 0.01, "progress_updates": 1}

    @pytest.fixture
    def invalid_params(self) -> list[dict]:
        return [{"not_a_parameter": 1}, {"epochs": 0}, {"optimizer": "lion"}, {"learning_rate": -1.0}]
