"""Fixtures shared by the kernel tests."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from documented_commands import CloneRun, run_in_a_fresh_clone

# The helper modules the tests import: their asserts report values as a test's own do (and
# contract_kit_support, a plugin of the kit's tests as well, is imported before pytest registers it).
pytest.register_assert_rewrite("support", "contract_kit_support")


def pytest_configure(config: pytest.Config) -> None:
    """Let SIGINT interrupt again when the suite was started in the background.

    A shell without job control starts background commands with SIGINT ignored, and every
    process they start inherits that, so an ``aios run`` these tests interrupt as Ctrl-C would
    ignored the signal and ran on. A handler installed here is reset to the default in each
    child, where Python installs its KeyboardInterrupt handler again, as under a terminal.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return tmp_path / "site"


# Training runs several modules check, each made once per session at the root of a fresh clone copy
# (tests/documented_commands.py); the modules only read them.
DEFAULT_STACK_RUN = ".venv/bin/aios run"
"""scripts/run-default-stack.sh's run step: the bundled default stack, its own epochs."""
COMPRESS_EXAMPLE_RUN = "aios run examples/digits-compress.yaml"
"""The compression example as docs/compression.md shows it (its own epochs)."""


@pytest.fixture(scope="session")
def default_stack_run(tmp_path_factory: pytest.TempPathFactory) -> CloneRun:
    """The default stack, run by scripts/run-default-stack.sh's run step from a fresh clone's root."""
    return run_in_a_fresh_clone(tmp_path_factory.mktemp("default-stack") / "aios", DEFAULT_STACK_RUN)


@pytest.fixture(scope="session")
def compress_example_run(tmp_path_factory: pytest.TempPathFactory) -> CloneRun:
    """The compression example, run as documented from a fresh clone's root."""
    return run_in_a_fresh_clone(tmp_path_factory.mktemp("compress-example") / "aios", COMPRESS_EXAMPLE_RUN)
