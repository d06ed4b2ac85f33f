"""Running the server: in the foreground until SIGTERM/Ctrl-C (``serve``), in a thread (``BackgroundServer``), or
in a child process (``ChildServer``).

uvicorn runs the app (and the gRPC service, in the same event loop, when ``grpc_port``
is set). On SIGTERM or SIGINT it stops accepting connections, turns readiness false,
gives bodies still being read a few seconds more (then 503), lets the requests in
flight finish (at most ``drain_seconds``), runs the app's shutdown and returns;
``serve`` then returns normally, so ``aios run --serve`` ends as completed.
"""

from __future__ import annotations

import argparse
import json
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Self

import uvicorn

from aios_serve._app import create_app
from aios_serve._connections import protocol_for
from aios_serve._inference import ServerSettings, ServerState
from aios_serve._repository import ModelRepository, ModelSpec, RepositoryError, specs_from_paths

__all__ = ["BackgroundServer", "ChildServer", "ServerSettings", "build_repository", "main", "serve"]

log = logging.getLogger("aios.serve")


def _version() -> str:
    from aios_serve import __version__

    return __version__


def build_repository(sources: list[str | Path] | list[ModelSpec]) -> ModelRepository:
    """A repository holding, loaded, the models of run directories, bundles or ready ``ModelSpec``s."""
    repository = ModelRepository()
    specs = [s for s in sources if isinstance(s, ModelSpec)]
    paths = [s for s in sources if not isinstance(s, ModelSpec)]
    for spec in specs + specs_from_paths(paths):
        repository.add(spec)
    return repository


class _Server(uvicorn.Server):
    """uvicorn's server, minus re-raising the stopping signal (a drained server is a normal end), telling the
    app's state when shutdown begins."""

    def __init__(self, config: uvicorn.Config, state: ServerState) -> None:
        super().__init__(config)
        self.state = state

    async def shutdown(self, sockets: Any = None) -> None:
        self.state.begin_shutdown()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        import signal

        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def _server(repository: ModelRepository, host: str, port: int, settings: ServerSettings,
            drain_seconds: float, log_level: str, reuse_port: bool = False) -> _Server:
    state = ServerState(repository, settings, _version())
    state.drain_seconds = drain_seconds
    state.grpc_host = host
    state.reuse_port = reuse_port
    app = create_app(repository, settings, state=state)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, lifespan="on",
                            http=protocol_for(state), timeout_keep_alive=5,
                            timeout_graceful_shutdown=drain_seconds, server_header=False, date_header=False)
    return _Server(config, state)


def serve(run_dirs: list[str | Path] | list[ModelSpec], host: str = "127.0.0.1", port: int = 8080, *,
          settings: ServerSettings | None = None, drain_seconds: float = 30.0, log_level: str = "info",
          on_started: Any = None) -> None:
    """Serve the final models of ``run_dirs`` (or bundles) until SIGTERM/SIGINT, then drain and return.

    ``on_started(url)`` is called once the socket listens (``port`` 0 picks a free port); with a gRPC
    service, ``on_started(url, grpc_target)``. With ``settings.workers`` above 1, that many processes
    serve the port (``aios_serve._workers``).
    """
    import gc

    settings = settings or ServerSettings()
    if settings.workers > 1:
        from aios_serve._workers import serve_workers

        specs_from_paths([s for s in run_dirs if not isinstance(s, ModelSpec)])  # a bad path fails here, once
        serve_workers(list(run_dirs), host, port, settings, settings.workers, drain_seconds, log_level, on_started)
        return
    repository = build_repository(run_dirs)
    server = _server(repository, host, port, settings, drain_seconds, log_level)
    if on_started is not None:
        threading.Thread(target=_announce, args=(server, on_started), daemon=True).start()
    # What exists now (libraries, sessions, metadata) lives as long as the server: keep it out of
    # the cyclic collector's scans, which otherwise cost every request more the more was imported.
    gc.collect()
    gc.freeze()
    try:
        server.run()
    finally:
        gc.unfreeze()


def _announce(server: _Server, on_started: Any) -> None:
    while not server.started and not server.should_exit:
        time.sleep(0.02)
    if server.started:
        target = grpc_target(server)
        on_started(_url(server), target) if target else on_started(_url(server))


def _url(server: uvicorn.Server) -> str:
    socket = server.servers[0].sockets[0]
    host, port = socket.getsockname()[:2]
    return f"http://{host}:{port}"


def grpc_target(server: _Server) -> str | None:
    """``host:port`` of the gRPC service once it listens (None without one)."""
    port = server.state.grpc_port
    return None if port is None else f"{server.state.grpc_host}:{port}"


class BackgroundServer:
    """The server in a thread of this process, for smoke tests and tests: ``with BackgroundServer(...) as s: s.url``."""

    def __init__(self, sources: list[str | Path] | list[ModelSpec] | ModelRepository, host: str = "127.0.0.1",
                 port: int = 0, settings: ServerSettings | None = None, drain_seconds: float = 10.0) -> None:
        self.repository = sources if isinstance(sources, ModelRepository) else build_repository(sources)
        self.settings = settings or ServerSettings()
        self._server = _server(self.repository, host, port, self.settings, drain_seconds, "warning")
        self.state = self._server.state
        self._thread = threading.Thread(target=self._server.run, name="aios-serve", daemon=True)
        self.url = ""
        self.grpc_target: str | None = None
        """``host:port`` of the gRPC service (with ``settings.grpc_port`` set)."""

    def start(self, timeout: float = 30.0) -> Self:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._server.should_exit = True
                raise RuntimeError("the inference server did not start (see the log above)")
            time.sleep(0.01)
        self.url = _url(self._server)
        self.grpc_target = grpc_target(self._server)
        return self

    def timing(self, name: str, version: str) -> Any:
        """A function giving the server's (requests timed, seconds) so far for one model version."""

        def read() -> tuple[int, float]:
            latency = self.state.metrics.model(name, version).latency
            return sum(latency.counts), latency.sum

        return read

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self, timeout: float = 30.0) -> None:
        """Stop accepting, drain the requests in flight, and wait for the thread."""
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ChildServer:
    """The server in a child process (``serve_child``: what ``aios serve`` runs, with these exact settings) on a free
    port of 127.0.0.1, for the deploy phase's smoke test: its latency is then the server's own, not shared with
    the interpreter of the run (``with ChildServer(spec, settings) as s: s.url``).

    The model goes to the child as a bundle (``model.json`` and a link to the ONNX file) and the
    settings as JSON in a temporary directory; the bearer token through an environment variable. The child's
    output goes to a file of that directory: a child that does not start is reported as one
    line, the last it wrote.
    """

    TOKEN_ENV = "AIOS_SERVE_SMOKE_TOKEN"

    def __init__(self, spec: ModelSpec, settings: ServerSettings, timeout: float = 60.0) -> None:
        self.spec = spec
        self.settings = settings
        self.timeout = timeout
        self.url = ""
        self._process: Any = None
        self._folder: Any = None

    def _bundle(self, folder: Path) -> Path:
        from aios_serve._repository import MODEL_FILE, MODEL_JSON

        bundle = folder / "model"
        bundle.mkdir()
        (bundle / MODEL_JSON).write_text(json.dumps(self.spec.to_json()), encoding="utf-8")
        try:
            (bundle / MODEL_FILE).symlink_to(Path(self.spec.path).resolve())
        except OSError:  # no symlinks here (Windows without the privilege): a copy
            import shutil

            shutil.copyfile(self.spec.path, bundle / MODEL_FILE)
        return bundle

    def start(self) -> Self:
        import re
        import subprocess
        import tempfile

        self._folder = tempfile.TemporaryDirectory(prefix="aios-serve-smoke-")
        folder = Path(self._folder.name)
        settings_file = folder / "settings.json"
        settings_file.write_text(json.dumps({**asdict(self.settings), "token": None}), encoding="utf-8")
        command = [sys.executable, "-c", "import sys; from aios_serve.server import serve_child; "
                   "sys.exit(serve_child(*sys.argv[1:]))", str(self._bundle(folder)), str(settings_file)]
        env = {k: v for k, v in os.environ.items() if k != self.TOKEN_ENV}
        if self.settings.token:
            env[self.TOKEN_ENV] = self.settings.token
        output = folder / "server.log"
        with output.open("wb") as sink:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                                             env=env)
        deadline = time.monotonic() + self.timeout
        while not self.url:
            text = output.read_text(encoding="utf-8", errors="replace")
            found = re.search(r"serving on (http://\S+)", text)
            if found:
                self.url = found.group(1)
            elif self._process.poll() is not None or time.monotonic() > deadline:
                lines = [line for line in text.splitlines() if line.strip()]
                status = self._process.poll()
                self.stop()
                raise RuntimeError("the smoke test's server (a child aios-serve) "
                                   + (f"exited with status {status}" if status is not None
                                      else f"did not start within {self.timeout:.0f} s")
                                   + (f": {lines[-1].strip()}" if lines else ""))
            else:
                time.sleep(0.02)
        return self

    def timing(self, name: str, version: str) -> Any:
        """A function giving the server's (requests timed, seconds) so far for one model version, from its
        ``/metrics`` (the ``aios_serve_request_duration_seconds`` histogram's count and sum)."""
        import httpx
        from prometheus_client.parser import text_string_to_metric_families

        headers = {"Authorization": f"Bearer {self.settings.token}"} if self.settings.token else {}

        def read() -> tuple[int, float]:
            text = httpx.get(f"{self.url}/metrics", headers=headers, timeout=30.0).text
            count, seconds = 0, 0.0
            for family in text_string_to_metric_families(text):
                if family.name != "aios_serve_request_duration_seconds":
                    continue
                for sample in family.samples:
                    if sample.labels.get("model") == name and sample.labels.get("version") == version:
                        if sample.name.endswith("_count"):
                            count = int(sample.value)
                        elif sample.name.endswith("_sum"):
                            seconds = float(sample.value)
            return count, seconds

        return read

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (the server drains and exits), kill after ``timeout``; reap it, remove the bundle."""
        import subprocess

        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------- the aios-serve command
def _parser() -> argparse.ArgumentParser:
    defaults = ServerSettings()
    parser = argparse.ArgumentParser(prog="aios-serve", description="Serve AIOS models with the Open Inference "
                                     "Protocol (KServe v2 REST). Same server as `aios serve`.")
    parser.add_argument("paths", nargs="+", help="run directories, bundle model directories or a model repository "
                        "(<name>/<version>/model.json)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (0: any free port; default 8080)")
    parser.add_argument("--max-batch-size", type=int, default=defaults.max_batch_size,
                        help="rows per batch; 1 turns batching off")
    parser.add_argument("--max-delay-ms", type=float, default=defaults.max_delay_ms,
                        help="longest wait for more requests to batch")
    parser.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes, help="request body limit")
    parser.add_argument("--token-env", default=None, metavar="NAME",
                        help="require 'Authorization: Bearer <token>' with the token read from this variable")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="server processes sharing the port (default 1)")
    parser.add_argument("--grpc-port", type=int, default=None, metavar="PORT",
                        help="serve the protocol's gRPC form on this port too (0: any free port)")
    api = parser.add_mutually_exclusive_group()
    api.add_argument("--repository-api", dest="repository_api", action="store_const", const=True, default=None,
                     help="allow load/unload requests (default: only when a token is required)")
    api.add_argument("--no-repository-api", dest="repository_api", action="store_const", const=False,
                     help="refuse load/unload requests")
    return parser


def settings_from(token_env: str | None, **fields: Any) -> ServerSettings:
    """Server settings, reading the bearer token from the environment variable ``token_env``."""
    token = None
    if token_env:
        token = os.environ.get(token_env)
        if not token:
            raise RepositoryError(f"token_env names {token_env!r}, but that environment variable is empty; "
                                  f"export {token_env}=<token> or drop token_env")
    return replace(ServerSettings(), token=token, **fields)


def main(argv: list[str] | None = None) -> int:
    """``aios-serve PATH... [--host H] [--port P]``: serve until SIGTERM or Ctrl-C."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        settings = settings_from(args.token_env, max_batch_size=args.max_batch_size, max_delay_ms=args.max_delay_ms,
                                 max_body_bytes=args.max_body_bytes, repository_api=args.repository_api,
                                 grpc_port=args.grpc_port, workers=max(1, args.workers))
    except RepositoryError as error:
        print(f"aios-serve: {error}", file=sys.stderr)
        return 2
    return _serve_until_stopped(args.paths, args.host, args.port, settings)


def serve_child(bundle: str, settings_file: str) -> int:
    """``ChildServer``'s process: ``bundle`` served on a free port of 127.0.0.1 with the exact ``ServerSettings``
    of ``settings_file`` (JSON), the token from ``ChildServer.TOKEN_ENV``, until SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    fields = json.loads(Path(settings_file).read_text(encoding="utf-8"))
    settings = ServerSettings(**{**fields, "token": os.environ.get(ChildServer.TOKEN_ENV) or None})
    return _serve_until_stopped([bundle], "127.0.0.1", 0, settings)


def _serve_until_stopped(paths: list[str], host: str, port: int, settings: ServerSettings) -> int:
    """``serve`` with the start-up line on stderr; 2 and one line for a model that cannot be served, else 0."""
    try:
        serve(paths, host, port, settings=settings,
              on_started=lambda url, grpc=None: print(f"aios-serve: serving on {url}"
                                                      + (f" and grpc {grpc}" if grpc else "") + " (Ctrl-C stops)",
                                                      file=sys.stderr, flush=True))
    except RepositoryError as error:
        print(f"aios-serve: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
