"""scripts/setup.sh (both README commands start with it) calls pip only when what pip reads changed.

The script runs on a copy of the files it reads, with a ``.venv/bin/python`` that records the pip
commands it is given instead of running them (a real install takes minutes and is what every
other test's environment comes from).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RECORDING_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/../pip-calls"
case "$*" in *" show "*) exit 1 ;; *" install "*) exit "${PIP_EXIT:-0}" ;; esac
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The files setup.sh reads, and a .venv whose python records pip commands."""
    for name in ("scripts/setup.sh", "constraints.txt", "requirements-dev.txt", "pyproject.toml",
                 *(str(p.relative_to(REPO)) for p in REPO.glob("plugins/*/pyproject.toml"))):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(RECORDING_PYTHON)
    python.chmod(0o755)
    return tmp_path


def setup(checkout: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run setup.sh from another directory, as `bash path/to/scripts/setup.sh`; return it and the pip installs."""
    calls = checkout / ".venv" / "pip-calls"
    calls.unlink(missing_ok=True)
    environment = {key: value for key, value in os.environ.items() if key != "AIOS_SETUP_FORCE"}
    result = subprocess.run(["bash", str(checkout / "scripts" / "setup.sh")], cwd=checkout.parent,
                            env=environment | {"PYTHON": sys.executable, **env}, capture_output=True, text=True,
                            timeout=60)
    installs = [line for line in (calls.read_text().splitlines() if calls.exists() else []) if " install " in line]
    return result, installs


def test_a_second_setup_with_nothing_changed_does_not_call_pip(checkout: Path) -> None:
    first, installs = setup(checkout)
    assert first.returncode == 0, first.stderr
    assert len(installs) == 1 and "-c constraints.txt -e . -e plugins/aios-data" in installs[0], installs
    second, installs = setup(checkout)
    assert second.returncode == 0 and installs == [], (second.stderr, installs)
    assert second.stderr.strip() == ("setup: .venv is up to date with this checkout's requirements "
                                     "(AIOS_SETUP_FORCE=1 reinstalls)")


@pytest.mark.parametrize("changed", ["constraints.txt", "requirements-dev.txt", "pyproject.toml",
                                     "plugins/aios-serve/pyproject.toml", "scripts/setup.sh"])
def test_a_changed_requirement_installs_again(checkout: Path, changed: str) -> None:
    assert setup(checkout)[0].returncode == 0
    with (checkout / changed).open("a") as file:
        file.write("\n# changed\n")
    result, installs = setup(checkout)
    assert result.returncode == 0 and len(installs) == 1, (result.stderr, installs)


def test_aios_setup_force_installs_again(checkout: Path) -> None:
    assert setup(checkout)[0].returncode == 0
    result, installs = setup(checkout, AIOS_SETUP_FORCE="1")
    assert result.returncode == 0 and len(installs) == 1, (result.stderr, installs)


def test_a_failed_install_is_tried_again_next_time(checkout: Path) -> None:
    assert setup(checkout)[0].returncode == 0
    (checkout / "constraints.txt").write_text((checkout / "constraints.txt").read_text() + "\n")
    failed, installs = setup(checkout, PIP_EXIT="1")
    assert failed.returncode == 1 and len(installs) == 1
    assert not (checkout / ".venv" / ".aios-setup-digest").exists()
    again, installs = setup(checkout)
    assert again.returncode == 0 and len(installs) == 1, (again.stderr, installs)
