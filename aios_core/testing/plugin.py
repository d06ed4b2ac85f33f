"""pytest plugin (entry point ``pytest11: aios``): the fixtures of the AIOS contract test kit.

pytest loads this module in every session of an environment where aios-kernel is
installed, so it imports nothing heavy at the top: numpy, pydantic and the kernel's
modules load inside the fixtures that use them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import pluggy

    from aios_core.context import RunContext, RunOptions
    from aios_core.records import Dataset


@pytest.fixture
def aios_plugin_manager() -> pluggy.PluginManager:
    """A fresh plugin manager as a run starts: the AIOS hook specs and the kernel's built-in hooks, no component."""
    from aios_core.plugins import new_plugin_manager

    return new_plugin_manager()


@pytest.fixture
def tiny_dataset() -> Dataset:
    """``aios_core.testing.tiny_dataset()``: 4 gaussian classes, 16 features (1x4x4), 144/48/48 rows."""
    from aios_core.testing._data import tiny_dataset as make

    return make()


@pytest.fixture
def tiny_regression_dataset() -> Dataset:
    """``aios_core.testing.tiny_regression_dataset()``: 16 features, one standardized target, 144/48/48 rows."""
    from aios_core.testing._data import tiny_regression_dataset as make

    return make()


@pytest.fixture(scope="session")
def digits_dataset() -> Dataset:
    """``aios_core.testing.digits_dataset()``: scikit-learn's digits, 60/20/20, standardized, made once per session."""
    from aios_core.testing.tools import digits_dataset as make

    return make()


@pytest.fixture
def aios_run_context(tmp_path: Path, aios_plugin_manager: pluggy.PluginManager) -> Callable[..., RunContext]:
    """Make a RunContext in a new run directory under ``tmp_path``, wired to a plugin manager.

    ``aios_run_context(pm=None, *, seed=0, threads=1, options=None, stack=None, resume=False,
    name="contract")``: ``pm`` defaults to the test's ``aios_plugin_manager``. The run
    directory is made as ``aios run`` makes one (it exists and holds the lock file);
    ``checkpoints/`` and ``artifacts/`` are left for the components to create.
    """
    from aios_core.context import RunContext
    from aios_core.rundir import RunDirectory

    def make(pm: pluggy.PluginManager | None = None, *, seed: int = 0, threads: int = 1,
             options: RunOptions | None = None, stack: dict[str, Any] | None = None, resume: bool = False,
             name: str = "contract") -> RunContext:
        run_dir = RunDirectory.create(tmp_path / "runs", name)
        run_dir.write_lock({"name": name, "description": "written by aios_core.testing", "seed": seed,
                            "threads": threads, **dict(stack or {})})
        manager = pm if pm is not None else aios_plugin_manager
        return RunContext(name=name, seed=seed, threads=threads, dir=run_dir.path, stack=dict(stack or {}),
                          hook=manager.hook, resume=resume, options=options, checkpoint_dir=run_dir.checkpoints_dir)

    return make
