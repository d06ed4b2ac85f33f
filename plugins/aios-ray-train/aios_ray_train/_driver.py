"""The driver side of ``aios_train``: start or join Ray, run Ray Train's TorchTrainer, relay progress, bring the model back.

``TorchTrainer.fit`` blocks until training ends, so it runs in a thread while this
thread relays what rank 0 sends through the ``Channel`` actor to ``run.report_epoch``
and ``run.report_step``: the monitors see every epoch as it ends, on the thread that
runs them for any other trainer. Ctrl-C asks the workers to stop after the current
epoch (and checkpoint), so ``aios run --resume`` continues from it.

Paths leave AIOS here: every path handed to Ray is absolute (Ray reads a relative path
as a URI without a scheme, ``ArrowInvalid: URI has empty scheme``), a URI such as
``s3://...`` is passed as it is. A failure inside Ray comes back as one line, Ray's own
last error (``RayTrainFailed``, chained to Ray's whole report for ``run.log``); a
non-finite loss as the kernel's ``TrainingDiverged``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aios_core import TrainingDiverged, TrainResult, check_resume_params, one_line
from aios_ray_train import _cluster, _loop
from aios_ray_train._errors import RayTrainFailed

if TYPE_CHECKING:
    from aios_core import Dataset, RunContext
    from aios_ray_train import RayTrainParams

log = logging.getLogger("aios.ray-train")

PLACEMENT_PARAMS = frozenset({"num_workers", "cpus_per_worker", "use_gpu", "address", "max_failures", "storage_path",
                              "start_timeout_s", "health_check_interval_s"})
"""Parameters that may change between an interrupted run and its resumption: where and how wide it runs, not
what it computes (the kernel's ``check_resume_params`` adds its own, such as ``checkpoint_interval_s``)."""
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_POLL_SECONDS = 0.2
_STOP_GRACE_SECONDS = 120.0


def ray_location(path: str | os.PathLike[str]) -> str:
    """``path`` as Ray must get it: a URI (``s3://bucket/prefix``, ``gs://...``) as it is; a path made absolute,
    a relative one against the working directory ``aios run`` started in."""
    text = os.fspath(path)
    if _URI.match(text):
        return text
    return os.path.abspath(os.path.expanduser(text))


def train(model: Any, dataset: Dataset, run: RunContext, params: RayTrainParams) -> TrainResult:
    """Train ``model`` on Ray Train workers with ``params``; see ``RayTrainer``."""
    import torch.nn

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"the ray-train trainer trains torch.nn.Module models, got {type(model).__name__}")
    if dataset.rows("val") == 0:
        raise ValueError(f"dataset {dataset.name!r} has an empty validation split; the ray-train trainer validates "
                         "every epoch (early stopping and best weights use val_loss): give the datastore a val split")
    storage = ray_location(params.storage_path or Path(run.checkpoint_dir) / "ray")
    if not _URI.match(storage):
        _create_directory(storage, "trainer.storage_path" if params.storage_path else "the run's checkpoints/ray")
    # The name is the run's (and trial's): a new run starts fresh, aios run --resume finds its checkpoints.
    name = f"{Path(run.dir).name}-{Path(run.checkpoint_dir).name}"
    latest = _latest_checkpoint(storage, name) if run.resume else None
    if latest is not None:
        _check_resumable(*latest, params)
    log.info("ray-train: checkpoints in %s/%s", storage, name)
    env = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": str(params.health_check_interval_s),
           "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": str(params.start_timeout_s)}
    with _cluster.ray_session(params.address, timeout=params.start_timeout_s, env=env) as session:
        _cluster.check_resources(params.num_workers, params.cpus_per_worker, params.use_gpu, session.address)
        payload, history = _fit(model, dataset, run, params, storage, name, latest[1]["epoch"] if latest else 0)
    if payload.get("best_state") is not None:
        model.load_state_dict(payload["best_state"])
    else:
        model.load_state_dict(payload["model"])
    model.eval()
    best_epoch = payload["best_epoch"] or payload["epoch"]
    return TrainResult(model=model, history=history, best_epoch=best_epoch, stopped_early=payload["stopped_early"])


def _create_directory(path: str, what: str) -> None:
    """Make the local storage directory now: a path Ray cannot write fails here, before Ray starts, in one line."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"{what}: cannot create the checkpoint directory {path} ({error.strerror or error}); "
                         "give trainer.storage_path a writable directory, or a URI such as s3://bucket/prefix") from None


def _fit(model: Any, dataset: Dataset, run: RunContext, params: RayTrainParams, storage: str, name: str,
         shown: int) -> tuple[dict[str, Any], list[dict[str, float]]]:
    import ray
    import torch
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from aios_ray_train import _data

    channel = ray.remote(num_cpus=0)(_loop.Channel).remote()
    # No data in the loop's configuration: the splits go to Ray Data (the object store once, or read by tasks).
    config = {"seed": run.seed, "params": params.model_dump(mode="json"), "channel": channel, "model": model,
              "loss": params.loss_for(dataset.task), "train_rows": dataset.rows("train"),
              "target_scale": dataset.target_scale if dataset.task == "regression" else None}
    started = time.perf_counter()
    datasets = _data.ray_datasets(dataset, params.num_workers)
    where = {name: "streamed" if name in dataset.streams else "in the object store" for name in _data.SPLITS}
    log.info("ray-train: %s (%.1f s)", ", ".join(f"{name} {where[name]} ({dataset.rows(name)} rows)"
                                                 for name in _data.SPLITS), time.perf_counter() - started)
    trainer = TorchTrainer(
        _loop.train_worker, train_loop_config=config, datasets=datasets, dataset_config=_data.Ingest(),
        torch_config=TorchConfig(backend="nccl" if params.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=params.num_workers, use_gpu=params.use_gpu,
                                     resources_per_worker={"CPU": params.cpus_per_worker}),
        run_config=RunConfig(name=name, storage_path=storage,
                             failure_config=FailureConfig(max_failures=params.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2)),
    )  # resuming needs nothing more: Ray Train restores a run with the same name and storage path
    outcome: dict[str, Any] = {}
    # Waiting on an Event, not on Thread.join: a join that Ctrl-C interrupts while the thread runs marks
    # the thread as finished (Python 3.11's threading._wait_for_tstate_lock, its bpo-45274 branch releases
    # the running thread's lock), so the stop below did not wait and no checkpoint was written.
    finished = threading.Event()

    def fit() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as error:  # noqa: BLE001 - re-raised on the calling thread
            outcome["error"] = error
        finally:
            finished.set()

    started = time.perf_counter()
    threading.Thread(target=fit, name="aios-ray-train-fit", daemon=True).start()
    relay = _Relay(run, shown)
    try:
        while not finished.wait(_POLL_SECONDS):
            relay.forward(ray.get(channel.drain.remote()))
        relay.forward(ray.get(channel.drain.remote()))
    except BaseException as stop:  # Ctrl-C, or run.report_epoch stopping the trial (a tuner prunes it): workers stop
        why = "interrupted" if isinstance(stop, KeyboardInterrupt) else f"stopped by {type(stop).__name__}"
        log.warning("ray-train: %s; asking the workers to stop after this epoch and checkpoint", why)
        interrupted = time.perf_counter()
        ray.get(channel.request_stop.remote())
        if not finished.wait(_STOP_GRACE_SECONDS):
            log.warning("ray-train: the workers did not stop within %.0f s", _STOP_GRACE_SECONDS)
        elif "error" in outcome:
            log.warning("ray-train: Ray Train ended with %s while stopping", one_line(outcome["error"]),
                        exc_info=outcome["error"])
        else:
            log.info("ray-train: the workers stopped after a checkpoint (%.1f s after the interrupt)",
                     time.perf_counter() - interrupted)
        raise
    log.info("ray-train: fit took %.1f s", time.perf_counter() - started)
    if relay.diverged is not None:
        raise TrainingDiverged(relay.diverged)
    if "error" in outcome:
        # Ray's message holds whole tracebacks (the driver's, the workers'); the console gets its last error
        # line, run.log the chain (the runner logs it, with the workers' logs copied by ray_session).
        raise RayTrainFailed(one_line(outcome["error"])) from outcome["error"]
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
        self.diverged: str | None = None  # TrainingDiverged's message, from rank 0

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
            elif item[0] == "diverged":
                self.diverged = item[1]
            elif item[0] == "resumed":
                log.info("ray-train: workers continue after epoch %d (rank 0 pid %d)", item[1], item[2])
                if self.reported == 0:  # resumed from a checkpoint the driver did not find before the fit
                    self.reported = int(item[1])

    def complete(self, history: list[dict[str, float]]) -> None:
        """Report epochs the channel missed (a worker lost after checkpointing, before sending)."""
        for metrics in history[self.reported:]:
            self.reported = int(metrics["epoch"])
            self.run.report_epoch(self.reported, dict(metrics))


def _latest_checkpoint(storage: str, name: str) -> tuple[str, dict[str, Any]] | None:
    """The newest checkpoint Ray Train persisted for this run (``epoch_NNNNN``) and its progress record, or None.

    Read through pyarrow's file systems, as Ray Train writes them: a local path or a URI alike.
    """
    import pyarrow.fs

    filesystem, base = pyarrow.fs.FileSystem.from_uri(storage)
    found = filesystem.get_file_info(pyarrow.fs.FileSelector(f"{base.rstrip('/')}/{name}", allow_not_found=True))
    for info in sorted(found, key=lambda info: info.base_name, reverse=True):
        record = f"{info.path}/{_loop.PROGRESS_FILE}"
        if info.base_name.startswith("epoch_") and filesystem.get_file_info(record).is_file:
            with filesystem.open_input_stream(record) as stream:
                return f"{storage.rstrip('/')}/{name}/{info.base_name}", json.loads(stream.read())
    return None


def _check_resumable(source: str, progress: dict[str, Any], params: RayTrainParams) -> None:
    """Refuse to resume from a checkpoint of another format, or with a parameter changed that changes the result."""
    if progress.get("format") != _loop.CHECKPOINT_FORMAT:
        raise ValueError(f"{source}: cannot resume, the checkpoint was written by another version of aios-ray-train "
                         f"(format {progress.get('format', 'aios-ray-train-checkpoint/1')!r}, this version reads "
                         f"{_loop.CHECKPOINT_FORMAT!r}); start a new run")

    def computing(values: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in values.items() if key not in PLACEMENT_PARAMS}

    check_resume_params(computing(progress["params"]), computing(params.model_dump(mode="json")), source,
                        defaults=type(params)().model_dump(mode="json"))
