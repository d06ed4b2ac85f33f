"""The plugin template (``cookiecutter-plugin/``): it checks the answers before generating, and
every project it generates installs from a wheel beside aios-kernel, passes its own tests and
runs in a stack.

The installed checks share one fresh virtualenv: aios-kernel (with the ``new`` extra), the
first-party plugins and every baked plugin go in as wheels built from source. The
third-party libraries they need (torch, numpy, ...) are hard-linked from the environment
running these tests before pip resolves against them: pip sees them installed and
downloads nothing, and nothing of this repository is importable in the venv except what
the wheels hold.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from support import bare_installs, first_party_names, run_aios

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "cookiecutter-plugin"
CONSTRAINTS = REPO / "constraints.txt"
FIRST_PARTY = ("aios-data", "aios-torch", "aios-onnx-quant")
ALL_KINDS = "framework,datastore,trainer,tuner,compressor,deployer,monitor"
BAKES = {  # plugin_name: kinds; one project per kind, and one with every kind
    "tpl-monitor": "monitor",
    "tpl-datastore": "datastore",
    "tpl-framework": "framework",
    "tpl-trainer": "trainer",
    "tpl-tuner": "tuner",
    "tpl-compressor": "compressor",
    "tpl-deployer": "deployer",
    "tpl-all": ALL_KINDS,
}
KIND_FILES = {"framework": "_model.py", "trainer": "_training.py", "datastore": "_data.py", "tuner": "_search.py",
              "compressor": "_compress.py", "deployer": "_server.py", "monitor": "_events.py"}


def run(args: list[str | Path], *, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def check(result: subprocess.CompletedProcess[str], what: str) -> subprocess.CompletedProcess[str]:
    """``result``, or a failure showing the end of its output."""
    if result.returncode != 0:
        pytest.fail(f"{what} exited {result.returncode}\n--- stdout\n{result.stdout[-4000:]}\n"
                    f"--- stderr\n{result.stderr[-4000:]}", pytrace=False)
    return result


def new_plugin(*answers: str, output: Path) -> subprocess.CompletedProcess[str]:
    """``aios new plugin --no-input ANSWERS -o OUTPUT`` with this repository's aios."""
    return run_aios("new", "plugin", "--no-input", *answers, "-o", str(output))


def hatch_wheel(project: Path, dest: Path) -> Path:
    """Build ``project``'s wheel into ``dest`` with hatch, as the generated README says."""
    before = set(dest.glob("*.whl"))
    check(run([sys.executable, "-m", "hatch", "build", "-t", "wheel", dest], cwd=project), f"hatch build of {project}")
    (wheel,) = set(dest.glob("*.whl")) - before
    return wheel


# ---------------------------------------------------------------- the answers
def test_new_plugin_generates_a_project_of_the_chosen_kind(tmp_path: Path) -> None:
    result = check(new_plugin("plugin_name=hello", "kinds=monitor", output=tmp_path), "aios new plugin")
    project = tmp_path / "aios-hello"
    assert f"created {project}" in result.stdout
    files = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert files == [".github/workflows/ci.yml", ".gitignore", "CHANGELOG.md", "README.md", "aios_hello/__init__.py",
                     "aios_hello/_events.py", "examples/stack.yaml", "pyproject.toml", "registry/aios-hello.toml",
                     "tests/conftest.py", "tests/test_contract.py", "tests/test_monitor.py"]
    entry_points = tomllib.loads((project / "pyproject.toml").read_text())["project"]["entry-points"]
    assert entry_points == {"aios.monitors": {"hello": "aios_hello:HelloMonitor"}}


@pytest.mark.parametrize("kinds", ["monitor", "framework,datastore"])
def test_the_generated_project_installs_aios_from_its_repository_never_by_name(tmp_path: Path, kinds: str) -> None:
    from aios_core.vocabulary import CORE_DISTRIBUTION

    check(new_plugin("plugin_name=named", f"kinds={kinds}", output=tmp_path), "aios new plugin")
    project = tmp_path / "aios-named"
    dependencies = tomllib.loads((project / "pyproject.toml").read_text())["project"]["dependencies"]
    assert dependencies[0] == f"{CORE_DISTRIBUTION}>=0.1,<0.2"  # a name: PyPI refuses direct URLs in metadata
    readme, ci = (project / "README.md").read_text(), (project / ".github" / "workflows" / "ci.yml").read_text()
    assert bare_installs(readme, first_party_names()) == []
    assert bare_installs(ci, first_party_names()) == []
    kernel = 'pip install "aios-kernel @ git+https://github.com/aios-ml/aios"'
    assert kernel in readme and kernel in ci
    assert ci.index(kernel) < ci.index('pip install -e ".[test]"')  # the kernel first, so pip never looks it up
    if "datastore" not in kinds:  # the example stack needs aios-data: from the repository too
        assert 'pip install "aios-data @ git+https://github.com/aios-ml/aios#subdirectory=plugins/aios-data"' in ci


def test_a_trainer_comes_with_the_framework_it_trains(tmp_path: Path) -> None:
    result = check(new_plugin("plugin_name=fit", "kinds=trainer", output=tmp_path), "aios new plugin")
    assert "added framework" in result.stdout
    pyproject = tomllib.loads((tmp_path / "aios-fit" / "pyproject.toml").read_text())
    assert set(pyproject["project"]["entry-points"]) == {"aios.frameworks", "aios.trainers"}
    assert {p.name for p in (tmp_path / "aios-fit" / "aios_fit").iterdir()} == {"__init__.py", "_model.py",
                                                                                 "_training.py"}


@pytest.mark.parametrize(("answers", "message"), [
    (["plugin_name=Bad!Name"], "plugin_name 'Bad!Name' is not a component name"),
    (["kinds=monitr"], "kinds: 'monitr' is not a kind; did you mean 'monitor'?"),
    (["kinds=monitor,monitor"], "'monitor' named more than once"),
    (["kinds= , "], "names no kind"),
    (["aios_core_range=0.1"], "aios_core_range '0.1' is not a version range"),
    (["aios_core_range=>=0.2,<0.3"], "excludes the installed aios-kernel"),
    (["distribution=AIOS_Hello"], "write it as 'aios-hello'"),
    (["distribution=aios-torch"], "is AIOS's own"),
    (["package=json"], "would shadow an existing module"),
    (["license=Not A License"], "not an SPDX license expression"),
    (["repository=ftp://example.com/x"], "not an https:// URL"),
    (["plugin_name=console"], "the installed aios-kernel already provides a monitor named 'console'"),
])
def test_bad_answers_are_refused_before_anything_is_generated(tmp_path: Path, answers: list[str],
                                                               message: str) -> None:
    result = new_plugin(*answers, output=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "error: the template refused the answers" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_plain_cookiecutter_generates_the_same_project(tmp_path: Path) -> None:
    from cookiecutter.main import cookiecutter

    check(new_plugin("plugin_name=same", f"kinds={ALL_KINDS}", output=tmp_path / "aios"), "aios new plugin")
    cookiecutter(str(TEMPLATE), no_input=True, extra_context={"plugin_name": "same", "kinds": ALL_KINDS},
                 output_dir=str(tmp_path / "cookiecutter"))
    first, second = tmp_path / "aios" / "aios-same", tmp_path / "cookiecutter" / "aios-same"
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)


def test_the_generated_registry_entry_passes_the_registry_build(tmp_path: Path) -> None:
    check(new_plugin("plugin_name=listed", f"kinds={ALL_KINDS}", output=tmp_path), "aios new plugin")
    index, no_first_party = tmp_path / "index", tmp_path / "repository"
    (index / "plugins").mkdir(parents=True)
    no_first_party.mkdir()
    shutil.copy(tmp_path / "aios-listed" / "registry" / "aios-listed.toml", index / "plugins")
    check(run([sys.executable, REPO / "registry-index" / "build.py", "--root", index, "--repo", no_first_party]),
          "registry-index/build.py")
    (entry,) = json.loads((index / "index.json").read_text())["plugins"]
    assert entry["tier"] == "community" and entry["components"]["monitor"] == ["listed"]
    assert set(entry["components"]) == set(ALL_KINDS.split(","))


# ---------------------------------------------------------------- installed from wheels in a fresh venv
@dataclass
class Venv:
    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def aios(self) -> Path:
        return self.path / "bin" / "aios"

    @property
    def env(self) -> dict[str, str]:
        """This process's environment without what would leak the repository into the venv."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AIOS_", "PYTHON", "VIRTUAL_ENV", "PIP_CONSTRAINT"))}
        env["PATH"] = f"{self.path / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        return env

    def run(self, *args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return run(list(args), cwd=cwd, env=self.env)

    def pip_install(self, *args: str | Path) -> None:
        check(self.run(self.python, "-m", "pip", "install", "--quiet", "--no-compile", "-c", CONSTRAINTS, *args),
              "pip install")


def _seed(site: Path, requirements: Iterable[str], skip: set[str]) -> None:
    """Hard-link into ``site`` the installed distributions ``requirements`` need, recursively.

    A distribution's files are those its RECORD lists under site-packages (scripts are
    left out); ``skip`` names distributions to leave to pip. Missing ones are left to pip too.
    """
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pending = [Requirement(text) for text in requirements]
    seen: set[str] = set()
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in skip or name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for file in dist.files or ():
            if file.parts[0] == "..":
                continue
            target = site / file
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                try:
                    os.link(dist.locate_file(file), target)
                except OSError:  # another file system: copy
                    shutil.copy2(dist.locate_file(file), target)
        extras = {""} | set(requirement.extras)
        for text in dist.requires or ():
            needed = Requirement(text)
            if needed.marker is None or any(needed.marker.evaluate({"extra": extra}) for extra in extras):
                pending.append(needed)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A new venv holding aios-kernel[new] and the first-party plugins, installed from wheels built here."""
    wheels = tmp_path_factory.mktemp("wheels")
    core = hatch_wheel(REPO, wheels)
    plugins = [hatch_wheel(REPO / "plugins" / name, wheels) for name in FIRST_PARTY]
    venv = Venv(tmp_path_factory.mktemp("venv") / "aios")
    check(run([sys.executable, "-m", "venv", venv.path]), "python -m venv")
    (site,) = venv.path.glob("lib/python*/site-packages")
    requires: list[str] = ["pytest"]
    for wheel in (core, *plugins):
        requires += _wheel_requirements(wheel, extras={"new"})
    _seed(site, requires, skip={"aios-kernel", *FIRST_PARTY, "pip", "setuptools"})
    venv.pip_install(f"{core}[new]", *plugins)
    return venv


def _wheel_requirements(wheel: Path, extras: set[str]) -> list[str]:
    """The Requires-Dist lines of ``wheel`` that apply with ``extras``."""
    import zipfile
    from email.parser import Parser

    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(archive.read(name).decode())
    lines = []
    for text in message.get_all("Requires-Dist") or ():
        requirement = Requirement(text)
        if requirement.marker is None or any(requirement.marker.evaluate({"extra": e}) for e in {"", *extras}):
            lines.append(str(requirement).split(";")[0])
    return lines


@pytest.fixture(scope="module")
def baked(venv: Venv, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every project of BAKES, made with the venv's ``aios new plugin``, built with hatch and installed."""
    projects = tmp_path_factory.mktemp("projects")
    wheels = tmp_path_factory.mktemp("plugin-wheels")
    made = {}
    for name, kinds in BAKES.items():
        check(venv.run(venv.aios, "new", "plugin", "--no-input", f"plugin_name={name}", f"kinds={kinds}",
                       "-o", projects), f"aios new plugin (kinds={kinds})")
        made[name] = projects / f"aios-{name}"
    venv.pip_install(*(hatch_wheel(project, wheels) for project in made.values()))
    return made


def _kinds(name: str) -> list[str]:
    kinds = BAKES[name].split(",")
    return sorted(set(kinds) | ({"framework", "trainer"} if {"framework", "trainer"} & set(kinds) else set()))


@pytest.mark.slow
@pytest.mark.parametrize("name", BAKES)
def test_aios_plugins_list_shows_every_component_ok(venv: Venv, baked: dict[str, Path], name: str) -> None:
    listed = check(venv.run(venv.aios, "plugins", "list"), "aios plugins list").stdout
    rows = {tuple(line.split()[:2]): line.split() for line in listed.splitlines()[1:]}
    for kind in _kinds(name):
        assert rows.get((kind, name)) == [kind, name, f"aios-{name}", "0.1.0", "ok"], listed


@pytest.mark.slow
@pytest.mark.parametrize("name", BAKES)
def test_a_project_holds_the_modules_and_tests_of_its_kinds_only(baked: dict[str, Path], name: str) -> None:
    project, kinds = baked[name], _kinds(name)
    package = project / f"aios_{name.replace('-', '_')}"
    assert {p.name for p in package.glob("*.py")} == {"__init__.py", *(KIND_FILES[kind] for kind in kinds)}
    tests = {p.name for p in (project / "tests").glob("*.py")}
    assert tests == {"conftest.py", "test_contract.py", *(f"test_{kind}.py" for kind in kinds)}


@dataclass
class Outcome:
    """What a baked project's generated tests and example stack did."""

    tests: subprocess.CompletedProcess[str] | None = None
    validate: subprocess.CompletedProcess[str] | None = None
    stack: subprocess.CompletedProcess[str] | None = None
    runs: Path | None = None


@pytest.fixture(scope="module")
def outcomes(venv: Venv, baked: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Run every project's generated tests and example stack, as many at a time as there are cores (up to 4)."""
    from concurrent.futures import ThreadPoolExecutor

    found = {name: Outcome(runs=tmp_path_factory.mktemp(f"runs-{name}")) for name in baked}

    def generated_tests(name: str) -> None:
        # -P: the project folder is not put on sys.path, so the tests import the installed wheel
        found[name].tests = venv.run(venv.python, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                     cwd=baked[name])

    def example_stack(name: str) -> None:
        found[name].validate = venv.run(venv.aios, "validate", "examples/stack.yaml", cwd=baked[name])
        found[name].stack = venv.run(venv.aios, "run", "examples/stack.yaml", "--runs-dir", found[name].runs,
                                     cwd=baked[name])

    jobs = [(job, name) for name in baked for job in (example_stack, generated_tests)]
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        for future in [pool.submit(job, name) for job, name in jobs]:
            future.result()
    return found


@pytest.mark.slow
@pytest.mark.parametrize("name", BAKES)
def test_generated_tests_pass(outcomes: dict[str, Outcome], name: str) -> None:
    result = check(outcomes[name].tests, f"the generated tests of aios-{name}")
    assert " passed" in result.stdout and "failed" not in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", BAKES)
def test_the_example_stack_runs(outcomes: dict[str, Outcome], name: str) -> None:
    outcome = outcomes[name]
    check(outcome.validate, f"aios validate examples/stack.yaml of aios-{name}")
    check(outcome.stack, f"aios run examples/stack.yaml of aios-{name}")
    (run_dir,) = outcome.runs.iterdir()
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "completed"
    assert f"aios-{name}: 0.1.0" in (run_dir / "stack.lock.yaml").read_text()
    kinds = _kinds(name)
    if "monitor" in kinds:
        assert (run_dir / "events.log").read_text().splitlines()[-1].endswith("run_end status=completed")
    if "compressor" in kinds:
        (compressed,) = state["phases"]["compress"]["artifacts"]
        assert compressed["producer"] == name and compressed["name"] == "fp16"
    if "deployer" in kinds:
        assert state["phases"]["deploy"]["smoke_test"]["passed"] is True
    if "tuner" in kinds:
        assert len(state["phases"]["tune"]["trials"]) == 2
