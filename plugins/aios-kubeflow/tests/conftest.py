"""Fixtures: the bundled default stack compiled once. Helpers live in ``kubeflow_test_helpers``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from kubeflow_test_helpers import aios


@pytest.fixture(scope="session")
def default_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled default stack compiled with the default options."""
    output = tmp_path_factory.mktemp("compiled") / "pipeline.yaml"
    code, out, err = aios("pipeline", "compile", "-o", str(output))
    assert code == 0, err
    return output
