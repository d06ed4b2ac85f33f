"""A fresh virtualenv that installs wheels with pip, as a user's environment would, quickly.

Used by the plugin stage (``scripts/plugin_suites.py``) and the plugin template's tests.
Nothing of this repository is importable in such a venv except what the wheels hold.

What makes it quick (``FreshVenv.link_needs``): before pip resolves, the third-party
distributions the requested wheels declare (Requires-Dist, followed recursively, markers
and extras applied) are hard-linked from the environment running this code (``.venv``,
installed through constraints.txt). pip then finds them installed and unpacks nothing it
already has, yet still resolves every requirement: a dependency a wheel does not declare
is not linked, so it is missing there as it would be for a user. Without linking, pip
installs everything itself (slower: torch alone takes 20 to 60 s to unpack).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Sequence
from email.parser import Parser
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONSTRAINTS = REPO / "constraints.txt"

_LEAKY_VARIABLES = ("AIOS_", "PYTHON", "VIRTUAL_ENV", "PIP_CONSTRAINT", "CONDA_PREFIX")


def build_wheels(projects: Iterable[Path], dest: Path) -> list[Path]:
    """Build each project's wheel into ``dest`` with hatchling (their build backend), without isolation.

    One subprocess for all of them: hatchling builds the project in the current directory.
    """
    dest.mkdir(parents=True, exist_ok=True)
    projects = [Path(p).resolve() for p in projects]
    code = ("import os, sys, hatchling.build as backend\n"
            "for project in sys.argv[2:]:\n"
            "    os.chdir(project)\n"
            "    print(backend.build_wheel(sys.argv[1]))\n")
    done = subprocess.run([sys.executable, "-c", code, str(dest), *map(str, projects)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"building wheels of {[p.name for p in projects]} failed:\n{done.stderr[-4000:]}")
    return [dest / name for name in done.stdout.split()]


def wheel_metadata(wheel: Path) -> tuple[str, list[str]]:
    """The distribution name of ``wheel`` and its raw Requires-Dist lines."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1]
        message = Parser().parsestr(archive.read(name).decode())
    return message["Name"], list(message.get_all("Requires-Dist") or ())


def requirements_with(requires: Iterable[str], extras: Iterable[str] = ()) -> list[str]:
    """The requirements of ``requires`` that apply here with ``extras`` (markers evaluated), markers stripped."""
    from packaging.requirements import Requirement

    chosen = []
    for text in requires:
        requirement = Requirement(text)
        if requirement.marker is None or any(requirement.marker.evaluate({"extra": e}) for e in {"", *extras}):
            requirement.marker = None
            chosen.append(str(requirement))
    return chosen


def _environment(venv: Path) -> dict[str, str]:
    """This process's environment without what would leak the repository or another environment into ``venv``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LEAKY_VARIABLES)}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


class FreshVenv:
    """A new virtualenv at ``path``, made with the interpreter behind the running one."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def env(self) -> dict[str, str]:
        return _environment(self.path)

    @property
    def site_packages(self) -> Path:
        (site,) = self.path.glob("lib/python*/site-packages")
        return site

    def create(self) -> FreshVenv:
        """Make the venv; pip in it is linked from this environment (as ``ensurepip`` would copy it, in 1/50 the time)."""
        base = getattr(sys, "_base_executable", sys.executable)
        done = subprocess.run([base, "-m", "venv", "--without-pip", str(self.path)], capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            raise RuntimeError(f"python -m venv {self.path} failed:\n{done.stderr}")
        link_distributions(self, ["pip"])
        return self

    def run(self, *args: str | Path, cwd: Path | None = None, timeout: float | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(a) for a in args], cwd=cwd, env={**self.env, **(env or {})}, capture_output=True,
                              text=True, timeout=timeout, check=False)

    def link_needs(self, *requests: str | Path, skip: Iterable[str] = ()) -> list[str]:
        """Link from this environment what ``requests`` need (see ``link_distributions``); returns the names linked.

        A request is a requirement or a wheel path, optionally with extras (``plugin.whl[test]``);
        the wheels' own distributions and ``skip`` are never linked (they must come from the requests).
        """
        wanted: list[str] = []
        from_wheels = set(skip)
        for request in map(str, requests):
            path, _, extras = request.partition("[")
            if path.endswith(".whl"):
                name, requires = wheel_metadata(Path(path))
                from_wheels.add(name)
                wanted += requirements_with(requires, extras.rstrip("]").split(","))
            else:
                wanted.append(request)
        return link_distributions(self, wanted, skip=from_wheels)

    def pip_install(self, *requests: str | Path, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        """``pip install --no-compile -c constraints.txt REQUESTS`` in the venv."""
        return self.run(self.python, "-m", "pip", "install", "--quiet", "--no-compile", "--disable-pip-version-check",
                        "-c", CONSTRAINTS, *requests, timeout=timeout)


def link_distributions(venv: FreshVenv, requirements: Sequence[str], skip: Iterable[str] = ()) -> list[str]:
    """Hard-link into ``venv`` the distributions of this environment that ``requirements`` need, recursively.

    A distribution's files are those its RECORD lists; its scripts are copied with their
    ``#!`` line pointing at the venv's python. ``skip`` names distributions to leave to pip,
    and ones not installed here are left to pip too. Returns the names linked.
    """
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    skipped = {canonicalize_name(name) for name in skip}
    site, source_prefix = venv.site_packages, Path(sys.prefix)
    pending = [Requirement(text) for text in requirements]
    seen: set[str] = set()
    linked = []
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in skipped or name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if not requirement.specifier.contains(dist.version, prereleases=True):
            continue  # pip will pick a version that fits
        if json.loads(dist.read_text("direct_url.json") or "{}").get("dir_info", {}).get("editable"):
            continue  # a checkout's editable install: never link source trees
        for file in dist.files or ():
            found = Path(dist.locate_file(file))
            if file.parts[0] == "..":
                try:
                    target = venv.path / found.resolve().relative_to(source_prefix.resolve())
                except ValueError:
                    continue  # outside the environment: leave it
                if target.parent.name == "bin":
                    _copy_script(found, target, venv.python)
                    continue
            else:
                target = site / file
            if not target.exists() and found.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(found, target)
                except OSError:  # another file system
                    shutil.copy2(found, target)
        linked.append(name)
        extras = {"", *requirement.extras}
        for text in dist.requires or ():
            needed = Requirement(text)
            if needed.marker is None or any(needed.marker.evaluate({"extra": extra}) for extra in extras):
                pending.append(needed)
    return linked


def _copy_script(found: Path, target: Path, python: Path) -> None:
    """Copy a console script, pointing its ``#!`` line at ``python``."""
    if target.exists() or not found.is_file():
        return
    data = found.read_bytes()
    if data.startswith(b"#!"):
        first, _, rest = data.partition(b"\n")
        if b"python" in first:
            data = b"#!" + str(python).encode() + b"\n" + rest
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    target.chmod(0o755)
