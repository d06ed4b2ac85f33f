"""The ``{{ cookiecutter.plugin_name }}`` datastore: gaussian blobs or a numeric CSV file, split per class and standardized."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from aios_core import Dataset, hash_arrays

if TYPE_CHECKING:
    from {{ cookiecutter.package }} import {{ cookiecutter.__class_prefix }}DatastoreParams


def load(params: {{ cookiecutter.__class_prefix }}DatastoreParams, *, seed: int) -> Dataset:
    """The splits for ``params``: the same for the same data, parameters and ``seed``."""
    if params.csv is not None:
        x, labels, feature_names = read_csv(Path(params.csv), params.target)
        name = Path(params.csv).stem
    else:
        x, labels = blobs(params.samples, params.features, params.classes, params.spread, params.blob_seed)
        feature_names, name = [f"x{i}" for i in range(params.features)], "blobs"
    class_names = sorted({str(label) for label in labels.tolist()}, key=_label_order)
    index = {name: number for number, name in enumerate(class_names)}
    y = np.array([index[str(label)] for label in labels.tolist()], dtype=np.int64)
    train, val, test = stratified_split(y, params.validation, params.test, seed)
    preprocessing: dict[str, object] = {}
    x_train, x_val, x_test = x[train], x[val], x[test]
    if params.standardize:
        mean = x_train.mean(axis=0)
        std = x_train.std(axis=0)
        std[std == 0] = 1.0  # constant features stay as they are
        x_train, x_val, x_test = ((part - mean) / std for part in (x_train, x_val, x_test))
        preprocessing["standardize"] = {"mean": mean.tolist(), "std": std.tolist()}
    hashed = params.model_dump(mode="json", exclude={"csv"})  # where a file lies is not what it holds
    return Dataset(
        name=name,
        x_train=np.ascontiguousarray(x_train, dtype=np.float32), y_train=y[train],
        x_val=np.ascontiguousarray(x_val, dtype=np.float32), y_val=y[val],
        x_test=np.ascontiguousarray(x_test, dtype=np.float32), y_test=y[test],
        class_names=class_names,
        content_hash=hash_arrays(x, y, hashed, seed),
        feature_names=feature_names,
        preprocessing=preprocessing,
    )


def _label_order(label: str) -> tuple[int, float, str]:
    """Numeric labels in numeric order (2 before 10), then the others alphabetically."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def blobs(samples: int, features: int, classes: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``samples`` rows around ``classes`` random centres (in a cube of side 10), with labels 0..classes-1."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-5.0, 5.0, size=(classes, features))
    labels = np.arange(samples) % classes
    x = centres[labels] + rng.normal(0.0, spread, size=(samples, features))
    return x.astype(np.float32), labels.astype(np.int64)


def read_csv(path: Path, target: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features (float32) and labels (as written) of a CSV file with a header row."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except OSError as error:
        raise ValueError(f"cannot read the CSV file {path}: {error.strerror or error}") from None
    if len(rows) < 2:
        raise ValueError(f"{path}: expected a header row and data rows, found {len(rows)} row(s)")
    header = [name.strip() for name in rows[0]]
    if target not in header:
        raise ValueError(f"{path}: no column {target!r} (columns: {', '.join(header)}); set target to the label column")
    label_index = header.index(target)
    features = [name for name in header if name != target]
    x = np.empty((len(rows) - 1, len(features)), dtype=np.float32)
    labels = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"{path}:{line}: {len(row)} values, expected {len(header)}")
        labels.append(row[label_index].strip())
        values = [value for index, value in enumerate(row) if index != label_index]
        try:
            x[line - 2] = [float(value) for value in values]
        except ValueError:
            raise ValueError(f"{path}:{line}: a feature value is not a number: {values}") from None
    return x, np.array(labels), features


def stratified_split(y: np.ndarray, validation: float, test: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of train, validation and test: the same fractions of every class, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        n_test, n_val = round(len(rows) * test), round(len(rows) * validation)
        parts[2].append(rows[:n_test])
        parts[1].append(rows[n_test:n_test + n_val])
        parts[0].append(rows[n_test + n_val:])
    train, val, test_rows = (rng.permutation(np.concatenate(part)) for part in parts)
    if len(train) == 0 or len(val) == 0 or len(test_rows) == 0:
        raise ValueError(f"{len(y)} rows are too few to split into train, validation ({validation}) and test ({test})")
    return train, val, test_rows
