"""Fixtures: a run directory holding a small ONNX classifier, and servers for it on 127.0.0.1.

The model is built with onnx's helpers (a 64-32-10 MLP with fixed random weights and a
softmax), so these tests need no framework and no training; what they check is the
server, not the model. The data sets (``digits_dataset``, ``tiny_dataset``) are the
contract kit's. The helpers live in ``aios_serve_test_helpers`` (a name no other test
directory uses: the repository's suite runs every plugin's tests in one session, in
importlib mode).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from aios_serve_test_helpers import FEATURES, ServerProcess, make_run_dir


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "load: the 30-second load test (deselect with -m 'not load')")


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run_dir(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="session")
def rows() -> np.ndarray:
    """64 preprocessed rows, the kind of rows the model takes."""
    return np.random.default_rng(1).normal(0, 1, (64, FEATURES)).astype(np.float32)


@pytest.fixture(scope="session")
def reference(run_dir: Path):  # type: ignore[no-untyped-def]
    """In-process probabilities for the run's model, from the kernel's ONNX Runtime predictor."""
    from aios_core import onnx_predictor

    return onnx_predictor(run_dir / "artifacts" / "model.onnx")


@pytest.fixture(scope="module")
def server(run_dir: Path) -> Iterator[str]:
    """The server for ``run_dir`` in a thread of the test process, auth off (the repository API on), small body limit."""
    from aios_serve.server import BackgroundServer, ServerSettings

    with BackgroundServer([run_dir], settings=ServerSettings(max_body_bytes=256 * 1024, repository_api=True)) as running:
        yield running.url


@pytest.fixture
def server_process(run_dir: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(str(run_dir))
    yield process
    process.terminate()


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A real run of the default stack (a few epochs, ``aios run`` in a subprocess), shared by the suite."""
    from aios_core import RunDirectory
    from aios_core.testing import run_aios

    root = tmp_path_factory.mktemp("e2e")
    result = run_aios("run", "--runs-dir", str(root / "runs"), "--set", "evaluate.min_accuracy=0.5",
                      "--set", "deployer.smoke_requests=50", cwd=root, env={"AIOS_EPOCHS": "3"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (run,) = (root / "runs").iterdir()
    return RunDirectory.open(run)


@pytest.fixture(scope="session")
def served_run(finished_run) -> Iterator[ServerProcess]:  # type: ignore[no-untyped-def]
    """``aios serve`` of the real run, HTTP and gRPC on free ports, in its own process."""
    process = ServerProcess(str(finished_run.path), aios=True)
    yield process
    process.terminate()
