"""Importing the plugin (what discovery and ``aios plugins info`` do) must stay cheap."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_plugin_loads_no_ml_library() -> None:
    code = ("import sys, aios_data; aios_data.FilesDatastore.capabilities(); aios_data.SklearnDatastore.Params(); "
            "print(sorted(m for m in ('sklearn', 'pandas', 'pyarrow', 'torch', 'onnxruntime') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_entry_points_name_both_datastores() -> None:
    from importlib.metadata import entry_points

    from aios_data import FilesDatastore, SklearnDatastore

    found = {ep.name: ep.load() for ep in entry_points(group="aios.datastores") if ep.value.startswith("aios_data:")}
    assert found == {"sklearn": SklearnDatastore, "files": FilesDatastore}


def test_capabilities_list_data_sets_and_formats() -> None:
    from aios_data import FilesDatastore, SklearnDatastore

    assert SklearnDatastore.capabilities() == {"datasets": ["digits", "iris", "wine", "breast_cancer"]}
    assert FilesDatastore.capabilities() == {"formats": ["csv", "parquet", "npz", "idx"]}
    assert SklearnDatastore.kind == FilesDatastore.kind == "datastore"
