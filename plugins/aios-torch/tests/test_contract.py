"""The aios-core contract kit: the torch framework (MLP and CNN) and the torch trainer pass it.

The kit's light-import check also covers onnx and onnxscript here: they load only when a
model is exported.
"""

from __future__ import annotations

import pytest

from aios_core.testing import HEAVY_MODULES, FrameworkContract, TrainerContract

ML_LIBRARIES = (*HEAVY_MODULES, "onnx", "onnxscript")


class TestTorchFramework(FrameworkContract):
    heavy_modules = ML_LIBRARIES

    @pytest.fixture
    def component_name(self) -> str:
        return "torch"

    @pytest.fixture(params=[{"architecture": "mlp", "hidden_units": [32]},
                            {"architecture": "cnn", "conv_channels": [8], "hidden_units": [32]}],
                    ids=["mlp", "cnn"])
    def component_params(self, request: pytest.FixtureRequest) -> dict:
        return request.param

    @pytest.fixture
    def invalid_params(self) -> list[dict]:
        return [{"not_a_parameter": 1}, {"architecture": "transformer"}, {"dropout": 1.5}, {"hidden_units": []}]


class TestTorchTrainer(TrainerContract):
    heavy_modules = ML_LIBRARIES

    @pytest.fixture
    def component_name(self) -> str:
        return "torch"

    @pytest.fixture
    def component_params(self) -> dict:
        return {"epochs": 5, "batch_size": 32, "learning_rate": 0.01, "progress_updates": 1}

    @pytest.fixture
    def invalid_params(self) -> list[dict]:
        return [{"not_a_parameter": 1}, {"epochs": 0}, {"optimizer": "lion"}, {"learning_rate": -1.0},
                {"checkpoint_interval_s": -1.0}]
