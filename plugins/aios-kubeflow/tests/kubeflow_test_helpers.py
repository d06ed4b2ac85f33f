"""Helpers of the aios-kubeflow tests (a module name no other test directory uses): the CLI in-process and in
a subprocess, a tuner of the tests' own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from click.testing import CliRunner


def aios(*args: str) -> tuple[int, str, str]:
    """``aios ARGS`` in-process: exit code, stdout, stderr."""
    from aios_core.cli import main

    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def aios_process(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
                 timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``aios ARGS`` in a subprocess (a real run: signals, kfp.local's subprocesses)."""
    return subprocess.run([sys.executable, "-m", "aios_core", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=timeout, check=False)


def install_grid_tuner(site: Path) -> Path:
    """A distribution in ``site`` registering tuner ``grid`` (tries each value of one parameter)."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "kf_test_tuner.py").write_text(textwrap.dedent('''
        from aios_core import Params, TuneResult, Tuner, hookimpl

        class GridTuner(Tuner):
            class Params(Params):
                values: list[float] = [0.01]

            @hookimpl
            def aios_tune(self, objective, run):
                trials = [{"params": {"trainer.learning_rate": v},
                           "value": objective({"trainer.learning_rate": v})} for v in self.params.values]
                best = min(trials, key=lambda t: t["value"])
                return TuneResult(best_params=best["params"], best_value=best["value"], trials=trials)
    '''))
    info = site / "kf_test_tuner-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kf-test-tuner\nVersion: 0.1\n"
                                   "Requires-Dist: aios-kernel>=0.1,<0.2\n")
    (info / "entry_points.txt").write_text("[aios.tuners]\ngrid = kf_test_tuner:GridTuner\n")
    return site
