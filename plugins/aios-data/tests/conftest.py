"""Fixtures: load a data set through a real plugin manager, and write small data files."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aios_core import Dataset, Datastore, RunContext
from aios_core.testing import plugin_manager


@pytest.fixture
def load(aios_run_context: Callable[..., RunContext]) -> Callable[..., Dataset]:
    """``load(DatastoreClass, seed=0, **params)``: the Dataset the hook returns for those params."""

    def load(component: type[Datastore], seed: int = 0, **params: Any) -> Dataset:
        pm = plugin_manager(component(component.Params(**params)))
        return pm.hook.aios_load_dataset(run=aios_run_context(pm, seed=seed))

    return load


def _write_idx(path: Path, array: np.ndarray, type_code: int = 0x08) -> Path:
    """Write ``array`` as an IDX file (gzipped when the name ends ``.gz``)."""
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    header = bytes([0, 0, type_code, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    data = header + np.ascontiguousarray(array, dtype=dtypes[type_code]).tobytes()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def _tiny_images(n_per_class: int = 6, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``classes`` classes of 4x5 uint8 images: class k brightens row k."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(classes, dtype=np.uint8), n_per_class)
    images = rng.integers(0, 50, size=(len(labels), 4, 5), dtype=np.uint8)
    images[np.arange(len(labels)), labels, :] = 250
    return images, labels


@pytest.fixture
def mnist_files(tmp_path: Path) -> Callable[[str], Path]:
    """``mnist_files(suffix)``: write train-images/-labels IDX files (suffix ``""`` or ``".gz"``), return the images."""

    def write(suffix: str = "") -> Path:
        images, labels = _tiny_images()
        _write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels)
        return _write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images)

    return write


@pytest.fixture
def write_idx() -> Callable[..., Path]:
    """``write_idx(path, array, type_code=0x08)``: an IDX file, gzipped when the name ends ``.gz``."""
    return _write_idx


@pytest.fixture
def tiny_images() -> tuple[np.ndarray, np.ndarray]:
    """18 uint8 images of 4x5 pixels in 3 classes, and their uint8 labels."""
    return _tiny_images()
