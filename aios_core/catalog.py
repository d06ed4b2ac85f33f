"""The plugin index: which distributions exist, what they provide, and which releases were reviewed.

The one reader of the index, for ``aios plugins search | info | install | outdated``,
``aios stack requirements`` and the "provided by aios-x: pip install aios-x" hint in
stack errors. Which index is read: ``--index`` > the ``plugins.index`` setting or
``AIOS_INDEX`` > the cached copy ``aios plugins update-index`` wrote > the bundled
snapshot ``aios_core/index.json``. Nothing here imports plugin code.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aios_core import __version__
from aios_core.vocabulary import CORE_DISTRIBUTION, KINDS, canonical_name

__all__ = ["BUNDLED_INDEX", "CatalogError", "Index", "IndexSource", "IndexedPlugin", "Release", "Source",
           "cached_index_path", "distribution_providing", "index_source", "kernel_entry", "load_index", "read_index",
           "update_cache"]

BUNDLED_INDEX = Path(__file__).with_name("index.json")
SCHEMA_VERSION = 1
STATUSES = ("active", "deprecated", "withdrawn")
TIERS = ("first-party", "reviewed", "community")
REVIEWED_TIERS = ("first-party", "reviewed")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SUBDIRECTORY = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$")


class CatalogError(Exception):
    """The index cannot be read or is malformed; the message names the index and the field."""


def _is_url(location: str) -> bool:
    return location.split("://", 1)[0].lower() in ("http", "https", "file") and "://" in location


# ---------------------------------------------------------------- which index
@dataclass(frozen=True)
class IndexSource:
    """Where an index is read from (a path or URL) and why that one was chosen."""

    location: str
    origin: str

    def __str__(self) -> str:
        return f"{self.location} ({self.origin})"


def cached_index_path() -> Path:
    """The cached copy written by ``aios plugins update-index``."""
    from aios_core.settings import cache_dir

    return cache_dir() / "index.json"


def index_source(explicit: str | None = None) -> IndexSource:
    """The index to read: ``explicit`` (``--index``) > setting/``AIOS_INDEX`` > cache > bundled snapshot.

    A configured URL is read through the cache (``aios plugins update-index`` fetches
    it), so reading never touches the network unless ``--index URL`` asks for it.
    """
    from aios_core.settings import load_settings

    if explicit:
        return IndexSource(explicit, "--index")
    settings = load_settings()
    if settings.index and not _is_url(settings.index):
        return IndexSource(settings.index, settings.index_from)
    cache = cached_index_path()
    if cache.is_file():
        try:
            fetched = json.loads(cache.read_text(encoding="utf-8")).get("_cache", {})
        except (OSError, ValueError, AttributeError):
            fetched = {}
        origin = f"cached copy of {fetched.get('source', '?')}, fetched {fetched.get('fetched', '?')}"
        return IndexSource(str(cache), origin)
    origin = "bundled snapshot"
    if settings.index:
        origin += f"; {settings.index} from {settings.index_from} is not cached yet: run aios plugins update-index"
    return IndexSource(str(BUNDLED_INDEX), origin)


# ---------------------------------------------------------------- what an index says
@dataclass(frozen=True)
class Release:
    """One release of a plugin; ``sha256`` is the reviewed wheel's hash, when the index has one."""

    version: str
    sha256: str | None = None
    wheel: str | None = None


@dataclass(frozen=True)
class Source:
    """Where a distribution is built from while no release of it is published: a git repository, a folder in it."""

    repository: str
    subdirectory: str = ""

    @property
    def url(self) -> str:
        """pip's form: ``git+https://github.com/aios-ml/aios#subdirectory=plugins/aios-torch``."""
        return f"git+{self.repository}" + (f"#subdirectory={self.subdirectory}" if self.subdirectory else "")


@dataclass(frozen=True)
class IndexedPlugin:
    """One plugin distribution as the index describes it."""

    name: str
    distribution: str
    summary: str = ""
    repository: str = ""
    license: str = ""
    maintainers: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    status: str = "active"
    tier: str = "community"
    aios_core: str | None = None
    components: dict[str, tuple[str, ...]] = field(default_factory=dict)
    releases: tuple[Release, ...] = ()
    withdrawn_reason: str | None = None
    deprecated_by: str | None = None
    source: Source | None = None

    @property
    def canonical(self) -> str:
        return canonical_name(self.distribution)

    @property
    def by_name(self) -> bool:
        """pip may take this distribution by name from a package index.

        Not for a first-party entry that lists no release: AIOS has published none under
        that name yet, so whatever a package index holds under it is someone else's.
        """
        return self.tier != "first-party" or bool(self.releases)

    @property
    def from_source(self) -> bool:
        """pip takes this distribution from ``source``, which the index records for it, as it lists no release."""
        return self.source is not None and not self.releases

    @property
    def source_requirement(self) -> str:
        """``aios-torch @ git+https://...#subdirectory=plugins/aios-torch`` (only when ``source`` is recorded)."""
        assert self.source is not None
        return f"{self.distribution} @ {self.source.url}"

    @property
    def kinds_text(self) -> str:
        """``framework: torch; trainer: torch``."""
        return "; ".join(f"{kind}: {', '.join(names)}" for kind, names in self.components.items())

    def is_reviewed(self, release: Release | None) -> bool:
        """A reviewed release: the plugin's tier is reviewed or first-party and the wheel's hash is known."""
        return release is not None and self.tier in REVIEWED_TIERS and release.sha256 is not None

    def release(self, version: str) -> Release | None:
        from packaging.version import Version

        wanted = Version(version)
        return next((r for r in self.releases if Version(r.version) == wanted), None)

    def newest_release(self, reviewed_only: bool = True) -> Release | None:
        from packaging.version import Version

        candidates = [r for r in self.releases if self.is_reviewed(r) or not reviewed_only]
        return max(candidates, key=lambda r: Version(r.version), default=None)

    def incompatibility(self, core_version: str = __version__) -> str | None:
        """None if this plugin works with ``core_version`` of the kernel, else ``needs aios-kernel>=…``."""
        from packaging.specifiers import SpecifierSet

        if self.aios_core is None or SpecifierSet(self.aios_core).contains(core_version, prereleases=True):
            return None
        return f"needs {CORE_DISTRIBUTION}{self.aios_core}"

    def compatibility_text(self) -> str:
        return self.incompatibility() or ("compatible" if self.aios_core else "compatible (no range declared)")

    def provides(self, kind: str | None, name: str) -> bool:
        return any(name in names for k, names in self.components.items() if kind in (None, k))


@dataclass(frozen=True)
class Index:
    """A parsed index: its plugins, and where it was read from (named in every message about it)."""

    source: IndexSource
    plugins: tuple[IndexedPlugin, ...]

    def find(self, name: str) -> IndexedPlugin | None:
        """The plugin whose name or distribution is ``name`` in canonical form (``AIOS_Torch`` is ``aios-torch``)."""
        wanted = canonical_name(name)
        return next((p for p in self.plugins if wanted in (p.canonical, canonical_name(p.name))), None)

    def providing(self, kind: str | None, name: str) -> list[IndexedPlugin]:
        return [p for p in self.plugins if p.provides(kind, name)]


def _strings(value: Any, where: str, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.append(f"{where}: expected a list, found {value!r}")
        return ()
    # maintainers may be written as {"name": ..., "email": ...}
    return tuple(str(item.get("name", item)) if isinstance(item, dict) else str(item) for item in value)


def _text(entry: dict[str, Any], key: str, where: str, problems: list[str]) -> str | None:
    value = entry.get(key)
    if value is not None and not isinstance(value, str):
        problems.append(f"{where}.{key}: expected a string, found {value!r}")
        return None
    return value


def _parse_plugin(entry: Any, where: str, problems: list[str]) -> IndexedPlugin | None:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    if not isinstance(entry, dict):
        problems.append(f"{where}: expected an object, found {entry!r}")
        return None
    distribution = _text(entry, "distribution", where, problems) or _text(entry, "name", where, problems)
    if not distribution:
        problems.append(f"{where}: missing \"distribution\" (the name pip installs)")
        return None
    where = f"{where} ({distribution})"
    status = entry.get("status", "active")
    if status not in STATUSES:
        problems.append(f"{where}.status: found {status!r}, expected one of {', '.join(STATUSES)}")
    tier = entry.get("tier", "community")
    if tier not in TIERS:
        problems.append(f"{where}.tier: found {tier!r}, expected one of {', '.join(TIERS)}")
    core_range = _text(entry, "aios_core", where, problems)
    if core_range is not None:
        try:
            SpecifierSet(core_range)
        except InvalidSpecifier:
            problems.append(f"{where}.aios_core: found {core_range!r}, expected a version range such as '>=0.1,<0.2'")
            core_range = None
    components: dict[str, tuple[str, ...]] = {}
    raw_components = entry.get("components", {})
    if not isinstance(raw_components, dict):
        problems.append(f"{where}.components: expected an object of kind -> names, found {raw_components!r}")
        raw_components = {}
    for kind, names in raw_components.items():
        if kind not in KINDS:
            problems.append(f"{where}.components.{kind}: unknown kind; expected one of {', '.join(KINDS)}")
        components[kind] = _strings(names, f"{where}.components.{kind}", problems)
    releases: list[Release] = []
    raw_releases = entry.get("releases", [])
    if not isinstance(raw_releases, list):
        problems.append(f"{where}.releases: expected a list, found {raw_releases!r}")
        raw_releases = []
    for number, release in enumerate(raw_releases):
        at = f"{where}.releases[{number}]"
        if not isinstance(release, dict) or not isinstance(release.get("version"), str):
            problems.append(f"{at}: expected an object with a \"version\" string, found {release!r}")
            continue
        try:
            Version(release["version"])
        except InvalidVersion:
            problems.append(f"{at}.version: found {release['version']!r}, expected a version such as '0.1.0'")
            continue
        sha256 = release.get("sha256")
        if sha256 is not None and not (isinstance(sha256, str) and _SHA256.match(sha256.lower())):
            problems.append(f"{at}.sha256: found {sha256!r}, expected 64 hexadecimal digits")
            sha256 = None
        wheel = _text(release, "wheel", at, problems)
        releases.append(Release(release["version"], sha256.lower() if sha256 else None, wheel))
    source = _parse_source(entry.get("source"), f"{where}.source", problems)
    return IndexedPlugin(
        name=_text(entry, "name", where, problems) or distribution, distribution=distribution,
        summary=_text(entry, "summary", where, problems) or "",
        repository=_text(entry, "repository", where, problems) or "",
        license=_text(entry, "license", where, problems) or "",
        maintainers=_strings(entry.get("maintainers"), f"{where}.maintainers", problems),
        tags=_strings(entry.get("tags"), f"{where}.tags", problems), status=status, tier=tier, aios_core=core_range,
        components=components, releases=tuple(releases),
        withdrawn_reason=_text(entry, "withdrawn_reason", where, problems),
        deprecated_by=_text(entry, "deprecated_by", where, problems), source=source)


def _parse_source(value: Any, where: str, problems: list[str]) -> Source | None:
    """``{"repository": URL, "subdirectory": FOLDER}``; pip is given ``git+URL#subdirectory=FOLDER``."""
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append(f"{where}: expected an object with \"repository\" and optionally \"subdirectory\", "
                        f"found {value!r}")
        return None
    repository = _text(value, "repository", where, problems)
    subdirectory = _text(value, "subdirectory", where, problems) or ""
    if not repository or "://" not in repository or any(char in repository for char in "#? \t\n"):
        problems.append(f"{where}.repository: found {repository!r}, expected the URL of a git repository "
                        f"such as 'https://github.com/aios-ml/aios'")
        return None
    if subdirectory and not _SUBDIRECTORY.match(subdirectory):
        problems.append(f"{where}.subdirectory: found {subdirectory!r}, expected a relative folder such as "
                        f"'plugins/aios-torch'")
        return None
    return Source(repository, subdirectory)


def parse_index(data: Any, source: IndexSource) -> Index:
    """Check an index document and turn it into an ``Index``; CatalogError lists what is wrong."""
    if not isinstance(data, dict) or not isinstance(data.get("plugins"), list):
        raise CatalogError(f"{source.location}: expected a JSON object with a \"plugins\" list")
    version = data.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise CatalogError(f"{source.location}: schema_version {version!r} is not {SCHEMA_VERSION}, the one "
                           f"{CORE_DISTRIBUTION} {__version__} reads; upgrade {CORE_DISTRIBUTION} or use another index")
    problems: list[str] = []
    plugins: list[IndexedPlugin] = []
    seen: set[str] = set()
    for number, entry in enumerate(data["plugins"]):
        plugin = _parse_plugin(entry, f"plugins[{number}]", problems)
        if plugin is None:
            continue
        if plugin.canonical in seen:
            problems.append(f"plugins[{number}] ({plugin.distribution}): listed twice")
        seen.add(plugin.canonical)
        plugins.append(plugin)
    if problems:
        shown = problems[:5] + ([f"... and {len(problems) - 5} more"] if len(problems) > 5 else [])
        raise CatalogError(f"{source.location}: " + "; ".join(shown))
    return Index(source, tuple(plugins))


def _fetch(location: str) -> Any:
    """The JSON document at a path or URL."""
    try:
        if _is_url(location):
            import urllib.request

            with urllib.request.urlopen(location, timeout=30) as response:
                text = response.read().decode("utf-8")
        else:
            text = Path(location).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CatalogError(f"{location}: cannot read the index: {error}") from None
    try:
        return json.loads(text)
    except ValueError as error:
        raise CatalogError(f"{location}: not valid JSON: {error}") from None


def read_index(source: IndexSource | str | None = None) -> Index:
    """Read and check the index at ``source`` (default: resolved by ``index_source``)."""
    if not isinstance(source, IndexSource):
        source = index_source(source)
    return parse_index(_fetch(source.location), source)


def update_cache(location: str) -> tuple[Path, Index]:
    """Fetch the index at ``location``, check it, and write it to the cache atomically."""
    from aios_core.atomic import write_text

    data = _fetch(location)
    index = parse_index(data, IndexSource(location, "update-index"))
    fetched = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    data["_cache"] = {"source": location if _is_url(location) else str(Path(location).resolve()), "fetched": fetched}
    path = cached_index_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(data, indent=1) + "\n")
    return path, index


@functools.cache
def load_index() -> Index | None:
    """The index resolved by the settings (no ``--index``), or None if it cannot be read: for hints only."""
    try:
        return read_index()
    except Exception:  # a hint must never turn into a second error
        return None


def kernel_entry(index: Index) -> IndexedPlugin | None:
    """The kernel's own entry (how to install it): the index's if it says how, else the bundled snapshot's."""
    kernel = index.find(CORE_DISTRIBUTION)
    if kernel is not None and (kernel.by_name or kernel.from_source):
        return kernel
    try:
        return read_index(IndexSource(str(BUNDLED_INDEX), "bundled snapshot")).find(CORE_DISTRIBUTION)
    except CatalogError:
        return None


def distribution_providing(kind: str, name: str) -> str | None:
    """The distribution the index says provides component ``name`` of ``kind``, if any."""
    index = load_index()
    providers = index.providing(kind, name) if index else []
    return providers[0].distribution if providers else None
