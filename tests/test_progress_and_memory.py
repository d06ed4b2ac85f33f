"""Progress outside epochs (``run.report_progress``) on the console, and an out-of-memory failure in one line."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from aios_core import RunContext
from aios_core.errors import one_line
from aios_core.monitors import ConsoleMonitor
from aios_core.testing import plugin_manager
from rich.console import Console


def _console_run(progress: str, aios_run_context: Callable[..., RunContext]) -> tuple[RunContext, io.StringIO]:
    monitor = ConsoleMonitor(ConsoleMonitor.Params(progress=progress))
    text = io.StringIO()
    monitor._console = Console(file=text, width=200, force_terminal=progress == "bar", highlight=False)
    run = aios_run_context(plugin_manager(monitor))
    run.phase = "data"
    return run, text


def test_console_prints_a_line_per_quarter_of_a_task_and_when_it_is_done(
        aios_run_context: Callable[..., RunContext]) -> None:
    run, text = _console_run("lines", aios_run_context)
    for done in range(0, 1_000_001, 50_000):
        run.report_progress("reading", done, 1_000_000, "rows")
    run.report_progress("scaling", 10, 10)
    assert text.getvalue().splitlines() == [
        "  reading: 250,000/1,000,000 rows", "  reading: 500,000/1,000,000 rows",
        "  reading: 750,000/1,000,000 rows", "  reading: 1,000,000/1,000,000 rows", "  scaling: 10/10 rows"]


def test_console_draws_a_bar_per_task_on_a_terminal(aios_run_context: Callable[..., RunContext]) -> None:
    run, text = _console_run("bar", aios_run_context)
    run.report_progress("reading", 300, 1200, "rows")
    run.report_progress("reading", 1200, 1200, "rows")
    run._hook.aios_on_phase_end(run=run, phase="tune", summary={"best_params": {}, "best_value": 0.5})
    assert "reading (rows)" in text.getvalue() and "1200/1200" in text.getvalue()


def test_progress_costs_nothing_without_a_listening_monitor(aios_run_context: Callable[..., RunContext]) -> None:
    run = aios_run_context(plugin_manager())
    run.report_progress("reading", 1, 2)  # no monitor implements aios_on_progress: nothing is called


def _numpy_out_of_memory() -> MemoryError:
    """NumPy's own error for an allocation no machine can make (2**60 bytes)."""
    try:
        np.empty((2**27, 2**30), dtype=np.float64)
    except MemoryError as error:
        return error
    pytest.skip("this machine allocated 1 EiB")


def test_out_of_memory_names_the_phase_the_size_and_the_levers() -> None:
    line = one_line(_numpy_out_of_memory(), phase="data")
    assert "\n" not in line
    assert line.startswith("MemoryError: Unable to allocate 1.00 EiB for an array with shape (134217728, 1073741824) "
                           "and data type float64; out of memory in the data phase: ")
    assert "float32" in line and "Parquet" in line


def test_out_of_memory_in_training_points_at_the_batch_size() -> None:
    line = one_line(_numpy_out_of_memory(), phase="train")
    assert "out of memory in the train phase" in line and "trainer.batch_size" in line


def test_a_bare_memory_error_still_says_what_to_change() -> None:
    assert one_line(MemoryError()) == ("MemoryError: out of memory: free memory or use a machine with more "
                                       "(see docs/large-data.md)")


_CAPPED_RUN = """
import resource, sys
from aios_core.cli import main
import aios_data._files, aios_data._prepare, sklearn.model_selection, torch  # loaded before the cap
with open("/proc/self/status") as status:
    size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
resource.setrlimit(resource.RLIMIT_AS, (size + 100 * 2**20, size + 100 * 2**20))
sys.argv = ["aios", "run", "stack.yaml", "--runs-dir", "runs"]
main()
"""


@pytest.mark.slow
def test_a_run_out_of_memory_in_the_data_phase_fails_in_one_line(tmp_path: Path) -> None:
    """A real allocation failure: under a cap of 100 MiB more, 250k rows of uint32 (61 MiB as loaded) and their
    61 MiB float32 matrix do not both fit."""
    rows = 250_000
    np.savez(tmp_path / "big.npz", x=np.random.default_rng(0).integers(0, 2**31, (rows, 64), dtype=np.uint32),
             y=np.arange(rows) % 3)
    (tmp_path / "stack.yaml").write_text("name: oom\ndata: {plugin: files, path: big.npz}\n"
                                         "model: {framework: torch, architecture: mlp}\ntrainer: {plugin: torch}\n")
    result = subprocess.run([sys.executable, "-c", _CAPPED_RUN], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: phase 'data' failed: MemoryError: Unable to allocate 61.0 MiB for an array "
                               "with shape (250000, 64) and data type float32; out of memory in the data phase: ")
    assert "float32" in lines[0] and "Traceback" not in result.stdout
