"""The ray-train trainer on a real local Ray: loopback only, fault tolerance, resume, clear errors."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from aios_ray_train import RayTrainer, RayTrainParams
from aios_ray_train._cluster import ClusterError
from aios_torch import TorchFramework
from ray_train_helpers import EpochRecorder, listening_sockets, ray_pids

from aios_core import ModelParams, RunContext
from aios_core.plugins import new_plugin_manager

pytestmark = pytest.mark.usefixtures("local_ray")

TRAINING = {"epochs": 6, "batch_size": 64, "learning_rate": 0.003, "num_workers": 2, "progress_updates": 0}
LOOPBACK = ("127.0.0.1:", "[::ffff:127.0.0.1]:", "[::1]:")


def _train(run_dir: Path, dataset: Any, *, resume: bool = False, monitors: tuple[Any, ...] = (), **trainer: Any):
    pm = new_plugin_manager()
    pm.register(TorchFramework(ModelParams(architecture="mlp", hidden_units=[64])), name="framework")
    pm.register(RayTrainer(RayTrainParams(**{**TRAINING, **trainer})), name="trainer")
    for number, monitor in enumerate(monitors):
        pm.register(monitor, name=f"monitor-{number}")
    run = RunContext(name="t", seed=7, threads=1, dir=run_dir, stack={}, hook=pm.hook, resume=resume)
    run.phase = "train"
    model = pm.hook.aios_build_model(dataset=dataset, run=run, overrides={})
    return pm.hook.aios_train(model=model, dataset=dataset, run=run, overrides={})


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _train_workers() -> list[int]:
    workers = []
    for pid in _descendants(os.getpid()):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::RayTrainWorker"):
                workers.append(pid)
        except OSError:
            continue
    return sorted(workers)


def test_the_local_ray_listens_on_loopback_only(local_ray: Any) -> None:
    sockets = listening_sockets(ray_pids(local_ray.temp_dir))
    assert sockets, "found no listening socket of the local Ray's processes"
    assert [address for address, _ in sockets if not address.startswith(LOOPBACK)] == []
    assert not (Path.home() / ".ray" / "auth_token").exists(), "the local Ray wrote a token under the home directory"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_killed_worker_is_replaced_and_training_continues(tmp_path: Path, digits: Any) -> None:
    killed: list[int] = []

    def kill_a_worker() -> None:
        workers = _train_workers()
        assert workers, "found no Ray Train worker process to kill"
        os.kill(workers[-1], signal.SIGKILL)
        killed.append(workers[-1])

    recorder = EpochRecorder(at_epoch=2, action=kill_a_worker)
    result = _train(tmp_path, digits, max_failures=1, monitors=(recorder,))
    assert killed
    assert [epoch for epoch, _ in recorder.epochs] == list(range(1, TRAINING["epochs"] + 1))
    assert [row["epoch"] for row in result.history] == list(range(1, TRAINING["epochs"] + 1))
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    pytest.fault_tolerant_history = result.history  # compared with the resumed run below


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_an_interrupted_run_resumes_from_its_last_checkpoint(tmp_path: Path, digits: Any) -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, digits, monitors=(EpochRecorder(at_epoch=2, action=interrupt),))
    checkpoints = sorted((tmp_path / "checkpoints" / "ray").glob("*/epoch_*"))
    assert checkpoints, "the interrupted run left no checkpoint"
    recorder = EpochRecorder()
    result = _train(tmp_path, digits, resume=True, monitors=(recorder,))
    first_new = int(checkpoints[-1].name.removeprefix("epoch_")) + 1
    assert [epoch for epoch, _ in recorder.epochs] == list(range(first_new, TRAINING["epochs"] + 1))
    assert [row["epoch"] for row in result.history] == list(range(1, TRAINING["epochs"] + 1))
    other = getattr(pytest, "fault_tolerant_history", None)
    if other is not None:  # two restarts from different epochs give the same training
        assert [row["loss"] for row in result.history] == pytest.approx([row["loss"] for row in other], rel=1e-5)


@pytest.mark.timeout(60)
def test_more_workers_than_the_cluster_has_cpus_fails_at_once(tmp_path: Path, digits: Any) -> None:
    started = time.monotonic()
    with pytest.raises(ClusterError, match=r"trainer\.num_workers: 64 workers .* need 64 CPUs"):
        _train(tmp_path, digits, num_workers=64)
    assert time.monotonic() - started < 15


@pytest.mark.timeout(60)
def test_an_unreachable_address_fails_at_once(tmp_path: Path, digits: Any) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(ClusterError, match=rf"trainer\.address: cannot reach a Ray cluster at '127.0.0.1:{port}'"):
        _train(tmp_path, digits, address=f"127.0.0.1:{port}")
    assert time.monotonic() - started < 15


def test_resuming_with_changed_training_parameters_is_refused(tmp_path: Path, digits: Any) -> None:
    checkpoint = tmp_path / "checkpoints" / "ray" / f"{tmp_path.name}-checkpoints" / "epoch_00001"
    checkpoint.mkdir(parents=True)
    (checkpoint / "aios-ray-train.pt").write_bytes(b"")
    params = RayTrainParams(**TRAINING).model_dump(mode="json")
    (checkpoint / "progress.json").write_text(__import__("json").dumps({"epoch": 1, "params": params}))
    with pytest.raises(ValueError, match=r"trainer\.learning_rate: 0\.003 -> 0\.1"):
        _train(tmp_path, digits, resume=True, learning_rate=0.1)


def test_the_trainer_trains_torch_models_only() -> None:
    assert RayTrainer.frameworks == ("torch",)
