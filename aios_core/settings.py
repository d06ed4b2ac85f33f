"""User settings for the plugin commands: which index to read and which plugins may be installed.

One TOML file, ``$AIOS_CONFIG`` or ``~/.config/aios/config.toml``::

    [plugins]
    index = "https://example.org/aios/index.json"   # or a path
    allow = ["aios-*"]          # fnmatch patterns on canonical names; empty: all allowed
    block = ["aios-legacy-*"]   # checked first; a blocked name is never installed

Environment variables override the file: ``AIOS_INDEX``, ``AIOS_ALLOW_PLUGINS`` and
``AIOS_BLOCK_PLUGINS`` (comma-separated patterns). ``AIOS_CACHE_DIR`` moves the cache
(default ``~/.cache/aios``) that ``aios plugins update-index`` fills.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

from aios_core.vocabulary import canonical_name

__all__ = ["PluginSettings", "SettingsError", "cache_dir", "config_path", "load_settings"]


class SettingsError(Exception):
    """The settings file cannot be used; the message names the file and the field."""


def config_path() -> Path:
    """The settings file: ``$AIOS_CONFIG``, else ``$XDG_CONFIG_HOME/aios/config.toml`` (``~/.config``)."""
    if os.environ.get("AIOS_CONFIG"):
        return Path(os.environ["AIOS_CONFIG"])
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "aios" / "config.toml"


def cache_dir() -> Path:
    """Where the index cache lives: ``$AIOS_CACHE_DIR``, else ``$XDG_CACHE_HOME/aios`` (``~/.cache``)."""
    if os.environ.get("AIOS_CACHE_DIR"):
        return Path(os.environ["AIOS_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aios"


@dataclass(frozen=True)
class PluginSettings:
    """The ``[plugins]`` settings after environment overrides; ``*_from`` say where each came from."""

    index: str | None = None
    index_from: str = ""
    allow: tuple[str, ...] = ()
    allow_from: str = ""
    block: tuple[str, ...] = ()
    block_from: str = ""

    def refusal(self, canonical: str) -> str | None:
        """Why the allow/block lists forbid installing ``canonical`` (a canonical name), or None."""
        for pattern in self.block:
            if fnmatch.fnmatchcase(canonical, pattern):
                return f"{canonical} is blocked by the pattern '{pattern}' in {self.block_from}"
        if self.allow and not any(fnmatch.fnmatchcase(canonical, pattern) for pattern in self.allow):
            return (f"{canonical} is not allowed: it matches none of {', '.join(repr(p) for p in self.allow)} "
                    f"in {self.allow_from}")
        return None


def _patterns(value: object, where: str) -> tuple[str, ...]:
    if not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
        raise SettingsError(f"{where}: expected a list of name patterns such as [\"aios-*\"], found {value!r}")
    return tuple(canonical_name(item.strip()) for item in value if item.strip())


def _env_patterns(variable: str) -> tuple[str, ...] | None:
    raw = os.environ.get(variable, "")
    if not raw.strip():
        return None
    return tuple(canonical_name(part.strip()) for part in raw.split(",") if part.strip())


def load_settings() -> PluginSettings:
    """Read the settings file (if any) and apply the environment overrides."""
    import tomllib

    path = config_path()
    section: dict[str, object] = {}
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError:
        document = {}
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SettingsError(f"{path}: cannot read the settings file: {error}") from None
    if "plugins" in document:
        if not isinstance(document["plugins"], dict):
            raise SettingsError(f"{path}: plugins: expected a [plugins] table")
        section = document["plugins"]
    unknown = sorted(set(section) - {"index", "allow", "block"})
    if unknown:
        raise SettingsError(f"{path}: plugins.{unknown[0]}: unknown setting; expected index, allow or block")

    index, index_from = section.get("index"), f"{path} (plugins.index)"
    if index is not None and not (isinstance(index, str) and index.strip()):
        raise SettingsError(f"{path}: plugins.index: expected a path or URL, found {index!r}")
    if isinstance(index, str) and "://" not in index:  # a relative path is relative to the settings file
        index = str(path.parent / Path(index).expanduser())
    if os.environ.get("AIOS_INDEX", "").strip():
        index, index_from = os.environ["AIOS_INDEX"].strip(), "AIOS_INDEX"

    lists: dict[str, tuple[tuple[str, ...], str]] = {}
    for key, variable in (("allow", "AIOS_ALLOW_PLUGINS"), ("block", "AIOS_BLOCK_PLUGINS")):
        from_env = _env_patterns(variable)
        if from_env is not None:
            lists[key] = (from_env, variable)
        elif key in section:
            lists[key] = (_patterns(section[key], f"{path}: plugins.{key}"), f"{path} (plugins.{key})")
        else:
            lists[key] = ((), "")
    return PluginSettings(index=index, index_from=index_from if index else "",
                          allow=lists["allow"][0], allow_from=lists["allow"][1],
                          block=lists["block"][0], block_from=lists["block"][1])
