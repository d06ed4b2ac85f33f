"""Helpers for plugin test suites beyond the contract classes: a run's plugin manager, digits, the CLI.

A plugin's tests use these instead of reaching into the AIOS repository or the
kernel's internals, so they pass wherever the plugin and aios-kernel are installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pluggy

    from aios_core.records import Dataset

__all__ = ["digits_dataset", "plugin_manager", "run_aios"]

DIGITS_GENERATOR = "aios_core.testing.digits_dataset/1"


def plugin_manager(*components: Any) -> pluggy.PluginManager:
    """A plugin manager holding the hook specs, the kernel's built-ins and ``components``, registered as a run
    registers a stack's components (each checked against the specs)."""
    from aios_core.plugins import new_plugin_manager, register

    pm = new_plugin_manager()
    for number, component in enumerate(components):
        register(pm, component, f"{getattr(component, 'kind', 'plugin')}:{getattr(component, 'name', '')}:{number}")
    return pm


def digits_dataset(seed: int = 0, *, image: bool = True) -> Dataset:
    """scikit-learn's bundled digits (1,797 8x8 images, 10 classes), split 60/20/20 stratified by ``seed``,
    standardized per pixel on the train split; ``image=False`` drops the image shape (tabular rows).

    Needs scikit-learn (imported here, not at import time).
    """
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from aios_core.records import Dataset, hash_arrays

    x, y = load_digits(return_X_y=True)
    x, y = x.astype(np.float32), y.astype(np.int64)
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.4, stratify=y, random_state=seed)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5, stratify=y_rest,
                                                    random_state=seed)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0  # pixels blank in every training image stay as they are

    def scale(part: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray((part - mean) / std, dtype=np.float32)

    settings = {"generator": DIGITS_GENERATOR, "seed": seed}
    return Dataset(name="digits", x_train=scale(x_train), y_train=y_train, x_val=scale(x_val), y_val=y_val,
                   x_test=scale(x_test), y_test=y_test, class_names=[str(digit) for digit in range(10)],
                   content_hash=hash_arrays(x, y, settings), image_shape=(1, 8, 8) if image else None,
                   preprocessing={"standardize": {"mean": mean.round(6).tolist(), "std": std.round(6).tolist()},
                                  **settings})


def run_aios(*args: str, cwd: str | Path | None = None, env: dict[str, str | None] | None = None,
             timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run the installed ``aios`` command line (``python -m aios_core ARGS``) in a subprocess and capture it.

    ``cwd`` is where it runs (a test's fresh ``tmp_path``, as a user's empty directory);
    ``env`` adds to (and overrides) the current environment, a ``None`` value unsets a
    variable. ``AIOS_RUNS_DIR`` is unset unless ``env`` gives it, so runs land in
    ``cwd/runs`` as a user's would.
    """
    merged: dict[str, str | None] = {**os.environ, "AIOS_RUNS_DIR": None, **(env or {})}
    environment = {key: value for key, value in merged.items() if value is not None}
    return subprocess.run([sys.executable, "-m", "aios_core", *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=timeout, check=False)
