"""The contract kit (aios_core.testing): the optuna tuner passes the tuner checks."""

from __future__ import annotations

import pytest

from aios_core.testing import HEAVY_MODULES, TunerContract


class TestOptunaTuner(TunerContract):
    # Listing plugins imports the entry point: it must not pay for optuna or sqlalchemy.
    heavy_modules = (*HEAVY_MODULES, "optuna", "sqlalchemy", "numpy")

    @pytest.fixture
    def component_name(self) -> str:
        return "optuna"

    @pytest.fixture(params=["tpe", "random"])
    def tuner_params(self, request: pytest.FixtureRequest) -> dict:
        return {"trials": 6, "sampler": request.param, "space": {
            "trainer.learning_rate": {"low": 1e-4, "high": 1e-1, "log": True},
            "model.hidden_units": [[16], [32, 16]],
        }}
