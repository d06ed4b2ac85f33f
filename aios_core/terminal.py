"""The one rich Console factory for the CLI and the console monitor."""

from __future__ import annotations

import sys
from typing import Any


def make_console() -> Any:
    """A rich Console on stdout: the terminal's width there, and wide plain text when piped."""
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)
