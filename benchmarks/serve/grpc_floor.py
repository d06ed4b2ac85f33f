"""The floor of each protocol form in Python: do-nothing servers and the clients, at 1 client.

    .venv/bin/python benchmarks/serve/grpc_floor.py [--seconds 3] [--rounds 3]

What a request costs before any model or servicer code runs: a do-nothing HTTP handler
(a bare ASGI app under uvicorn, with uvloop and httptools when installed, as aios-serve runs) answering a
fixed body, against do-nothing gRPC handlers (a ``ModelInfer`` handler returning fixed
bytes, no protobuf decode or encode) on aios-serve's gRPC transport (``aios_serve._grpc_server``,
what ``aios serve`` runs), and, for comparison, grpcio's servers: grpc.aio and the thread-pool server. Each is
driven by the client the protocol benchmark uses (raw HTTP/1.1 on a socket; grpc's sync
stub and grpc.aio), one request at a time, each server in its own process, interleaved
per round. Prints p50/p99 per pair and writes nothing: the figures go to PROTOCOLS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as base  # noqa: E402

METHOD = "/inference.GRPCInferenceService/ModelInfer"
REQUEST = b"\n\x06digits" + b"\x3a" + bytes([0x40]) + bytes(64)  # model_name + one 64-byte raw_input_contents
ANSWER = b"\n\x06digits" + b"\x32" + bytes([0x28]) + bytes(40)   # model_name + one 40-byte raw_output_contents


def run_loop(main: Any) -> Any:
    """``main`` in uvloop's event loop when it is installed (as uvicorn picks it), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


# ---------------------------------------------------------------- servers (run as: grpc_floor.py serve KIND PORT)
def serve_http(port: int) -> None:
    import uvicorn

    body = b'{"model_name":"digits"}' + b" " * 40
    start = {"type": "http.response.start", "status": 200,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}
    answer = {"type": "http.response.body", "body": body}

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send(start)
        await send(answer)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off",
                server_header=False, date_header=False)


OPTIONS = [("grpc.http2.bdp_probe", int(os.environ.get("BDP", "1")))]


def _handler(function: Any) -> Any:
    import grpc

    return grpc.method_handlers_generic_handler("inference.GRPCInferenceService", {
        "ModelInfer": grpc.unary_unary_rpc_method_handler(function)})


def serve_grpc_aio(port: int) -> None:
    import grpc

    async def infer(request: bytes, context: Any) -> bytes:
        return ANSWER

    async def main() -> None:
        server = grpc.aio.server(options=OPTIONS)
        server.add_generic_rpc_handlers((_handler(infer),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    run_loop(main())


def serve_grpc_sync(port: int) -> None:
    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(4), options=OPTIONS)
    server.add_generic_rpc_handlers((_handler(lambda request, context: ANSWER),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def serve_aios(port: int) -> None:
    from aios_serve._grpc_server import GrpcServer

    async def main() -> None:
        server = GrpcServer(lambda path, message, headers, reply, together: ANSWER, max_message=8 * 1024 * 1024,
                            max_connections=64, header_timeout=10.0, body_timeout=30.0)
        await server.start("127.0.0.1", port)
        await asyncio.Event().wait()

    run_loop(main())


SERVERS = {"http": serve_http, "aios": serve_aios, "grpc-aio": serve_grpc_aio, "grpc-sync": serve_grpc_sync}


# ---------------------------------------------------------------- clients
def http_client(port: int, seconds: float) -> list[float]:
    request = (b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
               b"Content-Length: 64\r\n\r\n" + bytes(64))

    async def main() -> list[float]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        latencies = []
        until = time.perf_counter() + 1.0 + seconds
        measure_after = until - seconds
        while (now := time.perf_counter()) < until:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(int(base._LENGTH.search(head).group(1)))
            if now >= measure_after:
                latencies.append(time.perf_counter() - now)
        writer.close()
        return latencies

    return run_loop(main())


def grpc_sync_client(port: int, seconds: float) -> list[float]:
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(METHOD)
        latencies = []
        until = time.perf_counter() + 1.0 + seconds
        measure_after = until - seconds
        while (now := time.perf_counter()) < until:
            call(REQUEST)
            if now >= measure_after:
                latencies.append(time.perf_counter() - now)
    return latencies


def grpc_aio_client(port: int, seconds: float) -> list[float]:
    import grpc

    async def main() -> list[float]:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(METHOD)
            latencies = []
            until = time.perf_counter() + 1.0 + seconds
            measure_after = until - seconds
            while (now := time.perf_counter()) < until:
                await call(REQUEST)
                if now >= measure_after:
                    latencies.append(time.perf_counter() - now)
            return latencies

    return run_loop(main())


def grpc_raw_client(port: int, seconds: float) -> list[float]:
    from grpc_raw import RawGrpcChannel

    async def main() -> list[float]:
        channel = await RawGrpcChannel.connect(f"127.0.0.1:{port}")
        latencies = []
        until = time.perf_counter() + 1.0 + seconds
        measure_after = until - seconds
        while (now := time.perf_counter()) < until:
            if await channel.call(METHOD, REQUEST) is None:
                raise RuntimeError("the call failed")
            if now >= measure_after:
                latencies.append(time.perf_counter() - now)
        channel.close()
        return latencies

    return run_loop(main())


PAIRS = {  # label -> (server, client)
    "do-nothing HTTP, raw socket client": ("http", http_client),
    "do-nothing gRPC, aios-serve's transport, raw HTTP/2 client": ("aios", grpc_raw_client),
    "do-nothing gRPC, aios-serve's transport, sync stub client": ("aios", grpc_sync_client),
    "do-nothing gRPC, grpc.aio server, raw HTTP/2 client": ("grpc-aio", grpc_raw_client),
    "do-nothing gRPC, thread-pool server, raw HTTP/2 client": ("grpc-sync", grpc_raw_client),
    "do-nothing gRPC, grpc.aio server, sync stub client": ("grpc-aio", grpc_sync_client),
    "do-nothing gRPC, grpc.aio server, grpc.aio client": ("grpc-aio", grpc_aio_client),
    "do-nothing gRPC, thread-pool server, sync stub client": ("grpc-sync", grpc_sync_client),
}


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(kind: str) -> tuple[subprocess.Popen, int]:  # type: ignore[type-arg]
    import socket

    port = base.free_port()
    process = subprocess.Popen([sys.executable, __file__, "serve", kind, str(port)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{kind} server did not start")


def main() -> int:
    if sys.argv[1:2] == ["serve"]:
        SERVERS[sys.argv[2]](int(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", action="append", default=[], help="pairs whose label contains this")
    args = parser.parse_args()
    pairs = {label: pair for label, pair in PAIRS.items()
             if label.startswith("do-nothing HTTP") or not args.only or any(o in label for o in args.only)}
    p50s: dict[str, list[float]] = {label: [] for label in pairs}
    for number in range(args.rounds):
        for label, (kind, client) in pairs.items():
            process, port = start(kind)
            try:
                before = cpu_seconds(process.pid)
                values = np.asarray(client(port, args.seconds)) * 1000
                cpu = (cpu_seconds(process.pid) - before) / (len(values) * (1 + 1 / args.seconds))
            finally:
                process.kill()
                process.wait()
            p50s[label].append(float(np.percentile(values, 50)))
            print(f"round {number + 1}: {label}: p50 {p50s[label][-1]:.3f} ms, p99 {np.percentile(values, 99):.3f} ms, "
                  f"{len(values) / args.seconds:.0f}/s, server CPU {cpu * 1e6:.0f} us per request", flush=True)
    http = statistics.median(p50s["do-nothing HTTP, raw socket client"])
    for label, values in p50s.items():
        print(f"{label}: median p50 {statistics.median(values):.3f} ms ({statistics.median(values) / http:.2f}x HTTP)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
