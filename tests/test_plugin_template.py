"""The plugin template (``cookiecutter-plugin/``): it checks the answers before generating, and
every project it generates installs from a wheel beside aios-kernel, passes its own tests and
runs in a stack.

The installed checks share one fresh virtualenv (``scripts/fresh_venv.py``): aios-kernel (with
the ``new`` extra), the first-party plugins and every baked plugin go in as wheels built from
source. The third-party libraries they need (torch, numpy, ...) are hard-linked from the
environment running these tests before pip resolves against them: pip sees them installed
and downloads nothing, and nothing of this repository is importable in the venv except what
the wheels hold. The projects the answer checks read are generated once per session.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from fresh_venv import FreshVenv, build_wheels
from support import bare_installs, first_party_names, run_aios

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "cookiecutter-plugin"
FIRST_PARTY = ("aios-data", "aios-torch", "aios-onnx-quant")
ALL_KINDS = "framework,datastore,trainer,tuner,compressor,deployer,monitor,orchestrator"
BAKES = {  # plugin_name: kinds; one project per kind, and one with every kind
    "tpl-monitor": "monitor",
    "tpl-datastore": "datastore",
    "tpl-framework": "framework",
    "tpl-trainer": "trainer",
    "tpl-tuner": "tuner",
    "tpl-compressor": "compressor",
    "tpl-deployer": "deployer",
    "tpl-orchestrator": "orchestrator",
    "tpl-all": ALL_KINDS,
}
KIND_FILES = {"framework": "_model.py", "trainer": "_training.py", "datastore": "_data.py", "tuner": "_search.py",
              "compressor": "_compress.py", "deployer": "_server.py", "monitor": "_events.py",
              "orchestrator": "_orchestrate.py"}


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
Generated = tuple[subprocess.CompletedProcess[str], Path]


@pytest.fixture(scope="session")
def generate(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Generated]:
    """``generate(plugin_name, kinds)``: ``aios new plugin`` with these answers, run once per session.

    Returns its result and the project it made; tests only read the project.
    """
    made: dict[tuple[str, str], Generated] = {}

    def get(name: str, kinds: str) -> Generated:
        if (name, kinds) not in made:
            output = tmp_path_factory.mktemp(f"new-{name}")
            result = check(new_plugin(f"plugin_name={name}", f"kinds={kinds}", output=output), "aios new plugin")
            made[name, kinds] = result, output / f"aios-{name}"
        return made[name, kinds]

    return get


def test_new_plugin_generates_a_project_of_the_chosen_kind(generate: Callable[[str, str], Generated]) -> None:
    result, project = generate("hello", "monitor")
    assert f"created {project}" in result.stdout
    files = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert files == [".github/workflows/ci.yml", ".gitignore", "CHANGELOG.md", "README.md", "aios_hello/__init__.py",
                     "aios_hello/_events.py", "examples/stack.yaml", "pyproject.toml", "registry/aios-hello.toml",
                     "tests/conftest.py", "tests/test_contract.py", "tests/test_monitor.py"]
    entry_points = tomllib.loads((project / "pyproject.toml").read_text())["project"]["entry-points"]
    assert entry_points == {"aios.monitors": {"hello": "aios_hello:HelloMonitor"}}


@pytest.mark.parametrize("kinds", ["monitor", "framework,datastore"])
def test_the_generated_project_installs_aios_from_its_repository_never_by_name(
        generate: Callable[[str, str], Generated], kinds: str) -> None:
    from aios_core.vocabulary import CORE_DISTRIBUTION

    _, project = generate("hello", kinds)
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


def test_a_trainer_comes_with_the_framework_it_trains(generate: Callable[[str, str], Generated]) -> None:
    result, project = generate("fit", "trainer")
    assert "added framework" in result.stdout
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert set(pyproject["project"]["entry-points"]) == {"aios.frameworks", "aios.trainers"}
    assert {p.name for p in (project / "aios_fit").iterdir()} == {"__init__.py", "_model.py", "_training.py"}


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


def test_plain_cookiecutter_generates_the_same_project(generate: Callable[[str, str], Generated],
                                                       tmp_path: Path) -> None:
    from cookiecutter.main import cookiecutter

    _, first = generate("every", ALL_KINDS)
    cookiecutter(str(TEMPLATE), no_input=True, extra_context={"plugin_name": "every", "kinds": ALL_KINDS},
                 output_dir=str(tmp_path))
    second = tmp_path / "aios-every"
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)


def test_plain_cookiecutter_without_aios_kernel_names_the_install_command(tmp_path: Path) -> None:
    from cookiecutter.environment import StrictEnvironment

    answers = {"plugin_name": "hello", "kinds": "monitor", "distribution": "aios-hello", "package": "aios_hello",
               "summary": "AIOS plugin hello: monitor", "author": "Ada", "author_email": "", "license": "MIT",
               "aios_core_range": ">=0.1,<0.2", "repository": "https://example.com/aios-hello"}
    hook = tmp_path / "pre_gen_project.py"
    template = StrictEnvironment().from_string((TEMPLATE / "hooks" / "pre_gen_project.py").read_text())
    hook.write_text(template.render(cookiecutter=answers))
    result = run([sys.executable, "-S", hook])  # -S: no site-packages, so no aios_core, as beside a lone cookiecutter
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("error: the template checks its answers with aios-kernel")
    assert line.endswith('pip install "aios-kernel @ git+https://github.com/aios-ml/aios"')


def test_the_generated_registry_entry_passes_the_registry_build(generate: Callable[[str, str], Generated],
                                                                tmp_path: Path) -> None:
    _, project = generate("every", ALL_KINDS)
    index, no_first_party = tmp_path / "index", tmp_path / "repository"
    (index / "plugins").mkdir(parents=True)
    no_first_party.mkdir()
    shutil.copy(project / "registry" / "aios-every.toml", index / "plugins")
    check(run([sys.executable, REPO / "registry-index" / "build.py", "--root", index, "--repo", no_first_party]),
          "registry-index/build.py")
    (entry,) = json.loads((index / "index.json").read_text())["plugins"]
    assert entry["tier"] == "community" and entry["components"]["monitor"] == ["every"]
    assert set(entry["components"]) == set(ALL_KINDS.split(","))


# ---------------------------------------------------------------- installed from wheels in a fresh venv
class Venv(FreshVenv):
    @property
    def aios(self) -> Path:
        return self.path / "bin" / "aios"

    def install(self, *requests: str | Path) -> None:
        """Install wheels with pip, the third-party distributions they need linked from this environment first."""
        self.link_needs(*requests, skip={"aios-kernel", *FIRST_PARTY})
        check(self.pip_install(*requests), "pip install")


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A new venv holding aios-kernel[new] and the first-party plugins, installed from wheels built here."""
    core, *plugins = build_wheels([REPO, *(REPO / "plugins" / name for name in FIRST_PARTY)],
                                  tmp_path_factory.mktemp("wheels"))
    venv = Venv(tmp_path_factory.mktemp("venv") / "aios").create()
    venv.install(f"{core}[new]", *plugins, "pytest")
    return venv


@pytest.fixture(scope="module")
def baked(venv: Venv, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every project of BAKES, made with the venv's ``aios new plugin``, built and installed.

    The project with every kind is built with hatch, as the generated README says; the others,
    whose build configuration is the same, with hatchling (hatch's backend) in one process.
    """
    projects = tmp_path_factory.mktemp("projects")
    wheels = tmp_path_factory.mktemp("plugin-wheels")
    made = {}
    for name, kinds in BAKES.items():
        check(venv.run(venv.aios, "new", "plugin", "--no-input", f"plugin_name={name}", f"kinds={kinds}",
                       "-o", projects), f"aios new plugin (kinds={kinds})")
        made[name] = projects / f"aios-{name}"
    with_hatch = hatch_wheel(made["tpl-all"], wheels)
    venv.install(with_hatch, *build_wheels([p for name, p in made.items() if name != "tpl-all"], wheels))
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
        # the generated compressor works on the framework's native model: it runs before export (issue 12)
        (compressed,) = state["phases"]["compress-native"]["artifacts"]
        assert compressed["producer"] == name and compressed["name"] == "fp16"
    if "deployer" in kinds:
        assert state["phases"]["deploy"]["smoke_test"]["passed"] is True
    if "tuner" in kinds:
        assert len(state["phases"]["tune"]["trials"]) == 2


@pytest.mark.slow
def test_the_orchestrators_pipeline_runs_the_example_stack_one_phase_per_step(
        venv: Venv, baked: dict[str, Path], tmp_path: Path) -> None:
    result = check(venv.run(venv.aios, "pipeline", "run", "examples/stack.yaml", "--local", "--runs-dir", tmp_path,
                            cwd=baked["tpl-orchestrator"]), "aios pipeline run examples/stack.yaml --local")
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert f"tpl-orchestrator pipeline of tpl-orchestrator-example succeeded; run directory: {run_dir}" in result.stdout
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "completed" and state["resumed"] == len(state["phases"]) - 1
