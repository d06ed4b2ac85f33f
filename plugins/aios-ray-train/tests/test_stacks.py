"""Whole stacks through ``aios run`` (a subprocess), from a fresh working directory, as a user runs them.

The documented swap is the heaviest scenario: it runs once (``documented_swap``) and
several tests read what it left. It is the only run of that command in CI: the kernel's
tests/test_documented_commands.py decides it NOT_RUN there, pointing here, and checks that
the pages show exactly ``DOCUMENTED_SWAP``.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray_train_helpers import listening_sockets, ray_pids, stop_processes

from aios_core import RunDirectory
from aios_core.testing import run_aios

STACKS = Path(__file__).parent / "stacks"
RAY = Path(sys.executable).parent / "ray"  # the ray command line, installed beside this Python
LOOPBACK = ("127.0.0.1:", "[::ffff:127.0.0.1]:", "[::1]:")
RAY_NOISE = re.compile(r"ray::|\(pid=|raylet|gcs_server|RayTrainWorker|Started a local Ray|Ray Train", re.IGNORECASE)
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\s+File \"", re.MULTILINE)

AIOS = Path(sys.executable).parent / "aios"  # the aios command line, installed beside this Python
DOCUMENTED_SWAP = ("run", "--set", "trainer.plugin=ray-train", "--set", "trainer.num_workers=2")
"""The one-line swap as README.md, the plugin's README and docs/scaling-out.md write it (after ``aios``)."""
EPOCHS = 20
"""The bundled stack's epochs (``epochs: ${AIOS_EPOCHS:-20}``): the swap runs in a user's environment, without
``AIOS_*`` variables, so the caller's environment cannot lower them. Fewer epochs save little (Ray's start-up
dominates; an epoch takes a fraction of a second) and risk the stack's own gate (int8 test accuracy at least 0.97;
12 epochs gave 0.9704)."""


def _only_run(cwd: Path) -> RunDirectory:
    runs = sorted((cwd / "runs").iterdir())
    assert len(runs) == 1, f"expected one run under {cwd / 'runs'}, found {runs}"
    return RunDirectory.open(runs[0])


@pytest.fixture(scope="module")
def documented_swap(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The documented command, run once as written (the ``aios`` command line) in an empty directory, in a user's
    environment (no ``AIOS_*`` variables: the default ``runs/``, the stack's own epochs)."""
    cwd = tmp_path_factory.mktemp("fresh")
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIOS_")}
    return cwd, subprocess.run([str(AIOS), *DOCUMENTED_SWAP], cwd=cwd, env=env, capture_output=True, text=True,
                               timeout=600, check=False)


@pytest.mark.slow
@pytest.mark.timeout(700)
def test_the_documented_swap_runs_from_an_empty_directory(documented_swap: tuple[Path, Any]) -> None:
    cwd, done = documented_swap
    assert done.returncode == 0, f"aios run failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    run = _only_run(cwd)
    # the run directory it prints, as the user reads it, is the one under ./runs
    assert re.findall(r"^completed (runs/\S+)$", done.stdout, flags=re.MULTILINE) == [f"runs/{run.path.name}"]
    lock = yaml.safe_load((run.path / "stack.lock.yaml").read_text())
    assert (lock["trainer"]["plugin"], lock["trainer"]["num_workers"]) == ("ray-train", 2)
    state = run.read_state()
    assert state.status == "completed"
    epochs = [row["epoch"] for row in state.phases["train"]["history"]]
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) <= EPOCHS  # early stopping may end it sooner
    assert sorted(run.checkpoints_dir.glob("ray/*/epoch_*")), "Ray Train persisted no checkpoint under the run"
    assert state.phases["compress"]["artifacts"], "the int8 compressor did not run on the model"


@pytest.mark.slow
@pytest.mark.timeout(700)
def test_ray_stays_off_the_console(documented_swap: tuple[Path, Any]) -> None:
    cwd, done = documented_swap
    printed = done.stdout + done.stderr
    assert [line for line in printed.splitlines() if RAY_NOISE.search(line)] == []
    trained = len(_only_run(cwd).read_state().phases["train"]["history"])
    assert re.findall(rf"epoch (\d+)/{EPOCHS}\b", printed) == [str(epoch) for epoch in range(1, trained + 1)]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_failure_inside_ray_is_one_line_on_the_console(tmp_path: Path) -> None:
    """Ray's controller cannot open the storage (a URI scheme pyarrow does not know): its own last error line is
    what the console shows, the tracebacks go to run.log."""
    done = run_aios(*DOCUMENTED_SWAP, "--set", "trainer.storage_path=nope://bucket/aios", cwd=tmp_path,
                    env={"AIOS_EPOCHS": "2"}, timeout=240)
    assert done.returncode != 0
    expected = "RayTrainFailed: ArrowInvalid: Unrecognized filesystem type in URI: nope://bucket/aios"
    assert [line for line in done.stdout.splitlines() if "failed:" in line] == [f"✗ train failed: {expected}"]
    assert len(done.stderr.splitlines()) == 1 and expected in done.stderr, done.stderr
    assert not TRACEBACK.search(done.stdout + done.stderr)
    log = _only_run(tmp_path).log_file.read_text()
    assert TRACEBACK.search(log) and "ArrowInvalid: Unrecognized filesystem type in URI" in log


@pytest.fixture
def ray_cluster() -> Iterator[tuple[str, str, dict[str, str]]]:
    """A Ray head started with ``ray start --head`` on 127.0.0.1, its own port and temp dir; stopped afterwards.

    Yields its address, its temp dir and the environment a client needs (its token).
    """
    temp_dir = tempfile.mkdtemp(prefix="aios-rt-head-", dir="/tmp")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", **client}
    started = subprocess.run([str(RAY), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                              f"--temp-dir={temp_dir}", "--num-cpus=2", "--include-dashboard=false",
                              "--disable-usage-stats"], capture_output=True, text=True, timeout=120, env=env,
                             check=False)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield f"127.0.0.1:{port}", temp_dir, client
    finally:
        stop_processes(ray_pids(temp_dir), grace=3.0)  # gcs_server and the autoscaler monitor outwait SIGTERM
        subprocess.run(["rm", "-rf", temp_dir], check=False)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_stack_trains_on_an_existing_cluster_given_its_address(
        tmp_path: Path, ray_cluster: tuple[str, str, dict[str, str]]) -> None:
    address, temp_dir, client = ray_cluster
    sockets = listening_sockets(ray_pids(temp_dir))
    assert sockets and [a for a, _ in sockets if not a.startswith(LOOPBACK)] == []
    done = run_aios("run", str(STACKS / "digits-mlp-ray.yaml"), "--set", f"trainer.address={address}",
                    cwd=tmp_path, env=client, timeout=240)
    assert done.returncode == 0, f"aios run failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    run = _only_run(tmp_path)
    state = run.read_state()
    assert [row["epoch"] for row in state.phases["train"]["history"]] == [1, 2, 3]
    assert state.phases["evaluate"]["test_accuracy"] > 0.85
    assert ray_pids(temp_dir), "the run stopped the cluster it only joined"
    assert "joined Ray" in run.log_file.read_text()


def test_a_keras_stack_with_ray_train_is_refused_before_anything_starts(tmp_path: Path) -> None:
    if not any(entry.name == "keras" for entry in entry_points(group="aios.frameworks")):
        pytest.skip("no keras framework installed (aios-tf)")
    done = run_aios("run", "--set", "model.framework=keras", "--set", "trainer.plugin=ray-train", cwd=tmp_path,
                    timeout=120)
    assert done.returncode != 0
    assert ("trainer.plugin: trainer 'ray-train' cannot train models of framework 'keras' (model.framework); "
            "it trains: torch") in done.stdout + done.stderr
    assert not (tmp_path / "runs").exists(), "a run directory was made for a stack that cannot run"


def test_validate_refuses_more_workers_than_the_local_ray_can_hold(tmp_path: Path) -> None:
    """Checked before a run starts (no Ray is started), from this machine's CPUs."""
    cpus = len(os.sched_getaffinity(0))
    (tmp_path / "stack.yaml").write_text("name: wide\ndata: {plugin: sklearn, dataset: digits}\nmodel: {framework: torch}\n"
                                         f"trainer: {{plugin: ray-train, num_workers: {cpus + 1}}}\n")
    for command in ("validate", "run"):
        result = run_aios(command, "stack.yaml", cwd=tmp_path)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2 and len(errors) == 1, result.stderr
        assert errors[0].startswith(f"error: stack.yaml:4: trainer.num_workers: found {cpus + 1} workers x 1 CPU"), errors
    assert not (tmp_path / "runs").exists()
