"""``aios pipeline``: the stack's orchestrator compiles and runs it, one step per phase (a test orchestrator here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import aios_env, make_distribution, run_aios

SHELL_ORCHESTRATOR = '''
import shlex, subprocess, sys
from pathlib import Path

import yaml
from aios_core import Orchestrator, Params, hookimpl


class ShellOrchestrator(Orchestrator):
    """Compiles a stack to a bash script: one `aios run --phases` per phase on one run directory."""

    class Params(Params):
        fail_on_host: bool = True

    @hookimpl
    def aios_compile_pipeline(self, stack, phases, output):
        lock = Path(output).with_suffix(".lock.yaml")
        lock.write_text(yaml.safe_dump(stack.lock(), sort_keys=False))
        aios = f"{shlex.quote(sys.executable)} -m aios_core"
        lines = ["set -e", 'RUN_DIR="$1"',
                 f'{aios} run --lock {shlex.quote(str(lock))} --run-dir "$RUN_DIR" --phases {phases[0]}']
        lines += [f'{aios} run --resume "$RUN_DIR" --phases {phase}' for phase in phases[1:]]
        Path(output).write_text("\\n".join(lines) + "\\n")
        return Path(output)

    @hookimpl
    def aios_run_pipeline(self, stack, phases, runs_root, target):
        if target:
            raise ValueError(f"the shell orchestrator runs here only; it cannot reach {target}")
        runs_root.mkdir(parents=True, exist_ok=True)
        script = self.aios_compile_pipeline(stack, phases, runs_root / "pipeline.sh")
        run_dir = runs_root / f"shell-{stack.name}"
        done = subprocess.run(["bash", str(script), str(run_dir)], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(done.stderr.strip().splitlines()[-1])
        return str(run_dir)
'''

SMALL = """\
name: small
seed: 3
data: {plugin: sklearn, dataset: digits}
model: {framework: torch, architecture: mlp, hidden_units: [32]}
trainer: {plugin: torch, epochs: 3, batch_size: 32}
evaluate: {batch_sizes: [1], latency_runs: 5}
"""


@pytest.fixture
def shell_site(tmp_path: Path) -> Path:
    return make_distribution(tmp_path / "site", "aios-shell-orchestrator",
                             {"aios.orchestrators": {"shell": "aios_shell:ShellOrchestrator"}},
                             modules={"aios_shell": SHELL_ORCHESTRATOR})


def _stack(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(SMALL + extra)
    return path


def test_compile_writes_the_orchestrators_pipeline_of_every_phase(tmp_path: Path, shell_site: Path) -> None:
    stack = _stack(tmp_path, "orchestrator: {plugin: shell}\n")
    result = run_aios("pipeline", "compile", str(stack), "-o", str(tmp_path / "p.sh"), env=aios_env(shell_site))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {tmp_path / 'p.sh'} (shell pipeline of small: data, train, export, evaluate)"
    script = (tmp_path / "p.sh").read_text().splitlines()
    assert [line.rsplit(" ", 1)[-1] for line in script[2:]] == ["data", "train", "export", "evaluate"]


@pytest.mark.slow
def test_run_local_runs_each_phase_as_a_step_to_a_completed_run(tmp_path: Path, shell_site: Path) -> None:
    stack = _stack(tmp_path)
    runs = tmp_path / "runs"
    result = run_aios("pipeline", "run", str(stack), "--local", "--orchestrator", "shell", "--runs-dir", str(runs),
                      env=aios_env(shell_site))
    assert result.returncode == 0, result.stderr
    run_dir = runs / "shell-small"
    assert f"shell pipeline of small succeeded; run directory: {run_dir}" in result.stdout
    state = json.loads((run_dir / "state.json").read_text())
    assert (state["status"], list(state["phases"]), state["resumed"]) == (
        "completed", ["data", "train", "export", "evaluate"], 3)


def test_the_orchestrators_own_failure_is_one_line(tmp_path: Path, shell_site: Path) -> None:
    stack = _stack(tmp_path, "orchestrator: {plugin: shell}\n")
    result = run_aios("pipeline", "run", str(stack), "--host", "http://kfp.example", env=aios_env(shell_site))
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: orchestrator 'shell': ValueError: the shell orchestrator runs here only; "
                                     "it cannot reach http://kfp.example")


def test_the_orchestrator_is_the_sections_or_the_options_or_the_only_one(tmp_path: Path, shell_site: Path) -> None:
    env = aios_env(shell_site, AIOS_DISABLE_PLUGINS="aios-kubeflow")
    result = run_aios("pipeline", "compile", str(_stack(tmp_path)), "-o", str(tmp_path / "p.sh"), env=env)
    assert result.returncode == 0, result.stderr  # shell: the only one installed
    env = aios_env(AIOS_DISABLE_PLUGINS="aios-kubeflow")
    result = run_aios("pipeline", "compile", str(_stack(tmp_path)), "-o", str(tmp_path / "p.sh"), env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: {tmp_path / 'stack.yaml'}: no orchestrator section; add one "
                                     "(orchestrator: {plugin: NAME}) or give --orchestrator NAME (none is installed "
                                     "(aios plugins search orchestrator))")
    stack = _stack(tmp_path, "orchestrator: {plugin: shell}\n")
    result = run_aios("pipeline", "compile", str(stack), "-o", str(tmp_path / "p.sh"), "--orchestrator", "other",
                      env=aios_env(shell_site))
    assert result.returncode == 2
    assert "orchestrator.plugin is 'shell', but --orchestrator names 'other'" in result.stderr


def test_orchestrator_parameters_are_validated_like_any_components(tmp_path: Path, shell_site: Path) -> None:
    stack = _stack(tmp_path, "orchestrator: {plugin: shell, fail_on_host: maybe}\n")
    result = run_aios("pipeline", "compile", str(stack), "-o", str(tmp_path / "p.sh"), env=aios_env(shell_site))
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {stack}:7: orchestrator.fail_on_host: found 'maybe'")
    assert not (tmp_path / "p.sh").exists()


def test_run_needs_local_or_host(tmp_path: Path, shell_site: Path) -> None:
    result = run_aios("pipeline", "run", str(_stack(tmp_path)), env=aios_env(shell_site))
    assert result.returncode == 2
    assert result.stderr.strip() == "error: give either --local (run it on this machine) or --host URL (submit it to an endpoint)"
