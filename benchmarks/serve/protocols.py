"""Protocol forms, workers and batching: interleaved ratios for issue 15's targets.

    .venv/bin/python benchmarks/serve/protocols.py [--run RUN_DIR] [--seconds 3] [--rounds 3] [--client wrk|python]

Each round starts every variant's server in turn (its own process, uvicorn on 127.0.0.1),
loads it, and stops it, so the variants of one round share the machine's state; a ratio
is computed per round and the median over rounds is reported (the machine is shared:
absolute numbers drift between rounds by up to 2x, ratios much less). Single-row
requests, one keep-alive connection per client, every 25th answer checked against
in-process ONNX Runtime.

Models: the default stack's digits CNN (fp32, 64 features), and a 784-1024-1024-10 MLP
built here with onnx's helpers (fixed random weights), large enough that batching and
the body's size matter. Variants:

- JSON vs binary tensor data (HTTP), 64 and 784 features;
- aios-serve vs the bare ASGI app (bare_app.py) at 1 and 32 clients, JSON;
- gRPC (``raw_input_contents``) vs binary HTTP at 1 client: once with a gRPC client that
  costs as little as the raw HTTP one (``grpc_raw.py``: pre-encoded HTTP/2 frames on a
  socket), so the ratio is the servers', and once with grpcio's Python client (what a
  Python user sees); once with tritonclient on both sides (``tritonclient.grpc`` vs
  ``tritonclient.http`` ``InferenceServerClient.infer``, binary tensor data, defaults: what a
  user of the standard client library sees); and the floor under both: a do-nothing gRPC handler on
  aios-serve's gRPC transport vs a do-nothing HTTP handler (uvicorn), from ``grpc_floor.py``;
- 2 workers vs 1 at 32 clients;
- micro-batching on (max_batch_size 32) vs off (1) on the MLP at 32 clients.

Writes benchmarks/serve/PROTOCOLS.md and protocols.json; with ``--only``, the rows measured
replace theirs in protocols.json and the others are kept (each row records when it ran).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as base  # noqa: E402 - the serving benchmark's helpers (servers, the run, the bundle)

HEADER = "Inference-Header-Content-Length"
INFER = "/inference.GRPCInferenceService/ModelInfer"
CLIENT = {"name": "wrk"}
"""The HTTP load generator: wrk (default) or the asyncio client of this file (``--client python``)."""


# ---------------------------------------------------------------- requests
def json_request(path: str, row: np.ndarray) -> bytes:
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, row.size], "datatype": "FP32",
                                   "data": row.ravel().tolist()}]}).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def binary_request(path: str, row: np.ndarray) -> bytes:
    raw = np.ascontiguousarray(row, dtype="<f4").tobytes()
    header = json.dumps({"inputs": [{"name": "input", "shape": [1, row.size], "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}]}).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
            f"{HEADER}: {len(header)}\r\nContent-Length: {len(header) + len(raw)}\r\n\r\n").encode() + header + raw


def probabilities_of(head: bytes, body: bytes) -> np.ndarray:
    """The first output of an answer, JSON or binary."""
    for line in head.split(b"\r\n"):
        if line.lower().startswith(HEADER.lower().encode() + b":"):
            length = int(line.split(b":", 1)[1])
            return np.frombuffer(body[length:length + 40], dtype="<f4")
    return np.asarray(json.loads(body)["outputs"][0]["data"], dtype=np.float32)


async def _http_client(port: int, requests: list[bytes], expected: np.ndarray, start: int, until: float,
                       measure_after: float, tally: dict[str, Any]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    index = start
    try:
        while (now := time.perf_counter()) < until:
            row = index % len(requests)
            writer.write(requests[row])
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(base._LENGTH.search(head).group(1))
            body = await reader.readexactly(length)
            done = time.perf_counter()
            if head[9:12] != b"200":
                tally["errors"] += 1
            elif index % 25 == 0 and not np.allclose(probabilities_of(head, body)[:expected.shape[1]],
                                                     expected[row], atol=1e-4):
                tally["wrong"] += 1
            if now >= measure_after:
                tally["latencies"].append(done - now)
            index += 1
    finally:
        writer.close()


async def _grpc_client(target: str, requests: list[Any], expected: np.ndarray, start: int, until: float,
                       measure_after: float, tally: dict[str, Any]) -> None:
    import grpc

    from aios_serve._grpc import messages

    m = messages()
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(INFER,
                                   request_serializer=m["ModelInferRequest"].SerializeToString,
                                   response_deserializer=m["ModelInferResponse"].FromString)
        index = start
        while (now := time.perf_counter()) < until:
            row = index % len(requests)
            try:
                answer = await call(requests[row])
            except grpc.aio.AioRpcError:
                tally["errors"] += 1
                answer = None
            done = time.perf_counter()
            if answer is not None and index % 25 == 0:
                got = np.frombuffer(answer.raw_output_contents[0], dtype="<f4")
                if not np.allclose(got, expected[row], atol=1e-4):
                    tally["wrong"] += 1
            if now >= measure_after:
                tally["latencies"].append(done - now)
            index += 1


async def _grpc_raw_client(target: str, requests: list[Any], expected: np.ndarray, start: int, until: float,
                           measure_after: float, tally: dict[str, Any]) -> None:
    from aios_serve._grpc import messages
    from grpc_raw import RawGrpcChannel

    parse = messages()["ModelInferResponse"].FromString
    payloads = [request.SerializeToString() for request in requests]
    channel = await RawGrpcChannel.connect(target)
    index = start
    try:
        while (now := time.perf_counter()) < until:
            row = index % len(payloads)
            answer = await channel.call(INFER, payloads[row])
            done = time.perf_counter()
            if answer is None:
                tally["errors"] += 1
            elif index % 25 == 0:
                got = np.frombuffer(parse(answer).raw_output_contents[0], dtype="<f4")
                if not np.allclose(got, expected[row], atol=1e-4):
                    tally["wrong"] += 1
            if now >= measure_after:
                tally["latencies"].append(done - now)
            index += 1
    finally:
        channel.close()


def tritonclient_load(kind: str, model: str, rows: np.ndarray, expected: np.ndarray) -> Any:
    """One client of tritonclient (``kind`` ``http`` or ``grpc``), defaults as a user copies them (HTTP: binary
    tensor data on, every output), calling ``InferenceServerClient.infer`` in a loop: what a Python user of
    the standard client library sees. 1 s of warm-up, then ``seconds`` measured; every 25th answer checked.
    Also the client's own CPU time per call (this process's, all its threads: grpcio's core threads too)."""

    def load(server: Any, seconds: float) -> dict[str, Any]:
        import importlib

        module = importlib.import_module(f"tritonclient.{kind}")
        address = f"127.0.0.1:{server.grpc if kind == 'grpc' else server.port}"
        client = module.InferenceServerClient(address)
        inputs = []
        for row in rows:
            tensor = module.InferInput("input", [1, row.size], "FP32")
            tensor.set_data_from_numpy(np.ascontiguousarray(row[None, :], dtype=np.float32))
            inputs.append([tensor])
        latencies: list[float] = []
        errors = wrong = index = 0
        start = time.perf_counter()
        measure_after, until = start + 1.0, start + 1.0 + seconds
        cpu_start = None
        try:
            while (now := time.perf_counter()) < until:
                if cpu_start is None and now >= measure_after:
                    cpu_start = time.process_time()
                row = index % len(inputs)
                try:
                    result = client.infer(model, inputs[row])
                except Exception:  # noqa: BLE001 - tritonclient's InferenceServerException: count, go on
                    errors += 1
                    result = None
                done = time.perf_counter()
                if result is not None and index % 25 == 0 and not np.allclose(
                        result.as_numpy("probabilities")[0], expected[row], atol=1e-4):
                    wrong += 1
                if now >= measure_after:
                    latencies.append(done - now)
                index += 1
        finally:
            client.close()
        summary = base.summarize(latencies, seconds, errors, wrong)
        summary["client_cpu_us_per_call"] = round((time.process_time() - (cpu_start or 0.0)) * 1e6 / len(latencies), 1)
        return summary

    return load


def grpc_requests(model: str, rows: np.ndarray) -> list[Any]:
    from aios_serve._grpc import messages

    m = messages()
    out = []
    for row in rows:
        request = m["ModelInferRequest"](model_name=model)
        request.inputs.add(name="input", datatype="FP32", shape=[1, row.size])
        request.outputs.add(name="probabilities")
        request.raw_input_contents.append(np.ascontiguousarray(row, dtype="<f4").tobytes())
        out.append(request)
    return out


def measure(client: Any, target: Any, requests: list[Any], expected: np.ndarray, clients: int,
            seconds: float) -> dict[str, Any]:
    tally: dict[str, Any] = {"errors": 0, "wrong": 0, "latencies": []}

    async def main() -> None:
        start = time.perf_counter()
        await asyncio.gather(*(client(target, requests, expected, c * 97, start + 1.0 + seconds, start + 1.0, tally)
                               for c in range(clients)))

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
    return base.summarize(tally["latencies"], seconds, tally["errors"], tally["wrong"])


# ---------------------------------------------------------------- wrk: the light load generator
WRK_INSTALL = "apt-get install wrk (Debian/Ubuntu) or brew install wrk"


def _lua_string(data: bytes) -> str:
    return '"' + "".join(f"\\{b:03d}" if b < 32 or b > 126 or b in (34, 92) else chr(b) for b in data) + '"'


def wrk_script(requests: list[bytes], path: Path) -> Path:
    """A wrk script sending the ready-made raw requests in turn and printing its figures as one JSON line."""
    lines = ["local reqs = {}"]
    lines += [f"reqs[{i + 1}] = {_lua_string(r)}" for i, r in enumerate(requests)]
    lines += ["local i = 0",
              "request = function() i = i % #reqs + 1; return reqs[i] end",
              "done = function(s, lat, r)",
              '  io.write(string.format("WRK {\\"requests\\": %d, \\"errors\\": %d, \\"p50_us\\": %d, '
              '\\"p99_us\\": %d}\\n", s.requests, s.errors.status + s.errors.connect + s.errors.read + '
              "s.errors.write + s.errors.timeout, lat:percentile(50), lat:percentile(99)))",
              "end"]
    path.write_text("\n".join(lines))
    return path


def _wrk(port: int, script: Path, clients: int, seconds: int) -> dict[str, Any]:
    import subprocess

    out = subprocess.run(["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script),
                          f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("WRK "))
    return json.loads(line[4:])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (a multi-worker server's workers), from /proc."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def check_answers(port: int, requests: list[bytes], expected: np.ndarray) -> int:
    """Send each request once on one connection; the number of answers that are not 200 and right."""
    import socket

    wrong = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        file = sock.makefile("rb")
        for row, request in enumerate(requests):
            sock.sendall(request)
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                head += file.readline()
            body = file.read(int(base._LENGTH.search(head).group(1)))
            if head[9:12] != b"200" or not np.allclose(probabilities_of(head, body)[:expected.shape[1]],
                                                          expected[row], atol=1e-4):
                wrong += 1
    return wrong


def measure_wrk(server: Any, requests: list[bytes], expected: np.ndarray, clients: int, seconds: float,
                work: Path) -> dict[str, Any]:
    """wrk (C, one thread, ``clients`` keep-alive connections) against ``server``: 1 s of warm-up, then
    ``seconds`` measured; every distinct request's answer checked before and after; the server's CPU per
    request from /proc (the figure a busy machine disturbs least)."""
    script = wrk_script(requests, work / f"wrk-{os.getpid()}.lua")
    wrong = check_answers(server.port, requests, expected)
    _wrk(server.port, script, clients, 1)
    pid = server.server.process.pid
    cpu = _cpu_seconds(pid)
    result = _wrk(server.port, script, clients, max(1, round(seconds)))
    cpu = _cpu_seconds(pid) - cpu
    wrong += check_answers(server.port, requests, expected)
    count = max(1, result["requests"])
    return {"requests_per_s": round(count / max(1, round(seconds)), 1), "p50_ms": result["p50_us"] / 1000,
            "p99_ms": result["p99_us"] / 1000, "requests": count, "errors": result["errors"], "wrong": wrong,
            "cpu_us_per_request": round(cpu / count * 1e6, 1)}


# ---------------------------------------------------------------- models and servers
def write_wide_mlp(path: Path, features: int = 784, hidden: int = 1024, classes: int = 10) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {"w1": rng.normal(0, 0.05, (features, hidden)), "b1": np.zeros(hidden),
               "w2": rng.normal(0, 0.05, (hidden, hidden)), "b2": np.zeros(hidden),
               "w3": rng.normal(0, 0.05, (hidden, classes)), "b3": np.zeros(classes)}
    init = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    nodes = [helper.make_node("MatMul", ["input", "w1"], ["h1"]), helper.make_node("Add", ["h1", "b1"], ["a1"]),
             helper.make_node("Relu", ["a1"], ["r1"]), helper.make_node("MatMul", ["r1", "w2"], ["h2"]),
             helper.make_node("Add", ["h2", "b2"], ["a2"]), helper.make_node("Relu", ["a2"], ["r2"]),
             helper.make_node("MatMul", ["r2", "w3"], ["h3"]), helper.make_node("Add", ["h3", "b3"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    graph = helper.make_graph(nodes, "wide", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", features])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", classes])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def wide_bundle(root: Path) -> Path:
    folder = root / "wide" / "1"
    folder.mkdir(parents=True)
    write_wide_mlp(folder / "model.onnx")
    (folder / "model.json").write_text(json.dumps({"name": "wide", "version": "1", "class_names": None,
                                                   "preprocessing": {}, "threads": 1}))
    return folder


def aios(repo: Path, *extra: str) -> tuple[list[str], str]:
    return [sys.executable, "-m", "aios_serve", str(repo), *extra, "--port"], "ready"


class Running:
    """A server process for one variant: HTTP port and, when asked, a gRPC port."""

    def __init__(self, command: list[str], name: str, bare: bool = False, grpc: bool = False) -> None:
        self.port = base.free_port()
        self.grpc = base.free_port() if grpc else None
        full = [*command, str(self.port)] + (["--grpc-port", str(self.grpc)] if grpc else [])
        self.server = base._bare(full, self.port) if bare else base.Server(full, self.port, f"/v2/models/{name}/ready")
        if "--workers" in command:  # the port answers once one worker listens: wait for all of them
            workers = int(command[command.index("--workers") + 1])
            if not _all_workers_listen(self.port, workers):
                self.stop()
                raise RuntimeError(f"{workers} workers did not all come up")

    def stop(self) -> None:
        self.server.stop()


class Floor:
    """A do-nothing server of ``grpc_floor.py`` (``http``, ``aios``, ``grpc-aio`` or ``grpc-sync``)."""

    def __init__(self, kind: str) -> None:
        import grpc_floor

        self.process, self.port = grpc_floor.start(kind)
        self.grpc = self.port

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def floor_load(client: Any) -> Any:
    return lambda server, seconds: base.summarize(client(server.port, seconds), seconds)


def grpc_floor_client(name: str) -> Any:
    import grpc_floor

    return getattr(grpc_floor, name)
def _all_workers_listen(port: int, workers: int, timeout: float = 90.0) -> bool:
    """Whether ``workers`` processes report in ``/metrics`` (each writes its share once a second once up)."""
    import re
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            seen = set(re.findall(r'aios_serve_worker_requests_total\{worker="(\d+)"\}', response.read().decode()))
        if len(seen) >= workers:
            return True
        time.sleep(0.5)
    return False


# ---------------------------------------------------------------- the comparisons
def comparisons(run: Path, work: Path) -> dict[str, Any]:
    """name -> (variant label -> (start, load)) with the ratio to report."""
    digits_model = base.run_models(run)["fp32"]
    digits_rows = base.test_rows(run)[:256]
    digits_repo = work / "digits"
    base.bundle(run, digits_model, "digits", digits_repo)
    digits_expected = base.session(digits_model).run(None, {"input": digits_rows})[0]
    wide_repo = work / "wide-repo"
    wide = wide_bundle(wide_repo) / "model.onnx"
    wide_rows = np.random.default_rng(1).normal(0, 1, (64, 784)).astype(np.float32)
    wide_expected = base.session(wide).run(None, {"input": wide_rows})[0]
    path = "/v2/models/{}/infer"
    http = _http_client

    def http_load(name: str, rows: np.ndarray, expected: np.ndarray, build: Any, clients: int) -> Any:
        requests = [build(path.format(name), rows[i]) for i in range(len(rows))]
        if CLIENT["name"] == "wrk":
            return lambda server, seconds: measure_wrk(server, requests[:64], expected, clients, seconds, work)
        return lambda server, seconds: measure(http, server.port, requests, expected, clients, seconds)

    def grpc_load(name: str, rows: np.ndarray, expected: np.ndarray, clients: int, client: Any = _grpc_client) -> Any:
        requests = grpc_requests(name, rows)
        return lambda server, seconds: measure(client, f"127.0.0.1:{server.grpc}", requests, expected,
                                               clients, seconds)

    bare = lambda model: ([sys.executable, str(HERE / "bare_app.py"), str(model)], "bare")
    return {
        "aios-serve / bare ASGI, JSON, 1 client (throughput)": {
            "num": (lambda: Running(aios(digits_repo)[0], "digits"), http_load("digits", digits_rows, digits_expected, json_request, 1)),
            "den": (lambda: Running(bare(digits_model)[0], "bare", bare=True), http_load("bare", digits_rows, digits_expected, json_request, 1)),
            "target": (">=", 0.9)},
        "aios-serve / bare ASGI, JSON, 32 clients (throughput)": {
            "num": (lambda: Running(aios(digits_repo)[0], "digits"), http_load("digits", digits_rows, digits_expected, json_request, 32)),
            "den": (lambda: Running(bare(digits_model)[0], "bare", bare=True), http_load("bare", digits_rows, digits_expected, json_request, 32)),
            "target": (">=", 0.9)},
        "binary / JSON, 64 features, 1 client (throughput)": {
            "num": (lambda: Running(aios(digits_repo)[0], "digits"), http_load("digits", digits_rows, digits_expected, binary_request, 1)),
            "den": (lambda: Running(aios(digits_repo)[0], "digits"), http_load("digits", digits_rows, digits_expected, json_request, 1)),
            "target": (">=", 1.0)},
        "binary / JSON, 784 features, 1 client (throughput)": {
            "num": (lambda: Running(aios(wide_repo)[0], "wide"), http_load("wide", wide_rows, wide_expected, binary_request, 1)),
            "den": (lambda: Running(aios(wide_repo)[0], "wide"), http_load("wide", wide_rows, wide_expected, json_request, 1)),
            "target": (">", 1.0)},
        "gRPC / binary HTTP, 1 client, raw clients (p50 latency)": {
            "num": (lambda: Running(aios(digits_repo)[0], "digits", grpc=True), grpc_load("digits", digits_rows, digits_expected, 1, _grpc_raw_client)),
            "den": (lambda: Running(aios(digits_repo)[0], "digits", grpc=True), http_load("digits", digits_rows, digits_expected, binary_request, 1)),
            "target": ("<=", 1.2), "latency": True},
        "gRPC with grpcio's Python client / binary HTTP, 1 client (p50 latency)": {
            "num": (lambda: Running(aios(digits_repo)[0], "digits", grpc=True), grpc_load("digits", digits_rows, digits_expected, 1)),
            "den": (lambda: Running(aios(digits_repo)[0], "digits", grpc=True), http_load("digits", digits_rows, digits_expected, binary_request, 1)),
            "target": ("<=", 1.2), "latency": True},
        "gRPC / binary HTTP, 1 client, tritonclient on both sides (p50 latency)": {
            "num": (lambda: Running(aios(digits_repo)[0], "digits", grpc=True), tritonclient_load("grpc", "digits", digits_rows, digits_expected)),
            "den": (lambda: Running(aios(digits_repo)[0], "digits", grpc=True), tritonclient_load("http", "digits", digits_rows, digits_expected)),
            "target": ("<=", 1.2), "latency": True},
        "floor: do-nothing gRPC handler (aios-serve's transport) / do-nothing HTTP handler, 1 client, raw clients (p50 latency)": {
            "num": (lambda: Floor("aios"), floor_load(grpc_floor_client("grpc_raw_client"))),
            "den": (lambda: Floor("http"), floor_load(grpc_floor_client("http_client"))),
            "target": ("<=", 1.2), "latency": True},
        "2 workers / 1 worker, 32 clients (throughput)": {
            "num": (lambda: Running(aios(digits_repo, "--workers", "2")[0], "digits"), http_load("digits", digits_rows, digits_expected, json_request, 32)),
            "den": (lambda: Running(aios(digits_repo)[0], "digits"), http_load("digits", digits_rows, digits_expected, json_request, 32)),
            "target": (">=", 1.6)},
        "batching / no batching, 784-1024-1024-10 MLP, 32 clients (throughput)": {
            "num": (lambda: Running(aios(wide_repo, "--max-batch-size", "32")[0], "wide"), http_load("wide", wide_rows, wide_expected, binary_request, 32)),
            "den": (lambda: Running(aios(wide_repo, "--max-batch-size", "1")[0], "wide"), http_load("wide", wide_rows, wide_expected, binary_request, 32)),
            "target": (">", 1.0)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a run of the default stack (default: run it now)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", action="append", default=[], help="comparisons whose name contains this")
    parser.add_argument("--report-only", action="store_true", help="rewrite PROTOCOLS.md from protocols.json")
    parser.add_argument("--client", choices=["wrk", "python"], default="wrk",
                        help="HTTP load generator: wrk (C, light; default) or this file's asyncio client")
    args = parser.parse_args()
    CLIENT["name"] = args.client
    if args.client == "wrk" and shutil.which("wrk") is None:
        parser.error(f"the HTTP rows use wrk as load generator: install it ({WRK_INSTALL}) or pass --client python")
    if args.report_only:
        saved = json.loads((HERE / "protocols.json").read_text())
        (HERE / "PROTOCOLS.md").write_text(report(saved, args.seconds, len(next(iter(saved.values()))["rounds"])))
        return 0
    work = Path(tempfile.mkdtemp(prefix="aios-serve-protocols-"))
    run = args.run or base.default_run(work / "runs")
    table = comparisons(run, work)
    names = list(table)
    if args.only:
        table = {k: v for k, v in table.items() if any(o in k for o in args.only)}
    saved = HERE / "protocols.json"
    results: dict[str, Any] = {}
    for number in range(args.rounds):
        for name, spec in table.items():
            points = {}
            for side in ("num", "den"):
                start, load = spec[side]
                server = start()
                try:
                    points[side] = load(server, args.seconds)
                finally:
                    server.stop()
            if spec.get("latency"):
                ratio = points["num"]["p50_ms"] / points["den"]["p50_ms"]
            else:
                ratio = points["num"]["requests_per_s"] / points["den"]["requests_per_s"]
            entry = results.setdefault(name, {"rounds": [], "target": spec["target"], "measured": measured()})
            entry["rounds"].append({"ratio": round(ratio, 3), **{k: v for k, v in points.items()}})
            print(f"round {number + 1}: {name}: {ratio:.2f}x  num {points['num']}  den {points['den']}", flush=True)
    if args.only and saved.exists():  # the rows measured now replace theirs; the others stay as they were
        merged = {**json.loads(saved.read_text()), **results}
        results = {name: merged[name] for name in names if name in merged}  # rows no longer measured (renamed) go
    saved.write_text(json.dumps(results, indent=1))
    (HERE / "PROTOCOLS.md").write_text(report(results, args.seconds, args.rounds))
    print(f"wrote {HERE / 'PROTOCOLS.md'}")
    return 0


def measured() -> str:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return f"{time.strftime('%Y-%m-%d %H:%M')} (load average {load})"


def report(results: dict[str, Any], seconds: float, rounds: int) -> str:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    lines = ["# aios-serve: protocol forms, workers and batching (interleaved ratios)", "",
             (f"`benchmarks/serve/protocols.py` on {time.strftime('%Y-%m-%d')}: {os.cpu_count()} cores shared with "
              f"other work (load average {load}), Python {platform.python_version()}, {base._versions()}. "
              f"{rounds} rounds; in each, the two sides of a ratio ran back to back ({seconds:g} s measured after "
              "1 s of warm-up, each server in its own process, restarted per point); the median of the per-round "
              "ratios is reported, with every round's. Latency and throughput are measured at the client "
              "(single-row requests, one keep-alive connection per client)."), "",
             f"HTTP load generator: {CLIENT['name']}" + (
                 " (C, one thread, one keep-alive connection per client: it takes far less of the 2 cores than the "
                 "servers; every distinct request's answer is checked against in-process ONNX Runtime before and "
                 "after each point)." if CLIENT["name"] == "wrk" else " (this file's asyncio client).")
             + " gRPC rows use the client each names: raw (pre-encoded HTTP/2 frames on a socket, grpc_raw.py), "
             "grpcio's (grpc.aio), or tritonclient on both sides (tritonclient.grpc against tritonclient.http, each "
             "calling InferenceServerClient.infer in a loop, binary tensor data, defaults).",
             "",
             "The shared machine's bursts of other work land on one side of a pair or the other and swing "
             "throughput ratios; for the throughput rows the p50-latency ratio (denominator's p50 / numerator's p50, "
             "median over rounds) is shown too, which such bursts disturb much less, and, for the rows comparing "
             "two servers' cost, the server-CPU ratio (denominator's CPU seconds per request / numerator's, from "
             "/proc, median over rounds): what a saturated core's throughput ratio would be.", "",
             "| ratio | median | rounds | target | met | by p50 latency | by server CPU per request | numerator (last round) | denominator (last round) |",
             "|---|---:|---|---|---|---:|---:|---|---|"]
    for name, entry in results.items():
        ratios = [r["ratio"] for r in entry["rounds"]]
        median = statistics.median(ratios)
        op, goal = entry["target"]
        met = {">=": median >= goal, ">": median > goal, "<=": median <= goal}[op]
        last = entry["rounds"][-1]
        show = lambda p: (f"{p['requests_per_s']:.0f}/s, p50 {p['p50_ms']:.3f} ms, p99 {p['p99_ms']:.2f} ms"
                          + (f", {p['cpu_us_per_request']:.0f} us CPU/req" if "cpu_us_per_request" in p else "")
                          + (f", client {p['client_cpu_us_per_call']:.0f} us CPU/call"
                             if "client_cpu_us_per_call" in p else ""))
        by_p50 = "" if "latency" in name else \
            f"{statistics.median(r['den']['p50_ms'] / r['num']['p50_ms'] for r in entry['rounds']):.2f}x"
        cpu = [r["den"]["cpu_us_per_request"] / r["num"]["cpu_us_per_request"] for r in entry["rounds"]
               if "cpu_us_per_request" in r["num"] and "cpu_us_per_request" in r["den"]]
        by_cpu = f"{statistics.median(cpu):.2f}x" if cpu and "workers" not in name else ""
        lines.append(f"| {name} | {median:.2f}x | {', '.join(f'{r:.2f}' for r in ratios)} | {op} {goal} | "
                     f"{'yes' if met else 'NO'} | {by_p50} | {by_cpu} | {show(last['num'])} | {show(last['den'])} |")
    errors = sum(r[s]["errors"] + r[s]["wrong"] for e in results.values() for r in e["rounds"] for s in ("num", "den"))
    lines += ["", f"Errors and wrong answers over all points: {errors}.", ""]
    floor = next((e for n, e in results.items() if n.startswith("floor: do-nothing gRPC")), None)
    raw = next((e for n, e in results.items() if n.startswith("gRPC / binary HTTP, 1 client, raw clients")), None)
    triton = next((e for n, e in results.items() if "tritonclient on both sides" in n), None)
    if floor and raw:
        grpc_floor_p50 = statistics.median(r["num"]["p50_ms"] for r in floor["rounds"])
        http_floor_p50 = statistics.median(r["den"]["p50_ms"] for r in floor["rounds"])
        grpc_p50 = statistics.median(r["num"]["p50_ms"] for r in raw["rounds"])
        http_p50 = statistics.median(r["den"]["p50_ms"] for r in raw["rounds"])
        lines += [(f"Where gRPC's time goes (medians of p50 over rounds): a do-nothing handler on aios-serve's gRPC "
                   f"transport answers in {grpc_floor_p50:.3f} ms, a do-nothing HTTP handler in {http_floor_p50:.3f} ms; "
                   f"aios-serve answers an inference over gRPC in {grpc_p50:.3f} ms and over binary HTTP in "
                   f"{http_p50:.3f} ms. Above its floor, the gRPC form adds {grpc_p50 - grpc_floor_p50:.3f} ms, the "
                   f"HTTP form {http_p50 - http_floor_p50:.3f} ms. `grpc_floor.py` measures the floors alone, with "
                   "the server's CPU time per request, and grpcio's own servers beside them."), ""]
    lines += [("Why the gRPC form has a transport of its own: grpcio's servers cost 250-400 us of server CPU per "
               "call before any servicer code runs (grpc.aio's do-nothing servicer answered at p50 0.25-0.45 ms, "
               "2.6-4.2x aios-serve's whole binary HTTP inference, in every run of 2026-12-01/02; grpclib, "
               "pure-Python HTTP/2 on h2, at 0.28-0.35 ms), so no servicer on them could come within 1.2x of HTTP. "
               "aios-serve's transport (aios_serve._grpc_server: the HTTP/2 a unary service needs, as an asyncio "
               "protocol, with hpack for header compression) costs about what uvicorn's HTTP/1.1 protocol does."), ""]
    if triton:
        client = lambda side: statistics.median(r[side].get("client_cpu_us_per_call", 0.0) for r in triton["rounds"])
        grpc_p50 = statistics.median(r["num"]["p50_ms"] for r in triton["rounds"])
        http_p50 = statistics.median(r["den"]["p50_ms"] for r in triton["rounds"])
        lines += [(f"As a user of the standard client library sees it (tritonclient on both sides, medians of p50 "
                   f"over rounds, {triton.get('measured', '')}): InferenceServerClient.infer takes {grpc_p50:.3f} ms "
                   f"over gRPC and {http_p50:.3f} ms over binary HTTP, {grpc_p50 / http_p50:.2f}x; these include "
                   "the clients' own Python cost, which the raw-client rows leave out")
                  + ("" if "client_cpu_us_per_call" not in triton["rounds"][-1]["num"] else
                     f": the clients themselves spent {client('num'):.0f} us (tritonclient.grpc, on grpcio) and "
                     f"{client('den'):.0f} us (tritonclient.http) of CPU per call, a difference of "
                     f"{(client('num') - client('den')) / 1000:.3f} ms against the p50 gap of "
                     f"{grpc_p50 - http_p50:.3f} ms") + ".", ""]
    times = {entry.get("measured", "") for entry in results.values()}
    if len(times) > 1:  # some rows re-run alone (--only)
        lines += [("Rows were measured at different times (`--only` re-runs some); the header's machine state is "
                   "the last run's. When each row ran:"), ""]
        lines += [f"- {name}: {entry.get('measured', 'with the first full run')}" for name, entry in results.items()]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
