"""The authors' guide's worked example (examples/plugins/aios-nearest-centroid) is a real plugin: installed into
a temporary directory, it passes its own tests and the contract kit, runs a stack with ``aios run`` from an empty
directory, and the guide's excerpts are still copied from its files."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO

PLUGIN = REPO / "examples" / "plugins" / "aios-nearest-centroid"
GUIDE = REPO / "docs" / "plugin-authors-guide.md"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin installed with pip into a directory of its own (its dist-info carries the entry points)."""
    target = tmp_path_factory.mktemp("nearest-centroid") / "site"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                             "--no-deps", "--no-build-isolation", "--target", str(target), str(PLUGIN)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(target.glob("aios_nearest_centroid-*.dist-info/entry_points.txt"))
    return target


def environment(site: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIOS_")}
    return {**env, "PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"}


def test_the_plugin_passes_its_own_tests_and_the_contract_kit(installed: Path, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(PLUGIN),
                             str(PLUGIN / "tests")], cwd=tmp_path, env=environment(installed),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"\b\d+ passed", result.stdout) and " failed" not in result.stdout
    assert "TestNearestCentroidFramework" in (PLUGIN / "tests" / "test_contract.py").read_text(encoding="utf-8")


@pytest.mark.slow
def test_its_stack_runs_from_an_empty_directory(installed: Path, tmp_path: Path) -> None:
    from aios_core.rundir import list_runs

    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(PLUGIN / "examples" / "digits.yaml", work / "stack.yaml")
    result = subprocess.run([sys.executable, "-m", "aios_core", "run", "stack.yaml"], cwd=work,
                            env=environment(installed), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [run] = list_runs(work / "runs")
    state = run.read_state()
    assert state.status == "completed"
    assert [artifact.format for artifact in run.artifacts(state)] == ["centroids-npz", "onnx"]
    assert len(state.phases["train"]["history"]) == 1
    evaluation = state.phases["evaluate"]
    assert evaluation["final"] == "onnx" and not evaluation["skipped"]
    accuracies = {artifact["format"]: artifact["accuracy"] for artifact in evaluation["artifacts"]}
    assert accuracies["onnx"] == accuracies["centroids-npz"] >= 0.85


def guide_excerpts() -> list[tuple[str, str]]:
    """Each code block of the guide marked ``<!-- excerpt: PATH -->``: (path, code)."""
    text = GUIDE.read_text(encoding="utf-8")
    return re.findall(r"<!-- excerpt: (\S+) -->\n```\w*\n(.*?)\n```", text, flags=re.S)


def test_the_guide_quotes_the_worked_example_as_its_files_are() -> None:
    excerpts = guide_excerpts()
    assert len(excerpts) >= 8, "the guide's worked example lost its excerpts"
    for path, code in excerpts:
        source = (REPO / path).read_text(encoding="utf-8")
        assert code in source, f"docs/plugin-authors-guide.md quotes {path}, but the file no longer has:\n{code}"
