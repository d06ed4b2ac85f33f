"""The driver side of ``aios_train``: start or join Ray, run Ray Train's TorchTrainer, relay progress, bring the model back.

``TorchTrainer.fit`` blocks until training ends, so it runs in a thread while this
thread relays what rank 0 sends through the ``Channel`` actor to ``run.report_epoch``
and ``run.report_step``: the monitors see every epoch as it ends, on the thread that
runs them for any other trainer. Ctrl-C asks the workers to stop after the current
epoch (and checkpoint), so ``aios run --resume`` continues from it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aios_core import TrainResult
from aios_ray_train import _cluster, _loop

if TYPE_CHECKING:
    from aios_core import Dataset, RunContext
    from aios_ray_train import RayTrainParams

log = logging.getLogger("aios.ray-train")

_RESUMABLE_CHANGES = {"progress_updates", "num_workers", "cpus_per_worker", "use_gpu", "address", "max_failures",
                      "checkpoint_frequency", "storage_path", "start_timeout_s", "health_check_interval_s"}
"""Parameters that may differ between an interrupted run and its resumption: where and how wide, not what."""
_POLL_SECONDS = 0.2
_STOP_GRACE_SECONDS = 120.0


def train(model: Any, dataset: Dataset, run: RunContext, params: RayTrainParams) -> TrainResult:
    """Train ``model`` on Ray Train workers with ``params``; see ``RayTrainer``."""
    import torch.nn

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"the ray-train trainer trains torch.nn.Module models, got {type(model).__name__}")
    if len(dataset.y_val) == 0:
        raise ValueError(f"dataset {dataset.name!r} has an empty validation split; the ray-train trainer validates "
                         "every epoch (early stopping and best weights use val_loss): give the datastore a val split")
    storage = params.storage_path or str(Path(run.checkpoint_dir) / "ray")  # a path, or a URI such as s3://...
    # The name is the run's (and trial's): a new run starts fresh, aios run --resume finds its checkpoints.
    name = f"{Path(run.dir).name}-{Path(run.checkpoint_dir).name}"
    local_storage = "://" not in storage
    latest = _latest_checkpoint(Path(storage) / name) if run.resume and local_storage else None
    if latest is not None:
        _check_resumable(latest, params)
    env = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": str(params.health_check_interval_s),
           "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": str(params.start_timeout_s)}
    with _cluster.ray_session(params.address, timeout=params.start_timeout_s, env=env) as session:
        _cluster.check_resources(params.num_workers, params.cpus_per_worker, params.use_gpu, session.address)
        payload, history = _fit(model, dataset, run, params, storage, name, latest)
    if payload.get("best_state") is not None:
        model.load_state_dict(payload["best_state"])
    else:
        model.load_state_dict(payload["model"])
    model.eval()
    best_epoch = payload["best_epoch"] or payload["epoch"]
    return TrainResult(model=model, history=history, best_epoch=best_epoch, stopped_early=payload["stopped_early"])


def _fit(model: Any, dataset: Dataset, run: RunContext, params: RayTrainParams, storage: str, name: str,
         latest: Path | None) -> tuple[dict[str, Any], list[dict[str, float]]]:
    import ray
    import torch
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    channel = ray.remote(num_cpus=0)(_loop.Channel).remote()
    config = {"seed": run.seed, "params": params.model_dump(mode="json"), "channel": channel, "model": model,
              "x_train": dataset.x_train, "y_train": dataset.y_train, "x_val": dataset.x_val, "y_val": dataset.y_val}
    trainer = TorchTrainer(
        _loop.train_worker, train_loop_config=config,
        torch_config=TorchConfig(backend="nccl" if params.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=params.num_workers, use_gpu=params.use_gpu,
                                     resources_per_worker={"CPU": params.cpus_per_worker}),
        run_config=RunConfig(name=name, storage_path=storage,
                             failure_config=FailureConfig(max_failures=params.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2)),
    )  # resuming needs nothing more: Ray Train restores a run with the same name and storage path
    outcome: dict[str, Any] = {}

    def fit() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as error:  # noqa: BLE001 - re-raised on the calling thread
            outcome["error"] = error

    thread = threading.Thread(target=fit, name="aios-ray-train-fit", daemon=True)
    started = time.perf_counter()
    thread.start()
    relay = _Relay(run, _checkpoint_epoch(latest) if latest else 0)
    try:
        while thread.is_alive():
            thread.join(_POLL_SECONDS)
            relay.forward(ray.get(channel.drain.remote()))
        relay.forward(ray.get(channel.drain.remote()))
    except KeyboardInterrupt:
        log.warning("ray-train: interrupted; asking the workers to stop after this epoch and checkpoint")
        ray.get(channel.request_stop.remote())
        thread.join(_STOP_GRACE_SECONDS)
        raise
    log.info("ray-train: fit took %.1f s", time.perf_counter() - started)
    if "error" in outcome:
        error = outcome["error"]
        raise RuntimeError(f"Ray Train failed ({params.num_workers} workers, max_failures {params.max_failures}): "
                           f"{type(error).__name__}: {error}") from error
    result = outcome["result"]
    if result.checkpoint is None:
        raise RuntimeError("Ray Train finished without a checkpoint; the workers reported none")
    with result.checkpoint.as_directory() as directory:
        payload = torch.load(Path(directory) / _loop.CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    history = [dict(row) for row in payload["history"]]
    relay.complete(history)
    return payload, history


class _Relay:
    """Forwards what rank 0 sent to the run's monitors: each epoch once, in order."""

    def __init__(self, run: RunContext, reported: int) -> None:
        self.run = run
        self.reported = reported  # epochs shown before this call (a resumed run's earlier ones)
        self.started = time.perf_counter()

    def forward(self, items: list[tuple[Any, ...]]) -> None:
        for item in items:
            if item[0] == "epoch":
                _, epoch, metrics = item
                if epoch == self.reported + 1:  # after a restart, epochs already shown come again
                    self.reported = epoch
                    log.log(logging.INFO if epoch == 1 else logging.DEBUG, "ray-train: epoch %d reached the driver "
                            "%.1f s after fit started", epoch, time.perf_counter() - self.started)
                    self.run.report_epoch(epoch, dict(metrics))
            elif item[0] == "step":
                _, epoch, step, steps, loss = item
                if epoch == self.reported + 1:
                    self.run.report_step(epoch, step, steps, {"loss": loss})
            elif item[0] == "resumed":
                log.info("ray-train: workers continue after epoch %d (rank 0 pid %d)", item[1], item[2])
                if self.reported == 0:  # resumed from checkpoints this driver did not scan (remote storage)
                    self.reported = int(item[1])

    def complete(self, history: list[dict[str, float]]) -> None:
        """Report epochs the channel missed (a worker lost after checkpointing, before sending)."""
        for metrics in history[self.reported:]:
            self.reported = int(metrics["epoch"])
            self.run.report_epoch(self.reported, dict(metrics))


def _latest_checkpoint(directory: Path) -> Path | None:
    """The newest checkpoint Ray Train persisted for this run (``epoch_NNNNN``), or None."""
    found = sorted(p for p in directory.glob("epoch_*") if (p / _loop.CHECKPOINT_FILE).exists())
    return found[-1] if found else None


def _checkpoint_epoch(checkpoint: Path) -> int:
    return int(json.loads((checkpoint / _loop.PROGRESS_FILE).read_text())["epoch"])


def _check_resumable(checkpoint: Path, params: RayTrainParams) -> None:
    saved = json.loads((checkpoint / _loop.PROGRESS_FILE).read_text())["params"]
    current = params.model_dump(mode="json")
    changed = sorted(k for k in current if k not in _RESUMABLE_CHANGES and saved.get(k) != current[k])
    if changed:
        raise ValueError(
            f"{checkpoint}: cannot resume, trainer parameters changed since the checkpoint "
            + ", ".join(f"trainer.{k}: {saved.get(k)!r} -> {current[k]!r}" for k in changed)
            + "; restore them, or start a new run")
