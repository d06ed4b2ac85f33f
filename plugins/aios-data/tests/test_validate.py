"""``aios validate`` (``load_stack``) finds what would stop a run at its data, from the files' headers alone.

Each test writes real files in tmp_path, a stack naming them, and reads the stack from
tmp_path as a user's working directory. Every problem is one line:
``stack.yaml:LINE: data.FIELD: found ..., ...; expected ...``.
"""

from __future__ import annotations

import gzip
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from aios_core import Dataset

from aios_data import FilesDatastore

Problems = Callable[..., list[str]]
WriteStack = Callable[..., Path]
WriteCsv = Callable[..., Path]
EXPECTED_FILE = "expected a readable CSV, Parquet, NPZ or MNIST IDX file"


def cwd_note() -> str:
    return f"relative paths are read from the working directory {Path.cwd()}"


# ---------------------------------------------------------------- the data file itself
@pytest.mark.parametrize("name", ["points.csv", "data/points.csv", "points.csv.gz", "./data/points.csv"])
def test_a_relative_path_is_read_from_the_working_directory(name: str, tmp_path: Path, write_stack: WriteStack,
                                                            write_csv: WriteCsv, stack_problems: Problems) -> None:
    path = write_csv(name.removeprefix("./").removesuffix(".gz"))
    if name.endswith(".gz"):
        (tmp_path / name).write_bytes(gzip.compress(path.read_bytes()))
    write_stack(path=name)
    assert stack_problems() == []


def test_an_absolute_path_is_read_as_it_is(write_stack: WriteStack, write_csv: WriteCsv,
                                           stack_problems: Problems) -> None:
    write_stack(path=str(write_csv()))
    assert stack_problems() == []


def test_a_missing_file(write_stack: WriteStack, stack_problems: Problems) -> None:
    write_stack(path="points.csv")
    assert stack_problems() == [(f"stack.yaml:4: data.path: found 'points.csv', which does not exist ({cwd_note()}); "
                                f"{EXPECTED_FILE}")]


def test_a_missing_file_named_by_an_override(write_stack: WriteStack, write_csv: WriteCsv,
                                             stack_problems: Problems) -> None:
    write_stack(path=str(write_csv()))
    assert stack_problems("data.path=elsewhere.csv") == [
        f"--set: data.path: found 'elsewhere.csv', which does not exist ({cwd_note()}); {EXPECTED_FILE}"]


def test_a_missing_absolute_path_names_no_working_directory(tmp_path: Path, write_stack: WriteStack,
                                                            stack_problems: Problems) -> None:
    write_stack(path=str(tmp_path / "points.csv"))
    assert stack_problems() == [(f"stack.yaml:4: data.path: found '{tmp_path / 'points.csv'}', which does not "
                                f"exist; {EXPECTED_FILE}")]


def test_a_missing_file_with_a_near_name_suggests_it(write_stack: WriteStack, write_csv: WriteCsv,
                                                     stack_problems: Problems) -> None:
    write_csv("data/points.csv")
    write_stack(path="data/point.csv")
    assert stack_problems() == [(f"stack.yaml:4: data.path: found 'data/point.csv', which does not exist "
                                f"({cwd_note()}; did you mean 'data/points.csv'?); {EXPECTED_FILE}")]


def test_a_missing_directory_is_named(write_stack: WriteStack, stack_problems: Problems, tmp_path: Path) -> None:
    write_stack(path="data/points.csv")
    assert stack_problems() == [(f"stack.yaml:4: data.path: found 'data/points.csv', which does not exist "
                                f"({cwd_note()}; the directory {tmp_path / 'data'} does not exist either); "
                                f"{EXPECTED_FILE}")]


def test_a_file_beside_the_stack_file_but_not_in_the_working_directory(write_stack: WriteStack, write_csv: WriteCsv,
                                                                       stack_problems: Problems) -> None:
    write_csv("project/points.csv")
    write_stack(path="points.csv", at="project/stack.yaml")
    assert stack_problems(at="project/stack.yaml") == [
        (f"project/stack.yaml:4: data.path: found 'points.csv', which does not exist ({cwd_note()}; the stack file's "
        f"directory has one: write 'project/points.csv' or an absolute path); {EXPECTED_FILE}")]


def test_a_directory(write_stack: WriteStack, write_csv: WriteCsv, stack_problems: Problems) -> None:
    write_csv("data/train.csv")
    write_csv("data/test.csv")
    write_stack(path="data")
    assert stack_problems() == [(f"stack.yaml:4: data.path: found 'data', which is a directory (holding test.csv, "
                                f"train.csv); {EXPECTED_FILE}")]


def test_an_unreadable_file(write_stack: WriteStack, write_csv: WriteCsv, stack_problems: Problems) -> None:
    path = write_csv()
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("this user reads files whatever their mode (root)")
        write_stack(path="points.csv")
        assert stack_problems() == [(f"stack.yaml:4: data.path: found 'points.csv', which cannot be read "
                                    f"(Permission denied); {EXPECTED_FILE}")]
    finally:
        path.chmod(0o644)


def test_a_name_that_does_not_say_the_format(tmp_path: Path, write_stack: WriteStack,
                                             stack_problems: Problems) -> None:
    (tmp_path / "points.xlsx").write_text("x,target\n1,a\n")
    write_stack(path="points.xlsx")
    assert stack_problems() == [
        ("stack.yaml:4: data.path: found 'points.xlsx', whose name does not say its format; expected a name ending "
        ".csv, .csv.gz, .idx, .npz, .parquet, .pq or like MNIST's (train-images-idx3-ubyte[.gz]), or data.format set "
        "to csv, parquet, npz or idx")]


def test_a_name_that_does_not_say_the_format_of_parquet_content(tmp_path: Path, write_stack: WriteStack,
                                                                stack_problems: Problems) -> None:
    pd.DataFrame({"x": [1.0], "target": [0]}).to_parquet(tmp_path / "points.bin")
    write_stack(path="points.bin")
    assert stack_problems() == [
        ("stack.yaml:4: data.path: found 'points.bin', whose name does not say its format, though its content is "
        "Parquet; expected data.format: parquet, or a name ending .parquet")]


def test_a_name_that_does_not_say_the_format_with_the_format_given(tmp_path: Path, write_stack: WriteStack,
                                                                   write_csv: WriteCsv,
                                                                   stack_problems: Problems) -> None:
    write_csv().rename(tmp_path / "points.txt")
    write_stack(path="points.txt", format="csv")
    assert stack_problems() == []


def test_content_of_another_format_than_the_name_says(tmp_path: Path, write_stack: WriteStack,
                                                      stack_problems: Problems) -> None:
    pd.DataFrame({"x": [1.0], "target": [0]}).to_parquet(tmp_path / "points.csv")
    write_stack(path="points.csv")
    assert stack_problems() == [
        ("stack.yaml:4: data.path: found 'points.csv', which holds Parquet data but is read as CSV (by its name); "
        "expected CSV data: rename it to end .parquet or set data.format: parquet")]


def test_content_of_another_format_than_data_format_says(write_stack: WriteStack, write_csv: WriteCsv,
                                                         stack_problems: Problems) -> None:
    write_csv()
    write_stack(path="points.csv", format="parquet")
    assert stack_problems() == [
        (f"stack.yaml:4: data.path: found 'points.csv', which cannot be read as Parquet: "
        f"{_parquet_error(Path('points.csv'))}; {EXPECTED_FILE}")]


def _parquet_error(path: Path) -> str:
    import pyarrow.parquet as pq

    with pytest.raises(Exception) as caught:
        pq.read_metadata(path)
    return str(caught.value).strip().splitlines()[0]


def test_a_binary_file_named_csv(tmp_path: Path, write_stack: WriteStack, stack_problems: Problems) -> None:
    (tmp_path / "points.csv").write_bytes(b"x,target\n\xff\xfe\x00\x01")
    write_stack(path="points.csv")
    assert stack_problems() == [
        (f"stack.yaml:4: data.path: found 'points.csv', which is not UTF-8 text (byte 9: invalid start byte), as a "
        f"CSV file must be; {EXPECTED_FILE}")]


def test_an_empty_csv_file(tmp_path: Path, write_stack: WriteStack, stack_problems: Problems) -> None:
    (tmp_path / "points.csv").write_text("\n\n")
    write_stack(path="points.csv")
    assert stack_problems() == [(f"stack.yaml:4: data.path: found 'points.csv', which is empty, with no header line "
                                f"naming the columns; {EXPECTED_FILE}")]


def test_gzip_content_without_gz_in_the_name(tmp_path: Path, write_stack: WriteStack, write_csv: WriteCsv,
                                             stack_problems: Problems) -> None:
    path = write_csv()
    path.write_bytes(gzip.compress(path.read_bytes()))
    write_stack(path="points.csv")
    assert stack_problems() == [
        ("stack.yaml:4: data.path: found 'points.csv', which holds gzip-compressed data but whose name does not end "
        ".gz, so it would be read as it is; expected the name to end .gz (points.csv.gz)")]


def test_a_gz_name_whose_content_is_not_gzip(write_stack: WriteStack, write_csv: WriteCsv,
                                             stack_problems: Problems) -> None:
    write_csv("points.csv.gz")
    write_stack(path="points.csv.gz")
    assert stack_problems() == [
        (f"stack.yaml:4: data.path: found 'points.csv.gz', which cannot be decompressed (gzip): Not a gzipped file "
        f"(b'x,'); {EXPECTED_FILE}")]


# ---------------------------------------------------------------- tables
def test_a_missing_target_column_of_a_csv(write_stack: WriteStack, write_csv: WriteCsv,
                                          stack_problems: Problems) -> None:
    write_csv(header="x,y,labels")
    write_stack(path="points.csv", target="label")
    assert stack_problems() == [("stack.yaml:5: data.target: found 'label', which is not a column of 'points.csv' "
                                "(did you mean 'labels'?); expected one of: x, y, labels")]


def test_the_default_target_column_missing(write_stack: WriteStack, write_csv: WriteCsv,
                                           stack_problems: Problems) -> None:
    write_csv(header="x,y,species")
    write_stack(path="points.csv")
    assert stack_problems() == [("stack.yaml:2: data.target: found 'target', which is not a column of 'points.csv'; "
                                "expected one of: x, y, species")]


def test_a_missing_target_column_of_a_parquet_file(tmp_path: Path, write_stack: WriteStack,
                                                   stack_problems: Problems) -> None:
    frame = pd.DataFrame({"x": np.arange(12.0), "species": ["a", "b", "c"] * 4}, index=np.arange(12) + 7)
    frame.to_parquet(tmp_path / "points.parquet")  # the index is stored as a column, and read back as the index
    write_stack(path="points.parquet", target="specie")
    assert stack_problems() == [("stack.yaml:5: data.target: found 'specie', which is not a column of "
                                "'points.parquet' (did you mean 'species'?); expected one of: x, species")]


def test_a_table_with_the_target_column_only(write_stack: WriteStack, write_csv: WriteCsv,
                                             stack_problems: Problems) -> None:
    write_csv(header="target")
    write_stack(path="points.csv")
    assert stack_problems() == [("stack.yaml:4: data.path: found 'points.csv', which has no column besides the target "
                                "'target'; expected feature columns beside it")]


def test_one_hot_columns_not_in_the_header(write_stack: WriteStack, write_csv: WriteCsv,
                                           stack_problems: Problems) -> None:
    write_csv(header="weight,color,target")
    write_stack(path="points.csv", preprocess={"one_hot": ["color", "colour", "target"]})
    assert stack_problems() == [
        ("stack.yaml:5: data.preprocess.one_hot.1: found 'colour', which is not a column of 'points.csv' (did you mean "
        "'color'?); expected one of: weight, color"),
        ("stack.yaml:5: data.preprocess.one_hot.2: found 'target', which is the target column; expected a feature "
        "column (the labels are encoded anyway)")]


def test_a_text_column_of_a_parquet_file_must_be_one_hot_encoded(tmp_path: Path, write_stack: WriteStack,
                                                                  stack_problems: Problems) -> None:
    frame = pd.DataFrame({"weight": np.arange(12.0), "color": ["red", "blue"] * 6, "target": [0, 1, 2] * 4})
    frame.to_parquet(tmp_path / "animals.parquet")
    write_stack(path="animals.parquet")
    [problem] = stack_problems()
    assert problem.startswith("stack.yaml:2: data.preprocess.one_hot: found no 'color', but column 'color' of "
                              "'animals.parquet' holds ")
    assert problem.endswith(" values, not numbers; expected it listed, to be one-hot encoded")
    write_stack(path="animals.parquet", preprocess={"one_hot": ["color"]})
    assert stack_problems() == []


def test_every_problem_is_reported_at_once(write_stack: WriteStack, write_csv: WriteCsv,
                                           stack_problems: Problems, tmp_path: Path) -> None:
    write_csv(header="a,b,label")
    write_stack(path="points.csv", target="class", labels_path="labels", image_shape=[1, 2, 2])
    assert stack_problems() == [
        ("stack.yaml:6: data.labels_path: found 'labels', but data.path is read as CSV; expected no labels_path (it "
        "names the labels file of IDX images)"),
        "stack.yaml:5: data.target: found 'class', which is not a column of 'points.csv'; expected one of: a, b, label"]


def test_an_image_shape_that_does_not_fit_the_columns(write_stack: WriteStack, write_csv: WriteCsv,
                                                      stack_problems: Problems) -> None:
    write_csv(header="a,b,c,target")
    write_stack(path="points.csv", image_shape=[1, 2, 2])
    assert stack_problems() == [
        ("stack.yaml:5: data.image_shape: found [1, 2, 2], which holds 4 values, but the rows of 'points.csv' have 3 "
        "features; expected a [channels, height, width] whose product is 3")]
    write_stack(path="points.csv", image_shape=[1, 1, 3])
    assert stack_problems() == []


# ---------------------------------------------------------------- npz
def test_npz_arrays_named_that_do_not_exist(tmp_path: Path, write_stack: WriteStack,
                                            stack_problems: Problems) -> None:
    np.savez(tmp_path / "points.npz", features=np.zeros((12, 2)), labels=np.arange(12) % 3)
    write_stack(path="points.npz", y_key="label")
    assert stack_problems() == [
        "stack.yaml:2: data.x_key: found 'x', which is not an array of 'points.npz'; expected one of: features, labels",
        ("stack.yaml:5: data.y_key: found 'label', which is not an array of 'points.npz' (did you mean 'labels'?); "
        "expected one of: features, labels")]


def test_npz_labels_that_do_not_match_the_rows(tmp_path: Path, write_stack: WriteStack,
                                               stack_problems: Problems) -> None:
    np.savez_compressed(tmp_path / "points.npz", x=np.zeros((12, 2)), y=np.arange(11) % 3)
    write_stack(path="points.npz")
    assert stack_problems() == [("stack.yaml:2: data.y_key: found 'y', which holds 11 labels, but 'x' holds 12 rows; "
                                "expected one label per row")]


def test_npz_arrays_of_python_objects(tmp_path: Path, write_stack: WriteStack, stack_problems: Problems) -> None:
    np.savez(tmp_path / "points.npz", x=np.zeros((12, 2)), y=np.array([{"label": 1}] * 12, dtype=object))
    write_stack(path="points.npz")
    assert stack_problems() == [
        ("stack.yaml:2: data.y_key: found 'y', an array of Python objects in 'points.npz', which is not loaded (that "
        "would run code from the file); expected a numeric or string array")]


def test_npz_features_that_are_not_numbers(tmp_path: Path, write_stack: WriteStack, stack_problems: Problems) -> None:
    np.savez(tmp_path / "points.npz", x=np.array([["a", "b"]] * 12), y=np.arange(12) % 3)
    write_stack(path="points.npz")
    assert stack_problems() == [("stack.yaml:2: data.x_key: found 'x', an array of <U1 with shape (12, 2); expected "
                                "a numeric array with one row (or image) per sample")]


def test_one_hot_for_an_npz_file(tmp_path: Path, write_stack: WriteStack, stack_problems: Problems) -> None:
    np.savez(tmp_path / "points.npz", x=np.zeros((12, 2)), y=np.arange(12) % 3)
    write_stack(path="points.npz", preprocess={"one_hot": ["x"]})
    assert stack_problems() == [
        ("stack.yaml:5: data.preprocess.one_hot: found ['x'], but 'points.npz' is read as NPZ, which has no named "
        "columns; expected [] (one-hot encoding applies to text columns of CSV and Parquet files)")]


def test_a_gzipped_npz_file(tmp_path: Path, write_stack: WriteStack, stack_problems: Problems) -> None:
    np.savez(tmp_path / "points.npz", x=np.zeros((12, 2)), y=np.arange(12) % 3)
    (tmp_path / "points.npz.gz").write_bytes(gzip.compress((tmp_path / "points.npz").read_bytes()))
    write_stack(path="points.npz.gz")
    assert stack_problems() == [
        ("stack.yaml:4: data.path: found 'points.npz.gz', a gzip-compressed NPZ file, which is read as it is, not "
        "decompressed; expected the uncompressed NPZ file (NPZ compresses its own contents)")]


# ---------------------------------------------------------------- split fractions
def test_split_fractions_that_leave_a_split_short(tmp_path: Path, write_stack: WriteStack,
                                                  stack_problems: Problems, load: Callable[..., Dataset]) -> None:
    path = tmp_path / "points.npz"
    np.savez(path, x=np.arange(20.0).reshape(10, 2), y=np.arange(10) % 2)
    write_stack(path="points.npz", split={"validation": 0.45, "test": 0.45})
    assert stack_problems() == [
        ("stack.yaml:5: data.split: found validation 0.45 and test 0.45, which split the 10 rows of 'points.npz' into "
        "0/5/5 (train/validation/test); expected at least one row per class (a classifier has at least 2) in each: "
        "lower data.split.validation or data.split.test")]
    with pytest.raises(ValueError, match=r"^data\.split: the train split of .* would hold 0 rows for 2 classes"):
        load(FilesDatastore, path=path, split={"validation": 0.45, "test": 0.45})

    write_stack(path="points.npz", split={"validation": 0.25, "test": 0.25})
    assert stack_problems() == []
    assert len(load(FilesDatastore, path=path, split={"validation": 0.25, "test": 0.25}).y_train) == 4


def test_split_fractions_for_a_bundled_set(write_stack: WriteStack, stack_problems: Problems) -> None:
    write_stack(plugin="sklearn", dataset="iris", split={"validation": 0.49, "test": 0.49})
    assert stack_problems() == [
        ("stack.yaml:5: data.split: found validation 0.49 and test 0.49, which split the 150 rows of scikit-learn's "
        "iris into 2/74/74 (train/validation/test); expected at least one row per class (3 classes) in each: lower "
        "data.split.validation or data.split.test")]


def test_a_parquet_file_without_rows(tmp_path: Path, write_stack: WriteStack, stack_problems: Problems) -> None:
    pd.DataFrame({"x": pd.Series([], dtype=float), "target": pd.Series([], dtype=int)}).to_parquet(
        tmp_path / "points.parquet")
    write_stack(path="points.parquet")
    assert stack_problems() == [("stack.yaml:4: data.path: found 'points.parquet', which holds no rows; expected "
                                "labelled rows")]


# ---------------------------------------------------------------- idx
def test_idx_images_with_their_labels_file(mnist_files: Callable[[str], Path], write_stack: WriteStack,
                                           stack_problems: Problems) -> None:
    mnist_files("")
    mnist_files(".gz")
    write_stack(path="train-images-idx3-ubyte")
    assert stack_problems() == []
    write_stack(path="train-images-idx3-ubyte.gz")
    assert stack_problems() == []


def test_idx_labels_file_missing(tmp_path: Path, write_idx: Callable[..., Path], write_stack: WriteStack,
                                 stack_problems: Problems) -> None:
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((12, 2, 2), dtype=np.uint8))
    write_stack(path="train-images-idx3-ubyte.gz")
    assert stack_problems() == [
        (f"stack.yaml:2: data.labels_path: found no labels_path, and the labels file named after "
        f"'train-images-idx3-ubyte.gz', train-labels-idx1-ubyte.gz (or train-labels-idx1-ubyte), does not exist in "
        f"{tmp_path}; expected it there, or data.labels_path naming the labels file")]


def test_idx_labels_file_cannot_be_derived(tmp_path: Path, write_idx: Callable[..., Path], write_stack: WriteStack,
                                           stack_problems: Problems) -> None:
    write_idx(tmp_path / "pictures.idx", np.zeros((12, 2, 2), dtype=np.uint8))
    write_stack(path="pictures.idx")
    assert stack_problems() == [
        ("stack.yaml:2: data.labels_path: found no labels_path, and no labels file can be derived from 'pictures.idx' "
        "(its name has no 'images-idx3-ubyte'); expected data.labels_path naming the IDX labels file")]


def test_idx_labels_path_missing(tmp_path: Path, write_idx: Callable[..., Path], write_stack: WriteStack,
                                 stack_problems: Problems) -> None:
    write_idx(tmp_path / "pictures.idx", np.zeros((12, 2, 2), dtype=np.uint8))
    write_stack(path="pictures.idx", labels_path="answers.idx")
    assert stack_problems() == [
        (f"stack.yaml:5: data.labels_path: found 'answers.idx', which does not exist ({cwd_note()}); expected the "
        f"readable MNIST IDX labels file of data.path")]


def test_idx_label_and_image_counts_differ(tmp_path: Path, write_idx: Callable[..., Path], write_stack: WriteStack,
                                           stack_problems: Problems) -> None:
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((12, 2, 2), dtype=np.uint8))
    labels = write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(10, dtype=np.uint8))
    write_stack(path="train-images-idx3-ubyte")
    assert stack_problems() == [
        (f"stack.yaml:2: data.labels_path: found '{labels}', which holds 10 labels, but 'train-images-idx3-ubyte' "
        f"holds 12 images; expected one label per image")]


def test_idx_images_file_truncated(tmp_path: Path, write_idx: Callable[..., Path], write_stack: WriteStack,
                                   stack_problems: Problems) -> None:
    path = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 2, 2), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-3])
    write_stack(path="train-images-idx3-ubyte")
    assert stack_problems() == [
        ("stack.yaml:4: data.path: found 'train-images-idx3-ubyte', which holds 13 bytes of values, but its IDX header "
        "announces shape (4, 2, 2) (16 bytes); expected a whole IDX file (download it again)")]


def test_idx_labels_file_named_as_the_images(tmp_path: Path, write_idx: Callable[..., Path], write_stack: WriteStack,
                                             stack_problems: Problems) -> None:
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(12, dtype=np.uint8))
    write_stack(path="train-labels-idx1-ubyte")
    assert stack_problems() == [
        ("stack.yaml:4: data.path: found 'train-labels-idx1-ubyte', which holds a 1-dimensional IDX array, like a "
        "labels file; expected the IDX images file")]


def test_idx_file_with_a_bad_header(tmp_path: Path, write_stack: WriteStack, stack_problems: Problems) -> None:
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x07\x03" + bytes(20))
    write_stack(path="train-images-idx3-ubyte")
    assert stack_problems() == [
        (f"stack.yaml:4: data.path: found 'train-images-idx3-ubyte', which is not an IDX file: bad magic 00 00 07 03, "
        f"expected 00 00, a type code (08 ubyte, 09 byte, 0b short, 0c int, 0d float, 0e double) and a dimension "
        f"count; {EXPECTED_FILE}")]


# ---------------------------------------------------------------- sklearn
def test_bundled_sets_need_scikit_learn(write_stack: WriteStack, stack_problems: Problems,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)  # what importing it would find if it were not installed
    write_stack(plugin="sklearn", dataset="digits")
    assert stack_problems() == [
        (f"stack.yaml:3: data.plugin: found 'sklearn', which needs scikit-learn to load its data, not installed in this "
        f"Python environment ({sys.prefix}); expected it installed: pip install scikit-learn")]


def test_data_files_need_pyarrow_for_parquet(tmp_path: Path, write_stack: WriteStack, stack_problems: Problems,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pd.DataFrame({"x": [1.0], "target": [0]}).to_parquet(tmp_path / "points.parquet")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    write_stack(path="points.parquet")
    assert stack_problems() == [
        (f"stack.yaml:3: data.plugin: found 'files', which needs pyarrow to load its data, not installed in this Python "
        f"environment ({sys.prefix}); expected it installed: pip install pyarrow")]


def test_one_hot_for_a_bundled_set(write_stack: WriteStack, stack_problems: Problems) -> None:
    write_stack(plugin="sklearn", dataset="iris", preprocess={"one_hot": ["petal"]})
    assert stack_problems() == [
        ("stack.yaml:5: data.preprocess.one_hot: found ['petal'], but scikit-learn's iris has numeric features only; "
        "expected [] (one-hot encoding applies to named text columns of CSV and Parquet files)")]


# ---------------------------------------------------------------- what the framework sees
def test_a_cnn_for_rows_without_an_image_shape_is_refused(write_stack: WriteStack, write_csv: WriteCsv,
                                                          stack_problems: Problems) -> None:
    pytest.importorskip("aios_torch", reason="the torch framework (aios-torch) is not installed")
    write_csv()
    write_stack(path="points.csv", model={"framework": "torch", "architecture": "cnn"})
    assert stack_problems() == [
        ("stack.yaml:7: model.architecture: found 'cnn', but the data are rows of 2 features with no image shape; "
        "expected mlp, or a datastore that gives an image shape (e.g. files with image_shape: [channels, height, "
        "width])")]


def test_a_cnn_for_rows_given_an_image_shape_is_accepted(write_stack: WriteStack, write_csv: WriteCsv,
                                                         stack_problems: Problems) -> None:
    pytest.importorskip("aios_torch", reason="the torch framework (aios-torch) is not installed")
    write_csv(header="a,b,c,d,target")
    write_stack(path="points.csv", image_shape=[1, 2, 2], model={"framework": "torch", "architecture": "cnn"})
    assert stack_problems() == []
