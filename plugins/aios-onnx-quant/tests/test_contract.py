"""The aios-core contract kit: the onnx-quant compressor passes it in static and dynamic mode.

Its input is made the kit's way: a small torch model (aios-torch, which the test extra
brings), trained briefly on the kit's tiny data set and exported to ONNX.
"""

from __future__ import annotations

import pytest

from aios_core.testing import CompressorContract


class TestOnnxQuantCompressor(CompressorContract):
    @pytest.fixture
    def component_name(self) -> str:
        return "onnx-quant"

    @pytest.fixture
    def input_framework(self) -> str:
        return "torch"

    @pytest.fixture(params=["static", "dynamic"])
    def component_params(self, request: pytest.FixtureRequest) -> dict:
        return {"mode": request.param, "calibration_samples": 64, "latency_runs": 5}

    @pytest.fixture
    def invalid_params(self) -> list[dict]:
        return [{"not_a_parameter": 1}, {"mode": "fp4"}, {"max_accuracy_drop": 2.0}, {"calibration_samples": 0}]
