"""What one pipeline step does, in its container (or kfp.local's subprocess): some phases of the stack.

Each step is the kernel's own runner (``aios_core.runner``) asked for some phases: the
first step starts a run from the stack's lock file in its output directory; every later
step copies the run directory it receives into its own output and continues the run
there (``resume_run(..., phases=...)``), as ``aios run --resume DIR --phases P`` would.
Nothing here imports kfp: the components in ``aios_kubeflow.pipeline`` call these functions.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["StepFailed", "evaluation_metrics", "first_step", "next_step"]


class StepFailed(Exception):
    """The phases of a step failed; the message is the runner's one line (a gate's message for ``evaluate``)."""


def _execute(stack_run: Any) -> Any:
    """Run the selected phases; logs go to the run's run.log as in ``aios run``, not to the step's console
    (kfp's executor puts a handler of its own on the root logger, which would print every library's logs)."""
    import logging

    from aios_core.runner import RunFailed, RunInterrupted

    root = logging.getLogger()
    handlers = list(root.handlers)
    for handler in handlers:
        root.removeHandler(handler)
    try:
        return stack_run.execute()
    except (RunFailed, RunInterrupted) as error:
        raise StepFailed(str(error)) from error
    finally:
        for handler in handlers:
            root.addHandler(handler)


def first_step(lock_text: str, phases: list[str], out: str) -> str:
    """Start the run in ``out`` from ``lock_text`` (a stack.lock.yaml) and run ``phases``; returns the data's
    content hash (the key later steps' caching includes)."""
    from aios_core.context import RunOptions
    from aios_core.runner import start_run
    from aios_core.stack import load_stack

    from aios_core.stack import StackError

    with tempfile.TemporaryDirectory() as tmp:
        lock_file = Path(tmp) / "stack.lock.yaml"
        lock_file.write_text(lock_text, encoding="utf-8")
        try:
            stack = load_stack(lock_file, locked=True)
        except StackError as error:  # the image's plugins are not the ones the pipeline was compiled with
            raise StepFailed("; ".join(str(p) for p in error.problems)) from error
    state = _execute(start_run(stack, Path(out).parent, RunOptions(), phases, at=Path(out)))
    return str((state.phase("data") or {}).get("content_hash", ""))


def next_step(previous: str, phases: list[str], out: str, data_hash: str) -> Any:
    """Continue the run of the directory ``previous`` in ``out`` with ``phases``; returns its RunState."""
    from aios_core.context import RunOptions
    from aios_core.rundir import RunDirectory
    from aios_core.runner import resume_run

    shutil.copytree(previous, out, dirs_exist_ok=True)
    run_dir = RunDirectory.open(out)
    recorded = (run_dir.read_state().phase("data") or {}).get("content_hash")
    if data_hash and recorded != data_hash:
        raise StepFailed(f"{out}: the run directory holds data {str(recorded)[:12]}, the pipeline passed "
                         f"{data_hash[:12]}; the step's input is not the pipeline's run")
    return _execute(resume_run(run_dir, RunOptions(), phases))


def evaluation_metrics(state: Any) -> dict[str, float]:
    """The evaluate phase's figures as KFP metrics: the final model's test accuracy, size and latencies, and
    its comparison with the first exported model."""
    report = state.phase("evaluate") or {}
    final = next((a for a in report.get("artifacts", []) if a.get("name") == report.get("final")), {})
    metrics: dict[str, float] = {"test_accuracy": float(report.get("test_accuracy", 0.0))}
    if final:
        metrics["size_bytes"] = float(final["size_bytes"])
        for batch, latency in final.get("latency_ms", {}).items():
            metrics[f"latency_ms_p50_batch{batch}"] = float(latency["p50"])
    comparison = report.get("comparison") or {}
    if comparison:
        metrics["size_ratio"] = float(comparison["size_ratio"])
        metrics["accuracy_drop"] = float(comparison["accuracy_drop"])
    return metrics


def fail(error: StepFailed) -> None:
    """End the step's process with the one line, so the task (and the pipeline) fails with it."""
    print(f"error: {error}", file=sys.stderr, flush=True)
    raise SystemExit(1)
