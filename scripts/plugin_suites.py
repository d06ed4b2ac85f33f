"""The plugin stage of the test suite: each first-party plugin tested from its wheel, in fresh virtualenvs.

For each distribution under plugins/, in a new virtualenv and an empty working directory
(so nothing of this checkout is importable but the tests themselves):

1. contract: aios-kernel, the plugin and the first-party plugins it depends on, all as
   wheels built from this checkout, with pytest and pytest-timeout and nothing else:
   its contract tests (tests/test_contract.py) pass. A package the plugin uses without
   declaring it is missing here, as it would be for a user (issue 9).
2. suite: the plugin's ``test`` extra added (the first-party plugins it names come from
   the same wheels, never from a package index by name): its whole tests/ directory
   passes, under a pytest configuration of its own rather than the repository's (issue 10).

Usage (scripts/test.sh runs it after the kernel suite; scripts/test-plugins.sh runs only this stage):

    .venv/bin/python scripts/plugin_suites.py [--only NAME]... [--jobs N] [--no-link] [--keep] [-- PYTEST_ARGS]

Each plugin's output goes to a log (its path is printed) and, when the plugin is done, its
outcome and pytest's summary are printed; a table ends the run. Exit status 1 when any
stage of any plugin failed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fresh_venv import REPO, FreshVenv, build_wheels, requirements_with, wheel_metadata
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PLUGINS_DIR = REPO / "plugins"
TEST_TOOLS = ("pytest>=8", "pytest-timeout>=2.3")
HEAVIEST_FIRST = ("aios-ray-train", "aios-mlflow", "aios-kubeflow", "aios-optuna", "aios-tf", "aios-serve",
                  "aios-torch", "aios-onnx-quant", "aios-data")
"""Start order (a scheduling hint from measured durations): the longest suites first, so two jobs end together.
MLflow's (three servers, four tracked runs), Kubeflow's (three pipelines and runs) and Optuna's (tuned stacks) take
longer than TensorFlow's and aios-serve's; one of them started last kept a job running alone at the end."""
PYTEST_INI = """\
# The plugin stage's pytest configuration: the repository's pyproject.toml is not used.
[pytest]
addopts = -ra -p no:cacheprovider --import-mode=importlib
timeout = 900
markers =
    slow: end-to-end runs that train real models
"""
CONTRACT_TESTS = "tests/test_contract.py"
RUN_TIMEOUT_S = 3600


class MissingWheel(LookupError):
    """A first-party requirement that no wheel built here satisfies."""


@dataclass(frozen=True)
class Distribution:
    """A first-party distribution: its name, its wheel and the Requires-Dist lines in the wheel."""

    name: str
    wheel: Path
    requires: tuple[str, ...]


def first_party_needs(name: str, distributions: dict[str, Distribution], extras: Iterable[str] = (),
                      first_party: Iterable[str] = ()) -> list[str]:
    """The first-party distributions ``name`` needs with ``extras`` (itself excluded), recursively, sorted.

    ``first_party`` names more first-party distributions than ``distributions`` holds wheels
    of; one of them needed raises MissingWheel, as pip would look it up by name on an index.
    """
    known = {canonicalize_name(n) for n in (*distributions, *first_party)}
    needed: set[str] = set()
    pending = [(canonicalize_name(name), tuple(extras))]
    while pending:
        current, current_extras = pending.pop()
        for text in requirements_with(distributions[current].requires, current_extras):
            required = canonicalize_name(Requirement(text).name)
            if required not in known or required in needed or required == canonicalize_name(name):
                continue
            if required not in distributions:
                raise MissingWheel(f"{current} needs {required}, a first-party distribution with no wheel here "
                                   "(pip would look it up by name)")
            needed.add(required)
            pending.append((required, ()))
    return sorted(needed)


def known_first_party() -> set[str]:
    """The names AIOS publishes no release under: the bundled index's first-party entries and aios-core."""
    from aios_core.catalog import BUNDLED_INDEX, read_index
    from aios_core.vocabulary import CORE_DISTRIBUTION, FORMER_CORE_DISTRIBUTION

    index = read_index(str(BUNDLED_INDEX))
    return {p.canonical for p in index.plugins if not p.by_name} | {CORE_DISTRIBUTION, FORMER_CORE_DISTRIBUTION}


@dataclass
class Plan:
    """What one plugin's two stages install: pip requests (wheel paths and requirements)."""

    plugin: str
    contract_install: list[str]
    suite_install: list[str]


def plan(plugin: str, distributions: dict[str, Distribution], first_party: Iterable[str] = (),
         kernel: str = "aios-kernel") -> Plan:
    """The installs of ``plugin``'s contract stage (kernel, plugin, first-party dependencies, test tools) and of
    its suite stage (the ``test`` extra, with the first-party plugins it names as wheels)."""
    wheel = {name: str(d.wheel) for name, d in distributions.items()}
    alone = sorted({kernel, *first_party_needs(plugin, distributions, (), first_party)})
    with_extra = [n for n in first_party_needs(plugin, distributions, ["test"], first_party) if n not in alone]
    return Plan(plugin=plugin,
                contract_install=[wheel[plugin], *(wheel[n] for n in alone), *TEST_TOOLS],
                suite_install=[f"{wheel[plugin]}[test]", *(wheel[n] for n in with_extra)])


def passed_tests(output: str, cwd: Path, rootdir: Path) -> list[str]:
    """The node ids (relative to ``rootdir``) of the tests pytest's ``-rA`` summary lists as passed.

    pytest writes those paths relative to the directory it ran in, ``cwd``.
    """
    found = []
    for line in output.splitlines():
        if line.startswith("PASSED "):
            path, sep, rest = line.split(" ", 1)[1].strip().partition("::")
            found.append(Path(os.path.normpath(cwd / path)).relative_to(rootdir).as_posix() + sep + rest)
    return found


_SUMMARY = re.compile(r"^=+ (.*\d+ \w+.* in [\d.]+s.*) =+$")


def pytest_summary(output: str) -> str:
    """pytest's last line without its ``=`` frame (``"12 passed, 1 skipped in 3.21s"``), or ``""``."""
    for line in reversed(output.splitlines()):
        match = _SUMMARY.match(line.strip())
        if match:
            return match.group(1)
    return ""


@dataclass
class Outcome:
    """What happened to one plugin."""

    plugin: str
    install_s: float = 0.0
    contract: str = "not run"
    suite: str = "not run"
    tests_s: float = 0.0
    log: Path | None = None
    failed_output: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.contract.startswith("passed") and self.suite.startswith("passed")


def table(outcomes: Sequence[Outcome]) -> str:
    """The summary table: plugin, install seconds, contract result, suite result, test seconds."""
    rows = [("plugin", "install s", "contract (alone)", "suite (with test extra)", "tests s")]
    rows += [(o.plugin, f"{o.install_s:.0f}", o.contract, o.suite, f"{o.tests_s:.0f}") for o in outcomes]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def order(plugins: Iterable[str]) -> list[str]:
    """``plugins`` in start order: the known-heaviest first, then the rest by name."""
    rank = {name: i for i, name in enumerate(HEAVIEST_FIRST)}
    return sorted(plugins, key=lambda name: (rank.get(name, len(rank)), name))


# ---------------------------------------------------------------- running
class PluginStage:
    """One plugin's two stages in its own venv, logged to ``work/NAME.log``."""

    def __init__(self, plan: Plan, work: Path, link: bool, pytest_args: Sequence[str],
                 first_party: Iterable[str]) -> None:
        self.plan, self.link, self.pytest_args = plan, link, list(pytest_args)
        self.name = plan.plugin
        self.root = work / self.name
        self.log_path = work / f"{self.name}.log"
        self.directory = PLUGINS_DIR / self.name
        self.first_party = sorted(set(first_party))  # never linked from .venv: wheels only
        self.outcome = Outcome(self.name, log=self.log_path)

    def log(self, text: str) -> None:
        with self.log_path.open("a") as log:
            log.write(text if text.endswith("\n") else text + "\n")

    def step(self, what: str, result: subprocess.CompletedProcess[str], seconds: float) -> bool:
        self.log(f"$ {what}\n{result.stdout}{result.stderr}(exit {result.returncode}, {seconds:.1f} s)")
        if result.returncode != 0:
            self.outcome.failed_output.append(f"--- {what} (exit {result.returncode})\n{result.stdout}{result.stderr}")
        return result.returncode == 0

    def install(self, venv: FreshVenv, requests: list[str]) -> bool:
        started = time.monotonic()
        if self.link:
            linked = venv.link_needs(*requests, skip=self.first_party)
            self.log(f"linked from .venv ({time.monotonic() - started:.1f} s): {' '.join(linked)}")
        result = venv.pip_install(*requests)
        seconds = time.monotonic() - started
        self.outcome.install_s += seconds
        return self.step("pip install " + " ".join(Path(r).name if "/" in r else r for r in requests), result, seconds)

    def imports_from_the_venv(self, venv: FreshVenv, cwd: Path) -> bool:
        """The kernel and the plugin import from the venv's site-packages, not from this checkout."""
        packages = ["aios_core", *(p.name for p in self.directory.iterdir()
                                   if p.is_dir() and (p / "__init__.py").is_file())]
        code = ("import importlib, sys\n"
                "for name in sys.argv[1:]:\n"
                "    print(name, importlib.import_module(name).__file__)\n")
        started = time.monotonic()
        result = venv.run(venv.python, "-P", "-c", code, *packages, cwd=cwd)
        ok = self.step("where the packages import from", result, time.monotonic() - started)
        outside = [line for line in result.stdout.splitlines() if str(venv.path) not in line]
        if ok and outside:
            self.outcome.failed_output.append("imported from outside the venv:\n" + "\n".join(outside))
            return False
        return ok

    def pytest(self, venv: FreshVenv, cwd: Path, target: str, *options: str) -> tuple[str, str]:
        """Run pytest on ``target`` (relative to the plugin); returns the outcome ("passed (...)") and the output."""
        ini = self.root / "pytest.ini"
        started = time.monotonic()
        result = venv.run(venv.python, "-P", "-m", "pytest", "-c", ini, "--rootdir", self.directory, *options,
                          *self.pytest_args, self.directory / target,
                          cwd=cwd, timeout=RUN_TIMEOUT_S, env={"PYTHONSAFEPATH": "1"})
        seconds = time.monotonic() - started
        self.outcome.tests_s += seconds
        ok = self.step(f"pytest {target}", result, seconds)
        summary = pytest_summary(result.stdout) or f"exit {result.returncode}"
        return ("passed" if ok else "FAILED") + f" ({summary})", result.stdout

    def run(self) -> Outcome:
        self.root.mkdir(parents=True)
        cwd = self.root / "cwd"
        cwd.mkdir()
        (self.root / "pytest.ini").write_text(PYTEST_INI)
        started = time.monotonic()
        venv = FreshVenv(self.root / "venv").create()
        self.outcome.install_s += time.monotonic() - started
        if not (self.directory / CONTRACT_TESTS).is_file():
            self.outcome.contract = f"FAILED (no {CONTRACT_TESTS})"
            return self.outcome
        if not (self.install(venv, self.plan.contract_install) and self.imports_from_the_venv(venv, cwd)):
            self.outcome.contract = "FAILED (install)"
            return self.outcome
        self.outcome.contract, output = self.pytest(venv, cwd, CONTRACT_TESTS, "-rA")
        if not self.install(venv, self.plan.suite_install):
            self.outcome.suite = "FAILED (install of the test extra)"
            return self.outcome
        # The contract tests that passed alone do not run again; the ones skipped there (they may need
        # what the test extra brings) run with the rest of the suite.
        again = [f"--deselect={test}" for test in passed_tests(output, cwd, self.directory)]
        self.outcome.suite, _ = self.pytest(venv, cwd, "tests", *again)
        return self.outcome


def report(outcome: Outcome, lock: threading.Lock) -> None:
    """Print one plugin's outcome as a block: its results and, on failure, what failed."""
    with lock:
        print(f"\n==== {outcome.plugin}: contract {outcome.contract}; suite {outcome.suite} "
              f"(install {outcome.install_s:.0f} s, tests {outcome.tests_s:.0f} s; log {outcome.log})", flush=True)
        for text in outcome.failed_output:
            print(text[-20000:], flush=True)


def discover(only: Sequence[str]) -> list[Path]:
    projects = sorted(p.parent for p in PLUGINS_DIR.glob("*/pyproject.toml"))
    if only:
        names = {p.name for p in projects}
        unknown = [n for n in only if n not in names]
        if unknown:
            raise SystemExit(f"plugin_suites: no plugin {', '.join(unknown)} under {PLUGINS_DIR} "
                             f"(there are {', '.join(sorted(names))})")
    return projects


def main(argv: Sequence[str] | None = None) -> int:
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        # Started in the background by a shell (scripts/test.sh): SIGINT is ignored, and the
        # venvs' pytest would inherit that, while plugin tests interrupt their runs with it.
        # A handler is reset to the default in each child, where Python sets KeyboardInterrupt again.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     usage="%(prog)s [--only NAME]... [--jobs N] [--no-link] [--keep] [-- PYTEST_ARGS]")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="test only this plugin (repeatable), e.g. --only aios-torch")
    parser.add_argument("--jobs", type=int, default=2, help="plugins tested at the same time (default 2)")
    parser.add_argument("--no-link", dest="link", action="store_false",
                        help="let pip install every dependency instead of linking the ones .venv has")
    parser.add_argument("--keep", action="store_true",
                        help="keep the venvs and logs (kept anyway on failure, and in --work)")
    parser.add_argument("--work", type=Path, help="directory for wheels, venvs and logs (default: a new temporary one)")
    parser.add_argument("pytest_args", nargs="*", help="after --: arguments for every plugin's pytest")
    args = parser.parse_args(argv)

    projects = discover(args.only)
    keep = args.keep or args.work is not None
    work = args.work or Path(tempfile.mkdtemp(prefix="aios-plugin-suites-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    wheels = build_wheels([REPO, *projects], work / "wheels")
    distributions = {}
    for wheel in wheels:
        name, requires = wheel_metadata(wheel)
        distributions[canonicalize_name(name)] = Distribution(canonicalize_name(name), wheel, tuple(requires))
    print(f"plugin_suites: built {len(wheels)} wheels in {time.monotonic() - started:.0f} s into {work / 'wheels'}",
          flush=True)
    chosen = order(args.only or [p.name for p in projects])
    first_party = known_first_party()
    try:
        stages = [PluginStage(plan(name, distributions, first_party), work, args.link, args.pytest_args,
                              [*distributions, *first_party])
                  for name in chosen]
    except MissingWheel as error:
        print(f"plugin_suites: {error}", file=sys.stderr)
        return 2
    print(f"plugin_suites: {', '.join(chosen)}, {args.jobs} at a time; logs in {work}", flush=True)

    lock = threading.Lock()

    def run(stage: PluginStage) -> Outcome:
        try:
            outcome = stage.run()
        except Exception as error:  # noqa: BLE001 - one plugin's crash must not hide the others' results
            outcome = stage.outcome
            outcome.failed_output.append(f"{type(error).__name__}: {error}")
            if outcome.contract == "not run":
                outcome.contract = "FAILED (error)"
            elif outcome.suite == "not run":
                outcome.suite = "FAILED (error)"
        report(outcome, lock)
        return outcome

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        outcomes = list(pool.map(run, stages))
    ok = all(o.ok for o in outcomes)
    print(f"\nplugin_suites: {time.monotonic() - started:.0f} s in all\n{table(outcomes)}", flush=True)
    if ok and not keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"plugin_suites: venvs and logs kept in {work}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
