"""Whole stacks through ``aios run`` (a subprocess, as a user runs them): a local Ray, and an existing cluster."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from ray_train_helpers import AIOS, listening_sockets, ray_pids, stop_processes

STACKS = Path(__file__).parent / "stacks"
RAY = AIOS.parent / "ray"
LOOPBACK = ("127.0.0.1:", "[::ffff:127.0.0.1]:", "[::1]:")
RAY_NOISE = re.compile(r"ray::|\(pid=|raylet|gcs_server|RayTrainWorker|Started a local Ray|Ray Train", re.IGNORECASE)


def _aios_run(runs: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 240) -> tuple[dict, str]:
    """Run ``aios run`` and return the run's state and what it printed; fail with both outputs on error."""
    done = subprocess.run([str(AIOS), "run", *args, "--runs-dir", str(runs)], capture_output=True, text=True, check=False,
                          timeout=timeout, env={**os.environ, **(env or {})})
    assert done.returncode == 0, f"aios run failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    run_dir = Path(re.findall(r"^completed (\S+)$", done.stdout, re.MULTILINE)[-1])
    return json.loads((run_dir / "state.json").read_text()), done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_digits_on_two_local_workers_matches_the_single_process_trainer(tmp_path: Path) -> None:
    """The bundled stack with one line changed (trainer plugin and num_workers), against the stack as it is."""
    common = ["--set", "evaluate.min_accuracy=0.9", "--set", "evaluate.latency_runs=5"]
    env = {"AIOS_EPOCHS": "10"}
    single, _ = _aios_run(tmp_path / "torch", *common, env=env)
    distributed, printed = _aios_run(tmp_path / "ray", *common, "--set", "trainer.plugin=ray-train",
                                     "--set", "trainer.num_workers=2", env=env)
    assert distributed["phases"]["train"]["best_epoch"] >= 1
    assert len(distributed["phases"]["train"]["history"]) == len(single["phases"]["train"]["history"])
    assert abs(distributed["phases"]["evaluate"]["test_accuracy"]
               - single["phases"]["evaluate"]["test_accuracy"]) <= 0.01
    assert distributed["phases"]["compress"]["artifacts"], "the int8 compressor did not run on the model"
    assert [line for line in printed.splitlines() if RAY_NOISE.search(line)] == []
    assert re.findall(r"epoch (\d+)/10", printed) == [str(epoch) for epoch in range(1, 11)]


@pytest.fixture
def ray_cluster() -> Iterator[tuple[str, str]]:
    """A Ray head started with ``ray start --head`` on 127.0.0.1, its own port and temp dir; stopped afterwards."""
    temp_dir = tempfile.mkdtemp(prefix="aios-rt-head-", dir="/tmp")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    started = subprocess.run([str(RAY), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                              f"--temp-dir={temp_dir}", "--num-cpus=2", "--include-dashboard=false",
                              "--disable-usage-stats"], capture_output=True, text=True, timeout=120, env=env,
                             check=False)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        os.environ.update({k: env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")})
        yield f"127.0.0.1:{port}", temp_dir
    finally:
        for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
            os.environ.pop(name, None)
        stop_processes(ray_pids(temp_dir))
        subprocess.run(["rm", "-rf", temp_dir], check=False)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_stack_trains_on_an_existing_cluster_given_its_address(tmp_path: Path, ray_cluster: tuple[str, str]) -> None:
    address, temp_dir = ray_cluster
    sockets = listening_sockets(ray_pids(temp_dir))
    assert sockets and [a for a, _ in sockets if not a.startswith(LOOPBACK)] == []
    state, _ = _aios_run(tmp_path, str(STACKS / "digits-mlp-ray.yaml"), "--set", f"trainer.address={address}")
    assert [row["epoch"] for row in state["phases"]["train"]["history"]] == [1, 2, 3]
    assert state["phases"]["evaluate"]["test_accuracy"] > 0.85
    assert ray_pids(temp_dir), "the run stopped the cluster it only joined"
    run_log = Path(state["phases"]["train"]["artifact"]["path"]).parent.parent / "run.log"
    assert "joined Ray" in run_log.read_text()


def test_a_keras_stack_with_ray_train_is_refused_before_anything_starts(tmp_path: Path) -> None:
    from aios_core.plugins import installed

    if not any(entry.name == "keras" for entry in installed("framework")):
        pytest.skip("no keras framework installed (aios-tf)")
    done = subprocess.run([str(AIOS), "run", "--set", "model.framework=keras", "--set", "trainer.plugin=ray-train",
                           "--runs-dir", str(tmp_path)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert ("trainer.plugin: trainer 'ray-train' cannot train models of framework 'keras' (model.framework); "
            "it trains: torch") in done.stdout + done.stderr
    assert not any(tmp_path.iterdir()), "a run directory was made for a stack that cannot run"
