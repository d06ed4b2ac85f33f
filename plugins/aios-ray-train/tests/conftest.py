"""Fixtures: one local Ray for the in-process tests, the digits data set, Ray's processes and their sockets."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from aios_core import Dataset, hash_arrays, hookimpl
from aios_ray_train import _cluster

TESTS_DIR = Path(__file__).parent
AIOS = Path(os.environ.get("VIRTUAL_ENV", Path(__import__("sys").executable).parent.parent)) / "bin" / "aios"


@pytest.fixture(scope="session")
def local_ray() -> Iterator[_cluster.Session]:
    """A local Ray started as the trainer starts one; trainers in this process use it instead of their own."""
    with _cluster.ray_session(None, timeout=60.0, env={"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1"}) as session:
        yield session


def digits_dataset() -> Dataset:
    """Digits 8x8, split 70/15/15 (stratified), standardized with the train split's statistics."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    raw = load_digits()
    x, y = raw.data.astype(np.float32), raw.target.astype(np.int64)
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.15, stratify=y, random_state=0)
    x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=0.15 / 0.85, stratify=y_rest,
                                                      random_state=0)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0

    def scale(part: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray((part - mean) / std, dtype=np.float32)

    return Dataset(name="digits", x_train=scale(x_train), y_train=y_train, x_val=scale(x_val), y_val=y_val,
                   x_test=scale(x_test), y_test=y_test, class_names=[str(i) for i in range(10)],
                   content_hash=hash_arrays(x, y), image_shape=(1, 8, 8))


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return digits_dataset()


class EpochRecorder:
    """A monitor that records epochs and can act at one of them (interrupt, kill a worker)."""

    def __init__(self, at_epoch: int | None = None, action: object = None) -> None:
        self.epochs: list[tuple[int, dict[str, float]]] = []
        self.at_epoch, self.action = at_epoch, action

    @hookimpl
    def aios_on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.epochs.append((epoch, metrics))
        if epoch == self.at_epoch and self.action is not None:
            self.action()


def ray_pids(temp_dir: str) -> set[int]:
    """Processes of the Ray whose temp dir is ``temp_dir``: they hold a file (a log, a socket) open inside it."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd).startswith(temp_dir) for fd in (entry / "fd").iterdir()):
                pids.add(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return pids


def listening_sockets(pids: set[int]) -> list[tuple[str, int]]:
    """(local address, pid) of every TCP socket the processes ``pids`` listen on (from ss -ltnp)."""
    found = []
    for line in subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout.splitlines():
        fields = line.split()
        for pid in map(int, re.findall(r"pid=(\d+)", line)):
            if pid in pids:
                found.append((fields[3], pid))
    return found


def stop_processes(pids: set[int], grace: float = 10.0) -> None:
    """SIGTERM the processes ``pids`` (only those), then SIGKILL what is left after ``grace`` seconds."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
        time.sleep(0.2)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
