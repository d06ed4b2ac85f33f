"""Fixtures: the kit's tiny data set, and a run whose plugin manager holds the components under test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aios_core import RunContext
from aios_core.testing import plugin_manager, tiny_dataset


@pytest.fixture
def dataset():
    return tiny_dataset()


@pytest.fixture
def run_with(tmp_path: Path) -> Callable[..., RunContext]:
    """``run_with(*components, resume=False, run_dir=None)``: a run in phase ``train`` reaching them."""

    def make(*components: Any, resume: bool = False, run_dir: Path | None = None) -> RunContext:
        directory = run_dir or tmp_path
        directory.mkdir(parents=True, exist_ok=True)
        run = RunContext(name="test", seed=0, threads=1, dir=directory, stack={}, hook=plugin_manager(*components).hook,
                         resume=resume)
        run.phase = "train"
        return run

    return make
