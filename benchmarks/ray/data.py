"""ray-train's data path: the splits through Ray Data against the splits in the loop's configuration (before).

Run from the repository root with the project's venv::

    .venv/bin/python benchmarks/ray/data.py --old-plugin /path/to/old/plugins/aios-ray-train [--rows 1000000]

``--old-plugin`` is the ``plugins/aios-ray-train`` directory of a checkout of the design
before (the data in ``train_loop_config``), for example ``git worktree add /tmp/old
cf2abd6``; it is put first on ``PYTHONPATH`` of that variant's process (Ray's workers
inherit it). Appends a section to ``benchmarks/ray/RESULTS.md``.

Synthetic classification data: ``--rows`` rows of 64 float32 features, 10 classes (a
random linear map's argmax), split 70/15/15 in memory. Each variant trains an MLP (64
hidden units, batch 1024) for ``--epochs`` epochs with ``--workers`` workers on a local
Ray the run starts, in its own process; the variants alternate. Measured: the bytes of
the loop's configuration as Ray pickles it (every worker gets it), the bytes of the
splits each worker reads from the object store (its shard), the peak RSS of each Ray
Train worker process (VmHWM, sampled every 0.2 s), the trainer's wall time and its parts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from run import machine  # noqa: E402 - benchmarks/run.py, beside this directory

RESULTS = HERE / "RESULTS.md"
FEATURES, CLASSES = 64, 10


def synthetic(rows: int, seed: int = 0) -> Any:
    """An in-memory ``Dataset`` of ``rows`` rows, 64 float32 features, 10 classes, split 70/15/15."""
    import numpy as np

    from aios_core import Dataset

    generator = np.random.default_rng(seed)
    x = generator.standard_normal((rows, FEATURES), dtype=np.float32)
    y = (x @ generator.standard_normal((FEATURES, CLASSES), dtype=np.float32)).argmax(axis=1).astype(np.int64)
    train, val = int(rows * 0.7), int(rows * 0.85)
    return Dataset(name="synthetic", x_train=x[:train], y_train=y[:train], x_val=x[train:val], y_val=y[train:val],
                   x_test=x[val:], y_test=y[val:], class_names=[str(c) for c in range(CLASSES)], content_hash="-")


class WorkerMemory:
    """Peak RSS (VmHWM) of every Ray Train worker process, sampled while training runs."""

    def __init__(self) -> None:
        self.peaks: dict[int, int] = {}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self.stopped.wait(0.2):
            for pid in _descendants(os.getpid()):
                entry = Path(f"/proc/{pid}")
                try:
                    if not (entry / "cmdline").read_bytes().startswith(b"ray::RayTrainWorker"):
                        continue
                    peak = re.search(r"VmHWM:\s+(\d+) kB", (entry / "status").read_text())
                except OSError:
                    continue
                if peak:
                    self.peaks[int(entry.name)] = max(self.peaks.get(int(entry.name), 0), int(peak.group(1)) * 1024)


def _descendants(pid: int) -> set[int]:
    """The processes started by ``pid`` and theirs (this run's Ray, not another one on the machine)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def one_variant(rows: int, workers: int, epochs: int) -> dict[str, Any]:
    """Train once in this process with whichever aios_ray_train is first on the path; the figures as a dict."""
    import logging

    import aios_ray_train
    from aios_ray_train import RayTrainer, RayTrainParams, _cluster
    from aios_torch import TorchFramework

    from aios_core import ModelParams, RunContext
    from aios_core.testing import plugin_manager

    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logging.getLogger("aios.ray-train").addHandler(Keep())
    logging.getLogger("aios.ray-train").setLevel(logging.INFO)
    made = time.perf_counter()
    dataset = synthetic(rows)
    made = time.perf_counter() - made
    directory = Path(tempfile.mkdtemp(prefix="aios-ray-data-"))
    params = RayTrainParams(num_workers=workers, epochs=epochs, batch_size=1024, learning_rate=0.003,
                            progress_updates=0, checkpoint_interval_s=3600)
    old = not hasattr(aios_ray_train, "_data") and not Path(aios_ray_train.__file__).with_name("_data.py").exists()
    pm = plugin_manager(TorchFramework(ModelParams(architecture="mlp", hidden_units=[64])), RayTrainer(params))
    run = RunContext(name="data", seed=0, threads=1, dir=directory, stack={}, hook=pm.hook,
                     checkpoint_dir=directory / "checkpoints")
    run.phase = "train"
    memory = WorkerMemory()
    # ray is imported inside the session: Ray reads its token settings, which the session sets, on import.
    with _cluster.ray_session(None, timeout=120.0, env={"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1"}):
        import ray.cloudpickle

        model = pm.hook.aios_build_model(dataset=dataset, run=run, overrides={})
        loop_config = {"seed": 0, "params": params.model_dump(mode="json"), "model": model}
        if old:  # what the design before put in train_loop_config besides these
            loop_config.update(x_train=dataset.x_train, y_train=dataset.y_train, x_val=dataset.x_val,
                               y_val=dataset.y_val)
        else:
            loop_config.update(train_rows=dataset.rows("train"))
        config_bytes = len(ray.cloudpickle.dumps(loop_config))
        memory.thread.start()
        started = time.perf_counter()
        result = pm.hook.aios_train(model=model, dataset=dataset, run=run, overrides={})
        seconds = time.perf_counter() - started
        memory.stopped.set()
    row_bytes = FEATURES * 4 + 8
    train, val = dataset.rows("train"), dataset.rows("val")
    # Before: every worker unpickles the whole config. Now: a worker reads its train shard (rows // workers) and
    # its block of val (the driver cuts an in-memory val into one block per worker).
    shard_bytes = (train // workers + -(-val // workers)) * row_bytes
    figures = {"design": "before (loop config)" if old else "Ray Data", "rows": rows, "workers": workers,
               "epochs": epochs, "config_bytes": config_bytes, "object_store_bytes_per_worker": 0 if old else shard_bytes,
               "data_per_worker_bytes": (config_bytes if old else config_bytes + shard_bytes),
               "train_seconds": seconds, "dataset_seconds": made,
               "worker_peak_rss": sorted(memory.peaks.values()),
               "epoch_seconds": [row["seconds"] for row in result.history],
               "val_accuracy": result.history[-1]["val_accuracy"]}
    for key, pattern in {"first_epoch": r"epoch 1 reached the driver ([\d.]+) s", "fit": r"fit took ([\d.]+) s",
                         "datasets": r"in the object store.*\(([\d.]+) s\)$"}.items():
        found = [float(m.group(1)) for line in lines for m in [re.search(pattern, line)] if m]
        figures[key] = found[0] if found else None
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-plugin", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--variant", choices=["here"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print("FIGURES " + json.dumps(one_variant(args.rows, args.workers, args.epochs)), flush=True)
        return
    before = machine("torch", "ray", "numpy")
    measured: dict[str, list[dict[str, Any]]] = {}
    for _ in range(args.repeats):
        for name, path in (("Ray Data", None), ("before (loop config)", args.old_plugin.resolve())):
            env = dict(os.environ)
            if path is not None:
                env["PYTHONPATH"] = os.pathsep.join([str(path), *filter(None, [env.get("PYTHONPATH")])])
            done = subprocess.run([sys.executable, __file__, "--old-plugin", str(args.old_plugin), "--variant", "here",
                                   "--rows", str(args.rows), "--workers", str(args.workers),
                                   "--epochs", str(args.epochs)], env=env, capture_output=True, text=True)
            found = [line for line in done.stdout.splitlines() if line.startswith("FIGURES ")]
            if done.returncode or not found:
                sys.exit(f"{name}: failed (exit {done.returncode})\n{done.stderr[-3000:]}")
            figures = json.loads(found[0].removeprefix("FIGURES "))
            print(name, figures, flush=True)
            measured.setdefault(name, []).append(figures)
    write(measured, args, before, machine("torch", "ray", "numpy")["load average at start"])


def write(measured: dict[str, list[dict[str, Any]]], args: argparse.Namespace, before: dict[str, str],
          after: str) -> None:
    """Append the section: one row per run and design, in the order they ran."""
    mb = 1 / 2**20
    lines = ["", f"## Data path: Ray Data shards against the loop's configuration ({args.rows:,} rows, "
             f"{args.workers} workers)", "",
             f"Written by `benchmarks/ray/data.py`. Synthetic data: {args.rows:,} rows x {FEATURES} float32 features, "
             f"{CLASSES} classes, 70/15/15 in memory; an MLP (64 hidden units, batch 1024), {args.epochs} epochs, "
             f"{args.workers} workers on a local Ray, each variant in its own process, alternating, "
             f"{args.repeats} runs each. Before: the plugin given by `--old-plugin` (the splits in "
             "`train_loop_config`).", "",
             "Machine: " + ", ".join(f"{key} {value}" for key, value in before.items())
             + f"; load average at the end {after} (a shared machine: absolute times are inflated and noisy).", "",
             "| run | design | loop config (every worker) | splits read from the object store per worker | "
             "worker peak RSS (each) | train phase (s) | fit() until epoch 1 reached the driver (s) | "
             "training pass per epoch (s) | val accuracy |",
             "|---|---|---|---|---|---|---|---|---|"]
    for index in range(args.repeats):
        for name, runs in measured.items():
            run = runs[index]
            store = run["object_store_bytes_per_worker"]
            config = run["config_bytes"]
            config_text = f"{config * mb:.1f} MiB" if config >= 2**20 else f"{config / 1024:.1f} KiB"
            lines.append(f"| {index + 1} | {name} | {config_text} | "
                         f"{f'{store * mb:.1f} MiB' if store else '–'} | "
                         f"{' / '.join(f'{peak * mb:.0f}' for peak in run['worker_peak_rss'])} MiB | "
                         f"{run['train_seconds']:.1f} | {run['first_epoch']} | "
                         f"{' / '.join(f'{seconds:.1f}' for seconds in run['epoch_seconds'])} | "
                         f"{run['val_accuracy']:.4f} |")
    RESULTS.write_text(RESULTS.read_text() + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
