"""Every failure is one ``ValueError`` line that starts with the field path and names the file."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from aios_core import Dataset

from aios_data import FilesDatastore

Load = Callable[..., Dataset]


@pytest.fixture
def failure(load: Load) -> Callable[..., str]:
    """``failure(**params)``: the one-line message of the ValueError loading the files datastore raises."""

    def failure(**params: Any) -> str:
        with pytest.raises(ValueError) as caught:
            load(FilesDatastore, **params)
        message = str(caught.value)
        assert "\n" not in message
        return message

    return failure


@pytest.fixture
def table_csv(tmp_path: Path) -> Callable[..., Path]:
    """``table_csv(**columns)``: a CSV of those columns in tmp_path."""

    def write(name: str = "data.csv", **columns: Any) -> Path:
        path = tmp_path / name
        pd.DataFrame(columns).to_csv(path, index=False)
        return path

    return write


def test_missing_file(failure: Callable[..., str], tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "y.csv"
    assert failure(path=path) == f"data.path: no such file: {path}"


def test_directory_instead_of_file(failure: Callable[..., str], tmp_path: Path) -> None:
    assert failure(path=tmp_path) == f"data.path: {tmp_path} is a directory, expected a file"


def test_unknown_suffix(failure: Callable[..., str], tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"x")
    assert failure(path=path) == (f"data.format: cannot tell the format of {path} from its name; "
                                  f"set data.format to csv, parquet, npz or idx")


def test_unknown_target_column_lists_the_columns(failure: Callable[..., str], table_csv: Callable[..., Path]) -> None:
    path = table_csv(a=[1, 2], label=[0, 1])
    assert failure(path=path, target="labels") == \
        f"data.target: no column 'labels' in {path} (did you mean 'label'?); columns are: a, label"


def test_text_feature_column_suggests_one_hot(failure: Callable[..., str], table_csv: Callable[..., Path]) -> None:
    path = table_csv(a=[1, 2], color=["red", "blue"], target=[0, 1])
    assert failure(path=path) == (f"data.path: column 'color' of {path} is not numeric (found 'red'); "
                                  f"list it in data.preprocess.one_hot to one-hot encode it")


def test_unknown_one_hot_column(failure: Callable[..., str], table_csv: Callable[..., Path]) -> None:
    path = table_csv(a=[1, 2], target=[0, 1])
    assert failure(path=path, preprocess={"one_hot": ["colour"]}) == \
        f"data.preprocess.one_hot: no feature column 'colour' in {path}; feature columns are: a"


def test_one_hot_of_the_target_column(failure: Callable[..., str], table_csv: Callable[..., Path]) -> None:
    path = table_csv(a=[1, 2], target=["x", "y"])
    assert "(it is the target column)" in failure(path=path, preprocess={"one_hot": ["target"]})


def test_unreadable_table(failure: Callable[..., str], table_csv: Callable[..., Path]) -> None:
    path = table_csv(a=[1, 2], target=[0, 1])
    assert failure(path=path, format="parquet").startswith(f"data.path: cannot read {path} as PARQUET: ")


def test_too_few_rows_per_class(failure: Callable[..., str], table_csv: Callable[..., Path]) -> None:
    path = table_csv(a=range(8), target=["x"] * 6 + ["y"] * 2)
    assert failure(path=path) == (f"data.split: class 'y' has only 2 row(s) in {path} after cleaning; "
                                  f"a stratified train/validation/test split needs at least 3 per class")


def test_too_few_rows_for_the_split_fractions(failure: Callable[..., str], table_csv: Callable[..., Path]) -> None:
    path = table_csv(a=range(12), target=["w", "x", "y", "z"] * 3)
    assert failure(path=path) == (f"data.split: the validation split of {path} would hold 2 rows for 4 classes; "
                                  f"a stratified split needs at least one row per class in each split: "
                                  f"use more rows or change data.split.validation and data.split.test")


def test_missing_labels_kept_by_request(failure: Callable[..., str], table_csv: Callable[..., Path]) -> None:
    path = table_csv(a=range(9), target=["x", None, "y"] * 3)
    assert failure(path=path, clean={"drop_missing": False}) == \
        (f"data.clean.drop_missing: 3 rows of {path} have no label; "
         f"set data.clean.drop_missing to true to drop them")


def test_a_single_class(failure: Callable[..., str], table_csv: Callable[..., Path]) -> None:
    path = table_csv(a=range(9), target=["x"] * 9)
    assert failure(path=path) == f"data.target: {path} has a single class (x) after cleaning; " \
                                 f"a classifier needs at least two"


def test_image_shape_that_does_not_fit(failure: Callable[..., str], table_csv: Callable[..., Path]) -> None:
    path = table_csv(a=range(9), b=range(9), target=["x", "y", "z"] * 3)
    assert failure(path=path, image_shape=[1, 2, 2]) == \
        f"data.image_shape: [1, 2, 2] holds 4 values but the rows of {path} have 2 features"


def test_labels_path_for_a_table(failure: Callable[..., str], table_csv: Callable[..., Path], tmp_path: Path) -> None:
    path = table_csv(a=range(9), target=["x", "y", "z"] * 3)
    assert failure(path=path, labels_path=tmp_path / "labels") == \
        f"data.labels_path: used only with IDX files, but {path} is read as csv"


# ---------------------------------------------------------------- npz
def test_npz_missing_array(failure: Callable[..., str], tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, features=np.zeros((3, 2)), y=np.arange(3))
    assert failure(path=path) == f"data.x_key: no array 'x' in {path}; arrays are: features, y"


def test_npz_object_array_is_not_loaded(failure: Callable[..., str], tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((3, 2)), y=np.array([{"label": 1}] * 3, dtype=object))
    assert failure(path=path).startswith(f"data.y_key: array 'y' in {path} holds Python objects")


def test_npz_length_mismatch(failure: Callable[..., str], tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((9, 2)), y=np.arange(8))
    assert failure(path=path) == f"data.y_key: {path} holds 8 labels ('y') but 9 rows ('x')"


def test_npz_that_is_not_an_archive(failure: Callable[..., str], tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    path.write_text("a,b\n1,2\n")
    assert failure(path=path) == f"data.path: cannot read {path} as NPZ: not a zip archive of arrays " \
                                 f"(as numpy.savez writes)"


def test_npz_damaged_array(failure: Callable[..., str], tmp_path: Path) -> None:
    """A flipped byte inside an uncompressed array is caught by the member's CRC-32 (checked as it is read)."""
    path = tmp_path / "d.npz"
    x = np.arange(60_000, dtype=np.float32).reshape(-1, 6)
    np.savez(path, x=x, y=np.arange(len(x)) % 3)
    data = bytearray(path.read_bytes())
    data[data.find(x.tobytes()[:64]) + 20_000] ^= 0xFF
    path.write_bytes(bytes(data))
    assert failure(path=path) == (f"data.path: cannot read array 'x' of {path}: Bad CRC-32 for file 'x.npy'; "
                                  f"the file is damaged or incomplete: write it again (numpy.savez)")


# ---------------------------------------------------------------- idx
def test_idx_bad_magic(failure: Callable[..., str], tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"PK\x03\x04" + bytes(20))
    assert failure(path=path).startswith(f"data.path: {path} is not an IDX file: bad magic 50 4b 03 04, expected 00 00")


def test_idx_truncated_values(failure: Callable[..., str], tmp_path: Path, write_idx: Callable[..., Path]) -> None:
    path = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 2, 2), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-3])
    assert failure(path=path) == (f"data.path: {path} holds 13 bytes of values but its IDX header announces "
                                  f"shape (4, 2, 2) of uint8 (16 bytes)")


def test_idx_label_and_image_counts_differ(failure: Callable[..., str], tmp_path: Path,
                                           write_idx: Callable[..., Path]) -> None:
    images = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((12, 2, 2), dtype=np.uint8))
    labels = write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(10, dtype=np.uint8))
    assert failure(path=images) == f"data.labels_path: {labels} holds 10 labels but {images} holds 12 images"


def test_idx_labels_file_missing(failure: Callable[..., str], tmp_path: Path, write_idx: Callable[..., Path]) -> None:
    images = write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((12, 2, 2), dtype=np.uint8))
    assert failure(path=images) == (f"data.labels_path: no such file: {tmp_path / 'train-labels-idx1-ubyte.gz'} "
                                    f"(the labels file derived from train-images-idx3-ubyte.gz); set data.labels_path")


def test_idx_labels_file_cannot_be_derived(failure: Callable[..., str], tmp_path: Path,
                                           write_idx: Callable[..., Path]) -> None:
    images = write_idx(tmp_path / "pictures.idx", np.zeros((12, 2, 2), dtype=np.uint8))
    assert failure(path=images) == (f"data.labels_path: cannot derive a labels file from {images} "
                                    f"(its name has no 'images-idx3-ubyte'); set data.labels_path")


def test_idx_labels_file_given_for_images(failure: Callable[..., str], tmp_path: Path,
                                          write_idx: Callable[..., Path]) -> None:
    labels = write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(12, dtype=np.uint8))
    assert failure(path=labels, format="idx", labels_path=labels).startswith(
        f"data.path: {labels} holds a 1-dimensional IDX array, like a labels file")


def test_idx_broken_gzip(failure: Callable[..., str], tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(bytes(100))[:20])
    assert failure(path=path).startswith(f"data.path: cannot decompress {path} (gzip): ")


def test_idx_named_labels_file_missing(failure: Callable[..., str], tmp_path: Path,
                                       write_idx: Callable[..., Path]) -> None:
    images = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((12, 2, 2), dtype=np.uint8))
    assert failure(path=images, labels_path=tmp_path / "answers") == f"data.labels_path: no such file: {tmp_path}/answers"
