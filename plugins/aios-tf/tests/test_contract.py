"""The contract kit (`aios_core.testing`): the keras framework (MLP and CNN) and the keras trainer pass it."""

from __future__ import annotations

import pytest

from aios_core.testing import HEAVY_MODULES, FrameworkContract, TrainerContract

LAZY_MODULES = (*HEAVY_MODULES, "keras", "tf2onnx", "onnx")
"""What the entry-point module and creating a component must not import: the kit's list and TensorFlow's companions."""


class TestKerasFramework(FrameworkContract):
    heavy_modules = LAZY_MODULES

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
    heavy_modules = LAZY_MODULES

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
        return [{"not_a_parameter": 1}, {"epochs": 0}, {"optimizer": "lion"}, {"learning_rate": -1.0},
                {"checkpoint_interval_s": -1}]

