"""The whole run's memory with the ``files`` datastore in memory: peak RSS growth over the same stack on 10k rows.

    .venv/bin/python benchmarks/data/whole_run.py [--rows 1000000 3000000] [--formats parquet npz]

Issue 17's memory target for the in-memory mode: the growth of a whole ``aios run``'s peak RSS
over the same stack on 10,000 rows at most 2.5x the float32 feature matrix (rows x 64 x 4 bytes)
for Parquet and NPZ. For each format it writes the table (``streaming.py``'s generator: 64 float32
features, a 10-class label) at 10,000 rows and at each of ``--rows``, runs ``aios run`` of
``files`` (in memory) -> torch ``mlp`` [128] (1 epoch, batch 512) -> ``onnx-quant`` -> evaluate,
one thread, in a child process each, and reads each phase's peak RSS from ``state.json``. Prints a
Markdown section for ``benchmarks/data/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from streaming import run_aios, write_table

BASELINE_ROWS = 10_000
MIB = 2**20


def write(path: Path, rows: int) -> None:
    """The table as Parquet (``write_table``) or as an NPZ of ``x`` and ``y`` with the same rows."""
    if path.suffix == ".parquet":
        write_table(path, rows)
        return
    import pyarrow.parquet as pq

    parquet = path.with_suffix(".parquet")
    write_table(parquet, rows)
    table = pq.read_table(parquet)
    x = np.column_stack([table.column(f"f{i}").to_numpy() for i in range(64)]).astype(np.float32)
    np.savez(path, x=x, y=table.column("label").to_numpy().astype(np.int64))
    parquet.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 3_000_000])
    parser.add_argument("--formats", nargs="+", default=["parquet", "npz"], choices=["parquet", "npz"])
    args = parser.parse_args()
    started = time.perf_counter()
    lines = ["| format | rows | float32 matrix MiB | run peak RSS MiB | 10k-row run's peak MiB | growth / matrix "
             "| phase with the peak | data s | run wall s |", "|---|---|---|---|---|---|---|---|---|"]
    for fmt in args.formats:
        baseline = None
        for rows in [BASELINE_ROWS, *args.rows]:
            with tempfile.TemporaryDirectory(prefix="aios-whole-run-") as temporary:
                directory = Path(temporary)
                path = directory / f"table-{rows}.{fmt}"
                write(path, rows)
                result = run_aios(directory, path, rows, streaming=False)
            peak = result["peak_rss_bytes"]
            phase = max(result["phase_peak_rss_bytes"], key=result["phase_peak_rss_bytes"].get)
            if baseline is None:
                baseline = peak
            matrix = rows * 64 * 4
            growth = f"**{(peak - baseline) / matrix:.2f}x**" if rows != BASELINE_ROWS else "-"
            lines.append(f"| {fmt} | {rows:,} | {matrix / MIB:.0f} | {peak / MIB:.0f} | {baseline / MIB:.0f} | {growth} "
                         f"| {phase} | {result['phase_seconds']['data']} | {result['wall_seconds']} |")
            print(lines[-1], flush=True)
    print(f"\nwhole_run.py on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
          f"{time.perf_counter() - started:.0f} s\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
