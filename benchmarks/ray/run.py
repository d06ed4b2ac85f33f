"""Ray Train against the single-process trainer on the bundled digits stack. Writes benchmarks/ray/RESULTS.md.

Run from the repository root with the project's venv::

    .venv/bin/python benchmarks/ray/run.py [--repeats 2] [--epochs 10]

The same stack (the bundled digits CNN, ``AIOS_EPOCHS`` epochs, ONNX export, int8,
evaluation) runs with ``aios run`` (the real console script, in a subprocess) three
ways: ``trainer: torch``, ``trainer: ray-train`` with 1 worker and with 2 workers, all
on a local Ray the run starts and stops. The variants alternate (A, B, C, A, B, C, ...)
so that load from other work on the machine hits them alike; the tables give medians.

Measured per run: the wall time of ``aios run``; the train phase (from ``state.json``);
for ray-train, from ``run.log``: Ray start-up, the wait from ``fit()`` until the first
epoch reaches the driver (worker processes, imports, process group), the whole
``fit()``, and Ray shut-down; the test accuracy of the final model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
RESULTS = HERE / "RESULTS.md"
AIOS = Path(sys.executable).parent / "aios"

EVERY_EPOCH = ["--set", "trainer.checkpoint_interval_s=0"]
"""ray-train checkpoints every epoch here, as when RESULTS.md was measured: each epoch then waits for Ray Train's
health check once, which is what the 2 s variant shows."""
VARIANTS = {
    "torch": [],
    "ray-train, 1 worker": ["--set", "trainer.plugin=ray-train", "--set", "trainer.num_workers=1", *EVERY_EPOCH],
    "ray-train, 2 workers": ["--set", "trainer.plugin=ray-train", "--set", "trainer.num_workers=2", *EVERY_EPOCH],
    "ray-train, 2 workers, Ray's 2 s health check": ["--set", "trainer.plugin=ray-train",
                                                     "--set", "trainer.num_workers=2",
                                                     "--set", "trainer.health_check_interval_s=2.0", *EVERY_EPOCH],
}
COMMON = ["--set", "evaluate.min_accuracy=0.9", "--set", "evaluate.latency_runs=20"]
LOG_FIGURES = {
    "ray_start": re.compile(r"ray-train: started Ray \S+ in ([\d.]+) s"),
    "first_epoch": re.compile(r"ray-train: epoch 1 reached the driver ([\d.]+) s after fit started"),
    "fit": re.compile(r"ray-train: fit took ([\d.]+) s"),
    "ray_stop": re.compile(r"ray-train: stopped Ray in ([\d.]+) s"),
}


def run_once(variant: str, runs: Path, epochs: int) -> dict[str, Any]:
    """One ``aios run`` of the bundled stack as ``variant``; its figures."""
    env = {**os.environ, "AIOS_EPOCHS": str(epochs)}
    started = time.perf_counter()
    done = subprocess.run([str(AIOS), "run", *COMMON, *VARIANTS[variant], "--runs-dir", str(runs)],
                          capture_output=True, text=True, env=env, timeout=900, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{variant}: aios run failed:\n{done.stdout}\n{done.stderr}")
    run_dir = Path(re.findall(r"^completed (\S+)$", done.stdout, re.MULTILINE)[-1])
    state = json.loads((run_dir / "state.json").read_text())
    log = (run_dir / "run.log").read_text()
    figures = {"wall": wall, "train": state["phases"]["train"]["seconds"],
               "accuracy": state["phases"]["evaluate"]["test_accuracy"],
               "epoch_seconds": statistics.median(row["seconds"] for row in state["phases"]["train"]["history"])}
    for name, pattern in LOG_FIGURES.items():
        found = pattern.search(log)
        figures[name] = float(found.group(1)) if found else None
    if figures["fit"] is not None and figures["first_epoch"] is not None:
        figures["after_first"] = figures["fit"] - figures["first_epoch"]  # epochs 2.., last checkpoint, teardown
    return figures


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [row[key] for row in rows if row.get(key) is not None]
    return statistics.median(values) if values else None


def _cell(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def write_results(results: dict[str, list[dict[str, Any]]], epochs: int, load: list[str]) -> str:
    usable = len(os.sched_getaffinity(0))
    lines = [
        "# Ray Train against the single-process trainer",
        "",
        ("Written by `benchmarks/ray/run.py`. The bundled digits stack (CNN, "
        f"{epochs} epochs, ONNX export, int8, evaluation) run with `aios run`, changing only "
        "the trainer; the variants alternate and the figures are medians of "
        f"{min(len(r) for r in results.values())} runs each. Seconds unless noted."),
        "",
        (f"Machine: {os.cpu_count()} cores ({usable} usable), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, torch {version('torch')}, ray {version('ray')}. "
        f"Load average before / after: {load[0]} / {load[1]} (the machine is shared; other work ran "
        "alongside, so absolute times are inflated and noisy)."),
        "",
        ("| trainer | aios run (wall) | train phase | Ray start | fit() until epoch 1 | fit() after epoch 1 "
        "| fit() | Ray stop | median epoch (training pass) | test accuracy |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, rows in results.items():
        accuracies = ", ".join(f"{row['accuracy']:.4f}" for row in rows)
        lines.append(f"| {variant} | {_cell(_median(rows, 'wall'))} | {_cell(_median(rows, 'train'))} "
                     f"| {_cell(_median(rows, 'ray_start'))} | {_cell(_median(rows, 'first_epoch'))} "
                     f"| {_cell(_median(rows, 'after_first'))} | {_cell(_median(rows, 'fit'))} | {_cell(_median(rows, 'ray_stop'))} "
                     f"| {_cell(_median(rows, 'epoch_seconds'), 3)} | {accuracies} |")
    torch_train = _median(results["torch"], "train") or 0.0
    two = results["ray-train, 2 workers"]
    slow_check = results["ray-train, 2 workers, Ray's 2 s health check"]
    overhead = (_median(two, "train") or 0.0) - torch_train
    lines += [
        "",
        "## What the figures mean",
        "",
        (f"- The single-process trainer's train phase takes about {torch_train:.1f} s here; with 2 Ray workers it "
        f"takes about {overhead:.0f} s more. Nearly all of that is paid once per run, before the first batch and "
        f"after the last: Ray start-up ({_cell(_median(two, 'ray_start'))} s), then the Ray Train controller and "
        "worker processes, each importing ray.train and torch, and the gloo process group "
        f"({_cell(_median(two, 'first_epoch'))} s from fit() to the first epoch), and Ray shut-down "
        f"({_cell(_median(two, 'ray_stop'))} s)."),
        (f"- Once running, the remaining epochs took {_cell(_median(two, 'after_first'))} s in all with 2 workers "
        "(including a checkpoint through Ray Train every epoch and the worker group's shut-down). With Ray's "
        f"default health-check interval of 2 s this part took {_cell(_median(slow_check, 'after_first'))} s: "
        "ray.train.report() waits for the controller's next poll, so the trainer's `health_check_interval_s` "
        "defaults to 0.1 s."),
        ("- Two workers on two cores do not train this model faster: an epoch is a fraction of a second, "
        "gradients are all-reduced every step, and the two processes compete with each other and with everything "
        "else on the machine. Data parallelism pays when an epoch takes minutes and there are cores, machines "
        "or GPUs to spare."),
        ("- Accuracy: each worker takes its share of every batch of the torch trainer's shuffled order and DDP "
        "averages the gradients into the batch's mean, so a run makes the single-process trainer's optimizer steps; "
        "the dropout draws differ per worker, so with dropout the test accuracies are two draws of the same "
        "procedure (benchmarks/ray/AGREEMENT.md)."),
    ]
    RESULTS.write_text("\n".join(lines) + "\n")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    load = [" ".join(f"{v:.2f}" for v in os.getloadavg())]
    results: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="aios-bench-ray-") as runs:
        for repeat in range(args.repeats):
            for variant in VARIANTS:
                figures = run_once(variant, Path(runs) / f"{repeat}-{variant.replace(' ', '').replace(',', '-')}",
                                   args.epochs)
                results[variant].append(figures)
                print(f"{variant}: {json.dumps({k: v if not isinstance(v, float) else round(v, 3) for k, v in figures.items()})}",
                      flush=True)
    load.append(" ".join(f"{v:.2f}" for v in os.getloadavg()))
    print(write_results(results, args.epochs, load))


if __name__ == "__main__":
    main()
