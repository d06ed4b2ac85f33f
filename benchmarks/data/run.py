"""The ``files`` datastore at scale: data phase time against a plain read, peak memory against the float32 matrix.

For each size (``--rows``, default 100k and 1M rows of 64 float32 features and a 10-class integer
label) and format (CSV, Parquet, NPZ) it writes one file to a temporary directory, then alternates
(plain, aios, plain, aios, ...) two child processes:

- plain: ``pd.read_csv`` / ``pd.read_parquet`` / ``np.load`` of the file, nothing more;
- aios: ``read_data_file`` and ``prepare_dataset`` with a progress callback, as the data phase calls them, and the datastore's defaults (drop missing
  rows, stratified 70/15/15 split, standardize), what ``aios_load_dataset`` does in the data phase.

Each child reports its wall time for that work and its peak RSS growth over its RSS after the
imports (``VmHWM`` minus ``VmRSS`` before reading, from ``/proc/self/status``; ``ru_maxrss`` would
carry the parent's peak over fork and exec). Medians of ``--repeats`` rounds. Results
go to ``benchmarks/data/RESULTS.md`` (atomically). Bounded: 4 to 9 minutes at the default sizes
on 2 cores; 3M rows (``--rows 3000000``) takes about three times longer again, and ``--formats parquet
npz`` leaves out CSV, whose writing and parsing take most of the time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FEATURES = 64
CLASSES = 10

CHILD = r"""
import json, os, sys, time
os.environ.setdefault("OMP_NUM_THREADS", "1")
mode, fmt, path, small = sys.argv[1:5]
import numpy as np, pandas as pd, pyarrow.parquet
if mode == "aios":
    from aios_data import FilesDatastore
    from aios_data._files import read_data_file
    from aios_data._prepare import prepare_dataset
    import sklearn.model_selection

def status(field):
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith(field + ":"))

def work(path):
    if mode == "plain":
        if fmt == "csv":
            return pd.read_csv(path)
        if fmt == "parquet":
            return pd.read_parquet(path)
        with np.load(path) as archive:
            return archive["x"], archive["y"]
    params = FilesDatastore.Params(path=path)
    progress = lambda *report: None  # as the data phase passes the run's progress (a CSV is then read through a handle)
    raw = read_data_file(params, progress=progress, pending=True)  # as the data phase reads (an NPZ's features read
    # while its labels are split)
    return prepare_dataset(raw, params, seed=0, hash_params=params.model_dump(mode="json", exclude={"path"}),
                           progress=progress)

work(small)  # the same work on 1,000 rows first: lazy imports and first-call costs are not measured
before = status("VmRSS")
started, cpu = time.perf_counter(), time.process_time()
data = work(path)
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
peak = status("VmHWM")  # not ru_maxrss, which keeps the parent's peak across fork and exec
extra = {}
if mode == "aios":
    extra = {"dtype": str(data.split("train").read(0, 1)[0].dtype),  # read through the split: x_train is not gathered
             "rows": len(data.y_train) + len(data.y_val) + len(data.y_test),
             "hash": data.content_hash}
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_growth": peak - before, **extra}))
"""


def write_files(rows: int, folder: Path, formats: tuple[str, ...], name: str = "table") -> dict[str, Path]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(rows)
    y = rng.integers(0, CLASSES, rows)
    x = (rng.normal(size=(rows, FEATURES)) + y[:, None] * 0.05).astype(np.float32)
    paths = {fmt: folder / f"{name}{rows}.{fmt}" for fmt in formats}
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(FEATURES)])
    frame["target"] = y
    if "parquet" in paths:
        frame.to_parquet(paths["parquet"])
    if "npz" in paths:
        np.savez(paths["npz"], x=x, y=y)
    if "csv" in paths:
        frame.to_csv(paths["csv"], index=False, float_format="%.9g")
    return paths


def child(mode: str, fmt: str, path: Path, small: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, mode, fmt, str(path), str(small)], capture_output=True,
                         text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(rows: int, repeats: int, folder: Path, formats: tuple[str, ...]) -> list[dict]:
    started = time.perf_counter()
    paths = write_files(rows, folder, formats)
    smalls = write_files(1000, folder, formats, "warmup")
    print(f"{rows:,} rows: files written in {time.perf_counter() - started:.1f} s", flush=True)
    results = []
    matrix = rows * FEATURES * 4
    for fmt, path in paths.items():
        plain, aios = [], []
        for _ in range(repeats):
            plain.append(child("plain", fmt, path, smalls[fmt]))
            aios.append(child("aios", fmt, path, smalls[fmt]))
        row = {
            "rows": rows, "format": fmt, "file_mb": path.stat().st_size / 2**20, "matrix_mb": matrix / 2**20,
            "plain_s": statistics.median(r["seconds"] for r in plain),
            "aios_s": statistics.median(r["seconds"] for r in aios),
            "plain_cpu_s": statistics.median(r["cpu_seconds"] for r in plain),
            "aios_cpu_s": statistics.median(r["cpu_seconds"] for r in aios),
            "plain_peak_mb": statistics.median(r["peak_growth"] for r in plain) / 2**20,
            "aios_peak_mb": statistics.median(r["peak_growth"] for r in aios) / 2**20,
            "dtype": aios[0]["dtype"], "hash": aios[0]["hash"],
        }
        row["time_ratio"] = row["aios_s"] / row["plain_s"]
        # each round's own ratio: both sides of a round ran back to back, under the same conditions of the VM
        row["round_ratios"] = sorted(a["seconds"] / p["seconds"] for p, a in zip(plain, aios))
        row["peak_ratio"] = row["aios_peak_mb"] / row["matrix_mb"]
        print(f"  {fmt}: aios {row['aios_s']:.2f} s vs plain {row['plain_s']:.2f} s ({row['time_ratio']:.2f}x; rounds "
              f"{', '.join(f'{ratio:.2f}' for ratio in row['round_ratios'])}); "
              f"peak growth {row['aios_peak_mb']:.0f} MiB = {row['peak_ratio']:.2f}x the float32 matrix", flush=True)
        results.append(row)
        path.unlink()
    return results


def markdown(results: list[dict], repeats: int, seconds: float, load: tuple[str, str]) -> str:
    lines = [
        "# The `files` datastore at scale",
        "",
        f"Written by `benchmarks/data/run.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
        f"{seconds:.0f} s; load average (1/5/15 min) at start {load[0]}, at end {load[1]}. {FEATURES} float32 "
        f"features and a {CLASSES}-class integer label per row; the median of {repeats} interleaved rounds "
        "(plain, aios, ...), each a fresh child process that first does the same work on a 1,000-row file (so lazy imports are not measured). *aios* is the data phase's work (`read_data_file` and "
        "`prepare_dataset` with the defaults: drop missing rows, stratified split, standardize); *plain* is "
        "`pd.read_csv` / `pd.read_parquet` / `np.load` of the same file. Peak growth is the child's peak RSS "
        "(`VmHWM`) minus its RSS before reading, against the float32 feature matrix (rows x 64 x 4 bytes). "
        "CPU s is the child's processor time for the same work (all its threads: pyarrow decodes with several), "
        "which a loaded machine stretches less than the wall time. *Rounds* are each round's own aios / plain "
        "(the two ran back to back), their median and range: the plain read's time itself swings several-fold "
        "between rounds on this VM (the first touch of fresh memory).",
        "",
        "| rows | format | file MiB | plain s | aios s | aios / plain | rounds: median (range) | plain peak MiB "
        "| aios peak MiB | float32 matrix MiB | aios peak / matrix | splits' dtype | plain CPU s | aios CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['rows']:,} | {r['format']} | {r['file_mb']:.0f} | {r['plain_s']:.2f} | {r['aios_s']:.2f} "
                     f"| **{r['time_ratio']:.2f}x** | {statistics.median(r['round_ratios']):.2f}x "
                     f"({r['round_ratios'][0]:.2f}-{r['round_ratios'][-1]:.2f}) "
                     f"| {r['plain_peak_mb']:.0f} | {r['aios_peak_mb']:.0f} "
                     f"| {r['matrix_mb']:.0f} | **{r['peak_ratio']:.2f}x** | {r['dtype']} "
                     f"| {r['plain_cpu_s']:.2f} | {r['aios_cpu_s']:.2f} |")
    hashes = {}
    for r in results:
        hashes.setdefault(r["rows"], set()).add(r["hash"][:12])
    lines += ["", "Content hash per size across the formats: " + "; ".join(
        f"{rows:,} rows: {', '.join(sorted(found))}" for rows, found in hashes.items()) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--formats", nargs="+", choices=["csv", "parquet", "npz"], default=["csv", "parquet", "npz"])
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    from aios_core import write_text

    started, load = time.perf_counter(), os.getloadavg()
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as folder:
        for rows in args.rows:
            results += measure(rows, args.repeats, Path(folder), tuple(args.formats))
    end_load = os.getloadavg()
    text = markdown(results, args.repeats, time.perf_counter() - started,
                    (" ".join(f"{v:.2f}" for v in load), " ".join(f"{v:.2f}" for v in end_load)))
    write_text(args.output, text)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
