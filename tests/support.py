"""Test support: the `aios` CLI in a subprocess, stack files it refuses, and plugin distributions made on the fly.

A made-up distribution is a real one as far as discovery goes: a ``*.dist-info`` folder
with METADATA and entry_points.txt on PYTHONPATH, found by importlib.metadata.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURE_PLUGINS = Path(__file__).resolve().parent / "fixture_plugins"
DEFAULT_STACK = REPO / "examples" / "digits-torch.yaml"


def make_distribution(site: Path, name: str, entry_points: dict[str, dict[str, str]], *,
                      version: str = "0.1.0", requires: tuple[str, ...] = ("aios-kernel>=0.1,<0.2",),
                      modules: dict[str, str] | None = None) -> Path:
    """Write an installed distribution (dist-info + modules) into ``site``."""
    site.mkdir(parents=True, exist_ok=True)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(metadata) + "\n")
    lines = []
    for group, entries in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{key} = {value}" for key, value in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for module, source in (modules or {}).items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    return site


def install_test_plugins(site: Path) -> Path:
    """Install aios-test-plugins (tuner `random`, deployer `bundle`, monitor `recorder`) into ``site``."""
    make_distribution(site, "aios-test-plugins", {
        "aios.tuners": {"random": "aios_test_plugins:RandomSearchTuner"},
        "aios.deployers": {"bundle": "aios_test_plugins:BundleDeployer"},
        "aios.monitors": {"recorder": "aios_test_plugins:EventRecorder"},
    })
    return site


def aios_env(*sites: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOS_")}
    paths = [str(s) for s in sites] + [str(FIXTURE_PLUGINS)]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env


def run_aios(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
             timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess (the installed console script's code path)."""
    return subprocess.run([sys.executable, "-m", "aios_core", *args], env=env or aios_env(), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


# A small valid stack: the digits data set, a torch CNN trained for two epochs (the YAML layer's tests use this).
TRAINING_STACK = """\
name: digits
seed: 1
data:
  plugin: sklearn
  dataset: digits
model:
  framework: torch
  architecture: cnn
trainer:
  plugin: torch
  epochs: 2
"""
# The same with a static ONNX quantizer; the line numbers the stack tests expect count from this text.
STACK = TRAINING_STACK + """\
compressors:
  - plugin: onnx-quant
    mode: static
"""


def write_stack(tmp_path: Path, content: str | bytes) -> Path:
    """``tmp_path/stack.yaml`` holding ``content`` (text as UTF-8, bytes as they are)."""
    stack = tmp_path / "stack.yaml"
    stack.write_bytes(content if isinstance(content, bytes) else content.encode())
    return stack


def stack_problems(tmp_path: Path, content: str | bytes, *overrides: str,
                   read: Callable[..., object] | None = None) -> list[str]:
    """The problems ``load_stack`` (or ``read``, e.g. ``read_stack_file``) reports, each without the file name."""
    import pytest

    from aios_core.stack import StackError, load_stack

    stack = write_stack(tmp_path, content)
    with pytest.raises(StackError) as caught:
        (read or load_stack)(stack, overrides)
    return [str(problem).removeprefix(str(stack)) for problem in caught.value.problems]


def refusal(tmp_path: Path, content: str | bytes, *args: str, run: bool = False) -> str:
    """The one line ``aios validate [ARGS]`` writes for a stack holding ``content``, less ``error: FILE``.

    It must exit 2 with no traceback; with ``run``, ``aios run [ARGS]`` must write the same line and
    create no run directory.
    """
    stack = write_stack(tmp_path, content)
    runs = tmp_path / "runs"
    commands = [["validate", str(stack)]] + ([["run", str(stack), "--runs-dir", str(runs)]] if run else [])
    lines = []
    for command in commands:
        result = run_aios(*command, *args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        found = result.stderr.strip().splitlines()
        assert len(found) == 1, result.stderr
        lines.append(found[0])
    assert lines == lines[:1] * len(lines), lines
    assert not runs.exists()
    return lines[0].removeprefix(f"error: {stack}")


_PIP_OPTIONS_WITH_VALUES = {"-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-i", "--index-url",
                            "--extra-index-url", "-f", "--find-links", "-t", "--target", "--report", "-d", "--dest",
                            "-w", "--wheel-dir"}


def first_party_names() -> set[str]:
    """The names AIOS has published no release under (the bundled index's first-party entries), and aios-core."""
    from aios_core.catalog import BUNDLED_INDEX, read_index
    from aios_core.vocabulary import FORMER_CORE_DISTRIBUTION

    index = read_index(str(BUNDLED_INDEX))
    return {plugin.canonical for plugin in index.plugins if not plugin.by_name} | {FORMER_CORE_DISTRIBUTION}


def bare_installs(text: str, names: set[str]) -> list[str]:
    """Each ``pip install`` (or download) in ``text`` that asks for one of ``names`` by name, without ``NAME @ URL``.

    A requirement named that way could resolve to a same-named project on a package index.
    """
    import re
    import shlex

    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    found = []
    for match in re.finditer(r"pip (?:install|download|wheel)\b([^\n`<]*)", text):
        command = match.group(1)
        try:
            words = shlex.split(command)
        except ValueError:
            words = command.split()
        skip = False
        for word in words:
            if word in ("&&", "||", ";", "|", ">", "#") or word.startswith(("#", ">")):
                break
            if skip or word.startswith("-"):
                skip = not skip and word in _PIP_OPTIONS_WITH_VALUES
                continue
            try:
                requirement = Requirement(word)
            except InvalidRequirement:
                continue
            if canonicalize_name(requirement.name) in names and requirement.url is None:
                found.append(match.group(0).strip())
    return found
