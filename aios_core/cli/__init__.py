"""The ``aios`` command line: the group in ``_app``, one module per command group, rich output in ``_display``.

Start-up is kept cheap: importing this package loads only click, ``aios_core`` and
``aios_core.vocabulary``; each command imports what it needs, so ``aios --help`` and
``aios plugins list`` load no plugin and no ML library.
"""

from __future__ import annotations

from aios_core.cli import _new, _pipeline, _plugins, _runs, _stacks  # noqa: F401  (importing them registers their commands)
from aios_core.cli._app import main

__all__ = ["main"]
