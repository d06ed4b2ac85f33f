"""Installing, removing and listing plugins with pip, checked against the index and the settings.

``aios plugins install`` goes through these steps, each of which can refuse:

1. the name is put in canonical form (``AIOS_Hello`` is ``aios-hello``) and checked
   against the block and allow lists;
2. it is looked up in the index: unlisted names need ``--allow-unlisted``; withdrawn
   plugins and plugins whose kernel range excludes the running kernel are refused;
3. the version is the one asked for or the newest reviewed release; anything else is
   installed with an "unreviewed" warning. An entry that lists no release but records its
   source (every first-party one, until releases are published) is installed from that
   source, or from the AIOS checkout the running kernel comes from; a first-party name is
   never installed by name without a listed release;
4. when the index knows the wheel's sha256, pip downloads the wheel and its hash must match;
5. ``pip install --dry-run --report`` says what would change in the environment; a
   first-party distribution pip would take by name without a published release is refused;
6. dependencies are installed, then the plugin itself in pip's hash-checking mode;
7. a fresh interpreter imports and checks each of the plugin's components.

pip always runs as ``sys.executable -m pip``: the environment aios runs in. pip's own
configuration (``PIP_INDEX_URL``, ``PIP_FIND_LINKS``, ``PIP_NO_INDEX``, pip.conf) applies.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from aios_core import __version__
from aios_core.catalog import Index, IndexedPlugin, kernel_entry
from aios_core.settings import PluginSettings
from aios_core.vocabulary import CORE_DISTRIBUTION, FORMER_CORE_DISTRIBUTION, ROLE_KINDS, canonical_name

CHECKOUT = Path(__file__).resolve().parent.parent
"""The folder holding the running ``aios_core``: a checkout of the AIOS repository when the kernel runs from one."""

__all__ = ["Change", "InstallFailed", "InstallPlan", "InstallRefused", "Outdated", "check_wheel_hash", "install",
           "outdated", "plan_install", "planned_changes", "stack_requirements", "uninstall", "uninstall_target",
           "verify"]


class InstallRefused(Exception):
    """The request is not allowed (blocked, unlisted, withdrawn, incompatible, bad name): nothing was changed."""


class InstallFailed(Exception):
    """A check or pip failed on the way (hash mismatch, pip error, plugin still present after uninstall)."""


def _pip(*args: str, what: str) -> subprocess.CompletedProcess[str]:
    """Run pip in the environment aios runs in; InstallFailed with pip's own error lines if it fails."""
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR")] or \
            (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise InstallFailed(f"{what} failed (pip exited with {result.returncode}): " + " / ".join(lines))
    return result


def _installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------- install: steps 1-3
@dataclass
class InstallPlan:
    """What ``install`` will ask pip for, and the warnings (and notes) the user must see first."""

    distribution: str
    version: str | None
    sha256: str | None
    plugin: IndexedPlugin | None
    index: Index
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source: str | None = None
    """The URL pip builds the plugin from (a ``file:`` folder or ``git+https:``), instead of a name on an index."""

    @property
    def requirement(self) -> str:
        if self.source:
            return f"{self.distribution} @ {self.source}"
        return f"{self.distribution}=={self.version}" if self.version else self.distribution


def _parse_request(request: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME==VERSION``."""
    usage = f"'{request}': expected NAME or NAME==VERSION, e.g. aios-torch or aios-torch==0.1.0"
    try:
        requirement = Requirement(request)
    except InvalidRequirement:
        raise InstallRefused(usage) from None
    specifiers = list(requirement.specifier)
    if requirement.extras or requirement.url or requirement.marker or len(specifiers) > 1 or (
            specifiers and (specifiers[0].operator != "==" or "*" in specifiers[0].version)):
        raise InstallRefused(usage)
    return requirement.name, specifiers[0].version if specifiers else None


def checkout_folder(plugin: IndexedPlugin, checkout: Path | None = CHECKOUT) -> Path | None:
    """The folder of ``checkout`` that builds the first-party ``plugin``, if the kernel runs from a checkout.

    It counts when the recorded source's subdirectory holds a pyproject.toml naming the
    distribution: then the plugin is built from the same commit as the running kernel.
    """
    import tomllib

    if checkout is None or plugin.source is None or plugin.tier != "first-party":
        return None
    folder = checkout / plugin.source.subdirectory
    try:
        name = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError):
        return None
    return folder if isinstance(name, str) and canonical_name(name) == plugin.canonical else None


def _kernel_refusal(distribution: str, index: Index) -> InstallRefused:
    if distribution == FORMER_CORE_DISTRIBUTION:
        return InstallRefused(f"{distribution} is not AIOS: on the public package index that name belongs to an "
                              f"unrelated project. The AIOS kernel is {CORE_DISTRIBUTION} (import package "
                              f"aios_core), and it is not a plugin")
    kernel = kernel_entry(index)
    how = f'pip install --upgrade "{kernel.source_requirement}"' if kernel and kernel.from_source \
        else f"pip install --upgrade {CORE_DISTRIBUTION}"
    return InstallRefused(f"{CORE_DISTRIBUTION} is the kernel, not a plugin; upgrade it with {how}, or with git pull "
                          f"in the checkout it runs from")


def plan_install(request: str, index: Index, settings: PluginSettings, *, allow_unlisted: bool = False,
                 checkout: Path | None = CHECKOUT) -> InstallPlan:
    """Steps 1-3: canonical name, allow/block lists, index entry, version or source; InstallRefused if not allowed.

    ``checkout``: where a first-party plugin is built from when it is there (default: the
    folder holding the running ``aios_core``); None for its recorded source only.
    """
    name, version = _parse_request(request)
    distribution = canonical_name(name)
    if distribution in (CORE_DISTRIBUTION, FORMER_CORE_DISTRIBUTION):
        raise _kernel_refusal(distribution, index)
    refusal = settings.refusal(distribution)
    if refusal:
        raise InstallRefused(refusal)

    plugin = index.find(distribution)
    if plugin is None:
        if not allow_unlisted:
            raise InstallRefused(f"{distribution} is not in the index {index.source}; nothing about it was reviewed. "
                                 f"Check the name (aios plugins search), use another index (--index), "
                                 f"or install it anyway with --allow-unlisted")
        return InstallPlan(distribution, version, None, None, index,
                           [f"unlisted: {distribution} is not in the index {index.source}; installing it unreviewed"])
    distribution = plugin.canonical
    if plugin.status == "withdrawn":
        raise InstallRefused(f"{distribution} is withdrawn from the index {index.source}: "
                             f"{plugin.withdrawn_reason or 'no reason given'}")
    if plugin.incompatibility():
        raise InstallRefused(f"{distribution} requires {CORE_DISTRIBUTION}{plugin.aios_core}, but "
                             f"{CORE_DISTRIBUTION} {__version__} is installed; upgrade {CORE_DISTRIBUTION} or wait "
                             f"for a compatible release (index: {index.source})")

    warnings: list[str] = []
    if plugin.status == "deprecated":
        warnings.append(f"deprecated: {distribution} is deprecated"
                        + (f"; use {plugin.deprecated_by} instead" if plugin.deprecated_by else ""))
    if plugin.from_source:
        return _plan_from_source(plugin, version, index, warnings, checkout)
    if not plugin.by_name:
        raise InstallRefused(f"{distribution} is first-party, but the index {index.source} lists no published release "
                             f"of it and records no source; {distribution} on a package index need not be AIOS's, "
                             f"so it is not installed by name. Update the index (aios plugins update-index), or "
                             f"install it from the AIOS repository")
    if version:
        release = plugin.release(version)
    else:
        release = plugin.newest_release() or plugin.newest_release(reviewed_only=False)
    if release is None and version:
        warnings.append(f"unreviewed: {distribution} {version} is not a release listed in the index {index.source}")
    elif release is None:
        warnings.append(f"unreviewed: the index {index.source} lists no release of {distribution}; "
                        f"pip will choose the version")
    else:
        version = release.version
        if not plugin.is_reviewed(release):
            why = (f"its tier is {plugin.tier}" if plugin.tier not in ("first-party", "reviewed")
                   else "the index has no sha256 for its wheel")
            warnings.append(f"unreviewed: {distribution} {version} is not a reviewed release ({why})")
    return InstallPlan(distribution, version, release.sha256 if release else None, plugin, index, warnings)


def _plan_from_source(plugin: IndexedPlugin, version: str | None, index: Index, warnings: list[str],
                      checkout: Path | None) -> InstallPlan:
    """Step 3 for an entry that lists no release: its source, or the checkout the kernel runs from."""
    assert plugin.source is not None
    distribution = plugin.canonical
    if version:
        raise InstallRefused(f"{distribution}=={version}: the index {index.source} lists no release of "
                             f"{distribution}; it is installed from its source ({plugin.source.url}) at the version "
                             f"that holds, so ask without a version: aios plugins install {distribution}")
    folder = checkout_folder(plugin, checkout)
    where = (f"this AIOS checkout, {folder} (its recorded source is {plugin.source.url})" if folder
             else f"its source, {plugin.source.url}")
    notes = [f"{distribution} has no published release in the index; installing it from {where}, "
             f"not by name from a package index"]
    if plugin.tier != "first-party":
        warnings.append(f"unreviewed: the index {index.source} lists no release of {distribution} ({plugin.tier})")
    return InstallPlan(distribution, None, None, plugin, index, warnings, notes,
                       source=folder.as_uri() if folder else plugin.source.url)


# ---------------------------------------------------------------- install: steps 4-7
def check_wheel_hash(plan: InstallPlan, workdir: Path) -> Path:
    """Step 4: download the wheel pip would install and compare its sha256 with the index's."""
    assert plan.sha256 and plan.version
    target = workdir / "download"
    _pip("download", "--no-deps", "--only-binary=:all:", "--dest", str(target), plan.requirement,
         what=f"downloading {plan.requirement}")
    files = sorted(target.iterdir())
    if len(files) != 1:
        raise InstallFailed(f"pip download {plan.requirement} produced {len(files)} files, expected one wheel")
    wheel = files[0]
    actual = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if actual != plan.sha256:
        raise InstallFailed(f"{wheel.name}: sha256 {actual} does not match the reviewed sha256 {plan.sha256} in "
                            f"the index {plan.index.source}; this is not the reviewed wheel, so it was not installed")
    return wheel


@dataclass(frozen=True)
class Change:
    """One distribution the install would add or replace."""

    name: str
    version: str
    installed: str | None

    @property
    def action(self) -> str:
        if self.installed is None:
            return "install"
        if Version(self.version) == Version(self.installed):
            return "reinstall"
        return f"{'upgrade' if Version(self.version) > Version(self.installed) else 'downgrade'} from {self.installed}"


def planned_changes(plan: InstallPlan, workdir: Path) -> list[Change]:
    """Step 5: what ``pip install --dry-run --report`` says would be installed or replaced."""
    report = workdir / "report.json"
    _pip("install", "--dry-run", "--quiet", "--report", str(report), plan.requirement,
         what=f"resolving {plan.requirement}")
    items = json.loads(report.read_text(encoding="utf-8")).get("install", [])
    for item in items:
        _refuse_first_party_by_name(item, plan.index)
    return [Change(item["metadata"]["name"], item["metadata"]["version"],
                   _installed_version(item["metadata"]["name"])) for item in items]


def _refuse_first_party_by_name(item: dict[str, Any], index: Index) -> None:
    """A dependency pip found by name, which the index says AIOS has not published under that name, is refused.

    The plugin itself comes from its source, but its dependencies are resolved by pip:
    aios-ray-train needs aios-torch, every plugin needs the kernel. Whatever a package
    index holds under such a name is not AIOS's.
    """
    name = canonical_name(item["metadata"]["name"])
    entry = kernel_entry(index) if name == CORE_DISTRIBUTION else index.find(name)
    if entry is None or entry.by_name or item.get("is_direct"):
        return
    found = item.get("download_info", {}).get("url", "a package index")
    if name == CORE_DISTRIBUTION:
        how = f'pip install "{entry.source_requirement}"' if entry.from_source else "see the AIOS README"
    else:
        how = f"aios plugins install {name}"
    raise InstallRefused(f"pip would take {name} {item['metadata']['version']} by name from {found}, but the index "
                         f"{index.source} lists no published release of first-party {name}, so that is not AIOS's; "
                         f"nothing was installed. Install {name} from its source first: {how}")


def install(plan: InstallPlan, changes: list[Change], workdir: Path) -> None:
    """Step 6: dependencies with plain pip, then the plugin in hash-checking mode when its hash is known."""
    if plan.sha256 is None:
        _pip("install", plan.requirement, what=f"installing {plan.requirement}")
        return
    dependencies = [f"{c.name}=={c.version}" for c in changes if canonical_name(c.name) != plan.distribution]
    if dependencies:  # hash-checking mode needs a hash for every requirement, hence two steps
        _pip("install", *dependencies, what=f"installing the dependencies of {plan.requirement}")
    requirements = workdir / "requirements.txt"
    requirements.write_text(f"{plan.requirement} --hash=sha256:{plan.sha256}\n", encoding="utf-8")
    download = workdir / "download"
    _pip("install", "--no-deps", "--require-hashes", *(["--find-links", str(download)] if download.is_dir() else []),
         "-r", str(requirements), what=f"installing {plan.requirement}")


_CHECK_DISTRIBUTION = """
import json, sys
from importlib import metadata
from aios_core.plugins import check_component, discover
try:
    version = metadata.version(sys.argv[1])
except metadata.PackageNotFoundError:
    version = None
components = [(entry.label, entry.problem or check_component(entry))
              for entry in discover() if entry.distribution == sys.argv[1]]
print(json.dumps({"version": version, "components": components}))
"""


def _inspect(distribution: str) -> dict[str, object]:
    """The installed version and components of ``distribution``, seen by a fresh interpreter."""
    result = subprocess.run([sys.executable, "-c", _CHECK_DISTRIBUTION, distribution], capture_output=True, text=True)
    if result.returncode != 0:
        raise InstallFailed(f"checking {distribution} in a new interpreter failed: "
                            + " / ".join(result.stderr.strip().splitlines()[-3:]))
    return json.loads(result.stdout.strip().splitlines()[-1])


def verify(distribution: str) -> tuple[str | None, list[tuple[str, str | None]]]:
    """Step 7: the installed version, and each component of ``distribution`` with its problem (None: ok)."""
    found = _inspect(distribution)
    return found["version"], [tuple(c) for c in found["components"]]  # type: ignore[misc, union-attr]


# ---------------------------------------------------------------- uninstall
def uninstall_target(name: str) -> tuple[str, str, list[str]]:
    """The canonical name, installed version and components of the plugin ``name``; InstallRefused if not one."""
    from aios_core.plugins import discover

    distribution = canonical_name(name)
    if distribution == CORE_DISTRIBUTION:
        raise InstallRefused(f"{CORE_DISTRIBUTION} is the kernel every plugin needs; "
                             f"it cannot be uninstalled as a plugin")
    version = _installed_version(distribution)
    if version is None:
        raise InstallRefused(f"{distribution} is not installed; see aios plugins list")
    components = [f"{e.kind} {e.name}" for e in discover() if e.distribution == distribution]
    if not components:
        raise InstallRefused(f"{distribution} {version} provides no aios components, so it is not a plugin; "
                             f"use pip uninstall {distribution} if you mean it")
    return distribution, version, components


def uninstall(distribution: str) -> None:
    """``pip uninstall -y``, then confirm in a fresh interpreter that no component of it is left."""
    _pip("uninstall", "--yes", distribution, what=f"uninstalling {distribution}")
    found = _inspect(distribution)
    if found["version"] is not None or found["components"]:
        raise InstallFailed(f"{distribution} {found['version']} is still installed after pip uninstall (pip does "
                            f"not remove distributions outside its environment, {sys.prefix})")


# ---------------------------------------------------------------- outdated
@dataclass(frozen=True)
class Outdated:
    """An installed plugin distribution against the index's newest reviewed release."""

    distribution: str
    installed: str
    newest: str | None
    status: str
    update: bool


def outdated(index: Index) -> list[Outdated]:
    """Every installed plugin distribution (one providing aios components), compared with the index."""
    from aios_core.plugins import discover

    installed = {e.distribution: e.version for e in discover() if e.distribution != CORE_DISTRIBUTION}
    rows = []
    for distribution, version in sorted(installed.items()):
        plugin = index.find(distribution)
        release = plugin.newest_release() if plugin else None
        newer = release is not None and Version(release.version) > Version(version)
        if plugin is None:
            status = "not in the index"
        elif plugin.status == "withdrawn":
            status = f"withdrawn: {plugin.withdrawn_reason or 'no reason given'}"
        elif release is None:
            status = "no reviewed release in the index"
        elif newer and plugin.incompatibility():
            status = f"newer release {plugin.incompatibility()} (installed: {__version__})"
        elif newer:
            status = f"update available: aios plugins install {distribution}=={release.version}"
        else:
            status = "up to date"
        if plugin is not None and plugin.status == "deprecated":
            status += "; deprecated" + (f", use {plugin.deprecated_by}" if plugin.deprecated_by else "")
        rows.append(Outdated(distribution, version, release.version if release else None, status,
                             newer and not (plugin and plugin.incompatibility())))
    return rows


# ---------------------------------------------------------------- stack requirements
def stack_requirements(path: str, index: Index) -> tuple[list[str], list[str]]:
    """pip requirement lines for every distribution a stack file needs, and notes for the user.

    Reads the stack's component names only (nothing is loaded, so uninstalled components
    are fine); StackError lists components that neither the index nor the environment knows.
    A distribution the index lists no release of but records the source of (the kernel and
    the first-party plugins, until releases are published) is a ``NAME @ git+URL`` line, so
    that pip never takes a same-named project from a package index; the plugins' kernel
    range is still checked by pip, through their own dependency on the kernel.
    """
    from aios_core.plugins import discover
    from aios_core.stack import Problem, StackError, read_stack_file

    contents = read_stack_file(path)
    selected = [((role, selector), ROLE_KINDS[role.split(".")[0]], section[selector])
                for role, (section, selector) in contents.sections().items()]
    problems: list[Problem] = []
    installed = discover()
    needed: dict[str, IndexedPlugin | None] = {}
    core_ranges: list[str] = []
    notes: list[str] = []
    for field_path, kind, name in selected:
        providers = [p for p in index.providing(kind, name) if p.status != "withdrawn"] or index.providing(kind, name)
        local = [e for e in installed if e.kind == kind and e.name == name]
        if providers:
            plugin = providers[0]
            if plugin.status == "withdrawn":
                reason = plugin.withdrawn_reason or "no reason given"
                problems.append(contents.problem(*field_path, f"{kind} '{name}' is provided by "
                                        f"{plugin.distribution}, which is withdrawn from the index: {reason}"))
                continue
            if plugin.canonical == CORE_DISTRIBUTION:  # the kernel's own components (console, jsonl)
                continue
            if not plugin.by_name and not plugin.from_source:
                problems.append(contents.problem(*field_path, (
                    f"{kind} '{name}' is provided by first-party {plugin.distribution}, but the index {index.source} "
                    f"lists no published release of it and records no source, and by name pip could take another "
                    f"project's {plugin.distribution}; update the index (aios plugins update-index)")))
                continue
            needed.setdefault(plugin.canonical, plugin)
            if plugin.aios_core:
                core_ranges.append(plugin.aios_core)
        elif local:
            entry = local[0]
            if entry.distribution != CORE_DISTRIBUTION and entry.distribution not in needed:
                needed[entry.distribution] = None
                notes.append(f"{entry.distribution} (installed {entry.version}, provides {kind} '{name}') is not in "
                             f"the index {index.source}; its line has no version range")
                if entry.core_range:
                    core_ranges.append(entry.core_range)
        else:
            from aios_core.stack.problems import non_ascii

            lookalike = non_ascii(name)
            problems.append(contents.problem(*field_path, f"no {kind} named '{name}' is installed or listed in the "
                                                            f"index {index.source}"
                                                            + (f"; {lookalike} (component names are ASCII)"
                                                               if lookalike else "")))
    if problems:
        raise StackError(problems)

    # kept in the order the index writes them (>=0.1,<0.2); SpecifierSet's str() would sort them
    core_text = ",".join(dict.fromkeys(part.strip() for r in core_ranges for part in r.split(",") if part.strip()))
    if not SpecifierSet(core_text).contains(__version__, prereleases=True):
        notes.append(f"the running {CORE_DISTRIBUTION} {__version__} is outside {CORE_DISTRIBUTION}{core_text}")
    kernel = kernel_entry(index)
    lines = [kernel.source_requirement if kernel and kernel.from_source else CORE_DISTRIBUTION + core_text]
    for distribution, plugin in needed.items():
        if plugin is not None and plugin.from_source:
            lines.append(plugin.source_requirement)
            continue
        release = plugin.newest_release() if plugin else None
        lines.append(f"{distribution}>={release.version}" if release else distribution)
    return lines, notes
