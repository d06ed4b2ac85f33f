"""Serving benchmark: throughput and p50/p99 latency of single-row requests at 1, 8 and 32 clients.

    .venv/bin/python benchmarks/serve/run.py [--run RUN_DIR] [--seconds 5] [--kserve-python PYTHON | --no-kserve]

On the digits CNN of a run of the default stack (fp32 ``model.onnx`` and int8
``model.int8.onnx``; without ``--run`` the default stack is run first), for:

  (a) aios-serve with micro-batching (max_batch_size 32, max_delay_ms 2)
  (b) aios-serve without batching (max_batch_size 1)
  (c) a bare ASGI app calling ONNX Runtime inline (bare_app.py): the ceiling for HTTP
  (d) KServe's Python model server (kserve package, kserve_server.py), same ONNX model
  (e) in-process ONNX Runtime, one thread per client: the floor

Every server runs in its own process under uvicorn on 127.0.0.1 with one ONNX Runtime
thread; the load generator is one asyncio process with one keep-alive connection per
client (raw HTTP/1.1, so the client costs little), sharing the machine's cores with the
server. Every 25th answer of each client is checked against in-process ONNX Runtime.
KServe pins its own protobuf, grpcio and fastapi ranges, so it lives in a virtualenv of its
own, which the benchmark builds on first use (``python -m venv`` and ``pip install`` of
``KSERVE_REQUIREMENTS`` from the package index, about 2 minutes, into
``~/.cache/aios/kserve-venv``, or ``$AIOS_KSERVE_VENV``) and reuses; ``--kserve-python PYTHON``
uses another interpreter that has kserve, ``--no-kserve`` leaves (d) out, and so does a
failed build (said in one line).
Writes benchmarks/serve/RESULTS.md and results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CLIENTS = (1, 8, 32)
_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


# ---------------------------------------------------------------- the model and its rows
def default_run(runs_root: Path) -> Path:
    aios = Path(sys.executable).with_name("aios")
    print(f"running the default stack into {runs_root} ...", flush=True)
    subprocess.run([str(aios), "run", "--runs-dir", str(runs_root)], check=True, stdout=subprocess.DEVNULL)
    return max(runs_root.iterdir())


def test_rows(run: Path) -> np.ndarray:
    """Digits rows preprocessed as the run recorded (the server takes preprocessed rows)."""
    from sklearn.datasets import load_digits

    from aios_core import RunDirectory

    pre = RunDirectory.open(run).read_data_summary()["preprocessing"]
    x = load_digits().data.astype(np.float64)
    return ((x - np.asarray(pre["mean"])) / np.asarray(pre["std"])).astype(np.float32)[:512]


def run_models(run: Path) -> dict[str, Path]:
    """The fp32 (exported) and int8 (compressed) ONNX files of a run of the default stack, from its run record."""
    from aios_core import RunDirectory

    paths = {artifact.name: artifact.path for artifact in RunDirectory.open(run).artifacts() if artifact.format == "onnx"}
    return {"fp32": paths["onnx"], "int8": paths["int8"]}


def session(path: Path):  # type: ignore[no-untyped-def]
    """The session aios-serve and evaluation use (aios_core.onnx_session), one thread."""
    from aios_core import onnx_session

    return onnx_session(path, 1)


def bundle(run: Path, model: Path, name: str, root: Path) -> Path:
    from aios_core import RunDirectory

    data = RunDirectory.open(run).read_data_summary()
    folder = root / name / "1"
    folder.mkdir(parents=True)
    shutil.copyfile(model, folder / "model.onnx")
    (folder / "model.json").write_text(json.dumps({"name": name, "version": "1", "class_names": data["class_names"],
                                                   "preprocessing": data["preprocessing"], "threads": 1}))
    return folder


# ---------------------------------------------------------------- servers
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, command: list[str], port: int, ready_path: str) -> None:
        self.port = port
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{command} exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{ready_path}", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{command} did not become ready")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


# ---------------------------------------------------------------- load generator
def request_bytes(path: str, row: np.ndarray) -> bytes:
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, row.size], "datatype": "FP32",
                                   "data": row.ravel().tolist()}]}).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def one_client(port: int, requests: list[bytes], expected: np.ndarray, start: int, until: float,
                     tally: dict[str, Any], measure_after: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    index = start
    try:
        while True:
            now = time.perf_counter()
            if now >= until:
                break
            row = index % len(requests)
            writer.write(requests[row])
            head = await reader.readuntil(b"\r\n\r\n")
            length = _LENGTH.search(head)
            body = await reader.readexactly(int(length.group(1))) if length else b""
            done = time.perf_counter()
            if head[9:12] != b"200":
                tally["errors"] += 1
            elif index % 25 == 0:
                data = json.loads(body)["outputs"][0]["data"]
                if not np.allclose(np.asarray(data, dtype=np.float32), expected[row], atol=1e-5):
                    tally["wrong"] += 1
            if now >= measure_after:
                tally["latencies"].append(done - now)
            index += 1
    finally:
        writer.close()


def load(port: int, path: str, rows: np.ndarray, expected: np.ndarray, clients: int, seconds: float,
         warmup: float = 1.0) -> dict[str, Any]:
    requests = [request_bytes(path, rows[i:i + 1]) for i in range(len(rows))]
    tally: dict[str, Any] = {"errors": 0, "wrong": 0, "latencies": []}

    async def main() -> None:
        start = time.perf_counter()
        await asyncio.gather(*(one_client(port, requests, expected, c * 97, start + warmup + seconds, tally,
                                          start + warmup) for c in range(clients)))

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
    return summarize(tally["latencies"], seconds, tally["errors"], tally["wrong"])


def summarize(latencies: list[float], seconds: float, errors: int = 0, wrong: int = 0) -> dict[str, Any]:
    values = np.asarray(latencies) * 1000
    return {"requests_per_s": round(len(values) / seconds, 1), "p50_ms": round(float(np.percentile(values, 50)), 3),
            "p99_ms": round(float(np.percentile(values, 99)), 3), "requests": len(values), "errors": errors,
            "wrong": wrong}


def in_process(model: Path, rows: np.ndarray, clients: int, seconds: float) -> dict[str, Any]:
    sess = session(model)
    name_in, name_out = sess.get_inputs()[0].name, sess.get_outputs()[0].name
    until = time.perf_counter() + 0.5 + seconds
    measure_after = until - seconds
    per_thread: list[list[float]] = [[] for _ in range(clients)]

    def work(k: int) -> None:
        i = k * 97
        while True:
            now = time.perf_counter()
            if now >= until:
                return
            sess.run([name_out], {name_in: rows[i % len(rows)][None, :]})
            if now >= measure_after:
                per_thread[k].append(time.perf_counter() - now)
            i += 1

    threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return summarize([x for part in per_thread for x in part], seconds)


# ---------------------------------------------------------------- KServe's own virtualenv
KSERVE_REQUIREMENTS = ["kserve>=0.14,<1", "onnxruntime>=1.17", "numpy>=1.26"]
"""What kserve_server.py imports; kserve brings its server (fastapi, uvicorn) and its own protobuf and grpcio."""


def kserve_venv() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aios" / "kserve-venv"
    return Path(os.environ.get("AIOS_KSERVE_VENV") or default)


def kserve_python(venv: Path | None = None) -> str | None:
    """The Python of KServe's virtualenv, built on first use; None (said in one line) when it cannot be built."""
    venv = venv or kserve_venv()
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", "import kserve, onnxruntime"],
                                          capture_output=True).returncode == 0:
        return str(python)
    print(f"building KServe's virtualenv in {venv} (pip install {' '.join(KSERVE_REQUIREMENTS)}) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *KSERVE_REQUIREMENTS], check=True,
                       capture_output=True, text=True)
    except subprocess.CalledProcessError as error:
        last = (error.stderr or error.stdout or "").strip().splitlines()
        print(f"KServe's virtualenv could not be built, (d) is left out: {last[-1] if last else error}", flush=True)
        return None
    return str(python)


# ---------------------------------------------------------------- the benchmark
def variants(kserve_python: str | None, repo: Path, name: str, model: Path) -> dict[str, tuple[list[str], str, str]]:
    """label -> (command without port, infer path, ready path)."""
    python = sys.executable
    found = {
        "a": ([python, "-m", "aios_serve", str(repo), "--max-batch-size", "32", "--max-delay-ms", "2", "--port"],
              f"/v2/models/{name}/infer", f"/v2/models/{name}/ready"),
        "b": ([python, "-m", "aios_serve", str(repo), "--max-batch-size", "1", "--port"],
              f"/v2/models/{name}/infer", f"/v2/models/{name}/ready"),
        "c": ([python, str(HERE / "bare_app.py"), str(model)], "/v2/models/bare/infer", "/v2/models/bare/infer"),
    }
    if kserve_python and Path(kserve_python).exists():
        found["d"] = ([kserve_python, str(HERE / "kserve_server.py"), str(model)], "/v2/models/model/infer",
                      "/v2/models/model/ready")
    return found


LABELS = {"a": "aios-serve, batching", "b": "aios-serve, no batching", "c": "bare ASGI + ONNX Runtime",
          "d": "KServe ModelServer", "e": "in-process ONNX Runtime"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a run of the default stack (default: run it now)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per point")
    parser.add_argument("--repeats", type=int, default=2,
                        help="measure every point this many times (servers restarted) and keep the fastest")
    kserve = parser.add_mutually_exclusive_group()
    kserve.add_argument("--kserve-python", default=None, metavar="PYTHON",
                        help="a Python with kserve installed (default: the benchmark's own KServe virtualenv, built "
                             "on first use)")
    kserve.add_argument("--no-kserve", action="store_true", help="leave KServe's ModelServer (d) out")
    parser.add_argument("--report-only", action="store_true", help="rewrite RESULTS.md from results.json")
    args = parser.parse_args()
    if args.report_only:
        results = {p: {label: {int(c): point for c, point in table.items()} for label, table in labels.items()}
                   for p, labels in json.loads((HERE / "results.json").read_text()).items()}
        (HERE / "RESULTS.md").write_text(report(results, args.seconds, args.repeats))
        return 0
    work = Path(tempfile.mkdtemp(prefix="aios-serve-bench-"))
    run = args.run or default_run(work / "runs")
    rows = test_rows(run)
    python_for_kserve = None if args.no_kserve else (args.kserve_python or kserve_python())
    results: dict[str, Any] = {}
    for precision, model in run_models(run).items():
        name = f"digits-{precision}"
        repo = work / "repo" / precision
        bundle(run, model, name, repo)
        expected = session(model).run(None, {"input": rows})[0]
        for repeat in range(args.repeats):
            for label, (command, path, ready) in variants(python_for_kserve, repo, name, model).items():
                port = free_port()
                print(f"{precision} ({label}) {LABELS[label]} on port {port}, pass {repeat + 1}", flush=True)
                if label == "c":  # no health endpoint: ready once it answers an inference request
                    server = _bare([*command, str(port)], port)
                else:
                    server = Server([*command, str(port)], port, ready)
                try:
                    for clients in CLIENTS:
                        keep(results, precision, label, clients, load(port, path, rows, expected, clients, args.seconds))
                finally:
                    server.stop()
            for clients in CLIENTS:
                keep(results, precision, "e", clients, in_process(model, rows, clients, args.seconds))
    (HERE / "results.json").write_text(json.dumps(results, indent=1))
    (HERE / "RESULTS.md").write_text(report(results, args.seconds, args.repeats))
    print(f"wrote {HERE / 'RESULTS.md'}")
    return 0


def keep(results: dict[str, Any], precision: str, label: str, clients: int, point: dict[str, Any]) -> None:
    """Record ``point`` unless an earlier pass was faster; errors and wrong answers of every pass add up."""
    table = results.setdefault(precision, {}).setdefault(label, {})
    print(f"   {clients:>2} clients: {point}", flush=True)
    old = table.get(clients)
    if old is not None:
        point = dict(point, errors=point["errors"] + old["errors"], wrong=point["wrong"] + old["wrong"])
        if old["requests_per_s"] >= point["requests_per_s"]:
            point = dict(old, errors=point["errors"], wrong=point["wrong"])
    table[clients] = point


def _bare(command: list[str], port: int) -> Server:
    """The bare app has no health endpoint: wait for it to accept an inference request."""
    server = Server.__new__(Server)
    server.port = port
    server.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]}).encode()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/bare/infer", data=body)
            with urllib.request.urlopen(request, timeout=2):
                return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError("bare app did not start")


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    names = ["onnxruntime", "uvicorn", "starlette", "httptools", "uvloop", "numpy"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            continue
    return ", ".join(found)


def _kserve_version() -> str:
    python = kserve_venv() / "bin" / "python"
    if not python.exists():
        return "not installed"
    found = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('kserve'))"],
                           capture_output=True, text=True)
    return found.stdout.strip() or "unknown"


def report(results: dict[str, Any], seconds: float, repeats: int) -> str:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    lines = [
        "# Serving benchmark: aios-serve (Open Inference Protocol) vs a bare ASGI app, KServe and in-process",
        "",
        (f"One run of `benchmarks/serve/run.py` on {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU cores shared by "
        f"the servers, the load generator and other work on the machine; Python {platform.python_version()}, "
        f"{_versions()}. Loopback (127.0.0.1), keep-alive connections, one client = one connection sending "
        f"single-row requests back to back; {seconds:g} s measured per point after 1 s of warm-up; every point "
        f"measured {repeats} times (servers restarted between passes) and the fastest pass kept, because the machine "
        "is shared and other work steals CPU in bursts; errors and wrong answers count over all passes. "
        "Model: the default stack's digits CNN (fp32 ONNX and its int8 quantization), one ONNX Runtime thread "
        "everywhere. Latency is measured at the client, from writing the request to reading the whole answer. "
        f"Load average when the report was written (1, 5, 15 min): {load} on {os.cpu_count()} cores: other "
        "developers' tests ran at the same time, so tail latencies (p99) mostly measure CPU theft, and "
        "throughput varies between passes by up to 2x."),
        "",
        ("(a) aios-serve, micro-batching on (max_batch_size 32, max_delay_ms 2); (b) aios-serve, max_batch_size 1; "
        "(c) bare ASGI app, ONNX Runtime inline (the ceiling for HTTP); (d) KServe's Python ModelServer "
        "(kserve package), custom Model with an ONNX Runtime session; (e) in-process ONNX Runtime, one thread per "
        "client (the floor)."),
        "",
        ("KServe runs in a virtualenv of its own, which the benchmark builds on first use with pip from the package "
         f"index ({', '.join(KSERVE_REQUIREMENTS)}; kserve {_kserve_version()}), because it pins its own protobuf, "
         "grpcio and fastapi ranges; its access log and per-request trace lines are turned off, as the other "
         "servers log none."),
        "",
    ]
    for precision, table in results.items():
        lines += [f"## {precision}", "", "| server | clients | requests/s | p50 ms | p99 ms | errors | wrong answers |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for label in "abcde":
            for clients, point in table.get(label, {}).items():
                lines.append(f"| ({label}) {LABELS[label]} | {clients} | {point['requests_per_s']:.0f} | "
                             f"{point['p50_ms']:.3f} | {point['p99_ms']:.3f} | {point['errors']} | {point['wrong']} |")
        lines += ["", "Targets:", ""]
        a, c, d = table.get("a", {}), table.get("c", {}), table.get("d", {})
        key = lambda t, n: t.get(n) or t.get(str(n)) or {}
        if a and c:
            ratio = key(a, 1)["requests_per_s"] / key(c, 1)["requests_per_s"]
            lines.append(f"- (a) / (c) throughput at 1 client: {ratio:.2f}x (target >= 0.8x): "
                         f"{'met' if ratio >= 0.8 else 'MISSED'}; from the p50 latencies, which CPU theft "
                         f"disturbs less: {key(c, 1)['p50_ms'] / key(a, 1)['p50_ms']:.2f}x")
        if a and d:
            ratio = key(a, 32)["requests_per_s"] / key(d, 32)["requests_per_s"]
            lines.append(f"- (a) / (d) throughput at 32 clients: {ratio:.2f}x (target >= 1.5x): "
                         f"{'met' if ratio >= 1.5 else 'MISSED'}")
        if a:
            ratio = key(a, 8)["p99_ms"] / key(a, 8)["p50_ms"]
            lines.append(f"- (a) p99 / p50 at 8 clients: {ratio:.2f}x (target <= 3x): {'met' if ratio <= 3 else 'MISSED'}")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
