"""Helpers of the tests: a recording monitor, Ray's processes and their sockets."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from aios_core import Monitor, hookimpl


class EpochRecorder(Monitor):
    """A monitor that records epochs and can act at one of them (interrupt, kill a worker)."""

    def __init__(self, at_epoch: int | None = None, action: object = None) -> None:
        super().__init__(name="epoch-recorder")
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


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def stop_processes(pids: set[int], grace: float = 10.0) -> None:
    """SIGTERM the processes ``pids`` (only those), then SIGKILL what is left after ``grace`` seconds."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.2)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
