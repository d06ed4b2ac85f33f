"""Per-phase resource usage (aios_core.resources): what the meter counts, read back from the OS's counters."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aios_core.resources import PhaseMeter, format_usage

MIB = 1024 * 1024
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the phase's own peak needs /proc")


@linux_only
def test_the_peak_is_the_phases_own_not_the_processs() -> None:
    ballast = bytearray(300 * MIB)  # a peak before the phase
    del ballast
    meter = PhaseMeter()
    during = bytearray(40 * MIB)
    for index in range(0, len(during), 4096):  # touch every page, so it is resident
        during[index] = 1
    usage = meter.usage()
    del during
    assert usage is not None and usage["peak_rss_scope"] == "phase"
    assert usage["peak_rss_bytes"] >= 40 * MIB
    after = PhaseMeter().usage()
    assert after is not None and after["peak_rss_bytes"] < usage["peak_rss_bytes"]


def test_cpu_time_of_children_that_ended_counts() -> None:
    meter = PhaseMeter()
    child = subprocess.run([sys.executable, "-c", "import time\nend = time.process_time() + 0.5\n"
                            "while time.process_time() < end: pass\nprint(time.process_time())"],
                           capture_output=True, text=True, check=True)
    usage = meter.usage()
    assert usage is not None and usage["cpu_seconds"] >= float(child.stdout) * 0.9


@linux_only
def test_live_children_count_with_their_memory_and_cpu() -> None:
    code = ("import sys, time\nblock = bytearray(80 * 1024 * 1024)\nfor i in range(0, len(block), 4096): block[i] = 1\n"
            "end = time.process_time() + 0.3\nwhile time.process_time() < end: pass\nprint('ready', flush=True)\n"
            "sys.stdin.read()")
    meter = PhaseMeter()
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        usage = meter.usage()
    finally:
        child.communicate("")
    assert usage is not None and usage["children"] >= 1
    assert usage["children_peak_rss_bytes"] >= 80 * MIB
    assert usage["cpu_seconds"] >= 0.25


def test_switched_off_it_records_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOS_RESOURCE_USAGE", "0")
    assert PhaseMeter().usage() is None
    assert format_usage(None) == ""


def test_without_a_gpu_the_gpu_figure_is_null() -> None:
    usage = PhaseMeter().usage()
    assert usage is not None and usage["gpu_peak_bytes"] is None
    assert "GPU" not in format_usage(usage)
    assert format_usage({**usage, "wall_seconds": 1.25, "cpu_seconds": 2.5, "peak_rss_bytes": 100 * MIB,
                         "children_peak_rss_bytes": 0}) == "1.2 s wall, 2.5 s CPU, peak RSS 100 MiB"
