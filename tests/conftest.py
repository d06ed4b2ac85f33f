"""Fixtures shared by the kernel tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return tmp_path / "site"
