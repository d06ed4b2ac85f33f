"""The ray-train trainer on the session's local Ray: the kernel's batch order, fault tolerance, resume, errors.

Every training here is the same small one (digits from the kit, an MLP without dropout,
a checkpoint every epoch). One worker makes the steps of a plain loop over
``Dataset.batches`` (the kernel's order); two workers train on their Ray Data shards,
so the 2-worker runs are held against one uninterrupted 2-worker run
(``ray_reference``): an interruption or a lost worker must not change its steps.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aios_ray_train import ClusterError, RayTrainer, RayTrainFailed, RayTrainParams
from aios_ray_train._driver import ray_location
from aios_torch import TorchFramework, TorchTrainerParams
from ray_train_helpers import EpochRecorder, home_token_state, kernel_order_losses, listening_sockets, ray_pids

from aios_core import ModelParams, RunContext, TrainingDiverged
from aios_core.testing import plugin_manager

pytestmark = pytest.mark.usefixtures("local_ray")

TRAINING = {"epochs": 4, "batch_size": 64, "learning_rate": 0.003, "progress_updates": 0, "checkpoint_interval_s": 0}
RAY = {"num_workers": 2}
LOOPBACK = ("127.0.0.1:", "[::ffff:127.0.0.1]:", "[::1]:")
SAME_STEPS = 1e-5
"""Relative agreement of losses (and absolute of weights) between trainings that make the same optimizer steps.

What may differ is the order of float additions (thread counts, DDP adding the ranks'
gradients), 1e-7 here; a real difference (another data order, a gradient summed instead
of averaged, a batch left out) moves the losses by 1e-3 or more.
"""


def _train(run_dir: Path, dataset: Any, *, trainer: Any = None, resume: bool = False,
           monitors: tuple[Any, ...] = (), **params: Any) -> Any:
    trainer = trainer or RayTrainer(RayTrainParams(**{**TRAINING, **RAY, **params}))
    pm = plugin_manager(TorchFramework(ModelParams(architecture="mlp", hidden_units=[64])), trainer, *monitors)
    run = RunContext(name="t", seed=7, threads=1, dir=run_dir, stack={}, hook=pm.hook, resume=resume,
                     checkpoint_dir=run_dir / "checkpoints")
    run.phase = "train"
    model = pm.hook.aios_build_model(dataset=dataset, run=run, overrides={})
    return pm.hook.aios_train(model=model, dataset=dataset, run=run, overrides={})


def _losses(history: list[dict[str, float]]) -> list[float]:
    """Each epoch's training and validation loss, in one flat list."""
    return [row[key] for row in history for key in ("loss", "val_loss")]


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory: pytest.TempPathFactory, digits_dataset: Any) -> Any:
    """ray-train on one worker, the splits in the object store."""
    return _train(tmp_path_factory.mktemp("one"), digits_dataset, num_workers=1)


REFERENCE_EPOCHS = 12
"""The 2-worker reference runs as long as the interrupted run; shorter runs match its first epochs
(each epoch's order and dropout are seeded by the epoch, and the stack has no schedule over epochs)."""


@pytest.fixture(scope="module")
def ray_reference(tmp_path_factory: pytest.TempPathFactory, digits_dataset: Any) -> Any:
    """One uninterrupted 2-worker training, the reference of the 2-worker runs."""
    return _train(tmp_path_factory.mktemp("reference"), digits_dataset, epochs=REFERENCE_EPOCHS)


INTERRUPTED_EPOCHS = REFERENCE_EPOCHS
"""The interrupted training is longer: its epochs take milliseconds, and Ctrl-C must come before the last."""


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory, digits_dataset: Any) -> Path:
    """A run directory whose training got Ctrl-C (SIGINT, as a terminal sends it) after epoch 1.

    The checkpoint policy would write none before the end (an hour between checkpoints), so
    a checkpoint it left was written because the driver asked the workers to stop. The
    signal comes 50 ms after epoch 1 is shown, while the driver waits for the workers.
    """
    def interrupt_soon() -> None:
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()

    run_dir = tmp_path_factory.mktemp("interrupted")
    with pytest.raises(KeyboardInterrupt):
        _train(run_dir, digits_dataset, epochs=INTERRUPTED_EPOCHS, checkpoint_interval_s=3600,
               monitors=(EpochRecorder(at_epoch=1, action=interrupt_soon),))
    return run_dir


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


def test_the_local_ray_listens_on_loopback_only(local_ray: Any, home_token_before_ray: Any) -> None:
    sockets = listening_sockets(ray_pids(local_ray.temp_dir))
    assert sockets, "found no listening socket of the local Ray's processes"
    assert [address for address, _ in sockets if not address.startswith(LOOPBACK)] == []
    # its token stays in its environment: a token file under the home directory, if any, is the user's own, untouched
    assert home_token_state() == home_token_before_ray, "the local Ray wrote a token under the home directory"


@pytest.mark.timeout(240)
def test_one_worker_makes_the_steps_of_the_kernels_batch_order(tmp_path: Path, digits_dataset: Any,
                                                                one_worker: Any) -> None:
    """One worker reads its shard (the whole split, one window, from the object store) and orders it by the
    kernel's rule: the optimizer steps of a plain loop over ``Dataset.batches``, up to float rounding."""
    assert [row["epoch"] for row in one_worker.history] == [1, 2, 3, 4]
    expected = kernel_order_losses(tmp_path, digits_dataset, TRAINING)
    assert _losses(one_worker.history) == pytest.approx(expected, rel=SAME_STEPS)


@pytest.mark.timeout(240)
def test_two_workers_train_on_their_shards_and_validate_the_whole_split(digits_dataset: Any,
                                                                        ray_reference: Any) -> None:
    """Two workers: each trains on its half of the train split; validation covers every row of the val split
    (Ray shards it unequally, the sums are all-reduced): the best epoch's val_loss is the returned model's."""
    import torch
    from aios_torch.training import loss_function, validation_metrics

    history = ray_reference.history
    assert [row["epoch"] for row in history] == list(range(1, REFERENCE_EPOCHS + 1))
    assert history[-1]["loss"] < history[0]["loss"] / 4
    assert history[-1]["val_accuracy"] > 0.9
    whole = validation_metrics(ray_reference.model, torch.from_numpy(digits_dataset.x_val),
                               torch.from_numpy(digits_dataset.y_val), loss_function("cross_entropy"))
    best = history[ray_reference.best_epoch - 1]
    assert whole["val_loss"] == pytest.approx(best["val_loss"], rel=1e-6)
    assert round(whole["val_accuracy"] * len(digits_dataset.y_val)) == round(best["val_accuracy"]
                                                                              * len(digits_dataset.y_val))


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_killed_worker_is_replaced_and_training_continues(tmp_path: Path, digits_dataset: Any,
                                                            ray_reference: Any,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    killed: list[int] = []

    def kill_a_worker() -> None:
        workers = _train_workers()
        assert workers, "found no Ray Train worker process to kill"
        os.kill(workers[-1], signal.SIGKILL)
        killed.append(workers[-1])

    recorder = EpochRecorder(at_epoch=2, action=kill_a_worker)
    with caplog.at_level(logging.INFO, logger="aios.ray-train"):
        result = _train(tmp_path, digits_dataset, max_failures=1, monitors=(recorder,))
    assert killed
    assert any("workers continue after epoch" in record.getMessage() for record in caplog.records), \
        "the worker group did not restart from a checkpoint"
    assert [epoch for epoch, _ in recorder.epochs] == [1, 2, 3, 4]
    assert _losses(result.history) == pytest.approx(_losses(ray_reference.history[:4]), rel=SAME_STEPS)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ctrl_c_stops_the_workers_after_a_checkpoint(interrupted: Path) -> None:
    checkpoints = sorted((interrupted / "checkpoints" / "ray").glob("*/epoch_*"))
    assert len(checkpoints) == 1, f"expected the stop's checkpoint only, found {checkpoints}"
    assert int(checkpoints[0].name.removeprefix("epoch_")) < INTERRUPTED_EPOCHS, "the workers did not stop early"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_an_interrupted_run_resumes_from_its_last_checkpoint(interrupted: Path, digits_dataset: Any,
                                                             ray_reference: Any) -> None:
    checkpoints = sorted((interrupted / "checkpoints" / "ray").glob("*/epoch_*"))
    assert checkpoints, "the interrupted run left no checkpoint"
    recorder = EpochRecorder()
    result = _train(interrupted, digits_dataset, resume=True, monitors=(recorder,), epochs=INTERRUPTED_EPOCHS,
                    checkpoint_interval_s=3600)
    first_new = int(checkpoints[-1].name.removeprefix("epoch_")) + 1
    assert [epoch for epoch, _ in recorder.epochs] == list(range(first_new, INTERRUPTED_EPOCHS + 1))
    assert [row["epoch"] for row in result.history] == list(range(1, INTERRUPTED_EPOCHS + 1))
    assert _losses(result.history) == pytest.approx(_losses(ray_reference.history), rel=SAME_STEPS)


@pytest.mark.slow
def test_resuming_with_changed_training_parameters_is_refused(interrupted: Path, digits_dataset: Any) -> None:
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"cannot resume, trainer parameters changed .* trainer\.learning_rate: "
                                         r"0\.003 -> 0\.1"):
        _train(interrupted, digits_dataset, resume=True, epochs=INTERRUPTED_EPOCHS, learning_rate=0.1)
    assert time.monotonic() - started < 10, "the refusal should come before any worker starts"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_non_finite_loss_stops_with_training_diverged_and_is_not_retried(tmp_path: Path,
                                                                          digits_dataset: Any) -> None:
    with pytest.raises(TrainingDiverged, match=r"^training diverged: epoch 1 ended with (val_)?loss = (nan|inf)"):
        _train(tmp_path, digits_dataset, optimizer="sgd", learning_rate=1e30, max_failures=-1)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_worker_that_raises_fails_with_rays_last_error_line(tmp_path: Path, digits_dataset: Any) -> None:
    y_train = digits_dataset.y_train.copy()
    y_train[:64] = 12  # a label the 10-class model has no output for: cross_entropy raises in every worker
    broken = dataclasses.replace(digits_dataset, y_train=y_train)
    with pytest.raises(RayTrainFailed) as raised:
        _train(tmp_path, broken)
    assert "\n" not in str(raised.value)
    assert "Target 12 is out of bounds" in str(raised.value)
    assert "Traceback" in str(raised.value.__cause__), "the chained error should hold Ray's report for run.log"


@pytest.mark.timeout(60)
def test_more_workers_than_the_cluster_has_cpus_fails_at_once(tmp_path: Path, digits_dataset: Any) -> None:
    started = time.monotonic()
    with pytest.raises(ClusterError, match=r"trainer\.num_workers: 64 workers .* need 64 CPUs"):
        _train(tmp_path, digits_dataset, num_workers=64)
    assert time.monotonic() - started < 15


@pytest.mark.timeout(60)
def test_an_unreachable_address_fails_at_once(tmp_path: Path, digits_dataset: Any) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(ClusterError, match=rf"trainer\.address: cannot reach a Ray cluster at '127.0.0.1:{port}'"):
        _train(tmp_path, digits_dataset, address=f"127.0.0.1:{port}")
    assert time.monotonic() - started < 15


def test_an_unwritable_storage_path_fails_before_ray_is_asked(tmp_path: Path, digits_dataset: Any) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ValueError, match=r"^trainer\.storage_path: cannot create the checkpoint directory "
                                         r".*a-file/ray \(Not a directory\)"):
        _train(tmp_path, digits_dataset, storage_path=str(tmp_path / "a-file" / "ray"))


def test_paths_reach_ray_absolute_and_uris_as_they_are(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert ray_location("runs/r1/checkpoints/ray") == str(tmp_path / "runs" / "r1" / "checkpoints" / "ray")
    assert ray_location(Path("runs") / ".." / "ray") == str(tmp_path / "ray")
    assert ray_location("s3://bucket/aios") == "s3://bucket/aios"
    assert ray_location("gs://bucket/a/b") == "gs://bucket/a/b"


def test_the_trainer_trains_torch_models_only() -> None:
    assert RayTrainer.frameworks == ("torch",)
