"""The ``files`` datastore's streaming mode end to end: a Parquet table larger than it needs to hold, in bounded memory.

For each size (``--rows``, default 1M and 10M rows of 64 float32 features and a 10-class label
that a linear map of the features decides) it writes one Parquet file in row groups of 131,072
rows to a temporary directory, then runs two child processes:

- plain: a hand-written PyTorch loop over the same file, row group by row group (pyarrow ->
  numpy -> torch), on 70 % of each group's rows (the train split's share), shuffled within the
  group, with the stack's model (64 -> 128 -> 10 MLP), optimizer (Adam, 1e-3) and batch size (512),
  one thread: what one epoch costs without AIOS;
- aios: ``aios run`` of a stack ``files`` (``streaming: true``) -> torch ``mlp`` (1 epoch,
  batch 512) -> ``onnx-quant`` -> evaluate, one thread.

It reports the run's wall time, each phase's time and the run's peak RSS (``state.json``: the
process's peak during each phase), the trainer's epoch time (its ``seconds`` metric: the training
pass alone) against the plain loop's, and the plain loop's peak RSS. One run per size (the
10M-row file is 2.5 GB; a round takes several minutes on 2 cores). Results are printed as a
Markdown section to append to ``benchmarks/data/RESULTS.md``, and written to
``benchmarks/data/streaming.json``.

    .venv/bin/python benchmarks/data/streaming.py [--rows 1000000 10000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))
from run import machine  # noqa: E402 -- benchmarks/run.py, shared by the benchmark scripts

FEATURES, CLASSES, GROUP_ROWS, BATCH = 64, 10, 131_072, 512

STACK = """\
name: stream-{rows}
seed: 0
threads: 1
data: {{plugin: files, path: {path}{target}{streaming}}}
model: {{framework: torch, architecture: mlp, hidden_units: [128]}}
trainer: {{plugin: torch, epochs: 1, batch_size: {batch}}}
compressors: [{{plugin: onnx-quant}}]
"""

PLAIN = r"""
import json, sys, time
import numpy as np, pyarrow.parquet as pq, torch
from torch import nn
torch.set_num_threads(1)
torch.manual_seed(0)
path, batch = sys.argv[1], int(sys.argv[2])
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
rng = np.random.default_rng(0)
parquet = pq.ParquetFile(path)
columns = [f"f{i}" for i in range(64)]
started, rows = time.perf_counter(), 0
for group in range(parquet.metadata.num_row_groups):
    table = parquet.read_row_group(group, columns=[*columns, "label"])
    x = np.empty((table.num_rows, 64), dtype=np.float32)
    for index, name in enumerate(columns):
        x[:, index] = table.column(name).to_numpy()
    y = table.column("label").to_numpy().astype(np.int64)
    keep = int(len(y) * 0.7)
    order = rng.permutation(keep)
    for begin in range(0, keep, batch):
        take = order[begin:begin + batch]
        inputs, targets = torch.from_numpy(x[take]), torch.from_numpy(y[take])
        loss = nn.functional.cross_entropy(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        rows += len(take)
seconds = time.perf_counter() - started
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"seconds": seconds, "rows": rows, "peak_rss_bytes": peak}))
"""


def write_table(path: Path, rows: int) -> None:
    """``rows`` rows in row groups of ``GROUP_ROWS``, written a chunk at a time (the writer holds one chunk)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    weights = rng.standard_normal((FEATURES, CLASSES), dtype=np.float32)
    schema = pa.schema([(f"f{i}", pa.float32()) for i in range(FEATURES)] + [("label", pa.int8())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, 4 * GROUP_ROWS):
            x = rng.standard_normal((min(4 * GROUP_ROWS, rows - start), FEATURES), dtype=np.float32)
            label = np.argmax(x @ weights, axis=1).astype(np.int8)
            writer.write_table(pa.table([*x.T, label], schema=schema), row_group_size=GROUP_ROWS)


def run_aios(directory: Path, path: Path, rows: int, *, streaming: bool = True) -> dict[str, object]:
    """``aios run`` of the stack over ``path`` (``streaming: true`` unless not ``streaming``; an NPZ file has no
    target column), and what its run directory records."""
    stack = directory / "stack.yaml"
    stack.write_text(STACK.format(rows=rows, path=path, batch=BATCH, streaming=", streaming: true" if streaming else "",
                                  target="" if path.suffix == ".npz" else ", target: label"))
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "aios_core", "run", str(stack), "--runs-dir", str(directory / "runs")],
                            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"aios run failed:\n{result.stderr[-3000:]}")
    run_dir = max((directory / "runs").iterdir())
    state = json.loads((run_dir / "state.json").read_text())
    phases = state["phases"]
    evaluation = json.loads((run_dir / "report" / "evaluation.json").read_text())
    return {
        "wall_seconds": round(wall, 1),
        "phase_seconds": {name: round(phase["seconds"], 1) for name, phase in phases.items()},
        "peak_rss_bytes": max(phase["resources"]["peak_rss_bytes"] for phase in phases.values()),
        "phase_peak_rss_bytes": {name: phase["resources"]["peak_rss_bytes"] for name, phase in phases.items()},
        "epoch_seconds": phases["train"]["history"][0]["seconds"],
        "train_rows": phases["data"]["sizes"]["train"],
        "test_rows": evaluation["test_rows"],
        "test_accuracy": evaluation["test_accuracy"],
        "final": evaluation["final"],
    }


def run_plain(path: Path) -> dict[str, object]:
    result = subprocess.run([sys.executable, "-c", PLAIN, str(path), str(BATCH)], capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    if result.returncode != 0:
        raise SystemExit(f"the plain loop failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def section(results: list[dict[str, object]], facts: dict[str, str], seconds: float) -> str:
    mib = 2**20
    lines = ["## Streaming mode", "",
             f"Written by `benchmarks/data/streaming.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
             f"{seconds:.0f} s; {facts['CPU']}, {facts['cores']} cores, load average at start "
             f"{facts['load average at start']}, commit {facts['commit']}. One run per size. A Parquet file of 64 "
             f"float32 features and a 10-class int8 label in row groups of {GROUP_ROWS:,} rows; `aios run` of "
             "`files` (`streaming: true`, default window 262,144 rows) -> torch `mlp` [128] (1 epoch, batch 512) -> "
             "`onnx-quant` -> evaluate, one thread. *Plain loop*: the same model, optimizer and batch size in a "
             "hand-written PyTorch loop over the file's row groups (70 % of each, shuffled within it).", "",
             "| rows | file MiB | float32 matrix MiB | run wall s | data s | train s | evaluate s | epoch s (aios) "
             "| epoch s (plain) | aios / plain | run peak RSS MiB | plain peak RSS MiB | test accuracy |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for result in results:
        aios, plain = result["aios"], result["plain"]
        per_row = (aios["epoch_seconds"] / aios["train_rows"]) / (plain["seconds"] / plain["rows"])
        phases = aios["phase_seconds"]
        lines.append(f"| {result['rows']:,} | {result['file_bytes'] / mib:.0f} | {result['rows'] * 256 / mib:.0f} "
                     f"| {aios['wall_seconds']} | {phases['data']} | {phases['train']} | {phases['evaluate']} "
                     f"| {aios['epoch_seconds']:.1f} | {plain['seconds']:.1f} | **{per_row:.2f}x** "
                     f"| **{aios['peak_rss_bytes'] / mib:.0f}** | {plain['peak_rss_bytes'] / mib:.0f} "
                     f"| {aios['test_accuracy']:.4f} ({aios['final']}, {aios['test_rows']:,} rows) |")
    lines += ["", "*aios / plain* compares the time per training row (the trainer's pass over the train split "
              "against the plain loop's over the same share of rows); the `data` phase is the first pass (counts, "
              "classes, statistics, hash), and `train` includes a validation pass over the files.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    args = parser.parse_args()
    started, facts, results = time.perf_counter(), machine("torch", "pyarrow", "numpy"), []
    for rows in args.rows:
        with tempfile.TemporaryDirectory(prefix="aios-stream-bench-") as temporary:
            directory = Path(temporary)
            path = directory / f"table-{rows}.parquet"
            write_table(path, rows)
            result = {"rows": rows, "file_bytes": path.stat().st_size, "plain": run_plain(path),
                      "aios": run_aios(directory, path, rows)}
            print(json.dumps(result), flush=True)
            results.append(result)
    (HERE / "streaming.json").write_text(json.dumps({"machine": facts, "results": results}, indent=1) + "\n")
    print(section(results, facts, time.perf_counter() - started))


if __name__ == "__main__":
    main()
