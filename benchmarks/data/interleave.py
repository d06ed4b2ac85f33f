"""Interleaved fresh-process timings of one data file's data phase, for comparing code versions.

    .venv/bin/python benchmarks/data/interleave.py ROUNDS FILE NAME:MODE[:ENV=VALUE,...] ...

Each variant ``NAME:MODE:ENV`` runs in a fresh child process (after the same work on the ``warmup1000``
file beside FILE, written by ``run.py``'s ``write_files``), in rounds (variant 1, 2, ..., then again):
MODE ``plain`` is ``pd.read_parquet`` / ``pd.read_csv`` / ``np.load``, ``read`` is ``read_data_file`` and the
encoding of a table into the matrix, ``full`` the whole data phase (``prepare_dataset`` too, an NPZ's features
read while its labels are split, as the data phase reads, where the code has that). ENV sets variables for the child,
e.g. ``PYTHONPATH=/tmp/before`` to run a copy of an older ``aios_data``. Prints the medians of wall time,
processor time, peak RSS growth (MiB), user and system time and minor page faults: on a shared VM the system
time (page faults, compaction) swings from run to run, the user time much less.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

CHILD = r'''
import inspect, json, resource, sys, time
mode, path, small = sys.argv[1:4]
import numpy as np
import pandas as pd
from aios_data import FilesDatastore
from aios_data._files import read_data_file
from aios_data._prepare import _encode_table, prepare_dataset

def work(path):
    if mode == "plain":
        if path.endswith("npz"):
            with np.load(path) as archive:
                return archive["x"], archive["y"]
        return pd.read_parquet(path) if path.endswith("parquet") else pd.read_csv(path)
    params = FilesDatastore.Params(path=path)
    pending = mode == "full" and "pending" in inspect.signature(read_data_file).parameters
    raw = read_data_file(params, **({"pending": True} if pending else {}))
    if mode == "read":
        return _encode_table(raw.features, [])
    return prepare_dataset(raw, params, seed=0, hash_params=params.model_dump(mode="json", exclude={"path"}))

def status(field):
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith(field + ":"))

work(small)
before, usage = status("VmRSS"), resource.getrusage(resource.RUSAGE_SELF)
started, cpu = time.perf_counter(), time.process_time()
work(path)
wall, cpu = time.perf_counter() - started, time.process_time() - cpu
after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps([wall, cpu, (status("VmHWM") - before) / 2**20, after.ru_utime - usage.ru_utime,
                  after.ru_stime - usage.ru_stime, after.ru_minflt - usage.ru_minflt]))
'''


def main() -> None:
    rounds, path, variants = int(sys.argv[1]), sys.argv[2], [spec.split(":") + [""] for spec in sys.argv[3:]]
    small = os.path.join(os.path.dirname(path), "warmup1000" + os.path.splitext(path)[1])
    results: dict[str, list[list[float]]] = {spec[0]: [] for spec in variants}
    for _ in range(rounds):
        for name, mode, env, *_ in variants:
            extra = dict(pair.split("=", 1) for pair in env.split(",") if pair)
            out = subprocess.run([sys.executable, "-c", CHILD, mode, path, small], capture_output=True, text=True,
                                 env={**os.environ, "OMP_NUM_THREADS": "1", **extra}, check=True)
            results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    for name, runs in results.items():
        median = [statistics.median(run[i] for run in runs) for i in range(6)]
        print(f"{name:10s} wall {median[0]:.3f} s  cpu {median[1]:.3f} s  peak {median[2]:.0f} MiB  user "
              f"{median[3]:.3f} s  sys {median[4]:.3f} s  faults {median[5]:.0f}  walls "
              + " ".join(f"{run[0]:.2f}" for run in runs))
    print("load average", " ".join(f"{value:.2f}" for value in os.getloadavg()))


if __name__ == "__main__":
    main()
