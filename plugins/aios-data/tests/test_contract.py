"""The aios-core contract kit: the sklearn and files datastores pass it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aios_core.testing import DatastoreContract


class TestSklearnDatastore(DatastoreContract):
    @pytest.fixture
    def component_name(self) -> str:
        return "sklearn"

    @pytest.fixture
    def component_params(self) -> dict:
        return {"dataset": "iris"}

    @pytest.fixture
    def invalid_params(self) -> list[dict]:
        return [{"not_a_parameter": 1}, {"dataset": "imagenet"}, {"split": {"validation": 0.9}},
                {"preprocess": {"scaling": "log"}}]


class TestFilesDatastore(DatastoreContract):
    @pytest.fixture
    def component_name(self) -> str:
        return "files"

    @pytest.fixture
    def component_params(self, tmp_path: Path) -> dict:
        rng = np.random.default_rng(0)
        path = tmp_path / "points.csv"
        rows = ["x,y,target"] + [f"{rng.normal(label * 3, 1):.4f},{rng.normal(-label, 1):.4f},{name}"
                                 for label, name in enumerate(("low", "mid", "high")) for _ in range(20)]
        path.write_text("\n".join(rows) + "\n")
        return {"path": str(path)}

    @pytest.fixture
    def invalid_params(self) -> list[dict]:
        return [{"not_a_parameter": 1}, {"format": "xlsx"}, {"target": ""}]
