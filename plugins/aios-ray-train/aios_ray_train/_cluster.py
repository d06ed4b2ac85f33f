"""Where training runs: a local Ray on 127.0.0.1, started and stopped by the run, or an existing cluster.

A local Ray is private to the run: every process listens on loopback only, token
authentication is on with a random token kept in the environment (nothing is written
under the home directory), usage statistics and the dashboard are off, and its temp
files live in a short directory under /tmp (Ray's unix sockets must fit in ~107
characters, which a deep run directory may not), removed when the run ends.
"""

from __future__ import annotations

import glob
import logging
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aios_core import one_line
from aios_ray_train._errors import ClusterError

log = logging.getLogger("aios.ray-train")

TRAIN_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}
"""Set for every run (unless the user set them): no usage reporting, workers' print stays theirs."""
LOCAL_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0", "RAY_TRAIN_METRICS_ENABLED": "0"}
"""Set for a local Ray: one machine is never preempted, and without a dashboard nobody reads the metrics."""
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
"""Ray's single-machine mode: the node address is 127.0.0.1 and every server binds to it.

``ray.init(_node_ip_address="127.0.0.1")`` is not enough on Linux: Ray replaces a
loopback address by the machine's routable one. In single-machine mode (the default
on macOS and Windows, selected by this variable) Ray keeps loopback.
"""


@dataclass
class Session:
    """The Ray the training runs on."""

    address: str           # what the user gave, or "local"
    owned: bool            # started by this run, stopped when it ends
    temp_dir: str | None   # a local Ray's temp dir
    start_seconds: float = 0.0
    stop_seconds: float = 0.0


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in os.environ (unless the user set them) for the block, then restore."""
    saved = {name: os.environ.get(name) for name in values}
    for name, value in values.items():
        os.environ.setdefault(name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _host(address: str) -> str:
    return address.removeprefix("ray://").rpartition(":")[0].strip("[]")


def _check_reachable(address: str, timeout: float) -> None:
    """Fail fast on a host:port nobody listens on, instead of Ray's long connection retries."""
    if address == "auto":
        return
    port = address.rpartition(":")[2]
    try:
        with socket.create_connection((_host(address), int(port)), timeout=min(timeout, 10.0)):
            pass
    except OSError as error:
        raise ClusterError(
            f"trainer.address: cannot reach a Ray cluster at {address!r} ({error.strerror or error}); "
            "start one (ray start --head) or fix the address; null starts a local Ray for the run") from None


@contextmanager
def ray_session(address: str | None, *, timeout: float, env: dict[str, str]) -> Iterator[Session]:
    """Connect to ``address`` or start a local Ray; shut it down (and remove its files) afterwards.

    If this process already called ``ray.init`` (a notebook, a test session), that Ray is
    used and left running.
    """
    local = address is None
    loopback = local or _host(address) in ("127.0.0.1", "localhost", "::1")
    variables = {**TRAIN_ENV, **env, **(LOOPBACK_ENV if loopback else {})}
    if local:
        # A random token in the environment: the local Ray's processes inherit it, and
        # nothing is written to ~/.ray/auth_token (Ray's default for a new token).
        variables.update({**LOCAL_ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)})
    with _environment(variables):
        if not local:
            _check_reachable(address, timeout)
        import ray

        if ray.is_initialized():
            yield Session(address=address or "existing", owned=False, temp_dir=None)
            return
        from ray._private import ray_constants

        cluster_mode = ray_constants.ENABLE_RAY_CLUSTER
        if loopback:  # the variable is read when ray is first imported, which may have been earlier
            ray_constants.ENABLE_RAY_CLUSTER = False
        temp_dir = tempfile.mkdtemp(prefix="aios-ray-", dir="/tmp") if local else None
        started = time.perf_counter()
        try:
            options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING,
                                       "include_dashboard": False}
            if local:
                ray.init(_temp_dir=temp_dir, _node_ip_address="127.0.0.1", **options)
            else:
                ray.init(address=address, **options)
        except Exception as error:
            ray_constants.ENABLE_RAY_CLUSTER = cluster_mode
            if temp_dir:
                shutil.rmtree(temp_dir, ignore_errors=True)
            where = "a local Ray" if local else f"the Ray cluster at {address!r}"
            raise ClusterError(f"could not start or join {where}: {one_line(error)}") from error
        session = Session(address=address or "local", owned=True, temp_dir=temp_dir,
                          start_seconds=time.perf_counter() - started)
        log.info("ray-train: %s Ray %s in %.1f s (temp dir %s)", "started" if local else "joined",
                 ray.__version__, session.start_seconds, temp_dir or "-")
        try:
            yield session
        except BaseException:
            if temp_dir:
                _log_ray_errors(temp_dir)
            raise
        finally:
            stopping = time.perf_counter()
            ray.shutdown()
            ray_constants.ENABLE_RAY_CLUSTER = cluster_mode
            session.stop_seconds = time.perf_counter() - stopping
            if temp_dir:
                shutil.rmtree(temp_dir, ignore_errors=True)
            log.info("ray-train: %s Ray in %.1f s", "stopped" if local else "left", session.stop_seconds)


def _log_ray_errors(temp_dir: str, lines: int = 40) -> None:
    """Copy the tails of the local Ray's worker error logs (tracebacks, Ray Train's) into the run log before they go."""
    logs = os.path.join(temp_dir, "session_latest", "logs")
    for name in sorted(glob.glob(os.path.join(logs, "worker-*.err"))):
        try:
            with open(name, encoding="utf-8", errors="replace") as file:
                tail = [line for line in file if not line.startswith((":job_id:", ":actor_name:", ":task_name:"))]
        except OSError:
            continue
        tail = tail[-lines:]
        if "".join(tail).strip():
            log.error("ray-train: %s (last %d lines):\n%s", os.path.relpath(name, logs), len(tail), "".join(tail))


def check_resources(num_workers: int, cpus_per_worker: float, use_gpu: bool, address: str) -> None:
    """Refuse, before any worker starts, a worker group the cluster cannot hold (Ray would wait forever)."""
    import ray

    available = ray.cluster_resources()
    needs = {"CPU": num_workers * cpus_per_worker, **({"GPU": float(num_workers)} if use_gpu else {})}
    for resource, needed in needs.items():
        has = float(available.get(resource, 0.0))
        if has + 1e-9 < needed:
            per = f"{cpus_per_worker:g} CPU" if resource == "CPU" else "1 GPU"
            raise ClusterError(
                f"trainer.num_workers: {num_workers} workers x {per} need {needed:g} {resource}s, but the Ray cluster "
                f"({address}) has {has:g}; lower trainer.num_workers"
                + (" or trainer.cpus_per_worker" if resource == "CPU" else " or set trainer.use_gpu: false")
                + ", or add nodes to the cluster")
