"""aios-serve of this checkout against aios-serve at another git revision: interleaved ratios under wrk.

    .venv/bin/python benchmarks/serve/revisions.py REVISION [--run RUN_DIR] [--clients 1 8 32] [--rounds 7]

The other revision's ``aios_serve`` package is taken out of git (``git archive``, nothing in the
working tree changes) and put first on the server's ``PYTHONPATH``; both servers run the same
interpreter, libraries and model (the digits run's fp32 ONNX file), each in its own process, both
up for the whole benchmark. Each round measures both back to back at each client count (wrk, one
keep-alive connection per client, single-row JSON requests, 1 s of warm-up then ``--seconds``),
and the ratio this checkout / the revision of throughput and of the server's CPU time per request
(from /proc: the figure a busy machine disturbs least; revision's µs / this checkout's µs) is
reported as the median over rounds, with every round's. Every distinct request's answer is
checked against in-process ONNX Runtime before and after each point.

For changes of the server's own code (the request path, the batcher); not written to a results
file: the numbers go to the terminal, for notes such as ``OVERHEAD.md``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import protocols  # noqa: E402 - wrk and the answer checks
import run as base  # noqa: E402 - the run, the bundle, servers


def extract(revision: str, into: Path) -> Path:
    """``plugins/aios-serve/aios_serve`` at ``revision`` under ``into``; the folder to put on PYTHONPATH."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "plugins/aios-serve/aios_serve"],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "plugins" / "aios-serve"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revision", help="a git revision of this repository (e.g. main, HEAD~3, a commit)")
    parser.add_argument("--run", type=Path, help="a run of the default stack (default: run it now)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aios-serve-revisions-") as folder:
        work = Path(folder)
        other = extract(args.revision, work / "other")
        run = args.run or base.default_run(work / "runs")
        model = base.run_models(run)["fp32"]
        rows = base.test_rows(run)[:64]
        repo = work / "digits"
        base.bundle(run, model, "digits", repo)
        expected = base.session(model).run(None, {"input": rows})[0]
        requests = [protocols.json_request("/v2/models/digits/infer", row) for row in rows]
        script = protocols.wrk_script(requests, work / "requests.lua")
        servers = {}
        for name, path in (("this", []), ("other", [f"PYTHONPATH={other}"])):
            port = base.free_port()
            command = ["env", *path, sys.executable, "-m", "aios_serve", str(repo), "--port", str(port)]
            servers[name] = base.Server(command, port, "/v2/models/digits/ready")
        ratios: dict[int, tuple[list[float], list[float]]] = {c: ([], []) for c in args.clients}
        wrong = errors = 0
        try:
            for round_ in range(1, args.rounds + 1):
                for clients in args.clients:
                    figures = {}
                    for name, server in servers.items():
                        wrong += protocols.check_answers(server.port, requests, expected)
                        protocols._wrk(server.port, script, clients, 1)
                        cpu = protocols._cpu_seconds(server.process.pid)
                        result = protocols._wrk(server.port, script, clients, args.seconds)
                        cpu = protocols._cpu_seconds(server.process.pid) - cpu
                        wrong += protocols.check_answers(server.port, requests, expected)
                        errors += result["errors"]
                        count = max(1, result["requests"])
                        figures[name] = (count / args.seconds, cpu / count * 1e6, result["p50_us"] / 1000)
                    throughput = figures["this"][0] / figures["other"][0]
                    cpu_ratio = figures["other"][1] / figures["this"][1]
                    ratios[clients][0].append(throughput)
                    ratios[clients][1].append(cpu_ratio)
                    print(f"round {round_}, {clients} clients: this {figures['this'][0]:.0f}/s "
                          f"{figures['this'][1]:.1f} us CPU/req p50 {figures['this'][2]:.3f} ms; {args.revision} "
                          f"{figures['other'][0]:.0f}/s {figures['other'][1]:.1f} us CPU/req p50 "
                          f"{figures['other'][2]:.3f} ms; throughput {throughput:.2f}x, by CPU {cpu_ratio:.2f}x",
                          flush=True)
        finally:
            for server in servers.values():
                server.stop()
    print(f"\nthis checkout / {args.revision} (median of {args.rounds} rounds; errors {errors}, wrong answers {wrong}):")
    for clients, (throughput, cpu) in ratios.items():
        print(f"  {clients} clients: throughput {statistics.median(throughput):.2f}x "
              f"({', '.join(f'{r:.2f}' for r in throughput)}), by server CPU per request "
              f"{statistics.median(cpu):.2f}x ({', '.join(f'{r:.2f}' for r in cpu)})")
    return 1 if wrong or errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
