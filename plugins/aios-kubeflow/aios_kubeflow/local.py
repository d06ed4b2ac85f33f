"""Running a compiled pipeline: on this machine with kfp.local, or on a Kubeflow Pipelines endpoint.

The local run executes the compiled YAML itself (loaded back with kfp's loader), so
what runs here is exactly what a cluster would run, each step a subprocess of this
environment's Python instead of a container of the step image.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from aios_core.errors import PipelineFailed

__all__ = ["PipelineFailed", "run_local", "submit"]


def _failed_step(pipeline_root: Path, since: float) -> str | None:
    """The error recorded in the run directory of the step that failed (written after ``since``)."""
    failed = []
    for state_file in pipeline_root.rglob("state.json"):
        if state_file.stat().st_mtime < since:
            continue
        state = json.loads(state_file.read_text(encoding="utf-8"))
        if state.get("status") == "failed" and state.get("error"):
            failed.append((state_file.stat().st_mtime, f"{state['error']} (run directory: {state_file.parent})"))
    return max(failed)[1] if failed else None


def run_local(stack: Any, phases: list[str], options: Any, pipeline_root: Path, runs_root: Path) -> Path:
    """Compile ``stack``, run the YAML with kfp.local's SubprocessRunner (``use_venv=False``: this environment)
    and copy the final run directory under ``runs_root``; returns it. PipelineFailed if a step failed."""
    import time

    from kfp import local
    from kfp.components import load_component_from_file

    from aios_core.rundir import RunDirectory
    from aios_kubeflow.pipeline import compile_pipeline

    pipeline_root.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        compiled = compile_pipeline(stack, phases, Path(tmp) / "pipeline.yaml", options)
        pipeline = load_component_from_file(str(compiled))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root.resolve()),
               raise_on_error=True, enable_caching=False)
    with warnings.catch_warnings():
        # kfp warns when a subprocess task's image is not named like a Python image: it runs here, not in it
        warnings.filterwarnings("ignore", message=".*non-Python base image.*", category=RuntimeWarning)
        # resource requests, display names: the cluster's business; kfp.local says it ignores them, once per task
        warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
        try:
            task = pipeline()
        except RuntimeError as error:
            reason = _failed_step(pipeline_root, started)
            raise PipelineFailed(f"pipeline aios-{stack.name} failed: {reason or error}") from error
    final = Path(task.output.path)
    run_dir = RunDirectory.create(runs_root, stack.name)
    shutil.copytree(final, run_dir.path, dirs_exist_ok=True)
    return run_dir.path


def submit(stack: Any, phases: list[str], options: Any, host: str) -> str:
    """Compile ``stack`` and start a run of it on the KFP API at ``host``, in ``options.experiment``; the run's id."""
    import kfp

    from aios_kubeflow.pipeline import compile_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        compiled = compile_pipeline(stack, phases, Path(tmp) / "pipeline.yaml", options)
        client = kfp.Client(host=host)
        result = client.create_run_from_pipeline_package(str(compiled), arguments={}, experiment_name=options.experiment,
                                                         run_name=f"aios-{stack.name}")
    return str(result.run_id)
