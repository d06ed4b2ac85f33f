"""Every core: ``workers`` server processes sharing one port (``SO_REUSEPORT``), under a supervising parent.

The parent binds the port first (``SO_REUSEPORT``, not listening: it only holds the
port, so ``port: 0`` picks one free port for all) and starts each worker as
``python -m aios_serve._workers CONFIG INDEX``. Each worker loads the models itself (its
own ONNX Runtime sessions, with the run's ``threads``), binds the same port with
``SO_REUSEPORT`` (and the same gRPC port), and the kernel spreads new connections over
them. Each writes its metrics to a shared folder, so ``/metrics`` on any worker
answers for all of them (``ServerMetrics.combined``).

A worker that exits while the server runs is **replaced** (the parent starts another
with the same index; its predecessor's last metrics stay counted), unless workers keep
exiting (more than three per worker within a minute): then the parent stops the
others and fails with the reason. SIGTERM or SIGINT to the parent is passed on to every
worker; each drains as a single server does, and the parent returns once all have
exited (killing any still running ``drain_seconds`` + 10 s later).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from aios_serve._inference import ServerSettings
from aios_serve._repository import ModelSpec, RepositoryError

log = logging.getLogger("aios.serve")

MAX_DEFAULT_WORKERS = 8


def default_workers() -> int:
    """The machine's cores this process may use, at most ``MAX_DEFAULT_WORKERS``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, MAX_DEFAULT_WORKERS))


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT`` (not listening yet)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise RepositoryError(f"cannot listen on {host}:{port} ({error.strerror}); pick another port") from None
    return sock


def _source(source: Any) -> dict[str, Any]:
    if isinstance(source, ModelSpec):
        return {"spec": {**asdict(source), "path": str(source.path)}}
    return {"path": str(source)}


def serve_workers(sources: list[Any], host: str, port: int, settings: ServerSettings, workers: int,
                  drain_seconds: float, log_level: str, on_started: Any) -> None:
    """Run ``workers`` server processes on ``host:port`` until SIGTERM/SIGINT; drain them all, then return."""
    held = [reuse_port_socket(host, port)]
    port = held[0].getsockname()[1]
    grpc_port = settings.grpc_port
    if grpc_port is not None:
        held.append(reuse_port_socket(host, grpc_port))
        grpc_port = held[1].getsockname()[1]
    folder = tempfile.mkdtemp(prefix="aios-serve-workers-")
    config = {"sources": [_source(s) for s in sources], "host": host, "port": port, "drain_seconds": drain_seconds,
              "log_level": log_level, "metrics_dir": os.path.join(folder, "metrics"),
              "settings": asdict(replace(settings, grpc_port=grpc_port, workers=workers))}
    os.mkdir(config["metrics_dir"])
    config_path = os.path.join(folder, "config.json")
    with open(config_path, "w", encoding="utf-8") as file:
        json.dump(config, file)
    supervisor = _Supervisor(config_path, workers, drain_seconds)
    try:
        supervisor.start_all()
        url = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
        if on_started is not None:
            on_started(url, f"{host}:{grpc_port}") if grpc_port is not None else on_started(url)
        supervisor.watch()
    finally:
        supervisor.stop_all()
        for sock in held:
            sock.close()
        shutil.rmtree(folder, ignore_errors=True)
    if supervisor.failure:
        raise RepositoryError(supervisor.failure)


class _Supervisor:
    def __init__(self, config_path: str, workers: int, drain_seconds: float) -> None:
        self.config_path = config_path
        self.workers: list[subprocess.Popen[str] | None] = [None] * workers
        self.drain_seconds = drain_seconds
        self.stopping = threading.Event()
        self.exits: list[float] = []
        self.failure = ""

    def _launch(self, index: int) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "aios_serve._workers", self.config_path, str(index)],
                                stdout=subprocess.PIPE, text=True)

    @staticmethod
    def _ready(process: subprocess.Popen[str], index: int) -> subprocess.Popen[str]:
        assert process.stdout is not None
        line = process.stdout.readline()  # "ready" once it listens, or nothing when it failed
        if not line.startswith("ready"):
            process.wait()
            raise RepositoryError(f"worker {index} did not start (exit status {process.returncode}; see its "
                                  "message above)")
        return process

    def _spawn(self, index: int) -> subprocess.Popen[str]:
        return self._ready(self._launch(index), index)

    def start_all(self) -> None:
        """Start every worker at once (they load their models in parallel), then wait until each listens.

        SIGTERM/SIGINT are caught from the start: one arriving while workers start stops them all
        (``watch`` returns at once) instead of killing the parent and leaving them running."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stopping.set())
        launched = [self._launch(index) for index in range(len(self.workers))]
        try:
            for index, process in enumerate(launched):
                self.workers[index] = self._ready(process, index)
        except RepositoryError:
            for process in launched:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            raise

    def watch(self) -> None:
        """Replace workers that exit, until told to stop or workers keep exiting."""
        while not self.stopping.wait(0.2):
            for index, process in enumerate(self.workers):
                if process is None or process.poll() is None:
                    continue
                now = time.monotonic()
                self.exits = [t for t in self.exits if now - t < 60] + [now]
                if len(self.exits) > 3 * len(self.workers):
                    self.failure = (f"workers keep exiting ({len(self.exits)} in the last minute; the last with "
                                    f"status {process.returncode}): stopped serving")
                    return
                log.warning("aios-serve: worker %d (pid %d) exited with status %s; starting a replacement",
                            index, process.pid, process.returncode)
                try:
                    self.workers[index] = self._spawn(index)
                except RepositoryError as error:
                    self.failure = str(error)
                    return

    def stop_all(self) -> None:
        running = [p for p in self.workers if p is not None and p.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.drain_seconds + 10
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _worker(config_path: str, index: int) -> int:
    """One worker: load the models, listen on the shared port, serve until SIGTERM."""
    from aios_serve.server import _server, build_repository, grpc_target

    with open(config_path, encoding="utf-8") as file:
        config = json.load(file)
    logging.basicConfig(level=logging.INFO, format=f"[worker {index}] %(message)s")
    sources = [ModelSpec(**{**s["spec"], "path": Path(s["spec"]["path"])}) if "spec" in s else s["path"]
               for s in config["sources"]]
    try:
        repository = build_repository(sources)
    except RepositoryError as error:
        print(f"aios-serve worker {index}: {error}", file=sys.stderr)
        return 2
    settings = ServerSettings(**config["settings"])
    sock = reuse_port_socket(config["host"], config["port"])
    server = _server(repository, config["host"], config["port"], settings, config["drain_seconds"],
                     config["log_level"], reuse_port=True)
    server.state.metrics.share_dir = config["metrics_dir"]

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.02)
        if server.started:
            print(f"ready {os.getpid()} {grpc_target(server)}", flush=True)
            devnull = os.open(os.devnull, os.O_WRONLY)  # the parent reads one line: nothing may fill the pipe
            os.dup2(devnull, sys.stdout.fileno())

    threading.Thread(target=announce, daemon=True).start()
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker(sys.argv[1], int(sys.argv[2])))
