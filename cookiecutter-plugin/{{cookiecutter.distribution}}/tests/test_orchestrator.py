{%- set P = cookiecutter.__class_prefix -%}
"""The {{ cookiecutter.plugin_name }} orchestrator: a script with one ``aios run --phases`` per phase, run step by step."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from aios_core import PipelineFailed

from {{ cookiecutter.package }} import _orchestrate


def test_the_script_starts_the_run_then_continues_it_one_phase_at_a_time(tmp_path: Path) -> None:
    text = _orchestrate.script(Path("/x/stack.lock.yaml"), ["data", "train", "evaluate"], "/usr/bin/python3")
    steps = [line for line in text.splitlines() if " -m aios_core run " in line]
    assert steps == [
        '/usr/bin/python3 -m aios_core run --lock /x/stack.lock.yaml --run-dir "$RUN_DIR" --phases data',
        '/usr/bin/python3 -m aios_core run --resume "$RUN_DIR" --phases train',
        '/usr/bin/python3 -m aios_core run --resume "$RUN_DIR" --phases evaluate',
    ]


def test_compiling_writes_the_lock_file_beside_an_executable_script(tmp_path: Path) -> None:
    output = _orchestrate.compile_script({"name": "demo", "seed": 1}, ["data"], tmp_path / "pipeline.sh",
                                         sys.executable)
    assert output.stat().st_mode & 0o111
    assert (tmp_path / "pipeline.sh.lock.yaml").read_text().startswith("name: demo")
    assert str((tmp_path / "pipeline.sh.lock.yaml").resolve()) in output.read_text()


def test_a_failing_step_fails_the_pipeline_with_its_last_line(tmp_path: Path) -> None:
    script = tmp_path / "pipeline.sh"
    script.write_text('echo "error: phase \'train\' failed: ValueError: no" >&2\nexit 1\n')
    with pytest.raises(PipelineFailed, match="^error: phase 'train' failed: ValueError: no$"):
        _orchestrate.run_script(script, tmp_path / "run")
