"""``aios_describe_data``: what the Dataset will look like, told before loading it, and true once it is loaded."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from aios_core import DataDescription, Dataset, Datastore, ValidationContext
from aios_core.testing import plugin_manager

from aios_data import FilesDatastore, SklearnDatastore

Load = Callable[..., Dataset]


def describe(component: type[Datastore], **params: Any) -> DataDescription | None:
    """What the datastore built from ``params`` answers, in a plugin manager as ``aios validate`` asks it."""
    pm = plugin_manager(component(component.Params(**params)))
    context = ValidationContext(stack={}, seed=0, threads=1, source="stack.yaml")
    return pm.hook.aios_describe_data(context=context)


@pytest.mark.parametrize(("name", "expected"), [
    ("digits", DataDescription(64, 10, (1, 8, 8), images=True, task="classification")),
    ("iris", DataDescription(4, 3, None, images=False, task="classification")),
    ("wine", DataDescription(13, 3, None, images=False, task="classification")),
    ("breast_cancer", DataDescription(30, 2, None, images=False, task="classification")),
    ("diabetes", DataDescription(10, None, None, images=False, task="regression")),
])
def test_bundled_sets_are_described_without_loading(name: str, expected: DataDescription) -> None:
    assert describe(SklearnDatastore, dataset=name) == expected


@pytest.mark.parametrize("name", ["digits", "iris", "diabetes"])
def test_the_description_of_a_bundled_set_is_what_loads(name: str, load: Load) -> None:
    described, dataset = describe(SklearnDatastore, dataset=name), load(SklearnDatastore, dataset=name)
    assert described == DataDescription(dataset.x_train.shape[1], dataset.num_classes or None, dataset.image_shape,
                                        images=dataset.image_shape is not None, task=dataset.task)


# ---------------------------------------------------------------- files
def _table(rows: int = 30) -> pd.DataFrame:
    return pd.DataFrame({"a": np.arange(rows, dtype=float), "b": np.arange(rows) % 5, "c": np.arange(rows) * 0.5,
                         "d": np.arange(rows) % 2 == 0, "target": ["x", "y", "z"] * (rows // 3)})


def _write(tmp_path: Path, kind: str, images: np.ndarray, labels: np.ndarray,
           write_idx: Callable[..., Path]) -> dict[str, Any]:
    """Write one example of ``kind`` to tmp_path; the files datastore's parameters that read it."""
    if kind == "csv":
        _table().to_csv(tmp_path / "t.csv", index=False)
        return {"path": tmp_path / "t.csv"}
    if kind == "parquet":
        _table().to_parquet(tmp_path / "t.parquet")
        return {"path": tmp_path / "t.parquet"}
    if kind == "csv-image":
        _table().to_csv(tmp_path / "t.csv", index=False)
        return {"path": tmp_path / "t.csv", "image_shape": [1, 2, 2]}
    if kind == "npz-rows":
        np.savez(tmp_path / "t.npz", x=images.reshape(len(images), -1)[:, :7], y=labels)
        return {"path": tmp_path / "t.npz"}
    if kind == "npz-images":
        np.savez(tmp_path / "t.npz", x=images, y=labels)
        return {"path": tmp_path / "t.npz"}
    if kind == "npz-channels-last":
        np.savez_compressed(tmp_path / "t.npz", x=np.stack([images] * 3, axis=-1), y=labels)
        return {"path": tmp_path / "t.npz"}
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    return {"path": write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)}


@pytest.mark.parametrize(("kind", "expected"), [
    ("csv", DataDescription(4, None, None, images=False, task="classification")),
    ("parquet", DataDescription(4, None, None, images=False, task="classification")),
    ("csv-image", DataDescription(4, None, (1, 2, 2), images=True, task="classification")),
    ("npz-rows", DataDescription(7, None, None, images=False, task="classification")),
    ("npz-images", DataDescription(20, None, (1, 4, 5), images=True, task="classification")),
    ("npz-channels-last", DataDescription(60, None, (3, 4, 5), images=True, task="classification")),
    ("idx", DataDescription(20, None, (1, 4, 5), images=True, task="classification")),
])
def test_files_are_described_from_their_headers_as_they_load(kind: str, expected: DataDescription, tmp_path: Path,
                                                              tiny_images: tuple[np.ndarray, np.ndarray],
                                                              write_idx: Callable[..., Path], load: Load) -> None:
    params = _write(tmp_path, kind, *tiny_images, write_idx)
    assert describe(FilesDatastore, **params) == expected
    dataset = load(FilesDatastore, **params)
    assert (dataset.x_train.shape[1], dataset.image_shape, dataset.task) == (expected.num_features,
                                                                              expected.image_shape, expected.task)


def test_one_hot_columns_leave_the_feature_count_unknown_but_not_the_row_kind(tmp_path: Path) -> None:
    _table().assign(color=["red", "blue"] * 15).to_csv(tmp_path / "t.csv", index=False)
    described = describe(FilesDatastore, path=tmp_path / "t.csv", preprocess={"one_hot": ["color"]})
    assert described == DataDescription(None, None, None, images=False, task="classification")


# ---------------------------------------------------------------- the task, from the target alone
def _numeric_targets(kind: str, tmp_path: Path, target: np.ndarray, write_idx: Callable[..., Path]) -> dict[str, Any]:
    """A file of ``kind`` with two feature columns and ``target``; the files datastore's parameters that read it."""
    features = np.stack([np.arange(len(target), dtype=float), np.arange(len(target)) % 7], axis=1)
    frame = pd.DataFrame({"a": features[:, 0], "b": features[:, 1], "target": target})
    if kind == "csv":
        frame.to_csv(tmp_path / "t.csv.gz", index=False)
        return {"path": tmp_path / "t.csv.gz"}
    if kind == "parquet":
        frame.to_parquet(tmp_path / "t.parquet")
        return {"path": tmp_path / "t.parquet"}
    if kind == "npz":
        np.savez(tmp_path / "t.npz", x=features, y=target)
        return {"path": tmp_path / "t.npz"}
    write_idx(tmp_path / "train-labels-idx1-ubyte", target.astype(np.uint8))
    return {"path": write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((len(target), 2, 2), dtype=np.uint8))}


@pytest.mark.parametrize("kind", ["csv", "parquet", "npz", "idx"])
@pytest.mark.parametrize(("distinct", "task"), [(21, "regression"), (20, "classification")])
def test_auto_tells_the_task_from_the_target_before_loading_as_loading_does(
        kind: str, distinct: int, task: str, tmp_path: Path, write_idx: Callable[..., Path], load: Load) -> None:
    target = np.tile(np.arange(distinct) * 3, 10)
    params = _numeric_targets(kind, tmp_path, target, write_idx)
    assert describe(FilesDatastore, **params).task == task
    assert load(FilesDatastore, **params).task == task


def test_a_declared_task_is_described_without_reading_the_target(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,target\n1,x\n")
    assert describe(FilesDatastore, path=tmp_path / "t.csv", task="regression").task == "regression"


def test_rows_that_cleaning_drops_do_not_count_towards_the_task(tmp_path: Path, load: Load) -> None:
    """25 distinct target values, but 5 of them only on rows with a missing feature: 20 are left, classification."""
    rows = ["a,target"] + [f"{index % 3},{index % 20}" for index in range(400)] + [f",{value}" for value in range(20, 25)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    assert describe(FilesDatastore, path=tmp_path / "t.csv").task == "classification"
    assert describe(FilesDatastore, path=tmp_path / "t.csv", clean={"drop_missing": False}).task == "regression"
    assert load(FilesDatastore, path=tmp_path / "t.csv").task == "classification"


def test_a_text_target_is_classification_and_a_file_too_large_to_read_is_told_at_load(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = ["a,target"] + [f"{index},{index}" for index in range(30)] + ["31,thirty-one"]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    assert describe(FilesDatastore, path=tmp_path / "t.csv").task == "classification"
    import aios_data._targets

    monkeypatch.setattr(aios_data._targets, "SCAN_BYTES", 10)
    assert describe(FilesDatastore, path=tmp_path / "t.csv").task is None


def test_a_file_that_cannot_be_read_is_not_described(tmp_path: Path) -> None:
    assert describe(FilesDatastore, path=tmp_path / "missing.csv") is None
    (tmp_path / "broken-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00broken")
    assert describe(FilesDatastore, path=tmp_path / "broken-images-idx3-ubyte.gz") is None


def test_an_image_shape_given_describes_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    assert describe(FilesDatastore, path=tmp_path / "missing.csv", image_shape=[3, 2, 2]) == \
        DataDescription(12, None, (3, 2, 2), images=True)


def test_checking_reads_headers_without_pandas_or_scikit_learn(tmp_path: Path,
                                                               tiny_images: tuple[np.ndarray, np.ndarray]) -> None:
    _table().to_csv(tmp_path / "t.csv", index=False)
    np.savez(tmp_path / "t.npz", x=tiny_images[0], y=tiny_images[1])
    code = (
        "import sys\n"
        "from aios_core import ValidationContext\n"
        "from aios_core.testing import plugin_manager\n"
        "from aios_data import FilesDatastore, SklearnDatastore\n"
        "context = ValidationContext(stack={}, seed=0, threads=1, source='stack.yaml')\n"
        "for component in (FilesDatastore(FilesDatastore.Params(path=sys.argv[1])),\n"
        "                  FilesDatastore(FilesDatastore.Params(path=sys.argv[2])),\n"
        "                  SklearnDatastore(SklearnDatastore.Params())):\n"
        "    pm = plugin_manager(component)\n"
        "    assert pm.hook.aios_describe_data(context=context) is not None\n"
        "    assert pm.hook.aios_validate(context=context) == [[]]\n"
        "print(sorted(name for name in ('pandas', 'sklearn', 'scipy', 'pyarrow') if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "t.csv"), str(tmp_path / "t.npz")],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
