"""The plugin index: which distribution provides which component, read offline.

The bundled snapshot ``aios_core/index.json`` lists the known plugins; ``AIOS_INDEX``
names another index file. Nothing here imports plugin code.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

BUNDLED_INDEX = Path(__file__).with_name("index.json")


@functools.cache
def load_index() -> dict[str, Any]:
    """The index as a dict with a ``plugins`` list (distribution, components by kind, summary)."""
    path = Path(os.environ.get("AIOS_INDEX") or BUNDLED_INDEX)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"plugins": []}


def distribution_providing(kind: str, name: str) -> str | None:
    """The distribution the index says provides component ``name`` of ``kind``, if any."""
    for plugin in load_index().get("plugins", []):
        if name in plugin.get("components", {}).get(kind, []):
            return plugin["distribution"]
    return None
