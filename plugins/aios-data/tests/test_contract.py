"""The kernel's contract kit (``aios_core.testing``): the sklearn and files datastores pass it.

Its import check runs in a fresh interpreter: importing ``aios_data`` and creating
either datastore loads none of the kit's heavy libraries, nor the ones these datastores
load only when data is loaded (scikit-learn, pandas, pyarrow, scipy).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from aios_core.testing import HEAVY_MODULES, DatastoreContract

from aios_data import FilesDatastore, SklearnDatastore

DATA_LIBRARIES = ("sklearn", "pandas", "pyarrow", "scipy")


class TestSklearnDatastore(DatastoreContract):
    heavy_modules = (*HEAVY_MODULES, *DATA_LIBRARIES)

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
    heavy_modules = (*HEAVY_MODULES, *DATA_LIBRARIES)

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


def test_capabilities_list_data_sets_and_formats() -> None:
    assert SklearnDatastore.capabilities() == {"datasets": ["digits", "iris", "wine", "breast_cancer", "diabetes"]}
    assert FilesDatastore.capabilities() == {"formats": ["csv", "parquet", "npz", "idx"]}
