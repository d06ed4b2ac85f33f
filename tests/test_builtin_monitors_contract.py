"""The aios-kernel contract kit: the built-in console and jsonl monitors pass it."""

from __future__ import annotations

import pytest

from aios_core.testing import MonitorContract


class TestConsoleMonitor(MonitorContract):
    @pytest.fixture
    def component_name(self) -> str:
        return "console"

    @pytest.fixture(params=["lines", "bar"])
    def component_params(self, request: pytest.FixtureRequest) -> dict:
        return {"progress": request.param}

    @pytest.fixture
    def invalid_params(self) -> list[dict]:
        return [{"not_a_parameter": 1}, {"progress": "fancy"}]


class TestJsonlMonitor(MonitorContract):
    @pytest.fixture
    def component_name(self) -> str:
        return "jsonl"
