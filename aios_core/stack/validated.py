"""A validated stack (``Stack``): what ``load_stack`` returns and the environment checks read.

Its own module, below both ``resolution`` (which builds it) and ``environment`` (which
checks it), so neither imports the other for the type.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from typing import Any

from aios_core import HOOK_API_VERSION, __version__
from aios_core.components import Component
from aios_core.plugins import ComponentEntry
from aios_core.stack.schema import StackFile
from aios_core.vocabulary import PHASES


@dataclass
class Stack:
    """A validated stack: its settings, its configured components and the resolved form."""

    source: str
    settings: StackFile
    components: dict[str, Component]
    entries: dict[str, ComponentEntry]
    resolved: dict[str, Any]
    skipped: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.settings.name

    def role(self, role: str) -> Component | None:
        return self.components.get(role)

    def roles(self, section: str) -> list[str]:
        """The roles of a list section in order, e.g. ``compressors.0``, ``compressors.1``."""
        return [r for r in self.components if r.split(".")[0] == section]

    def compressor_roles(self, native: bool) -> list[str]:
        """The compressors of the native model (``native``: they run before export) or of exports, in order."""
        native_format = self.components["model"].native_format
        return [role for role in self.roles("compressors")
                if self.components[role].works_before_export(native_format) == native]

    @property
    def phases(self) -> list[str]:
        """The phases a run of this stack goes through, in the runner's order (``aios_core.vocabulary.PHASES``
        less those it has nothing for: no tuner, no compressor of either group, no deployer)."""
        absent = {"tune": "tuner" not in self.components, "compress-native": not self.compressor_roles(True),
                  "compress": not self.compressor_roles(False), "deploy": "deployer" not in self.components}
        return [phase for phase in PHASES if not absent.get(phase)]

    def lock(self) -> dict[str, Any]:
        """The resolved stack plus the versions that ran it: a lock file ``aios run --lock`` reproduces."""
        distributions = {entry.distribution: entry.version for entry in self.entries.values()}
        return {**self.resolved, "lock": {
            "aios_core": __version__, "hook_api": HOOK_API_VERSION, "python": platform.python_version(),
            "distributions": dict(sorted(distributions.items())),
        }}
