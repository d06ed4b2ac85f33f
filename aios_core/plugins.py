"""Plugin discovery and loading (placeholder: being written)."""

from __future__ import annotations

import pluggy

from aios_core import hookspecs


def new_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager holding the AIOS hook specs and no plugins."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm
