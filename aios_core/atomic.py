"""Atomic file writes: write to a temporary file beside the target, fsync, then rename.

A reader (or a resumed run) sees either the old file or the complete new one, never a
partial write, even if the process is killed mid-write.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``target`` atomically.

    The temporary file is hidden (``.model.x1y2.tmp.onnx``) and keeps ``target``'s
    suffix, for writers that pick a format from it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode open() would
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(target: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def json_text(data: Any, indent: int | None = None) -> str:
    """``data`` as strict JSON: NaN and infinities become ``null`` (Python's bare ``NaN`` tokens are not JSON)."""
    return json.dumps(_finite(data), indent=indent, default=str, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if hasattr(value, "dtype") and hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return _finite(value.item())  # a numpy scalar
    return value


def write_json(target: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented strict JSON (``json_text``) to ``target`` atomically."""
    return write_text(target, json_text(data, indent=2) + "\n")
