"""Fixtures: load a data set through a real plugin manager, write small data files, and stacks that name them."""

from __future__ import annotations

import gzip
import json
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


# ---------------------------------------------------------------- stacks
@pytest.fixture(scope="session")
def framework_name() -> str:
    """The framework a test stack's ``model`` section names: torch if installed, else the first installed one."""
    from importlib.metadata import entry_points

    names = sorted(entry.name for entry in entry_points(group="aios.frameworks"))
    if not names:
        pytest.skip("a stack needs a model section and no framework plugin is installed (pip install aios-torch)")
    return "torch" if "torch" in names else names[0]


@pytest.fixture
def write_stack(tmp_path: Path, framework_name: str) -> Callable[..., Path]:
    """``write_stack(plugin="files", at="stack.yaml", model=None, **fields)``: a stack file in tmp_path.

    Line 3 is ``plugin:``, then one line per field in the order given (line 4, 5, ...),
    each value in YAML flow style; ``model`` is the model section (default: the framework).
    """

    def write(plugin: str = "files", at: str = "stack.yaml", model: dict[str, Any] | None = None,
              **fields: Any) -> Path:
        lines = ["name: check", "data:", f"  plugin: {plugin}"]
        lines += [f"  {key}: {json.dumps(value)}" for key, value in fields.items()]
        lines += ["model:"] + [f"  {key}: {json.dumps(value)}"
                               for key, value in (model or {"framework": framework_name}).items()]
        path = tmp_path / at
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        return path

    return write


@pytest.fixture
def stack_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[str]]:
    """``stack_problems(*overrides, at="stack.yaml")``: the lines ``load_stack`` reports, run from tmp_path."""
    from aios_core.stack import StackError, load_stack

    monkeypatch.chdir(tmp_path)

    def problems(*overrides: str, at: str = "stack.yaml") -> list[str]:
        try:
            load_stack(at, list(overrides))
        except StackError as error:
            return [str(problem) for problem in error.problems]
        return []

    return problems


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[..., Path]:
    """``write_csv(name, header, rows=12)``: a CSV in tmp_path with that header line and numeric rows in 3 classes
    (the last column holds the class)."""

    def write(name: str = "points.csv", header: str = "x,y,target", rows: int = 12) -> Path:
        width = header.count(",")
        lines = [header] + [",".join([*(f"{row * 0.5 + column:.1f}" for column in range(width)), str(row % 3)])
                            for row in range(rows)]
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        return path

    return write
