"""Helpers of the tests: a recording monitor, Ray's processes and their sockets."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

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


class ParquetSplit:
    """A streamed split over one Parquet file (columns ``f0``.. and ``label``), the ``SplitStream`` contract:
    ``read(start, stop)`` opens the file and reads only the row groups that hold those rows.

    It stands in for a streaming datastore's split: picklable (it holds a path), read where Ray runs the task.
    """

    def __init__(self, path: str, window_rows: int) -> None:
        import pyarrow.parquet as pq

        self.path, self.window_rows = path, window_rows
        self.rows = pq.ParquetFile(path).metadata.num_rows
        self.reads: list[tuple[int, int]] = []  # in this process only: what the driver itself read

    def read(self, start: int, stop: int) -> tuple[object, object]:
        import numpy as np
        import pyarrow.parquet as pq

        self.reads.append((start, stop))
        file = pq.ParquetFile(self.path)
        groups, first, offset = [], None, 0
        for index in range(file.num_row_groups):
            size = file.metadata.row_group(index).num_rows
            if offset < stop and offset + size > start:
                groups.append(index)
                first = offset if first is None else first
            offset += size
        table = file.read_row_groups(groups).slice(start - first, stop - start)
        features = [name for name in table.column_names if name != "label"]
        x = np.column_stack([table[name].to_numpy() for name in features]).astype(np.float32)
        return x, table["label"].to_numpy().astype(np.int64)


def write_parquet(path: Path, x: object, y: object, row_group_rows: int) -> None:
    """``x`` (n, features) and ``y`` as a Parquet file of ``row_group_rows``-row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {f"f{index}": x[:, index] for index in range(x.shape[1])}  # type: ignore[index]
    pq.write_table(pa.table({**columns, "label": y}), path, row_group_size=row_group_rows)


def kernel_order_losses(run_dir: Path, dataset: Any, training: dict[str, Any]) -> list[float]:
    """Each epoch's training and validation loss of a plain single-process loop over ``Dataset.batches`` (the
    kernel's order) with the torch trainer's steps: the MLP the tests train, seed 7."""
    import torch
    from aios_torch import TorchFramework, TorchTrainerParams
    from aios_torch.training import loss_function, make_optimizer, validation_metrics

    from aios_core import ModelParams, RunContext
    from aios_core.testing import plugin_manager

    pm = plugin_manager(TorchFramework(ModelParams(architecture="mlp", hidden_units=[64])))
    run = RunContext(name="t", seed=7, threads=1, dir=run_dir, stack={}, hook=pm.hook)
    model = pm.hook.aios_build_model(dataset=dataset, run=run, overrides={})
    optimizer, criterion = make_optimizer(model, TorchTrainerParams(**training)), loss_function("cross_entropy")
    losses = []
    for epoch in range(1, training["epochs"] + 1):
        model.train()
        loss_sum = 0.0
        for x, y in dataset.batches("train", training["batch_size"], seed=7, epoch=epoch):
            loss = criterion(model(torch.from_numpy(x)), torch.from_numpy(y))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(y)
        validation = validation_metrics(model, torch.from_numpy(dataset.x_val), torch.from_numpy(dataset.y_val),
                                        criterion)
        losses += [loss_sum / len(dataset.y_train), validation["val_loss"]]
    return losses


HOME_TOKEN = Path.home() / ".ray" / "auth_token"
"""Where Ray keeps a token it generates (and where `ray get-auth-token --generate` puts the user's own)."""


def home_token_state() -> tuple[int, int] | None:
    """HOME_TOKEN's modification time and size, or None where there is none."""
    try:
        stat = HOME_TOKEN.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size
