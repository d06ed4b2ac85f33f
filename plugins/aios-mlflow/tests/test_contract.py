"""The contract kit (aios_core.testing): the mlflow monitor receives a run's events in order, against a real
tracking server, and its package imports no MLflow when listed."""

from __future__ import annotations

from typing import Any

import pytest
from aios_mlflow_test_helpers import MlflowServer

from aios_core.testing import HEAVY_MODULES, MonitorContract


class TestMlflowMonitor(MonitorContract):
    # Listing plugins imports the entry point: MLflow takes seconds to import, and must not.
    heavy_modules = (*HEAVY_MODULES, "mlflow", "onnx", "numpy")

    @pytest.fixture
    def component_name(self) -> str:
        return "mlflow"

    @pytest.fixture
    def component_params(self, mlflow_server: MlflowServer) -> dict[str, Any]:
        return {"tracking_uri": mlflow_server.uri, "experiment": "contract-kit"}

    @pytest.fixture
    def invalid_params(self) -> list[dict[str, Any]]:
        return [{"not_a_parameter": 1}, {"required": "sometimes"}, {"register": ""}, {"request_timeout_s": 0}]
