"""The aios-core contract kit: both deployers deploy the kit's model and pass their smoke test.

The kit's input model is a small model of an installed framework that exports ONNX
(aios-torch, which the test extra brings), trained briefly on the kit's tiny data set.
"""

from __future__ import annotations

import pytest

from aios_core.testing import DeployerContract


class TorchInput:
    """Make the kit's input model with aios-torch (keras would do too, but costs seconds per model)."""

    @pytest.fixture
    def input_framework(self) -> str:
        return "torch"


class TestOipDeployer(TorchInput, DeployerContract):
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


class TestKServeDeployer(TorchInput, DeployerContract):
    @pytest.fixture
    def component_name(self) -> str:
        return "kserve"

    @pytest.fixture
    def component_params(self) -> dict:
        return {"smoke_requests": 24}

    @pytest.fixture
    def invalid_params(self) -> list[dict]:
        return [{"not_a_parameter": 1}, {"service_name": "Not_A_DNS_Name"}, {"max_batch_size": 0}]
