"""The aios-core contract kit: the torch framework (MLP and CNN), the torch trainer and the native-format
compressors (torch-prune, distill) pass it.

The kit's light-import check also covers onnx and onnxscript here: they load only when a
model is exported.
"""

from __future__ import annotations

import pytest

from aios_core.testing import HEAVY_MODULES, CompressorContract, FrameworkContract, TrainerContract

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


class TestTorchPruneCompressor(CompressorContract):
    """Prunes the kit's small torch model (built and trained by the installed torch framework and trainer)."""

    heavy_modules = ML_LIBRARIES

    @pytest.fixture
    def component_name(self) -> str:
        return "torch-prune"

    @pytest.fixture
    def component_params(self) -> dict:
        return {"sparsity": 0.5, "steps": 1, "finetune_epochs": 1, "max_accuracy_drop": 1.0}

    @pytest.fixture
    def invalid_params(self) -> list[dict]:
        return [{"not_a_parameter": 1}, {"sparsity": 1.0}, {"criterion": "l0"}, {"steps": 0},
                {"sparsity": 0.5, "target_size_ratio": 0.5}]


class TestDistillCompressor(CompressorContract):
    heavy_modules = ML_LIBRARIES

    @pytest.fixture
    def component_name(self) -> str:
        return "distill"

    @pytest.fixture
    def component_params(self) -> dict:
        return {"student": {"hidden_units": [8]}, "epochs": 2, "max_accuracy_drop": 1.0}

    @pytest.fixture
    def invalid_params(self) -> list[dict]:
        return [{"not_a_parameter": 1}, {"temperature": 0}, {"alpha": 1.5},
                {"student": {"architecture": "pkg.mod:make"}}, {"student": {"hidden_units": []}}]
