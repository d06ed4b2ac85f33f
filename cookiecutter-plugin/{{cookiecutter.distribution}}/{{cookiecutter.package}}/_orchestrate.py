"""The ``{{ cookiecutter.plugin_name }}`` orchestrator's pipeline: a bash script, one ``aios run --phases`` per phase.

Every orchestrator does this shape of work: one step per phase of the stack, in the kernel's
order, each step the kernel's runner for its phase on the run directory the step before
wrote. The first step starts the run from the stack's lock file (``aios run --lock LOCK
--run-dir DIR --phases data``), every later one continues it (``aios run --resume DIR
--phases PHASE``). Replace the script with your system's definition (an Airflow DAG, an
Argo Workflow, ...) and ``run_script`` with its client.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import Any

from aios_core import PipelineFailed, write_text


def script(lock_file: Path, phases: list[str], python: str) -> str:
    """The bash script of the pipeline: its one argument is the run directory."""
    aios = f"{shlex.quote(python)} -m aios_core"
    lines = ["#!/usr/bin/env bash", "# One step per phase of the stack; usage: pipeline.sh RUN_DIR", "set -euo pipefail",
             'RUN_DIR="${1:?usage: pipeline.sh RUN_DIR}"',
             f'{aios} run --lock {shlex.quote(str(lock_file))} --run-dir "$RUN_DIR" --phases {phases[0]}']
    lines += [f'{aios} run --resume "$RUN_DIR" --phases {phase}' for phase in phases[1:]]
    return "\n".join(lines) + "\n"


def compile_script(lock: dict[str, Any], phases: list[str], output: Path, python: str) -> Path:
    """Write the script at ``output`` and the stack's lock file beside it (``OUTPUT.lock.yaml``)."""
    import yaml

    lock_file = output.with_name(output.name + ".lock.yaml")
    write_text(lock_file, yaml.safe_dump(lock, sort_keys=False))
    write_text(output, script(lock_file.resolve(), phases, python))
    output.chmod(0o755)
    return output


def run_script(path: Path, run_dir: Path) -> None:
    """Run the script; PipelineFailed with the failing step's last line if a step fails."""
    done = subprocess.run(["bash", str(path), str(run_dir)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise PipelineFailed(lines[-1] if lines else f"{path} exited {done.returncode}")
