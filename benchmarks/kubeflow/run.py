"""The default stack as a local Kubeflow pipeline (kfp.local) against ``aios run``, and where the difference goes.

Run from the repository root with the project's venv (aios-kubeflow and the default stack's plugins installed)::

    .venv/bin/python benchmarks/kubeflow/run.py            # writes benchmarks/kubeflow/RESULTS.md

Both commands run as subprocesses, alternating (aios run, pipeline, aios run, ...), on the
bundled stack as it is (20 epochs, same seed). The difference is split with figures the runs
record themselves (each phase's ``seconds`` in state.json) and two measurements of what each
step adds before its phase starts: a Python process starting kfp's executor and the kernel's
runner, and copying the run directory into the step's output. Each later step also loads the
data again (outside any phase, not recorded: taken as the data phase's time), and imports
inside its phase what ``aios run`` imported once (torch for export, onnxruntime's
quantization for compress, ...), which shows in the phases' own seconds. Timings are only comparable on the same machine under the same load; tests
never assert them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AIOS = [sys.executable, "-m", "aios_core"]
STEP_IMPORTS = "import kfp.dsl.executor_main, aios_core.runner, aios_core.stack, aios_kubeflow.steps"
"""What a step imports before its phase starts (the stack's components load light; torch and the like load
inside the phases)."""


def _wall(argv: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def _run_dir(runs: Path) -> Path:
    return next(p for p in runs.iterdir() if (p / "stack.lock.yaml").is_file())


def _phases(run_dir: Path) -> dict[str, float]:
    state = json.loads((run_dir / "state.json").read_text())
    return {name: float(summary["seconds"]) for name, summary in state["phases"].items()}


def _median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20, help="trainer.epochs (the stack's own: 20)")
    args = parser.parse_args()
    env_note = " ".join(f"{v:.2f}" for v in os.getloadavg())
    direct_walls, pipe_walls, direct_phases, pipe_phases, imports, copies = [], [], [], [], [], []
    epochs = ["--set", f"trainer.epochs={args.epochs}"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for round_number in range(args.rounds):
            for variant in ("direct", "pipeline"):
                runs = work / f"{variant}-{round_number}"
                if variant == "direct":
                    direct_walls.append(_wall([*AIOS, "run", "--runs-dir", str(runs), *epochs], work))
                    direct_phases.append(_phases(_run_dir(runs)))
                else:
                    pipe_walls.append(_wall([*AIOS, "pipeline", "run", "--local", "--runs-dir", str(runs), *epochs],
                                            work))
                    pipe_phases.append(_phases(_run_dir(runs)))
                print(f"round {round_number + 1} {variant}: {(direct_walls if variant == 'direct' else pipe_walls)[-1]:.1f} s",
                      flush=True)
            imports.append(_wall([sys.executable, "-c", STEP_IMPORTS], work))
            source = _run_dir(work / f"pipeline-{round_number}")
            started = time.perf_counter()
            shutil.copytree(source, work / f"copy-{round_number}")
            copies.append(time.perf_counter() - started)
        size = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    steps = len(pipe_phases[0])
    direct, pipe = _median(direct_walls), _median(pipe_walls)
    phase_names = list(pipe_phases[0])
    per_phase = {name: (_median([p[name] for p in direct_phases]), _median([p[name] for p in pipe_phases]))
                 for name in phase_names}
    in_phases = (sum(d for d, _ in per_phase.values()), sum(p for _, p in per_phase.values()))
    extra = steps - 1  # aios run pays one process start and one data load too
    starts = _median(imports) * extra
    data_reload = per_phase["data"][1] * extra
    copying = _median(copies) * extra
    phase_difference = in_phases[1] - in_phases[0]
    rest = (pipe - direct) - starts - data_reload - copying - phase_difference
    lines = [
        "# Kubeflow pipeline (kfp.local) vs `aios run`", "",
        f"Written by `benchmarks/kubeflow/run.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: the bundled "
        f"default stack ({args.epochs} epochs, seed 42), {args.rounds} interleaved rounds, medians. The machine "
        "(2 cores) was shared with other work: see the load average; the split below is what to read.", "",
        "| machine |  |", "|---|---|",
        f"| CPU cores | {os.cpu_count()} |", f"| Python | {platform.python_version()} |",
        f"| kfp | {version('kfp')} |", f"| torch | {version('torch')} |",
        f"| load average at start / end | {env_note} / {' '.join(f'{v:.2f}' for v in os.getloadavg())} |", "",
        "## Wall time", "",
        "| command | median s | runs (s) |", "|---|---|---|",
        f"| `aios run` | {direct:.1f} | {', '.join(f'{w:.1f}' for w in direct_walls)} |",
        f"| `aios pipeline run --local` | {pipe:.1f} | {', '.join(f'{w:.1f}' for w in pipe_walls)} |", "",
        f"**Ratio pipeline / `aios run`: {pipe / direct:.2f}** ({pipe - direct:+.1f} s).", "",
        "## Inside the phases (state.json `seconds`)", "",
        "| phase | `aios run` s | pipeline step s |", "|---|---|---|",
        *[f"| {name} | {d:.2f} | {p:.2f} |" for name, (d, p) in per_phase.items()],
        f"| all phases | {in_phases[0]:.2f} | {in_phases[1]:.2f} |", "",
        "## Where the difference goes", "",
        f"The pipeline runs {steps} processes where `aios run` runs one. The {pipe - direct:+.1f} s, split with "
        "figures measured separately:", "",
        "| cost | s | how |", "|---|---|---|",
        f"| {extra} more step processes | {starts:.1f} | {extra} x {_median(imports):.2f} s: a Python process "
        "starting kfp's executor and the kernel's runner |",
        f"| {extra} more data loads | {data_reload:.1f} | {extra} x the data phase ({per_phase['data'][1]:.2f} s): "
        "each later step loads the data again and checks its hash |",
        f"| copying the run directory {extra} times | {copying:.2f} | {extra} x {_median(copies) * 1000:.0f} ms "
        f"({size / 1e6:.1f} MB) |",
        f"| the phases themselves | {phase_difference:+.1f} | the table above, pipeline - `aios run`: each step "
        "imports again, inside its phase, what `aios run` imported once (torch in export, onnxruntime's "
        "quantization in compress, ...) |",
        f"| the rest: kfp compiling, loading the YAML, orchestrating, its executor's start | {rest:.1f} | remainder |",
        "",
    ]
    (Path(__file__).parent / "RESULTS.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
