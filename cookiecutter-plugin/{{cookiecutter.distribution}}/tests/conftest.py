"""Fixtures: a small labelled Dataset made with NumPy, and components registered in a real plugin manager."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aios_core import Dataset, RunContext, RunOptions, hash_arrays
from aios_core.testing import plugin_manager


def make_dataset(classes: int = 3, features: int = 6, rows_per_class: int = 40, seed: int = 0) -> Dataset:
    """``classes`` well separated gaussian blobs, split 60/20/20 in class order (no shuffling needed here)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-4.0, 4.0, size=(classes, features))
    y = np.repeat(np.arange(classes), rows_per_class)
    x = (centres[y] + rng.normal(0.0, 1.0, size=(len(y), features))).astype(np.float32)
    order = rng.permutation(len(y))
    x, y = x[order], y[order].astype(np.int64)
    a, b = int(len(y) * 0.6), int(len(y) * 0.8)
    return Dataset(name="toy", x_train=x[:a], y_train=y[:a], x_val=x[a:b], y_val=y[a:b], x_test=x[b:], y_test=y[b:],
                   class_names=[f"c{i}" for i in range(classes)], content_hash=hash_arrays(x, y))


@pytest.fixture
def toy_dataset() -> Dataset:
    return make_dataset()


@pytest.fixture
def run_with(tmp_path: Path) -> Callable[..., RunContext]:
    """``run_with(*components, seed=0, resume=False, serve=False, run_dir=None)``: a run reaching them."""

    def make(*components: Any, seed: int = 0, resume: bool = False, serve: bool = False,
             run_dir: Path | None = None) -> RunContext:
        pm = plugin_manager(*components)
        directory = run_dir or tmp_path
        directory.mkdir(parents=True, exist_ok=True)
        return RunContext(name="test", seed=seed, threads=1, dir=directory, stack={}, hook=pm.hook, resume=resume,
                          options=RunOptions(serve=serve))

    return make
