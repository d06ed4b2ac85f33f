"""Fixtures shared by the kernel tests."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

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
