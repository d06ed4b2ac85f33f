"""The installed ``aios`` command, run from a fresh working directory: a bad data file stops it before any run exists.

A problem is exit code 2 and one ``error:`` line on stderr, with no traceback; ``aios
run`` creates no ``runs/`` directory.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from aios_core.testing import run_aios

EXPECTED_FILE = "expected a readable CSV, Parquet, NPZ or MNIST IDX file"
NO_RUNS_DIR = {"AIOS_RUNS_DIR": ""}  # runs go to ./runs, whatever the calling environment says


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_missing_file_stops_the_command(command: str, tmp_path: Path, write_stack: Callable[..., Path]) -> None:
    write_stack(path="data/points.csv")
    result = run_aios(command, "stack.yaml", cwd=tmp_path, env=NO_RUNS_DIR)
    assert result.returncode == 2, result.stderr
    assert error_lines(result) == [
        (f"error: stack.yaml:4: data.path: found 'data/points.csv', which does not exist (relative paths are read from "
        f"the working directory {tmp_path.resolve()}; the directory {tmp_path.resolve() / 'data'} does not exist "
        f"either); {EXPECTED_FILE}")]
    assert not (tmp_path / "runs").exists()


def test_run_stops_at_a_directory(tmp_path: Path, write_stack: Callable[..., Path]) -> None:
    (tmp_path / "data").mkdir()
    write_stack(path="data")
    result = run_aios("run", "stack.yaml", cwd=tmp_path, env=NO_RUNS_DIR)
    assert result.returncode == 2, result.stderr
    assert error_lines(result) == [(f"error: stack.yaml:4: data.path: found 'data', which is a directory; "
                                   f"{EXPECTED_FILE}")]
    assert not (tmp_path / "runs").exists()


def test_validate_names_a_missing_label_column(tmp_path: Path, write_stack: Callable[..., Path],
                                               write_csv: Callable[..., Path]) -> None:
    write_csv(header="x,y,species")
    write_stack(path="points.csv", target="specie")
    result = run_aios("validate", "stack.yaml", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert error_lines(result) == [("error: stack.yaml:5: data.target: found 'specie', which is not a column of "
                                   "'points.csv' (did you mean 'species'?); expected one of: x, y, species")]


def test_validate_accepts_a_path_relative_to_the_working_directory(tmp_path: Path, write_stack: Callable[..., Path],
                                                                   write_csv: Callable[..., Path]) -> None:
    write_csv("data/points.csv")
    write_stack(path="data/points.csv")
    result = run_aios("validate", "stack.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("stack.yaml: ok (data=files, ")
