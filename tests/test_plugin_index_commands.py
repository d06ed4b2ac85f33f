"""The plugin index commands with real pip, real wheels and a local index; no network.

Each test gets a fresh virtual environment that sees this one's packages (aios-kernel and
its dependencies) through a .pth file, so pip installs into it and nowhere else. pip is
pointed at a local wheel directory with PIP_NO_INDEX and PIP_FIND_LINKS, as a user would
point it at a company mirror.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from fresh_venv import build_wheels
from support import DEFAULT_STACK, REPO, aios_env, bare_installs, first_party_names, run_aios

MONITOR = '''
from aios_core import Monitor, hookimpl


class {cls}(Monitor):
    """Says hello when a run starts."""

    @hookimpl
    def aios_on_run_start(self, run):
        pass
'''


def write_project(project: Path, name: str, version: str, *, monitor: str | None = None,
                  dependencies: tuple[str, ...] = ("aios-kernel>=0.1,<0.2",)) -> None:
    """Write the source of a small distribution into ``project``: a monitor plugin (its ``Hello`` under the
    entry-point name ``monitor``), or a plain library."""
    module = name.replace("-", "_")
    (project / module).mkdir(parents=True)
    entry_points = f'[project.entry-points."aios.monitors"]\n{monitor} = "{module}:Hello"\n' if monitor else ""
    (project / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"

        [project]
        name = "{name}"
        version = "{version}"
        dependencies = {json.dumps(list(dependencies))}
        """) + entry_points)
    (project / module / "__init__.py").write_text(MONITOR.format(cls="Hello") if monitor else "WORDS = ['hello']\n")


def build_wheels_of(projects: Path, wheels: Path,
                    *distributions: tuple[str, str, str | None, tuple[str, ...]]) -> dict[tuple[str, str], str]:
    """Build real wheels of small distributions, ``(name, version, monitor, dependencies)`` each (a monitor plugin,
    or a plain library when ``monitor`` is None), in one hatchling process; their sha256 by (name, version)."""
    for name, version, monitor, dependencies in distributions:
        write_project(projects / f"{name}-{version}", name, version, monitor=monitor, dependencies=dependencies)
    built = build_wheels([projects / f"{name}-{version}" for name, version, _, _ in distributions], wheels)
    return {(name, version): hashlib.sha256(wheel.read_bytes()).hexdigest()
            for (name, version, _, _), wheel in zip(distributions, built, strict=True)}


def entry(name: str, *, status: str = "active", tier: str = "reviewed", aios_core: str = ">=0.1,<0.2",
          releases: list[dict[str, str]] | None = None, **extra: object) -> dict[str, object]:
    """An index entry of a monitor plugin, as registry-index/build.py writes them."""
    return {"name": name, "distribution": name, "summary": f"{name} says hello",
            "repository": f"https://example.org/{name}", "license": "MIT", "maintainers": ["Test Maintainer"],
            "tags": ["greeting"], "status": status, "tier": tier, "aios_core": aios_core,
            "components": {"monitor": [name.removeprefix("aios-")]}, "releases": releases or [], **extra}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A wheel directory and a local index describing those wheels (and a few that must be refused)."""
    root = tmp_path_factory.mktemp("registry")
    projects, wheels = root / "projects", root / "wheels"
    plugin = ("aios-kernel>=0.1,<0.2",)
    built = build_wheels_of(projects, wheels,
                            ("aios-hello", "0.1.0", "hello", plugin),
                            ("aios-hello", "0.2.0", "hello", (*plugin, "greeting-words>=1.0")),
                            ("aios-legacy", "0.1.0", "legacy", plugin),
                            ("aios-tampered", "0.1.0", "tampered", plugin),
                            ("aios-unlisted", "0.1.0", "unlisted", plugin),
                            ("greeting-words", "1.0.0", None, ()))
    hashes = {"hello-0.1.0": built["aios-hello", "0.1.0"], "hello-0.2.0": built["aios-hello", "0.2.0"],
              "legacy": built["aios-legacy", "0.1.0"], "tampered": built["aios-tampered", "0.1.0"],
              "unlisted": built["aios-unlisted", "0.1.0"]}
    plugins = [
        entry("aios-hello", releases=[{"version": "0.1.0", "sha256": hashes["hello-0.1.0"]},
                                      {"version": "0.2.0", "sha256": hashes["hello-0.2.0"],
                                       "wheel": "aios_hello-0.2.0-py2.py3-none-any.whl"}]),
        entry("aios-old", status="withdrawn", withdrawn_reason="sends metrics to a third party",
              releases=[{"version": "0.1.0", "sha256": "1" * 64}]),
        entry("aios-future", aios_core=">=0.2,<0.3", releases=[{"version": "0.1.0", "sha256": "2" * 64}]),
        entry("aios-legacy", status="deprecated", tier="community", deprecated_by="aios-hello",
              releases=[{"version": "0.1.0", "sha256": hashes["legacy"]}]),
        entry("aios-tampered", releases=[{"version": "0.1.0", "sha256": "3" * 64}]),
    ]
    index = root / "index.json"
    index.write_text(json.dumps({"schema_version": 1, "plugins": plugins}, indent=1))
    return {"index": index, "wheels": wheels, "hashes": hashes, "plugins": plugins}


class Sandbox:
    """A new virtual environment that also sees this one's packages, and the CLI's environment there.

    pip sees only the local wheels; the settings file and the cache live in the test's tmp_path.
    """

    def __init__(self, tmp_path: Path, registry: dict[str, Any]) -> None:
        target = tmp_path / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
        self.python = target / "bin" / "python"
        purelib = subprocess.run([str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        parent = sysconfig.get_paths()["purelib"]  # after the new environment's own, as for --system-site-packages
        (Path(purelib) / "_aios_parent_env.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
        self.index: Path = registry["index"]
        self.hashes: dict[str, str] = registry["hashes"]
        self.config = tmp_path / "config.toml"
        self.cache = tmp_path / "cache"
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("AIOS_", "PIP_", "PYTHON")) and k.lower() not in ("http_proxy", "https_proxy")}
        self.env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(registry["wheels"]), PIP_DISABLE_PIP_VERSION_CHECK="1",
                        PIP_CONFIG_FILE=os.devnull, AIOS_CONFIG=str(self.config), AIOS_CACHE_DIR=str(self.cache),
                        no_proxy="127.0.0.1,localhost")

    def aios(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        """The CLI in the sandbox, with no terminal on standard input."""
        return subprocess.run([str(self.python), "-m", "aios_core", *args], env={**self.env, **extra_env},
                              capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)

    def install(self, request: str, *options: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return self.aios("plugins", "install", request, *options, "--index", str(self.index), **extra_env)

    def components(self) -> set[tuple[str, str]]:
        """(component, distribution) pairs that aios plugins list shows."""
        result = self.aios("plugins", "list")
        assert result.returncode == 0, result.stderr
        return {(row.split()[1], row.split()[2]) for row in result.stdout.splitlines()[1:]}


@pytest.fixture
def sandbox(tmp_path: Path, registry: dict[str, Any]) -> Sandbox:
    return Sandbox(tmp_path, registry)


def table_rows(output: str, columns: int) -> dict[str, str]:
    """The rows of a rich table by their first cell."""
    return {line.split("│")[1].strip(): line for line in output.splitlines() if line.count("│") == columns + 1}


# ---------------------------------------------------------------- install
def test_install_checks_the_hash_shows_the_changes_and_verifies_the_plugin(sandbox: Sandbox) -> None:
    result = sandbox.install("aios-hello", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sha256 ok: aios_hello-0.2.0-py2.py3-none-any.whl is the reviewed wheel" in result.stdout
    changes = table_rows(result.stdout, 3)  # the dry run's report: the plugin and its dependency
    assert "0.2.0" in changes["aios-hello"] and "1.0.0" in changes["greeting-words"]
    assert "installed aios-hello 0.2.0" in result.stdout
    assert "ok    monitor 'hello' (aios-hello 0.2.0)" in result.stdout
    assert "warning" not in result.stderr
    assert ("hello", "aios-hello") in sandbox.components()


def test_uninstall_removes_the_plugin(sandbox: Sandbox) -> None:
    assert sandbox.install("aios-hello==0.1.0", "-y").returncode == 0
    result = sandbox.aios("plugins", "uninstall", "AIOS_Hello", "--yes")
    assert result.returncode == 0, result.stderr
    assert "uninstalled aios-hello 0.1.0" in result.stdout
    assert ("hello", "aios-hello") not in sandbox.components()


def test_uninstall_refuses_the_kernel_and_non_plugins(sandbox: Sandbox) -> None:
    core = sandbox.aios("plugins", "uninstall", "AIOS_Kernel", "--yes")
    assert core.returncode == 2 and "aios-kernel is the kernel" in core.stderr
    library = sandbox.aios("plugins", "uninstall", "packaging", "--yes")
    assert library.returncode == 2 and "provides no aios components" in library.stderr


def test_dry_run_shows_what_would_change_and_installs_nothing(sandbox: Sandbox) -> None:
    result = sandbox.install("aios-hello", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "pip would change" in result.stdout and "dry run: nothing was installed" in result.stdout
    changes = table_rows(result.stdout, 3)
    assert "0.2.0" in changes["aios-hello"] and "install" in changes["aios-hello"]
    assert "1.0.0" in changes["greeting-words"]
    assert ("hello", "aios-hello") not in sandbox.components()


def test_without_a_terminal_install_needs_yes(sandbox: Sandbox) -> None:
    result = sandbox.install("aios-hello")
    assert result.returncode == 2
    assert ("aios plugins install aios-hello asks for confirmation, but standard input is not a terminal; "
            "pass --yes") in result.stderr
    assert ("hello", "aios-hello") not in sandbox.components()


def test_withdrawn_plugin_is_refused_with_the_reason(sandbox: Sandbox) -> None:
    result = sandbox.install("aios-old", "--yes")
    assert result.returncode == 2
    assert "aios-old is withdrawn from the index" in result.stderr
    assert "sends metrics to a third party" in result.stderr


def test_incompatible_range_is_refused_naming_both_versions(sandbox: Sandbox) -> None:
    result = sandbox.install("aios-future", "--yes")
    assert result.returncode == 2
    assert "aios-future requires aios-kernel>=0.2,<0.3, but aios-kernel 0.1.0 is installed" in result.stderr


def test_unlisted_plugin_is_refused_naming_the_index(sandbox: Sandbox) -> None:
    result = sandbox.install("aios-unlisted", "--yes")
    assert result.returncode == 2
    assert f"aios-unlisted is not in the index {sandbox.index} (--index)" in result.stderr
    assert "--allow-unlisted" in result.stderr


def test_allow_unlisted_installs_with_a_warning(sandbox: Sandbox) -> None:
    result = sandbox.install("aios-unlisted", "--allow-unlisted", "--yes")
    assert result.returncode == 0, result.stderr
    assert "warning: unlisted: aios-unlisted is not in the index" in result.stderr
    assert "ok    monitor 'unlisted'" in result.stdout


def test_hash_mismatch_is_refused_naming_both_hashes(sandbox: Sandbox) -> None:
    result = sandbox.install("aios-tampered", "--yes")
    assert result.returncode == 1
    assert (f"sha256 {sandbox.hashes['tampered']} does not match the reviewed sha256 {'3' * 64}"
            in result.stderr)
    assert ("tampered", "aios-tampered") not in sandbox.components()


def test_deprecated_and_unreviewed_versions_warn(sandbox: Sandbox) -> None:
    result = sandbox.install("aios-legacy", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "warning: deprecated: aios-legacy is deprecated; use aios-hello instead" in result.stderr
    assert "warning: unreviewed: aios-legacy 0.1.0 is not a reviewed release (its tier is community)" in result.stderr


def git_source(root: Path, name: str, version: str) -> dict[str, str]:
    """A git repository holding a monitor plugin in plugins/NAME (as AIOS's repository does); its index source."""
    repo = root / "repo"
    write_project(repo / "plugins" / name, name, version, monitor=name.removeprefix("aios-"))
    for command in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@example.org",
                                                   "commit", "-q", "-m", "source"]):
        subprocess.run(["git", *command], cwd=repo, check=True, capture_output=True)
    # file://localhost/...: the packaging pip vendors wants a host in a git+file URL
    return {"repository": f"file://localhost{repo}", "subdirectory": f"plugins/{name}"}


def test_a_first_party_plugin_without_a_release_installs_from_its_source(sandbox: Sandbox, tmp_path: Path) -> None:
    index = tmp_path / "first-party.json"
    source = git_source(tmp_path, "aios-hello", "0.3.0")  # the wheel directory has 0.1.0 and 0.2.0: never used
    index.write_text(json.dumps({"schema_version": 1, "plugins": [
        entry("aios-hello", tier="first-party", source=source)]}))
    # pip builds the source with the hatchling this environment has, as there is no index to fetch one from
    result = sandbox.aios("plugins", "install", "aios-hello", "--yes", "--index", str(index),
                          PIP_NO_BUILD_ISOLATION="0")
    assert result.returncode == 0, result.stdout + result.stderr
    url = f"git+{source['repository']}#subdirectory=plugins/aios-hello"
    assert (f"note: aios-hello has no published release in the index; installing it from its source, {url}, "
            f"not by name from a package index") in result.stderr
    assert "warning" not in result.stderr and "sha256 ok" not in result.stdout
    assert "0.3.0" in table_rows(result.stdout, 3)["aios-hello"]
    assert "installed aios-hello 0.3.0" in result.stdout and "ok    monitor 'hello'" in result.stdout


def test_a_version_cannot_be_asked_of_a_plugin_installed_from_its_source(sandbox: Sandbox, tmp_path: Path) -> None:
    index = tmp_path / "first-party.json"
    index.write_text(json.dumps({"schema_version": 1, "plugins": [
        entry("aios-hello", tier="first-party", source={"repository": "https://example.org/aios"})]}))
    result = sandbox.aios("plugins", "install", "aios-hello==0.2.0", "--dry-run", "--index", str(index))
    assert result.returncode == 2
    assert ("aios-hello==0.2.0: the index " in result.stderr
            and "lists no release of aios-hello; it is installed from its source (git+https://example.org/aios) "
                "at the version that holds, so ask without a version: aios plugins install aios-hello"
            in result.stderr)


def test_a_first_party_plugin_with_neither_release_nor_source_is_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    index = tmp_path / "first-party.json"
    index.write_text(json.dumps({"schema_version": 1, "plugins": [entry("aios-hello", tier="first-party")]}))
    result = sandbox.aios("plugins", "install", "aios-hello", "--dry-run", "--index", str(index))
    assert result.returncode == 2
    assert "aios-hello is first-party, but the index" in result.stderr
    assert "lists no published release of it and records no source" in result.stderr
    assert "pip would change" not in result.stdout  # refused before pip resolved anything


def test_a_first_party_dependency_pip_would_take_by_name_is_refused(sandbox: Sandbox, tmp_path: Path,
                                                                     registry: dict[str, Any]) -> None:
    index = tmp_path / "index.json"
    hello = next(plugin for plugin in registry["plugins"] if plugin["name"] == "aios-hello")
    words = entry("greeting-words", tier="first-party", components={"monitor": ["words"]},
                  source={"repository": "https://example.org/aios", "subdirectory": "plugins/greeting-words"})
    index.write_text(json.dumps({"schema_version": 1, "plugins": [hello, words]}))
    result = sandbox.aios("plugins", "install", "aios-hello", "--yes", "--index", str(index))
    assert result.returncode == 2
    assert "pip would take greeting-words 1.0.0 by name from file://" in result.stderr
    assert ("lists no published release of first-party greeting-words, so that is not AIOS's; nothing was "
            "installed. Install greeting-words from its source first: aios plugins install greeting-words"
            in result.stderr)
    assert ("hello", "aios-hello") not in sandbox.components()


def test_the_kernel_and_its_former_name_are_not_plugins(sandbox: Sandbox) -> None:
    kernel = sandbox.aios("plugins", "install", "AIOS_Kernel", "--yes")
    assert kernel.returncode == 2
    assert ('aios-kernel is the kernel, not a plugin; upgrade it with pip install --upgrade '
            '"aios-kernel @ git+https://github.com/aios-ml/aios"') in kernel.stderr
    former = sandbox.aios("plugins", "install", "aios-core", "--allow-unlisted", "--yes")
    assert former.returncode == 2
    assert "aios-core is not AIOS: on the public package index that name belongs to an unrelated project" \
        in former.stderr


def test_a_bundled_first_party_plugin_is_planned_from_its_source_not_by_name() -> None:
    from aios_core.catalog import BUNDLED_INDEX, read_index
    from aios_core.installer import plan_install
    from aios_core.settings import PluginSettings

    index = read_index(str(BUNDLED_INDEX))
    git = "git+https://github.com/aios-ml/aios#subdirectory=plugins/aios-torch"
    from_clone = plan_install("aios-torch", index, PluginSettings())  # these tests run from a clone
    assert from_clone.requirement == f"aios-torch @ {(REPO / 'plugins' / 'aios-torch').as_uri()}"
    assert from_clone.sha256 is None and from_clone.version is None and from_clone.warnings == []
    assert from_clone.notes == [f"aios-torch has no published release in the index; installing it from this AIOS "
                                f"checkout, {REPO / 'plugins' / 'aios-torch'} (its recorded source is {git}), "
                                f"not by name from a package index"]
    elsewhere = plan_install("AIOS_Torch", index, PluginSettings(), checkout=None)
    assert elsewhere.requirement == f"aios-torch @ {git}"
    for name in sorted(first_party_names() - {"aios-kernel", "aios-core"}):
        assert " @ " in plan_install(name, index, PluginSettings(), checkout=None).requirement


def test_install_dry_run_of_a_bundled_first_party_plugin_shows_pip_resolving_the_source() -> None:
    pytest.importorskip("hatchling", reason="pip builds the plugin's metadata offline with this environment's "
                                            "hatchling (no build isolation), which is not installed")
    env = aios_env(PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1")
    bundled = str(REPO / "aios_core" / "index.json")
    result = run_aios("plugins", "install", "aios-torch", "--dry-run", "--index", bundled, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"installing it from this AIOS checkout, {REPO / 'plugins' / 'aios-torch'}" in result.stderr
    assert set(table_rows(result.stdout, 3)) == {"aios-torch"}  # its dependencies are installed here already
    assert "dry run: nothing was installed" in result.stdout


@pytest.mark.parametrize("spelling", ["AIOS_Hello", "aios.hello", "Aios-HELLO==0.1.0"])
def test_other_spellings_resolve_to_the_canonical_name(sandbox: Sandbox, spelling: str) -> None:
    result = sandbox.install(spelling, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "sha256 ok: aios_hello-" in result.stdout and "aios-hello" in table_rows(result.stdout, 3)


@pytest.mark.parametrize("spelling", ["AIOS_Hello", "aios.hello", "aios-hello"])
def test_block_list_refuses_every_spelling(sandbox: Sandbox, spelling: str) -> None:
    result = sandbox.install(spelling, "--yes", AIOS_BLOCK_PLUGINS="aios-hello")
    assert result.returncode == 2
    assert "aios-hello is blocked by the pattern 'aios-hello' in AIOS_BLOCK_PLUGINS" in result.stderr


def test_allow_list_in_the_settings_file_refuses_other_plugins(sandbox: Sandbox) -> None:
    sandbox.config.write_text('[plugins]\nallow = ["aios-data", "AIOS_Torch"]\n')
    result = sandbox.install("AIOS_Hello", "--yes")
    assert result.returncode == 2
    assert "aios-hello is not allowed: it matches none of 'aios-data', 'aios-torch'" in result.stderr
    assert str(sandbox.config) in result.stderr


def test_block_list_applies_to_unlisted_plugins_too(sandbox: Sandbox) -> None:
    sandbox.config.write_text('[plugins]\nblock = ["aios-un*"]\n')
    result = sandbox.install("aios_unlisted", "--allow-unlisted", "--yes")
    assert result.returncode == 2 and "blocked by the pattern 'aios-un*'" in result.stderr


def test_a_broken_settings_file_is_named(sandbox: Sandbox) -> None:
    sandbox.config.write_text('[plugins]\nallow = "aios-*"\n')
    result = sandbox.install("aios-hello", "--yes")
    assert result.returncode == 2
    assert f"{sandbox.config}: plugins.allow: expected a list of name patterns" in result.stderr


# ---------------------------------------------------------------- search, info, outdated
def test_search_reads_the_index_and_marks_compatibility(sandbox: Sandbox) -> None:
    result = sandbox.aios("plugins", "search", "--index", str(sandbox.index))
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout, 7)
    assert set(rows) == {"aios-hello", "aios-old", "aios-future", "aios-legacy", "aios-tampered"}
    assert "needs aios-kernel>=0.2,<0.3" in rows["aios-future"]
    assert all(cell in rows["aios-hello"] for cell in ("monitor: hello", "reviewed", "active", "compatible"))
    assert "withdrawn" in rows["aios-old"] and "deprecated" in rows["aios-legacy"]
    by_text = sandbox.aios("plugins", "search", "FUTURE", "--index", str(sandbox.index)).stdout
    assert set(table_rows(by_text, 7)) == {"aios-future"}
    by_tier = sandbox.aios("plugins", "search", "--tier", "community", "--index", str(sandbox.index)).stdout
    assert set(table_rows(by_tier, 7)) == {"aios-legacy"}


def test_search_shows_installed_versions_without_importing_plugins(registry: dict[str, Any]) -> None:
    code = ("import sys, json\nfrom aios_core.cli import main\n"
            f"try:\n    main(['plugins', 'search', '--index', {str(registry['index'])!r}], prog_name='aios')\n"
            "except SystemExit:\n    pass\n"
            "print(json.dumps([m for m in sys.modules if m.startswith(('aios_torch', 'aios_data', 'torch'))]))\n")
    result = subprocess.run([sys.executable, "-c", code], env=aios_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
    row = table_rows(run_aios("plugins", "search", "torch").stdout, 7)["aios-torch"]  # the bundled snapshot
    assert "0.1.0" in row and "framework: torch; trainer: torch" in row


def test_info_shows_the_index_entry_of_a_plugin_that_is_not_installed(sandbox: Sandbox) -> None:
    result = sandbox.aios("plugins", "info", "AIOS_Hello", "--index", str(sandbox.index))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "aios-hello  aios-hello says hello" in out and "tier: reviewed" in out and "installed: not installed" in out
    assert "aios-kernel: >=0.1,<0.2: compatible with the installed 0.1.0" in out
    assert (f"0.2.0  reviewed  sha256:{sandbox.hashes['hello-0.2.0']}  aios_hello-0.2.0-py2.py3-none-any.whl"
            in out)
    assert "install: aios plugins install aios-hello==0.2.0" in out
    assert f"with pip: aios-hello==0.2.0 --hash=sha256:{sandbox.hashes['hello-0.2.0']}" in out


def test_info_shows_why_a_plugin_cannot_be_installed(sandbox: Sandbox) -> None:
    future = sandbox.aios("plugins", "info", "aios-future", "--index", str(sandbox.index))
    assert "incompatible with the installed 0.1.0" in future.stdout and "install:" not in future.stdout
    old = sandbox.aios("plugins", "info", "aios-old", "--index", str(sandbox.index))
    assert "status: withdrawn: sends metrics to a third party" in old.stdout
    assert sandbox.aios("plugins", "info", "nothing-like-this", "--index", str(sandbox.index)).returncode == 2


def test_outdated_shows_newer_reviewed_releases_and_marks_incompatible_ones(sandbox: Sandbox, tmp_path: Path) -> None:
    assert sandbox.install("aios-hello==0.1.0", "-y").returncode == 0
    result = sandbox.aios("plugins", "outdated", "--index", str(sandbox.index))
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout, 4)
    assert "0.1.0" in rows["aios-hello"] and "0.2.0" in rows["aios-hello"]
    assert "update available: aios plugins install aios-hello==0.2.0" in rows["aios-hello"]
    assert "not in the index" in rows["aios-torch"]

    moved_on = json.loads(sandbox.index.read_text())
    moved_on["plugins"][0]["aios_core"] = ">=0.2,<0.3"
    later = tmp_path / "later-index.json"
    later.write_text(json.dumps(moved_on))
    rows = table_rows(sandbox.aios("plugins", "outdated", "--index", str(later)).stdout, 4)
    assert "newer release needs aios-kernel>=0.2,<0.3 (installed: 0.1.0)" in rows["aios-hello"]


# ---------------------------------------------------------------- the index cache
def test_update_index_from_a_file_becomes_the_default_index(sandbox: Sandbox) -> None:
    result = sandbox.aios("plugins", "update-index", "--index", str(sandbox.index))
    assert result.returncode == 0, result.stderr
    assert "cached 5 plugins" in result.stdout and (sandbox.cache / "index.json").is_file()
    search = sandbox.aios("plugins", "search")
    assert "aios-hello" in table_rows(search.stdout, 7) and f"cached copy of {sandbox.index}" in search.stdout
    install = sandbox.aios("plugins", "install", "aios-old", "--yes")
    assert install.returncode == 2 and "withdrawn" in install.stderr


def test_update_index_refuses_a_file_that_is_not_an_index(sandbox: Sandbox, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"plugins": [{"distribution": "aios-x", "status": "gone"}]}')
    result = sandbox.aios("plugins", "update-index", "--index", str(bad))
    assert result.returncode == 2
    assert "plugins[0] (aios-x).status: found 'gone', expected one of active, deprecated, withdrawn" in result.stderr
    assert not (sandbox.cache / "index.json").exists()
    nothing_configured = sandbox.aios("plugins", "update-index")
    assert nothing_configured.returncode == 2 and "give --index PATH_OR_URL" in nothing_configured.stderr


def test_update_index_fetches_the_url_in_the_settings_over_http(sandbox: Sandbox) -> None:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(sandbox.index.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/index.json"
        sandbox.config.write_text(f'[plugins]\nindex = "{url}"\n')
        before = sandbox.aios("plugins", "search", "hello")
        assert "bundled snapshot" in before.stdout and "aios plugins update-index" in before.stdout
        result = sandbox.aios("plugins", "update-index")
        assert result.returncode == 0, result.stderr
        assert f"cached 5 plugins from {url}" in result.stdout
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    after = sandbox.aios("plugins", "search", "hello")  # the server is gone: read from the cache
    assert "aios-hello" in table_rows(after.stdout, 7) and f"cached copy of {url}" in after.stdout


# ---------------------------------------------------------------- stack requirements
def test_stack_requirements_lists_the_distributions_with_ranges(tmp_path: Path) -> None:
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"schema_version": 1, "plugins": [
        entry("aios-data", tier="first-party", components={"datastore": ["sklearn"]},
              releases=[{"version": "0.1.0", "sha256": "a" * 64}, {"version": "0.1.2", "sha256": "b" * 64}]),
        entry("aios-torch", tier="first-party", aios_core=">=0.1,<0.3",
              components={"framework": ["torch"], "trainer": ["torch"]},
              releases=[{"version": "0.1.0", "sha256": "c" * 64}]),
        entry("aios-onnx-quant", tier="first-party", components={"compressor": ["onnx-quant"]},
              source={"repository": "https://example.org/aios", "subdirectory": "plugins/aios-onnx-quant"}),
        entry("aios-kernel", tier="first-party", components={"monitor": ["console", "jsonl"]},
              releases=[{"version": "0.1.0", "sha256": "d" * 64}]),
    ]}))
    result = run_aios("stack", "requirements", str(DEFAULT_STACK), "--index", str(index))
    assert result.returncode == 0, result.stderr
    requirements = {Requirement(line).name: Requirement(line) for line in result.stdout.splitlines()}
    # published releases (a kernel release listed here): by name, with ranges
    assert {name: str(requirement.specifier) for name, requirement in requirements.items()} == {
        "aios-kernel": "<0.2,<0.3,>=0.1", "aios-data": ">=0.1.2", "aios-torch": ">=0.1.0", "aios-onnx-quant": "",
        "aios-serve": ""}
    # no release, a source: from the source
    assert requirements["aios-onnx-quant"].url == "git+https://example.org/aios#subdirectory=plugins/aios-onnx-quant"
    # aios-serve (the default stack's deployer) is installed but not in this index: listed without a range
    assert requirements["aios-serve"].url is None
    assert "aios-serve (installed 0.1.0, provides deployer 'oip') is not in the index" in result.stderr


def test_stack_requirements_from_the_bundled_index_name_every_distribution_by_its_source() -> None:
    result = run_aios("stack", "requirements", str(DEFAULT_STACK), "--index", str(REPO / "aios_core" / "index.json"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "aios-kernel @ git+https://github.com/aios-ml/aios"
    assert "aios-torch @ git+https://github.com/aios-ml/aios#subdirectory=plugins/aios-torch" in lines
    assert {Requirement(line).name for line in lines} == {"aios-kernel", "aios-data", "aios-torch", "aios-onnx-quant",
                                                          "aios-serve"}
    assert bare_installs("pip install " + " ".join(f"'{line}'" for line in lines), first_party_names()) == []
    assert all(Requirement(line).url for line in lines)


def test_stack_requirements_refuse_a_first_party_plugin_the_index_gives_no_way_to_install(tmp_path: Path) -> None:
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"schema_version": 1, "plugins": [
        entry("aios-onnx-quant", tier="first-party", components={"compressor": ["onnx-quant"]})]}))
    result = run_aios("stack", "requirements", str(DEFAULT_STACK), "--index", str(index))
    assert result.returncode == 2
    assert ("compressors.0.plugin: compressor 'onnx-quant' is provided by first-party aios-onnx-quant, but the index "
            in result.stderr)
    assert "records no source, and by name pip could take another project's aios-onnx-quant" in result.stderr


def test_stack_requirements_names_unknown_components(tmp_path: Path) -> None:
    stack = tmp_path / "stack.yaml"
    stack.write_text(DEFAULT_STACK.read_text().replace("plugin: onnx-quant", "plugin: prune-magic"))
    result = run_aios("stack", "requirements", str(stack), "--index", str(REPO / "aios_core" / "index.json"))
    assert result.returncode == 2
    assert ("compressors.0.plugin: no compressor named 'prune-magic' is installed or listed in the index"
            in result.stderr)
