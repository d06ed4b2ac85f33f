"""Fixtures: one local Ray for the whole session (the in-process trainers use it instead of starting their own).

Digits come from the kernel's kit (the ``digits_dataset`` session fixture).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aios_ray_train import _cluster

sys.path.insert(0, str(Path(__file__).parent))  # ray_train_helpers (pytest runs with --import-mode=importlib)
from ray_train_helpers import home_token_state  # noqa: E402 (found through the line above)


def pytest_configure(config: pytest.Config) -> None:
    # The repository's pytest configuration declares it too; this one counts where the plugin is tested alone.
    config.addinivalue_line("markers", "slow: end-to-end runs that train real models")


@pytest.fixture(scope="session")
def home_token_before_ray() -> tuple[int, int] | None:
    """HOME_TOKEN as it was before the session's local Ray started (a user's own token may be there)."""
    return home_token_state()


@pytest.fixture(scope="session")
def local_ray(home_token_before_ray: tuple[int, int] | None) -> Iterator[_cluster.Session]:
    """A local Ray started as the trainer starts one; trainers in this process use it instead of their own."""
    with _cluster.ray_session(None, timeout=60.0, env={"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1"}) as session:
        yield session
