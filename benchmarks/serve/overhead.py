"""Where aios-serve's HTTP time goes: CPU per request of the server's whole request path, without sockets.

    .venv/bin/python benchmarks/serve/overhead.py [--run RUN_DIR] [--requests 8000] [--rounds 5] [--profile]
    .venv/bin/python benchmarks/serve/overhead.py --bytecodes [--top 25]

The wrk rows of protocols.py compare aios-serve with bare_app.py through real sockets, where the
shared machine's scheduling swings each round. Here each side runs in its own process: uvicorn's
HTTP protocol class (aios-serve's, with its task-free inference path; uvicorn's httptools one for
bare_app.py), fed one single-row JSON request of the digits model per ``data_received`` on a
transport that only counts writes, the event loop turning at least once per request (as a socket
read makes it turn; without it the task-free path never lets the loop run, and uvicorn's cancelled
keep-alive timers pile up uncollected) until the answer is written. What is
left is the Python and numpy work per request, both sides interleaved ``--rounds`` times; the
minimum over rounds is the figure contention disturbs least. ``--profile`` prints cProfile's
top functions of one aios-serve round. Writes benchmarks/serve/OVERHEAD.md (keeping its hand-written
``## Notes`` section). ``--bytecodes`` instead counts the Python bytecodes each side executes per request
(``sys.settrace`` with opcode events, over 200 requests after the warm-up): a figure the machine's load
cannot disturb, printed with the functions that execute the most (it writes nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOTES = "## Notes"


class _Transport:
    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1

    def get_extra_info(self, key: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8080)}.get(key, default)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _config(side: str, repo: Path):  # type: ignore[no-untyped-def]
    from uvicorn.config import Config

    if side == "aios":
        from aios_serve._inference import ServerSettings
        from aios_serve.server import _server, build_repository

        server = _server(build_repository([repo / "digits" / "1"]), "127.0.0.1", 8080, ServerSettings(), 5.0, "warning")
        server.config.load()
        server.state.start()
        return server.config
    sys.argv = ["bare_app.py", str(repo / "digits" / "1" / "model.onnx"), "0"]
    spec = importlib.util.spec_from_file_location("bare_app", HERE / "bare_app.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    config = Config(module.app, host="127.0.0.1", port=8080, log_level="warning", access_log=False,
                    server_header=False, date_header=False, lifespan="off")
    config.load()
    return config


def _count_bytecodes(counts: dict[str, int]):  # type: ignore[no-untyped-def]
    """A ``sys.settrace`` function adding each executed bytecode to ``counts`` under its function."""

    def trace(frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "call":
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
            code = frame.f_code
            key = f"{Path(code.co_filename).name}:{code.co_firstlineno}:{code.co_name}"

            def local(frame, event, arg):  # type: ignore[no-untyped-def]
                if event == "opcode":
                    counts[key] = counts.get(key, 0) + 1
                return local

            return local
        return None

    return trace


def child(side: str, repo: Path, row: list[float], requests: int, profile: bool, bytecodes: int = 0) -> None:
    """One side's measurement, printed as JSON (run in a fresh process)."""
    import uvloop
    from uvicorn.server import ServerState

    body = json.dumps({"inputs": [{"name": "input", "shape": [1, len(row)], "datatype": "FP32", "data": row}]}).encode()
    path = "/v2/models/digits/infer" if side == "aios" else "/v2/models/bare/infer"
    request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    async def main() -> None:
        config = _config(side, repo)
        protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})
        transport = _Transport()
        protocol.connection_made(transport)

        writes = 1 if side == "aios" else 2  # one write per answer (aios-serve) or head then body (uvicorn's)

        async def serve(count: int) -> None:
            for _ in range(count):
                answered = transport.writes + writes
                protocol.data_received(request)
                await asyncio.sleep(0)  # the loop turns once per request, as a socket read makes it turn
                while transport.writes < answered:
                    await asyncio.sleep(0)

        await serve(2000)
        if bytecodes:
            counts: dict[str, int] = {}
            sys.settrace(_count_bytecodes(counts))
            await serve(200)
            sys.settrace(None)
            top = sorted(counts.items(), key=lambda item: -item[1])[:bytecodes]
            print(json.dumps({"bytecodes_per_request": sum(counts.values()) / 200,
                              "top": [(key, count / 200) for key, count in top]}))
            return
        profiler = None
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        started = time.process_time()
        await serve(requests)
        cpu = time.process_time() - started
        if profiler is not None:
            import pstats

            profiler.disable()
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
        print(json.dumps({"cpu_us_per_request": cpu / requests * 1e6, "writes": transport.writes}))

    uvloop.run(main())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a run of the default stack (default: run it now)")
    parser.add_argument("--requests", type=int, default=8000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--bytecodes", action="store_true", help="count Python bytecodes per request instead")
    parser.add_argument("--top", type=int, default=25, help="functions listed by --bytecodes")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        side, repo, row = args.child
        child(side, Path(repo), json.loads(row), args.requests, args.profile, args.top if args.bytecodes else 0)
        return 0
    sys.path.insert(0, str(HERE))
    import run as base

    work = Path(tempfile.mkdtemp(prefix="aios-serve-overhead-"))
    run = args.run or base.default_run(work / "runs")
    base.bundle(run, base.run_models(run)["fp32"], "digits", work / "repo")
    row = json.dumps(base.test_rows(run)[0].tolist())
    if args.bytecodes:
        for side in ("aios", "bare"):
            out = subprocess.run([sys.executable, __file__, "--bytecodes", "--top", str(args.top), "--child", side,
                                  str(work / "repo"), row], check=True, stdout=subprocess.PIPE, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            print(f"{side}: {result['bytecodes_per_request']:.0f} bytecodes per request")
            for key, count in result["top"]:
                print(f"  {count:7.1f}  {key}")
        return 0
    figures: dict[str, list[float]] = {"aios": [], "bare": []}
    for number in range(args.rounds):
        for side in ("aios", "bare"):
            profile = args.profile and side == "aios" and number == 0
            out = subprocess.run([sys.executable, __file__, "--requests", str(args.requests), *(["--profile"] if profile else []),
                                  "--child", side, str(work / "repo"), row], check=True,
                                 stdout=subprocess.PIPE, stderr=None if profile else subprocess.DEVNULL, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            if not profile:
                figures[side].append(result["cpu_us_per_request"])
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = ["# aios-serve vs bare ASGI: CPU per request without sockets", "",
             f"`benchmarks/serve/overhead.py` on {time.strftime('%Y-%m-%d %H:%M')} (load average {load}), Python "
             f"{platform.python_version()}: {args.rounds} interleaved rounds of {args.requests} single-row JSON "
             "requests of the digits model through each server's uvicorn protocol class (no sockets).", "",
             "| server | min µs CPU/request | median | rounds |", "|---|---:|---:|---|"]
    for side, label in (("aios", "aios-serve (task-free path)"), ("bare", "bare_app.py")):
        values = figures[side]
        lines.append(f"| {label} | {min(values):.1f} | {statistics.median(values):.1f} | "
                     f"{', '.join(f'{v:.1f}' for v in values)} |")
    previous = (HERE / "OVERHEAD.md").read_text() if (HERE / "OVERHEAD.md").exists() else ""
    notes = previous[previous.index(NOTES):] if NOTES in previous else ""  # written by hand: kept
    (HERE / "OVERHEAD.md").write_text("\n".join(lines) + "\n" + ("\n" + notes if notes else ""))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
