"""Monitoring overheads (issue 13): (a) the ``mlflow`` monitor per epoch, (b) per-phase resource usage.

Run from the repository root with the project's venv (aios-torch, aios-data, aios-mlflow installed)::

    .venv/bin/python benchmarks/monitoring/run.py          # writes benchmarks/monitoring/RESULTS.md

(a) The default stack's data, CNN and trainer (20 epochs, early stopping off) through
``pm.hook.aios_train``, as ``benchmarks/run.py`` times the trainer, in three variants, interleaved
(none, server, sqlite, none, ...): no monitor; the ``mlflow`` monitor logging to an ``mlflow
server`` on 127.0.0.1 (SQLite backend); the monitor logging to a local SQLite store in-process
(MLflow's default). The fit time is the ``aios_train`` call; what the monitor does before (create
the run, log parameters) and after (wait for its queue, upload files, close the run) is timed
apart. (b) ``PhaseMeter()`` + ``usage()`` alone, many times; and the same fit measured inside a
meter with ``AIOS_RESOURCE_USAGE`` on and off, interleaved. Medians; tests never assert timings.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import run as trainer_bench  # noqa: E402  (benchmarks/run.py: the default stack's trainer, its machine info)

from aios_core.atomic import write_text  # noqa: E402

RESULTS = HERE / "RESULTS.md"


def _say(text: str) -> None:
    print(text, flush=True)


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _spread(values: list[float]) -> str:
    ordered = sorted(values)
    return f"{ordered[0]:.3f}-{ordered[-1]:.3f}"


def start_server(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'server.db'}", "--artifacts-destination", str(root / "artifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    uri = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(uri + "/health", timeout=2):
                return process, uri
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("mlflow server did not start")


class _Bench:
    """The default stack's trainer (trainer_bench._TrainingBench), with or without an mlflow monitor."""

    def __init__(self, scratch: Path, epochs: int) -> None:
        self.bench = trainer_bench._TrainingBench(scratch)
        self.epochs = epochs

    def fit(self, tracking_uri: str | None, meter: bool = False, flush_interval_s: float = 5.0) -> dict[str, float]:
        from aios_mlflow import MlflowMonitor

        from aios_core import RunDirectory
        from aios_core.resources import PhaseMeter

        pm = self.bench.pm
        model = self.bench.build("cnn")
        run = self.bench.context("train")
        RunDirectory(run.dir).write_lock({"name": "bench", "seed": 42, "lock": {"aios_core": "bench"}})
        monitor = None
        timings: dict[str, float] = {}
        if tracking_uri is not None:
            monitor = MlflowMonitor(MlflowMonitor.Params(tracking_uri=tracking_uri, experiment="benchmark",
                                                         log_models=False, flush_interval_s=flush_interval_s), "mlflow")
            pm.register(monitor, "mlflow")
            started = time.perf_counter()
            monitor.aios_on_run_start(run)
            timings["start"] = time.perf_counter() - started
            tracker = monitor._tracker
            timings["hook"] = 0.0
            original_epoch = tracker.epoch

            def timed_epoch(*args: Any) -> None:  # the training thread's time in the monitor's epoch hook
                begun = time.perf_counter()
                original_epoch(*args)
                timings["hook"] += time.perf_counter() - begun

            tracker.epoch = timed_epoch
            worker_before = tracker.worker_cpu_s
        try:
            overrides = {"epochs": self.epochs, "early_stopping_patience": None}
            started = time.perf_counter()
            phase = PhaseMeter() if meter else None
            pm.hook.aios_train(model=model, dataset=self.bench.dataset, run=run, overrides=overrides)
            if phase is not None:
                phase.usage()
            timings["fit"] = time.perf_counter() - started
            if monitor is not None:
                started = time.perf_counter()
                tracker.flush()
                timings["drain"] = time.perf_counter() - started
                timings["worker_fit"] = tracker.worker_cpu_s - worker_before  # sent while the fit ran
                started = time.perf_counter()
                monitor.aios_on_run_end(run, "completed", {})
                timings["end"] = time.perf_counter() - started
                timings["worker_run"] = tracker.worker_cpu_s - worker_before  # all of the run's epochs and its end
        finally:
            if monitor is not None:
                pm.unregister(monitor)
        from aios_core.training import wait_for_checkpoints

        wait_for_checkpoints()
        return timings


def bench_mlflow(bench: _Bench, server_uri: str, sqlite_uri: str, pairs: int) -> dict[str, list[dict[str, float]]]:
    variants = {"none": (None, 5.0), "server": (server_uri, 5.0), "server, every epoch": (server_uri, 0.0),
                "sqlite": (sqlite_uri, 5.0)}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for name, (uri, interval) in variants.items():  # warm-up: imports, the first runs of each store
        bench.fit(uri, flush_interval_s=interval)
        _say(f"  warm-up {name} done")
    for index in range(pairs):
        for name, (uri, interval) in variants.items():
            results[name].append(bench.fit(uri, flush_interval_s=interval))
        _say(f"  round {index + 1}/{pairs}: " + ", ".join(f"{n} {r[-1]['fit']:.3f} s" for n, r in results.items()))
    return results


def bench_meter(bench: _Bench, pairs: int, calls: int) -> tuple[list[float], dict[str, list[float]]]:
    from aios_core.resources import PhaseMeter

    costs = []
    for _ in range(calls):
        started = time.perf_counter()
        PhaseMeter().usage()
        costs.append(time.perf_counter() - started)
    fits: dict[str, list[float]] = {"off": [], "on": []}
    bench.fit(None, meter=True)
    for index in range(pairs):
        for name in ("off", "on"):
            os.environ["AIOS_RESOURCE_USAGE"] = "1" if name == "on" else "0"
            fits[name].append(bench.fit(None, meter=True)["fit"])
        _say(f"  round {index + 1}/{pairs}: off {fits['off'][-1]:.3f} s, on {fits['on'][-1]:.3f} s")
    os.environ.pop("AIOS_RESOURCE_USAGE", None)
    return costs, fits


def markdown(machine: dict[str, str], epochs: int, pairs: int, mlflow_results: dict[str, list[dict[str, float]]],
             costs: list[float], fits: dict[str, list[float]]) -> str:
    none = [r["fit"] for r in mlflow_results["none"]]
    lines = ["# Monitoring benchmarks", "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `benchmarks/monitoring/run.py` "
             "(method in its docstring). Figures are only comparable on the same machine under the same load; "
             "this one is a shared 2-core machine with other jobs running.", "",
             "| machine | |", "|---|---|", *(f"| {k} | {v} |" for k, v in machine.items()),
             f"| load average at the end | {' '.join(f'{v:.2f}' for v in os.getloadavg())} |", "",
             f"## (a) The `mlflow` monitor: fit time of the default stack's CNN, {epochs} epochs", "",
             f"{pairs} interleaved rounds after one warm-up of each. Ratio: median fit with the monitor / median "
             "fit without; per round: the median of each round's ratio. Target: at most 1.03.", "",
             "| variant | median fit (s) | range | ratio of medians | median per-round ratio | epoch hooks on the "
             "training thread (ms per fit) | logging thread CPU during the fit (ms) | logging thread CPU, whole run (ms) "
             "| before fit: run start (s) | after fit: queue drain (s) | after fit: run end (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, results in mlflow_results.items():
        fit = [r["fit"] for r in results]
        per_round = [a / b for a, b in zip(fit, none, strict=True)]
        cpu = [_median([r[k] for r in results]) * 1000 if name != "none" else float("nan")
               for k in ("hook", "worker_fit", "worker_run")]
        extra = [_median([r[k] for r in results]) if name != "none" else float("nan") for k in ("start", "drain", "end")]
        lines.append(f"| {name} | {_median(fit):.3f} | {_spread(fit)} | {_median(fit) / _median(none):.3f} | "
                     f"{_median(per_round):.3f} | " + " | ".join("-" if x != x else f"{x:.1f}" for x in cpu) + " | "
                     + " | ".join("-" if x != x else f"{x:.3f}" for x in extra) + " |")
    lines += ["", "Wall-time ratios on this loaded machine move by several percent from round to round either way; "
              "the CPU columns do not depend on the load. The monitor's cost to a fit is at most the time its epoch "
              "hook takes on the training thread plus the logging thread's CPU while the fit runs (that thread "
              "holds the interpreter lock while it builds and parses requests). By default (`flush_interval_s: 5`) "
              "epochs are sent every 5 s and before the next phase event, so a fit shorter than that sends nothing "
              "until it ends; `server, every epoch` is `flush_interval_s: 0`, one request per epoch: about 3 ms of the "
              "logging thread's CPU per request, so a longer fit that sends every 5 s pays about 0.06%. Run start "
              "(experiment, run, parameters) and run end (the epochs not sent yet, closing the run) happen outside "
              "the fit, once per run.", "",
              "## (b) Per-phase resource usage (`aios_core.resources`)", "",
              f"`PhaseMeter()` + `usage()` (both ends of one phase), {len(costs)} times: median "
              f"{_median(costs) * 1000:.2f} ms, max {max(costs) * 1000:.2f} ms. A run has at most 7 phases.", "",
              f"The same fit inside a meter, `AIOS_RESOURCE_USAGE` off and on, {pairs} interleaved rounds:", "",
              "| variant | median fit (s) | range |", "|---|---|---|",
              *(f"| {name} | {_median(v):.3f} | {_spread(v)} |" for name, v in fits.items()),
              "", f"Ratio on/off of medians: {_median(fits['on']) / _median(fits['off']):.3f}; median per-round ratio "
              f"{_median([a / b for a, b in zip(fits['on'], fits['off'], strict=True)]):.3f}. The meter reads counters "
              "at the phase's start and end and nothing in between, so the trainer-vs-plain-loop ratio of "
              "`benchmarks/RESULTS.md` (which calls `aios_train` directly, outside any phase) cannot change with it.",
              ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--meter-calls", type=int, default=200)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.output = args.output.resolve()
    with tempfile.TemporaryDirectory(prefix="aios-bench-monitoring-") as scratch_dir:
        scratch = Path(scratch_dir)
        os.chdir(scratch)  # the SQLite store's default artifact root is ./mlruns: keep it out of the checkout
        process, server_uri = start_server(scratch)
        try:
            bench = _Bench(scratch / "runs", args.epochs)
            _say("(a) mlflow monitor")
            mlflow_results = bench_mlflow(bench, server_uri, f"sqlite:///{scratch / 'local.db'}", args.pairs)
            _say("(b) resource usage")
            costs, fits = bench_meter(bench, args.pairs, args.meter_calls)
        finally:
            os.killpg(process.pid, 9)
            process.wait()
    text = markdown(trainer_bench.machine(), args.epochs, args.pairs, mlflow_results, costs, fits)
    write_text(args.output, text)
    _say(text)


if __name__ == "__main__":
    main()
