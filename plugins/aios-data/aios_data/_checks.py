"""Before a run: what each datastore's data will look like, and what about it cannot work.

``aios validate`` and ``aios run`` ask the datastore (``aios_describe_data``,
``aios_validate``) before a run directory exists. Both answers come from one
inspection, which reads headers only (``_headers``): the values are never loaded, and
neither pandas nor scikit-learn is imported.

A problem is ``(field, message)``: the field inside the ``data`` section, and a message
that says what was found and what is expected.
"""

from __future__ import annotations

import csv
import difflib
import importlib.util
import itertools
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aios_core import DataDescription

from aios_data._bundled import BUNDLED_SETS
from aios_data._targets import target_task
from aios_data._headers import (
    FORMAT_LABELS,
    SUFFIX_FORMATS,
    HeaderError,
    TableSchema,
    csv_columns,
    derived_labels_path,
    features_per_row,
    format_from_content,
    format_from_name,
    idx_header,
    image_layout,
    is_gzip,
    npz_arrays,
    parquet_schema,
)

if TYPE_CHECKING:
    from aios_data import DataParams, FilesDatastore, SklearnDatastore

_LIBRARIES = {"numpy": "numpy", "pandas": "pandas", "sklearn": "scikit-learn"}
"""Module: distribution, for what every load imports (arrays; tables and cleaning; the stratified split)."""
_PARQUET_LIBRARIES = {"pyarrow": "pyarrow"}
_EXPECTED_DATA = "expected a readable CSV, Parquet, NPZ or MNIST IDX file"
_EXPECTED_LABELS = "expected the readable MNIST IDX labels file of data.path"
_MIN_CLASSES = 2  # a classifier's, when the file does not say how many classes it holds
_LISTED = 1000  # directory entries looked at for a hint, so a huge directory stays quick


@dataclass
class Findings:
    """What an inspection found: the problems, and what the Dataset will look like (None: unknown)."""

    problems: list[tuple[str, str]] = field(default_factory=list)
    num_features: int | None = None
    num_classes: int | None = None
    image_shape: tuple[int, int, int] | None = None
    images: bool | None = None
    rows: int | None = None
    task: str | None = None

    def add(self, field: str, message: str) -> None:
        self.problems.append((field, message))

    def description(self) -> DataDescription | None:
        images = True if self.image_shape is not None else self.images
        if self.num_features is None and self.num_classes is None and images is None and self.task is None:
            return None
        return DataDescription(self.num_features, self.num_classes, self.image_shape, images, self.task)


def split_sizes(rows: int, validation: float, test: float) -> dict[str, int]:
    """The rows of each split as ``train_test_split`` counts them: ``test`` of all rows, then ``validation`` of
    all rows out of the rest."""
    n_test = math.ceil(test * rows)
    n_val = math.ceil(validation / (1.0 - test) * (rows - n_test))
    return {"train": rows - n_test - n_val, "validation": n_val, "test": n_test}


# ---------------------------------------------------------------- sklearn
def inspect_bundled(params: SklearnDatastore.Params) -> Findings:
    """The sizes of the bundled set, and what would fail: a missing library, one-hot columns, split fractions."""
    known = BUNDLED_SETS[params.dataset]
    findings = Findings(num_features=known.features, num_classes=known.classes or None, image_shape=known.image_shape,
                        images=known.image_shape is not None, rows=known.rows,
                        task="regression" if known.classes == 0 else "classification")
    if params.task not in ("auto", findings.task):
        findings.add("task", f"found {params.task!r}, but scikit-learn's {params.dataset} is a {findings.task} data "
                             f"set; expected auto or {findings.task}")
    _check_libraries(findings, "sklearn", _LIBRARIES)
    if params.preprocess.one_hot:
        findings.add("preprocess.one_hot", f"found {params.preprocess.one_hot}, but scikit-learn's {params.dataset} "
                                           "has numeric features only; expected [] (one-hot encoding applies to "
                                           "named text columns of CSV and Parquet files)")
    _check_split(findings, params, f"scikit-learn's {params.dataset}")
    return findings


# ---------------------------------------------------------------- files
def inspect_files(params: FilesDatastore.Params, source: str) -> Findings:
    """What the file's name and header say about the Dataset, and what would fail when it is loaded.

    ``source`` is the stack file's path, named in a hint when a relative path exists
    beside it but not in the working directory.
    """
    several = len(params.targets) > 1  # several target columns: multi-output regression
    findings = Findings(task=params.task if params.task != "auto" else "regression" if several else None)
    written = params.path
    path = written.expanduser().absolute()
    problem = _file_problem(path, written, source, _EXPECTED_DATA)
    if problem:
        findings.add("path", problem)
        return _described_shape(findings, params)
    fmt = params.format if params.format != "auto" else format_from_name(path)
    if fmt is None:
        findings.add("path", _unnamed_format(written, path))
        return _described_shape(findings, params)
    libraries = {**_LIBRARIES, **(_PARQUET_LIBRARIES if fmt == "parquet" else {})}
    if _check_libraries(findings, "files", libraries):
        return _described_shape(findings, params)
    if params.labels_path is not None and fmt != "idx":
        findings.add("labels_path", f"found '{params.labels_path}', but data.path is read as {FORMAT_LABELS[fmt]}; "
                                    "expected no labels_path (it names the labels file of IDX images)")
    if several:
        if fmt not in ("csv", "parquet"):
            findings.add("target", f"found {params.targets}, but '{written}' is read as {FORMAT_LABELS[fmt]}, which "
                                   "has no named columns; expected several targets only for a CSV or Parquet table "
                                   "(an NPZ file's labels are its y_key array)")
        if params.task == "classification":
            findings.add("task", f"found 'classification', but data.target names {len(params.targets)} columns, "
                                 "which are regression targets; expected auto or regression, or one target column")
    if fmt != "csv" and fmt != "parquet" and params.preprocess.one_hot:
        findings.add("preprocess.one_hot", f"found {params.preprocess.one_hot}, but '{written}' is read as "
                                           f"{FORMAT_LABELS[fmt]}, which has no named columns; expected [] "
                                           "(one-hot encoding applies to text columns of CSV and Parquet files)")
    try:
        if _check_content(findings, params, path, fmt):
            if fmt in ("csv", "parquet"):
                findings.images = False  # table rows; an image_shape parameter makes them images
                schema = csv_columns(path) if fmt == "csv" else parquet_schema(path)
                _check_table(findings, params, schema)
            elif fmt == "npz":
                _check_npz(findings, params, path)
            else:
                _check_idx(findings, params, path, source)
    except HeaderError as error:
        findings.add("path", f"found '{written}', which {error}; {_EXPECTED_DATA}")
    except OSError as error:  # unreadable after all (it changed, or a directory of it did)
        findings.add("path", f"found '{written}', which cannot be read ({error.strerror or error}); {_EXPECTED_DATA}")
    if params.image_shape is not None and findings.num_features is not None:
        values = math.prod(params.image_shape)
        if values != findings.num_features:
            findings.add("image_shape", f"found {list(params.image_shape)}, which holds {values} values, but the rows "
                                        f"of '{written}' have {findings.num_features} features; expected a "
                                        f"[channels, height, width] whose product is {findings.num_features}")
    if params.task == "auto" and findings.task is None and not findings.problems:
        findings.task = _target_task(params, path, fmt)
    if findings.rows is not None:
        _check_split(findings, params, f"'{written}'")
    return _described_shape(findings, params)


def _target_task(params: FilesDatastore.Params, path: Path, fmt: str) -> str | None:
    """The task ``auto`` will infer from the file's target (None: known only when it loads)."""
    labels = None
    if fmt == "idx":
        labels = params.labels_path.expanduser().absolute() if params.labels_path else derived_labels_path(path)
    try:
        return target_task(params, path, fmt, labels)
    except (OSError, ValueError, EOFError, csv.Error):  # loading reports what is wrong with the values, in its words
        return None


def _described_shape(findings: Findings, params: FilesDatastore.Params) -> Findings:
    """``image_shape`` given in the stack overrides the file's; if it loads, the rows have its product as features."""
    if params.image_shape is not None:
        findings.image_shape = params.image_shape
        if findings.num_features is None:
            findings.num_features = math.prod(params.image_shape)
    return findings


def _check_content(findings: Findings, params: FilesDatastore.Params, path: Path, fmt: str) -> bool:
    """The file's compression and signature fit ``fmt``; False (and a problem) if not."""
    written, label = params.path, FORMAT_LABELS[fmt]
    how = "by its name" if params.format == "auto" else f"as data.format says ({fmt})"
    compressed_name = path.name.endswith(".gz")
    if compressed_name and fmt in ("parquet", "npz"):
        findings.add("path", f"found '{written}', a gzip-compressed {label} file, which is read as it is, not "
                             f"decompressed; expected the uncompressed {label} file ({label} compresses its own "
                             "contents)")
        return False
    if not compressed_name and fmt in ("csv", "idx") and is_gzip(path):
        findings.add("path", f"found '{written}', which holds gzip-compressed data but whose name does not end "
                             f".gz, so it would be read as it is; expected the name to end .gz ({written}.gz)")
        return False
    shown = format_from_content(path)
    if shown is not None and shown != fmt:
        fix = (f"set data.format: {shown}" if params.format != "auto"
               else f"rename it to end {_suffix_of(shown)} or set data.format: {shown}")
        findings.add("path", f"found '{written}', which holds {FORMAT_LABELS[shown]} data but is read as {label} "
                             f"({how}); expected {label} data: {fix}")
        return False
    return True


def _check_table(findings: Findings, params: FilesDatastore.Params, schema: TableSchema) -> None:
    """The target and one-hot columns exist, the other columns are numbers (as far as the header says)."""
    written, columns, targets = params.path, schema.columns, params.targets
    one_hot = params.preprocess.one_hot
    features = [name for name in columns if name not in targets]
    several = len(targets) > 1
    missing = [(index, target) for index, target in enumerate(targets) if target not in columns]
    for index, target in missing:
        findings.add(f"target.{index}" if several else "target",
                     f"found '{target}', which is not a column of '{written}'{_did_you_mean(target, columns)}"
                     f"; expected one of: {_listed(columns)}")
    if not missing and not features:
        findings.add("path", f"found '{written}', which has no column besides the target"
                             f"{'s' if several else ''} {', '.join(map(repr, targets))}; expected feature columns "
                             "beside it")
    if several and not missing:
        for index, target in enumerate(targets):
            if target in schema.non_numeric:
                findings.add(f"target.{index}", f"found '{target}', a column of {schema.non_numeric[target]} "
                                                "values, but several targets are regression targets; expected "
                                                "numeric columns")
    for index, name in enumerate(one_hot):
        if name in targets:
            findings.add(f"preprocess.one_hot.{index}", f"found '{name}', which is the target column; expected a "
                                                        "feature column (the labels are encoded anyway)")
        elif name not in columns:
            findings.add(f"preprocess.one_hot.{index}", f"found '{name}', which is not a column of '{written}'"
                                                        f"{_did_you_mean(name, features)}; expected one of: "
                                                        f"{_listed(features)}")
    for name, kind in schema.non_numeric.items() if not missing else ():  # else the target may be one
        if name not in targets and name not in one_hot:
            findings.add("preprocess.one_hot", f"found no '{name}', but column '{name}' of '{written}' holds {kind} "
                                               "values, not numbers; expected it listed, to be one-hot encoded")
    findings.rows = schema.rows
    if not missing and features and not one_hot:
        findings.num_features = len(features)


def _check_npz(findings: Findings, params: FilesDatastore.Params, path: Path) -> None:
    """The feature and label arrays exist, hold numbers (or label strings), and agree in length."""
    written = params.path
    arrays = npz_arrays(path)
    names = list(arrays)
    for key_field, key in (("x_key", params.x_key), ("y_key", params.y_key)):
        if key not in arrays:
            findings.add(key_field, f"found '{key}', which is not an array of '{written}'{_did_you_mean(key, names)}"
                                    f"; expected one of: {_listed(names) or '(no arrays)'}")
    x, y = arrays.get(params.x_key), arrays.get(params.y_key)
    pickled = ", which is not loaded (that would run code from the file); expected a numeric"
    if x is not None:
        if x.holds_objects:
            findings.add("x_key", f"found '{params.x_key}', an array of Python objects in '{written}'{pickled} array")
            x = None
        elif x.kind not in "biuf" or not x.shape:
            findings.add("x_key", f"found '{params.x_key}', an array of {x.dtype} with shape {x.shape}; expected a "
                                  "numeric array with one row (or image) per sample")
            x = None
        else:
            findings.rows = x.shape[0]
            findings.num_features = features_per_row(x.shape)
            findings.image_shape = image_layout(x.shape)[0]
            findings.images = findings.image_shape is not None
    if y is not None:
        if y.holds_objects:
            findings.add("y_key", f"found '{params.y_key}', an array of Python objects in '{written}'{pickled} or "
                                  "string array")
        elif not (len(y.shape) == 1 or len(y.shape) == 2 and y.shape[1] == 1):
            findings.add("y_key", f"found '{params.y_key}', an array of shape {y.shape}; expected one label per "
                                  "row, shape (n,)")
        elif x is not None and y.shape[0] != x.shape[0]:
            findings.add("y_key", f"found '{params.y_key}', which holds {y.shape[0]} labels, but '{params.x_key}' "
                                  f"holds {x.shape[0]} rows; expected one label per row")


def _check_idx(findings: Findings, params: FilesDatastore.Params, path: Path, source: str) -> None:
    """The images header is whole and of images; the labels file exists and holds one label per image."""
    written = params.path
    images = idx_header(path)
    if not path.name.endswith(".gz"):
        stored = path.stat().st_size - images.offset
        if stored != images.value_bytes:
            findings.add("path", f"found '{written}', which holds {stored} bytes of values, but its IDX header "
                                 f"announces shape {images.shape} ({images.value_bytes} bytes); expected a whole "
                                 "IDX file (download it again)")
            return
    if len(images.shape) < 2:
        findings.add("path", f"found '{written}', which holds a 1-dimensional IDX array, like a labels file; "
                             "expected the IDX images file")
        return
    findings.rows = images.shape[0]
    findings.num_features = features_per_row(images.shape)
    findings.image_shape = image_layout(images.shape)[0]

    if params.labels_path is not None:
        labels_written = params.labels_path
        labels = labels_written.expanduser().absolute()
        problem = _file_problem(labels, labels_written, source, _EXPECTED_LABELS)
    else:
        derived = derived_labels_path(path)
        if derived is None:
            findings.add("labels_path", f"found no labels_path, and no labels file can be derived from '{path.name}' "
                                        "(its name has no 'images-idx3-ubyte'); expected data.labels_path naming "
                                        "the IDX labels file")
            return
        labels = labels_written = derived
        problem = _file_problem(derived, derived, source, _EXPECTED_LABELS) if derived.is_file() else (
            f"found no labels_path, and the labels file named after '{path.name}', {derived.name} (or "
            f"{_other_compression(derived.name)}), does not exist in {derived.parent}; expected it there, or "
            "data.labels_path naming the labels file")
    if problem:
        findings.add("labels_path", problem)
        return
    try:
        header = idx_header(labels)
    except HeaderError as error:
        findings.add("labels_path", f"found '{labels_written}', which {error}; {_EXPECTED_LABELS}")
        return
    if len(header.shape) != 1:
        findings.add("labels_path", f"found '{labels_written}', which holds an IDX array of shape {header.shape}; "
                                    "expected one label per image, shape (n,)")
    elif header.shape[0] != images.shape[0]:
        findings.add("labels_path", f"found '{labels_written}', which holds {header.shape[0]} labels, but "
                                    f"'{written}' holds {images.shape[0]} images; expected one label per image")


# ---------------------------------------------------------------- shared
def _check_libraries(findings: Findings, plugin: str, libraries: dict[str, str]) -> bool:
    """A problem naming the libraries loading needs that are not installed; True if any is missing."""
    missing = [distribution for module, distribution in libraries.items() if importlib.util.find_spec(module) is None]
    if missing:
        findings.add("plugin", f"found '{plugin}', which needs {' and '.join(missing)} to load its data, not "
                               f"installed in this Python environment ({sys.prefix}); expected "
                               f"{'it' if len(missing) == 1 else 'them'} installed: pip install {' '.join(missing)}")
    return bool(missing)


def _check_split(findings: Findings, params: DataParams, what: str) -> None:
    """Each split gets a row of every class, as far as the row (and class) count before cleaning tells."""
    rows, split = findings.rows, params.split
    if rows == 0:
        findings.add("path", f"found {what}, which holds no rows; expected labelled rows")
        return
    classes = 1 if findings.task == "regression" else findings.num_classes or _MIN_CLASSES
    sizes = split_sizes(rows, split.validation, split.test)
    if min(sizes.values()) >= classes:
        return
    per_class = f"{classes} classes" if findings.num_classes else f"a classifier has at least {classes}"
    findings.add("split", f"found validation {split.validation} and test {split.test}, which split the {rows} rows "
                          f"of {what} into {sizes['train']}/{sizes['validation']}/{sizes['test']} "
                          f"(train/validation/test); expected at least one row per class ({per_class}) in each: "
                          "lower data.split.validation or data.split.test")


def _file_problem(path: Path, written: Path, source: str, expected: str) -> str | None:
    """Why ``path`` (``written`` in the stack) cannot be read as a data file, or None."""
    found = f"found '{written}'"
    if not path.exists():
        return f"{found}, which does not exist{_missing_hint(path, written, source)}; {expected}"
    if path.is_dir():
        return f"{found}, which is a directory{_directory_hint(path)}; {expected}"
    if not path.is_file():
        return f"{found}, which is not a regular file (a pipe or a device); {expected}"
    try:
        with path.open("rb") as stream:
            stream.read(1)
    except OSError as error:
        return f"{found}, which cannot be read ({error.strerror or error}); {expected}"
    return None


def _missing_hint(path: Path, written: Path, source: str) -> str:
    notes = []
    if path.is_symlink():
        notes.append(f"it is a link to {os.readlink(path)}, which does not exist")
    if not written.expanduser().is_absolute():
        notes.append(f"relative paths are read from the working directory {Path.cwd()}")
        beside = Path(source).absolute().parent / written
        if source and beside.is_file():
            notes.append(f"the stack file's directory has one: write '{os.path.relpath(beside)}' or an absolute path")
            return f" ({'; '.join(notes)})"
    if path.parent.is_dir():
        entries = [entry.name for entry in itertools.islice(os.scandir(path.parent), _LISTED)]
        close = difflib.get_close_matches(path.name, entries, n=1)
        if close:
            notes.append(f"did you mean '{written.with_name(close[0])}'?")
    else:
        notes.append(f"the directory {path.parent} does not exist either")
    return f" ({'; '.join(notes)})" if notes else ""


def _directory_hint(path: Path) -> str:
    entries = sorted(entry.name for entry in itertools.islice(os.scandir(path), _LISTED)
                     if format_from_name(Path(entry.name)) is not None)
    return f" (holding {_listed(entries, 4)})" if entries else ""


def _unnamed_format(written: Path, path: Path) -> str:
    suffixes = ", ".join(sorted({*SUFFIX_FORMATS, ".csv.gz"}))
    shown = format_from_content(path)
    if shown is not None:
        return (f"found '{written}', whose name does not say its format, though its content is "
                f"{FORMAT_LABELS[shown]}; expected data.format: {shown}, or a name ending {_suffix_of(shown)}")
    return (f"found '{written}', whose name does not say its format; expected a name ending {suffixes} or like "
            "MNIST's (train-images-idx3-ubyte[.gz]), or data.format set to csv, parquet, npz or idx")


def _suffix_of(fmt: str) -> str:
    return next(suffix for suffix, named in SUFFIX_FORMATS.items() if named == fmt)


def _other_compression(name: str) -> str:
    return name[: -len(".gz")] if name.endswith(".gz") else f"{name}.gz"


def _did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, [str(choice) for choice in choices], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _listed(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(str(name) for name in names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
