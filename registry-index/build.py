"""Build the AIOS plugin registry index: validate every entry, write index.json and catalog.html.

From the repository root, with the project's venv::

    python registry-index/build.py          # validate, then write the index, the catalog and aios_core/index.json
    python registry-index/build.py --check  # validate, and fail if any of those files is out of date

An entry is ``registry-index/plugins/<name>.toml``, checked against ``schema.json`` and
the rules the schema cannot express (file name, canonical names, version ranges, no
component claimed twice, first-party entries equal to the entry points their
``pyproject.toml`` declares). Exit status: 0 when all is well, 1 with one line per problem.
"""

from __future__ import annotations

import argparse
import base64
import difflib
import hashlib
import html
import json
import re
import shlex
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import jsonschema
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
    from packaging.version import InvalidVersion, Version
except ImportError as missing:
    sys.exit(f"registry-index/build.py needs jsonschema and packaging ({missing}); "
             f"run it with the project's venv (bash scripts/setup.sh, then .venv/bin/python registry-index/build.py)")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
from aios_core.atomic import atomic_path  # noqa: E402  (this repository's kernel, not an installed copy)
from aios_core.catalog import IndexedPlugin, IndexSource, parse_index  # noqa: E402
from aios_core.vocabulary import CORE_DISTRIBUTION  # noqa: E402

SCHEMA = json.loads((HERE / "schema.json").read_text(encoding="utf-8"))
TEMPLATE = HERE / "catalog.template.html"
SCHEMA_VERSION = 1
KINDS: tuple[str, ...] = tuple(SCHEMA["properties"]["components"]["propertyNames"]["enum"])
TIERS: tuple[str, ...] = tuple(SCHEMA["properties"]["tier"]["enum"])
STATUSES: tuple[str, ...] = tuple(SCHEMA["properties"]["status"]["enum"])
FIELDS: tuple[str, ...] = tuple(SCHEMA["properties"])  # also the key order of index.json
RELEASE_FIELDS: tuple[str, ...] = tuple(SCHEMA["properties"]["releases"]["items"]["properties"])
SOURCE_FIELDS: tuple[str, ...] = tuple(SCHEMA["properties"]["source"]["properties"])


def entry_point_group(kind: str) -> str:
    """The entry-point group a distribution declares ``kind`` components in (as aios_core.plugins.KIND_GROUPS)."""
    return f"aios.{kind}s"


@dataclass(frozen=True)
class Entry:
    """One valid-as-far-as-the-schema-goes ``plugins/<name>.toml``."""

    path: Path
    data: dict[str, Any]

    @property
    def name(self) -> str:
        return self.data["name"]


def _show(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it (how the user typed it)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _field(parts: Iterable[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _found(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- one entry against the schema ----------------------------------------------------------------

_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def _schema_problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, message) for every way ``data`` breaks schema.json, worded for a person."""
    problems = []
    for error in _VALIDATOR.iter_errors(data):
        path = list(error.absolute_path)
        schema_path = list(error.schema_path)
        if "then" in schema_path:  # a rule that depends on status or tier: its description says it
            branch: Any = SCHEMA
            for key in schema_path[: schema_path.index("then") + 1]:
                branch = branch[key]
            named = branch.get("required") or branch["not"]["required"]
            problems.append((_field(path) or named[0], branch["description"]))
        elif error.validator == "required":
            missing = re.match(r"'(.+)' is a required property", error.message).group(1)
            problems.append((_field(path + [missing]),
                             "missing; every entry has this field (see registry-index/schema.json)"))
        elif error.validator == "additionalProperties":
            known = list(error.schema["properties"])
            for key in sorted(set(error.instance) - set(known)):
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                problems.append((_field(path + [key]), f"unknown field; {hint}known fields: {', '.join(known)}"))
        elif isinstance(error.schema, dict) and "description" in error.schema:
            message = f"found {_found(error.instance)}; expected {error.schema['description']}"
            if path in (["name"], ["deprecated_by"]) and isinstance(error.instance, str):
                canonical = canonicalize_name(error.instance)
                if canonical != error.instance:
                    message += f" (did you mean '{canonical}'?)"
            problems.append((_field(path), message))
        else:
            problems.append((_field(path), error.message))
    return sorted(set(problems))


# --- one entry: the rules a schema cannot express -------------------------------------------------

def _entry_problems(path: Path, data: dict[str, Any]) -> list[tuple[str, str]]:
    problems = []
    name = data["name"]
    if name != path.stem:
        problems.append(("name", f"found '{name}', but the file is {path.name}; an entry's file is <name>.toml: "
                                 f"rename the file to {name}.toml or set name = \"{path.stem}\""))
    canonical = canonicalize_name(data["distribution"])
    if canonical != name:
        problems.append(("distribution", f"found '{data['distribution']}', which canonicalizes to '{canonical}'; "
                                         f"expected a distribution whose canonical name is the entry's name '{name}'"))
    try:
        SpecifierSet(data["aios_core"])
    except InvalidSpecifier as error:
        problems.append(("aios_core", f"found '{data['aios_core']}'; expected a PEP 440 specifier set such as "
                                      f"'>=0.1,<0.2' ({error})"))
    seen: dict[Version, int] = {}
    for index, release in enumerate(data.get("releases", [])):
        field = f"releases[{index}]"
        try:
            version = Version(release["version"])
        except InvalidVersion:
            problems.append((f"{field}.version",
                             f"found '{release['version']}'; expected a PEP 440 version such as '1.2.0'"))
            continue
        if version in seen:
            problems.append((f"{field}.version", f"'{release['version']}' is also releases[{seen[version]}]; "
                                                 f"list each reviewed release once"))
        seen.setdefault(version, index)
        if "wheel" in release:
            try:
                wheel_name, wheel_version, _, _ = parse_wheel_filename(release["wheel"])
            except InvalidWheelFilename as error:
                problems.append((f"{field}.wheel", f"found '{release['wheel']}'; expected a wheel file name ({error})"))
                continue
            if wheel_name != name or wheel_version != version:
                problems.append((f"{field}.wheel",
                                 f"found '{release['wheel']}', a wheel of {wheel_name} {wheel_version}; "
                                                   f"expected a wheel of {name} {version}"))
    return problems


# --- across entries --------------------------------------------------------------------------------

def _cross_entry_problems(entries: list[Entry]) -> list[str]:
    problems = []
    names: dict[str, Entry] = {}
    claimed: dict[tuple[str, str], tuple[Entry, str]] = {}
    for entry in entries:
        if entry.name in names:
            other = _show(names[entry.name].path)
            problems.append(f"{_show(entry.path)}: name: '{entry.name}' is also the name of {other}")
            continue
        names[entry.name] = entry
    for entry in entries:
        for kind, components in entry.data["components"].items():
            for component in components:
                key = (kind, canonicalize_name(component))
                if key not in claimed:
                    claimed[key] = (entry, component)
                    continue
                owner, spelled = claimed[key]
                same = "" if spelled == component else f" (as '{spelled}': the same name after PEP 503 normalization)"
                problems.append(f"{_show(entry.path)}: components.{kind}: '{component}' is already a {kind} of "
                                f"{owner.name}{same} in {_show(owner.path)}; "
                                f"a component name belongs to one plugin per kind")
        replacement = entry.data.get("deprecated_by")
        if replacement is not None and (replacement == entry.name or replacement not in names):
            problems.append(f"{_show(entry.path)}: deprecated_by: found '{replacement}'; expected the name of another "
                            f"entry of this index (one of: {', '.join(sorted(set(names) - {entry.name})) or 'none'})")
    return problems


# --- first-party entries against the pyproject.toml they are built from ---------------------------

@dataclass(frozen=True)
class Pyproject:
    """The [project] table of a pyproject.toml in this repository."""

    path: Path
    project: dict[str, Any]


def _first_party_pyprojects(repo: Path) -> tuple[dict[str, Pyproject], list[str]]:
    """Canonical distribution name -> its pyproject, for the kernel (the root) and plugins/*/."""
    found: dict[str, Pyproject] = {}
    problems = []
    for path in [repo / "pyproject.toml", *sorted((repo / "plugins").glob("*/pyproject.toml"))]:
        if not path.is_file():
            continue
        try:
            project = tomllib.loads(path.read_text(encoding="utf-8"))["project"]
            name = canonicalize_name(project["name"])
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError) as error:
            problems.append(f"{_show(path)}: cannot read [project].name ({type(error).__name__}: {error})")
            continue
        found[name] = Pyproject(path, project)
    return found, problems


def _first_party_problems(entries: list[Entry], repo: Path) -> list[str]:
    pyprojects, problems = _first_party_pyprojects(repo)
    problems += _source_problems(entries, pyprojects, repo)
    by_name = {entry.name: entry for entry in entries}
    for name, pyproject in pyprojects.items():
        entry = by_name.get(name)
        if entry is None:
            problems.append(f"{_show(pyproject.path)}: {name} is built in this repository but has no registry entry; "
                            f"add registry-index/plugins/{name}.toml with tier = \"first-party\"")
        elif entry.data["tier"] != "first-party":
            problems.append(f"{_show(entry.path)}: tier: found '{entry.data['tier']}'; expected 'first-party', "
                            f"since {name} is built in this repository ({_show(pyproject.path)})")
    for entry in entries:
        if entry.data["tier"] != "first-party":
            continue
        pyproject = pyprojects.get(entry.name)
        if pyproject is None:
            problems.append(f"{_show(entry.path)}: tier: found 'first-party', but no pyproject.toml of this repository "
                            f"({_show(repo / 'pyproject.toml')} or {_show(repo / 'plugins')}/*/) builds {entry.name}; "
                            f"first-party plugins are the ones built here")
            continue
        problems += [f"{_show(entry.path)}: {field}: {message}"
                     for field, message in _declared_problems(entry, pyproject)]
    return problems


def _source_problems(entries: list[Entry], pyprojects: dict[str, Pyproject], repo: Path) -> list[str]:
    """Each first-party entry records its source: the one repository, and the folder its pyproject.toml is in.

    First-party distributions are installed from there until their releases are published,
    so that pip never takes a same-named project from a package index instead.
    """
    first_party = [entry for entry in entries if entry.data["tier"] == "first-party" and entry.name in pyprojects]
    recorded = sorted({entry.data["source"]["repository"] for entry in first_party if "source" in entry.data})
    example = recorded[0] if len(recorded) == 1 else "https://<the git repository of this one>"
    problems = []
    for entry in first_party:
        folder = pyprojects[entry.name].path.parent.resolve().relative_to(repo.resolve()).as_posix()
        folder = "" if folder == "." else folder
        wanted = f'{{repository = "{example}"' + (f', subdirectory = "{folder}"}}' if folder else "}")
        source = entry.data.get("source")
        if source is None:
            problems.append(f"{_show(entry.path)}: source: missing; a first-party entry records where it is built, "
                            f"so that it is installed from there and never by name while it has no published "
                            f"release: source = {wanted}")
            continue
        if source.get("subdirectory", "") != folder:
            found = f"found '{source['subdirectory']}'" if "subdirectory" in source else "missing"
            expected = f"'{folder}', the folder of" if folder else "none: the repository's root holds"
            problems.append(f"{_show(entry.path)}: source.subdirectory: {found}; expected {expected} "
                            f"{_show(pyprojects[entry.name].path)}")
        if len(recorded) > 1:
            problems.append(f"{_show(entry.path)}: source.repository: found '{source['repository']}'; first-party "
                            f"distributions are built in one repository, but the entries name "
                            f"{', '.join(map(repr, recorded))}")
    return problems


def _declared_problems(entry: Entry, pyproject: Pyproject) -> list[tuple[str, str]]:
    """How ``entry`` differs from what ``pyproject`` declares: entry points, kernel range, license."""
    project = pyproject.project
    shown = _show(pyproject.path)
    if "entry-points" in project.get("dynamic", []):
        return [("components", f"{shown} declares its entry points as dynamic; the build can only check static ones")]
    problems = []
    declared_groups = project.get("entry-points", {})
    listed_kinds = entry.data["components"]
    for kind in KINDS:
        group = entry_point_group(kind)
        declared = list(declared_groups.get(group, {}))
        listed = listed_kinds.get(kind, [])
        for component in declared:
            if component not in listed:
                problems.append((f"components.{kind}", f"missing '{component}', which {shown} declares under "
                                                       f"[project.entry-points.\"{group}\"]"))
        for component in listed:
            if component not in declared:
                problems.append((f"components.{kind}", f"lists '{component}', but {shown} declares no such entry point "
                                                       f"under [project.entry-points.\"{group}\"]"))
    for raw in project.get("dependencies", []):
        try:
            requirement = Requirement(raw)
        except InvalidRequirement:
            continue
        if canonicalize_name(requirement.name) == CORE_DISTRIBUTION and requirement.marker is None:
            try:
                same = SpecifierSet(entry.data["aios_core"]) == requirement.specifier
            except InvalidSpecifier:
                same = True  # already reported by the entry's own checks
            if not same:
                problems.append(("aios_core", f"found '{entry.data['aios_core']}'; "
                                              f"expected the range of the dependency "
                                              f"'{raw}' in {shown}"))
    license = project.get("license")
    if isinstance(license, str) and license != entry.data["license"]:
        problems.append(("license", f"found '{entry.data['license']}'; expected '{license}', as {shown} declares"))
    return problems


# --- the whole index -------------------------------------------------------------------------------

def validate(root: Path, repo: Path) -> tuple[list[Entry], list[str]]:
    """Every entry under ``root/plugins`` that passes, and one line per problem found."""
    folder = root / "plugins"
    entries: list[Entry] = []
    problems: list[str] = []
    files = sorted(path for path in folder.glob("*") if not path.name.startswith(".")) if folder.is_dir() else []
    for path in files:
        if path.suffix != ".toml" or not path.is_file():
            problems.append(f"{_show(path)}: not an entry; entries are files named <name>.toml")
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            problems.append(f"{_show(path)}: not valid TOML: {error}")
            continue
        found = _schema_problems(data) or _entry_problems(path, data)
        problems += [f"{_show(path)}: {field}: {message}" for field, message in found]
        if not found:
            entries.append(Entry(path, data))
    if not files:
        problems.append(f"{_show(folder)}: no entries; add one <name>.toml per plugin")
    problems += _cross_entry_problems(entries)
    problems += _first_party_problems(entries, repo)
    return sorted(entries, key=lambda entry: entry.name), problems


def index_document(entries: list[Entry]) -> dict[str, Any]:
    """The index.json document: every entry's fields in schema order, components in kind order."""
    plugins = []
    for entry in entries:
        plugin = {field: entry.data[field] for field in FIELDS if field in entry.data}
        components = entry.data["components"]
        plugin["components"] = {kind: components[kind] for kind in KINDS if kind in components}
        if "releases" in plugin:
            plugin["releases"] = [{key: release[key] for key in RELEASE_FIELDS if key in release}
                                  for release in plugin["releases"]]
        if "source" in plugin:
            plugin["source"] = {key: plugin["source"][key] for key in SOURCE_FIELDS if key in plugin["source"]}
        plugins.append(plugin)
    return {"schema_version": SCHEMA_VERSION, "plugins": plugins}


def render_index(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# --- the catalog page ------------------------------------------------------------------------------

def _latest(plugin: dict[str, Any]) -> dict[str, Any] | None:
    releases = plugin.get("releases", [])
    return max(releases, key=lambda release: Version(release["version"])) if releases else None


def _install(plugin: dict[str, Any], indexed: IndexedPlugin) -> list[str]:
    """The card's install command: from the recorded source while no release is listed, else by name."""
    e = html.escape
    if indexed.from_source:
        return [f'<p class="install"><code>pip install "{e(indexed.source_requirement)}"</code></p>',
                '<p class="note note-source">No release is published yet: this installs it from its source '
                'repository, never by name from a package index.</p>']
    if not indexed.by_name:
        return ['<p class="note note-source">No release is published yet and the index records no source '
                'for it, so there is no install command.</p>']
    latest = _latest(plugin)
    pin = f'=={latest["version"]}' if latest else ""
    lines = [f'<p class="install"><code>pip install {e(plugin["distribution"])}{e(pin)}</code></p>']
    if latest:
        lines.append(f'<details class="hashes"><summary>Hash-checked install</summary>'
                     f'<p>Put this line in a requirements file and run '
                     f'<code>pip install --require-hashes -r requirements.txt</code>:</p>'
                     f'<pre>{e(plugin["distribution"])}=={e(latest["version"])} '
                     f'--hash=sha256:{e(latest["sha256"])}</pre></details>')
    return lines


def _card(plugin: dict[str, Any], indexed: IndexedPlugin) -> str:
    e = html.escape
    name, tier, status = plugin["name"], plugin["tier"], plugin["status"]
    lines = [f'<article class="card" id="plugin-{e(name)}" data-name="{e(name)}" '
             f'data-kinds="{e(" ".join(plugin["components"]))}" data-tier="{e(tier)}" data-status="{e(status)}" '
             f'aria-labelledby="title-{e(name)}">',
             '<header>',
             f'<h2 id="title-{e(name)}">{e(name)}</h2>',
             f'<span class="badge tier tier-{e(tier)}" title="tier">{e(tier)}</span>',
             f'<span class="badge status status-{e(status)}" title="status">{e(status)}</span>',
             '</header>',
             f'<p class="summary">{e(plugin["summary"])}</p>']
    replacement = plugin.get("deprecated_by")
    use = f' Use <a href="#plugin-{e(replacement)}">{e(replacement)}</a> instead.' if replacement else ""
    if status == "withdrawn":
        reason = e(plugin["withdrawn_reason"].rstrip("."))
        lines.append(f'<p class="note note-withdrawn"><strong>Withdrawn:</strong> {reason}.{use} '
                     f'Do not install it.</p>')
    elif status == "deprecated":
        lines.append(f'<p class="note note-deprecated"><strong>Deprecated.</strong>{use}</p>')
    components = "".join(f'<li><span class="kind">{e(kind)}</span> <span>'
                         + ", ".join(f'<code>{e(component)}</code>' for component in names) + '</span></li>'
                         for kind, names in plugin["components"].items())
    facts = [("Components", f'<ul class="components">{components}</ul>'),
             (CORE_DISTRIBUTION, f'<code>{e(plugin["aios_core"])}</code>'),
             ("License", e(plugin["license"])),
             ("Maintainers", e(", ".join(plugin["maintainers"])))]
    if plugin["distribution"] != name:
        facts.insert(0, ("Distribution", f'<code>{e(plugin["distribution"])}</code>'))
    if plugin.get("releases"):
        releases = "".join(f'<li>{e(release["version"])} <code class="hash" title="sha256 {e(release["sha256"])}">'
                           f'sha256:{e(release["sha256"][:12])}…</code></li>' for release in plugin["releases"])
        label = "Reviewed releases" if tier in ("first-party", "reviewed") else "Releases"
        facts.append((label, f'<ul class="releases">{releases}</ul>'))
    lines.append('<dl class="facts">' + "".join(f'<div><dt>{term}</dt><dd>{value}</dd></div>' for term, value in facts)
                 + '</dl>')
    if status != "withdrawn":
        lines += _install(plugin, indexed)
    if plugin["tags"]:
        lines.append('<ul class="tags" aria-label="Tags">'
                     + "".join(f'<li>{e(tag)}</li>' for tag in plugin["tags"]) + '</ul>')
    links = [f'<a href="{e(plugin["repository"])}" rel="noopener noreferrer">Source</a>']
    if "homepage" in plugin:
        links.append(f'<a href="{e(plugin["homepage"])}" rel="noopener noreferrer">Homepage</a>')
    lines.append(f'<p class="links">{" · ".join(links)}</p>')
    lines.append('</article>')
    return "\n".join(lines)


def _options(values: tuple[str, ...], counts: dict[str, int], every: str) -> str:
    options = [f'<option value="">{every}</option>']
    options += [f'<option value="{value}">{value} ({counts.get(value, 0)})</option>' for value in values]
    return "\n".join(options)


def render_catalog(document: dict[str, Any]) -> bytes:
    """The self-contained catalog page: cards rendered here, searched and filtered by its inline script."""
    plugins = document["plugins"]
    # the kernel's reader decides how each entry installs, as aios plugins install and info do
    parsed = parse_index(document, IndexSource("index.json", "registry-index/build.py"))

    def count(key: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for plugin in plugins:
            for value in (plugin["components"] if key == "kind" else [plugin[key]]):
                counts[value] = counts.get(value, 0) + 1
        return counts

    embedded = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    embedded = embedded.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    total = len(plugins)
    values = {
        "KIND_OPTIONS": _options(KINDS, count("kind"), "any kind"),
        "TIER_OPTIONS": _options(TIERS, count("tier"), "any tier"),
        "STATUS_OPTIONS": _options(STATUSES, count("status"), "any status"),
        "COUNT": f"{total} plugin" + ("" if total == 1 else "s"),
        "CARDS": "\n".join(_card(plugin, indexed) for plugin, indexed in zip(plugins, parsed.plugins, strict=True)),
        "INDEX_JSON": embedded,
    }
    # One pass, so a placeholder spelled inside an entry's text is never expanded.
    page = re.sub(r"\{\{([A-Z_]+)\}\}", lambda match: values[match.group(1)], TEMPLATE.read_text(encoding="utf-8"))
    # The page's Content-Security-Policy allows its own inline style and script only, by hash.
    for tag in ("style", "script"):
        body = re.search(rf"<{tag}>(.*?)</{tag}>", page, re.S).group(1)
        digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode("ascii")
        page = page.replace(f"'{tag.upper()}-HASH'", f"'sha256-{digest}'", 1)
    return page.encode("utf-8")


# --- command line ----------------------------------------------------------------------------------

def _write(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically unless it already holds exactly that; True if written."""
    if path.is_file() and path.read_bytes() == data:
        return False
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
        tmp.chmod(0o644)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python registry-index/build.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="validate, and exit 1 if index.json, catalog.html or the snapshot would change")
    parser.add_argument("--root", type=Path, default=None,
                        help="the index folder: entries in ROOT/plugins/*.toml, output in ROOT "
                             "(default: registry-index/)")
    parser.add_argument("--repo", type=Path, default=REPO,
                        help="the repository whose pyproject.toml and plugins/*/pyproject.toml are first-party "
                             "(default: this one)")
    parser.add_argument("--snapshot", type=Path, default=None,
                        help="also write index.json here (default: REPO/aios_core/index.json when --root is not given; "
                             "none otherwise)")
    args = parser.parse_args(argv)
    root = args.root or HERE
    snapshot = args.snapshot or (args.repo / "aios_core" / "index.json" if args.root is None else None)

    try:
        entries, problems = validate(root, args.repo)
    except OSError as error:
        entries, problems = [], [f"{error.filename}: cannot read: {error.strerror}"]
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in the registry index; nothing written",
              file=sys.stderr)
        return 1

    document = index_document(entries)
    index = render_index(document)
    outputs = {root / "index.json": index, root / "catalog.html": render_catalog(document)}
    if snapshot is not None:
        outputs[snapshot] = index
    if args.check:
        stale = [path for path, data in outputs.items() if not (path.is_file() and path.read_bytes() == data)]
        if stale:
            given = sys.argv[1:] if argv is None else argv
            rebuild = shlex.join(["python", _show(Path(__file__)), *(arg for arg in given if arg != "--check")])
            for path in stale:
                print(f"{_show(path)}: out of date with {_show(root / 'plugins')}; rebuild with: {rebuild}",
                      file=sys.stderr)
            return 1
        print(f"registry index: {len(entries)} plugins valid; {', '.join(_show(path) for path in outputs)} up to date")
        return 0
    try:
        written = [path for path, data in outputs.items() if _write(path, data)]
    except OSError as error:
        print(f"{error.filename or 'output'}: cannot write: {error.strerror}", file=sys.stderr)
        return 1
    print(f"registry index: {len(entries)} plugins valid; "
          + (f"wrote {', '.join(_show(path) for path in written)}" if written else "nothing changed"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
