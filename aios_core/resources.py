"""Resource usage of a run's phases: wall time, CPU time, peak resident memory, GPU memory.

Read from the operating system's own counters when a phase starts and ends, never sampled
in between, so measuring costs nothing while a phase runs (at each end: the /proc/<pid>/stat of every
process, to find this one's descendants, about a millisecond; benchmarks/monitoring/RESULTS.md):

- CPU time: ``os.times()`` for this process and its waited-for children, plus the
  ``/proc/<pid>/stat`` times of live descendants (Ray's raylet and workers, a server).
- Peak RSS of this process *during the phase*: Linux resets the high-water mark when 5
  is written to ``/proc/self/clear_refs`` (at phase start) and reports it as ``VmHWM``
  (at phase end). Elsewhere ``getrusage``'s ``ru_maxrss`` is the peak since the process
  started, and ``peak_rss_scope`` says ``process``.
- Children: the sum of each live descendant's peak (its ``VmHWM``, reset at phase start
  too), and the largest peak of a child that ended (``ru_maxrss`` of ``RUSAGE_CHILDREN``)
  if it grew during the phase. A sum of peaks bounds the children's peak from above.
- GPU memory: the peak bytes PyTorch allocated on CUDA, when torch is already imported and
  a GPU exists; otherwise ``null`` (no GPU here, nothing else is asked).

Set ``AIOS_RESOURCE_USAGE=0`` to record nothing (the benchmark's "off").
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["PhaseMeter", "format_usage"]

_PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_RU_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux


def enabled() -> bool:
    return os.environ.get("AIOS_RESOURCE_USAGE", "1").strip().lower() not in ("0", "false", "no", "off")


def _status_kib(pid: int | str, field: str) -> int | None:
    try:
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_peak(pid: int | str) -> bool:
    try:
        (_PROC / str(pid) / "clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _cpu_seconds(pid: int) -> float:
    try:
        fields = (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(v) for v in fields[11:15]) / _TICKS  # utime, stime, cutime, cstime
    except (OSError, IndexError, ValueError):
        return 0.0


def _descendants() -> dict[int, float]:
    """Live descendants of this process and the CPU seconds each has used (its own and its waited children's).

    Every process's parent comes from ``/proc/*/stat`` (``/proc/<pid>/task/*/children`` would be cheaper but
    needs a kernel option that is often off).
    """
    if not _PROC.is_dir():
        return {}
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found: dict[int, float] = {}
    stack = list(children.get(os.getpid(), []))
    while stack:
        pid = stack.pop()
        if pid not in found:
            found[pid] = _cpu_seconds(pid)
            stack += children.get(pid, [])
    return found


def _gpu_peak_bytes(reset: bool) -> int | None:
    torch = sys.modules.get("torch")  # never imported here: only a run that already uses torch can use a GPU
    try:
        if torch is None or not torch.cuda.is_available():
            return None
        if reset:
            torch.cuda.reset_peak_memory_stats()
            return None
        return int(torch.cuda.max_memory_allocated())
    except Exception:  # a broken CUDA setup must not fail a phase
        return None


class PhaseMeter:
    """Measures one phase: ``PhaseMeter()`` when it starts, ``usage()`` when it ends (a JSON-able dict)."""

    def __init__(self) -> None:
        self.on = enabled()
        if not self.on:
            return
        self._wall = time.perf_counter()
        self._times = os.times()
        self._children = _descendants()
        self._scope = "phase" if _reset_peak("self") else "process"
        for pid in self._children:
            _reset_peak(pid)
        self._ended_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        _gpu_peak_bytes(reset=True)

    def usage(self) -> dict[str, Any] | None:
        """Wall and CPU seconds, peak RSS bytes (process, children) and GPU bytes since the meter started."""
        if not self.on:
            return None
        times = os.times()
        cpu = (times.user - self._times.user) + (times.system - self._times.system) \
            + (times.children_user - self._times.children_user) + (times.children_system - self._times.children_system)
        children = _descendants()
        cpu += sum(max(0.0, used - self._children.get(pid, 0.0)) for pid, used in children.items())
        peak_kib = _status_kib("self", "VmHWM") if self._scope == "phase" else None
        if peak_kib is None:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _RU_MAXRSS_UNIT
        else:
            peak = peak_kib * 1024
        children_peak = sum((_status_kib(pid, "VmHWM") or 0) * 1024 for pid in children)
        ended_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if ended_peak > self._ended_peak:
            children_peak = max(children_peak, ended_peak * _RU_MAXRSS_UNIT)
        return {"wall_seconds": round(time.perf_counter() - self._wall, 3), "cpu_seconds": round(cpu, 3),
                "peak_rss_bytes": int(peak), "peak_rss_scope": self._scope,
                "children_peak_rss_bytes": int(children_peak), "children": len(children),
                "gpu_peak_bytes": _gpu_peak_bytes(reset=False)}


def format_usage(usage: dict[str, Any] | None) -> str:
    """One line for the console and ``aios runs show``: ``1.2 s wall, 2.3 s CPU, peak RSS 410 MiB``."""
    if not usage:
        return ""
    mib = 1024 * 1024
    text = (f"{usage['wall_seconds']:.1f} s wall, {usage['cpu_seconds']:.1f} s CPU, "
            f"peak RSS {usage['peak_rss_bytes'] / mib:.0f} MiB")
    if usage.get("children_peak_rss_bytes"):
        text += f" + children {usage['children_peak_rss_bytes'] / mib:.0f} MiB"
    if usage.get("gpu_peak_bytes") is not None:
        text += f", GPU {usage['gpu_peak_bytes'] / mib:.0f} MiB"
    return text
