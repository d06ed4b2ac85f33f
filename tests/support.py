"""Test support: the `aios` CLI in a subprocess, and plugin distributions made on the fly.

A made-up distribution is a real one as far as discovery goes: a ``*.dist-info`` folder
with METADATA and entry_points.txt on PYTHONPATH, found by importlib.metadata.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
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
