"""The ``{{ cookiecutter.plugin_name }}`` monitor's file: one line per event, ``time event key=value ...``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def format_line(event: str, fields: dict[str, Any]) -> str:
    values = " ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                      for key, value in fields.items())
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {event}" + (f" {values}" if values else "")


def append(path: Path, event: str, fields: dict[str, Any]) -> None:
    """Append one line; opened and closed each time, so the file is complete whenever the run stops."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(format_line(event, fields) + "\n")
