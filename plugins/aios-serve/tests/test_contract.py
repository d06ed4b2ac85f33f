"""The contract kit (aios_core.testing): both deployers deploy a model and pass their smoke test.

The input model needs no framework: the helpers' MLP (fixed random weights, built with
onnx's helper API) sized for the kit's ``tiny_dataset``, so the contract runs wherever
aios-serve is installed, with or without a framework plugin beside it.
"""

from __future__ import annotations

import pytest
from aios_serve_test_helpers import write_mlp

from aios_core import Dataset, ModelArtifact
from aios_core.testing import DeployerContract


class OnnxInput:
    """The kit's input model, replaced by an ONNX classifier of the tiny data set's shape."""

    @pytest.fixture
    def input_artifact(self, tiny_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> ModelArtifact:
        path = write_mlp(tmp_path_factory.mktemp("contract-input") / "model.onnx",
                         features=tiny_dataset.num_features, classes=tiny_dataset.num_classes)
        return ModelArtifact(name="onnx", path=path, format="onnx", producer="test")


class TestOipDeployer(OnnxInput, DeployerContract):
    @pytest.fixture
    def component_name(self) -> str:
        return "oip"

    @pytest.fixture
    def component_params(self) -> dict:
        return {"smoke_requests": 24}

    @pytest.fixture
    def invalid_params(self) -> list[dict]:
        return [{"not_a_parameter": 1}, {"port": 70000}, {"max_batch_size": 0}, {"max_delay_ms": -1},
                {"token_env": "not a variable"}]


class TestKServeDeployer(OnnxInput, DeployerContract):
    @pytest.fixture
    def component_name(self) -> str:
        return "kserve"

    @pytest.fixture
    def component_params(self) -> dict:
        return {"smoke_requests": 24}

    @pytest.fixture
    def invalid_params(self) -> list[dict]:
        return [{"not_a_parameter": 1}, {"service_name": "Not_A_DNS_Name"}, {"max_batch_size": 0}]
