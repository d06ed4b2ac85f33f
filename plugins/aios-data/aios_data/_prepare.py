"""From raw features and labels to a ``Dataset``: clean, encode, split, scale.

Both datastores end here, so every source gets the same cleaning, the same split
(stratified for classification, uniformly random for regression), the same task
inference and the same record of what was applied.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from aios_core import Dataset, drift_reference, hash_arrays

from aios_data._checks import split_sizes

if TYPE_CHECKING:
    from aios_data import DataParams

FIELD = "data"
"""The stack key of the datastore; error messages start with ``data.<field>``."""

_MIN_ROWS_PER_CLASS = 3  # one each for train, validation and test
REGRESSION_DISTINCT_VALUES = 20
"""``task: auto`` picks regression for a numeric target with more distinct values than this."""
_BLOCK_ROWS = 8192
"""Rows processed at a time, so a large image set is never copied whole in float64."""

Progress = Callable[[str, int, "int | None", str], None]
"""``RunContext.report_progress``: ``(task, done, total, unit)``."""


class Reporter:
    """Hands ``done`` of ``total`` to a ``Progress`` about ``reports`` times as work advances, and once at the end."""

    def __init__(self, progress: Progress | None, task: str, total: int | None, unit: str = "rows",
                 reports: int = 20) -> None:
        self._progress, self.task, self.total, self.unit = progress, task, total, unit
        self.done = 0
        self._step = max(1, (total or 0) // reports)
        self._next = self._step

    def advance(self, count: int) -> None:
        self.done += count
        if self._progress is not None and self.done >= self._next and (self.total is None or self.done < self.total):
            self._progress(self.task, self.done, self.total, self.unit)
            self._next = self.done + self._step

    def finish(self) -> None:
        if self._progress is not None:
            final = self.done if self.total is None else self.total
            self._progress(self.task, final, final, self.unit)


@dataclass
class RawData:
    """Features and labels as loaded, before any cleaning.

    ``features`` is a table of feature columns (CSV, Parquet) or a numeric array with one
    row per sample (any trailing shape). ``class_names`` names integer labels 0..k-1 when
    the source provides names (scikit-learn's ``target_names``). ``label_field`` is the
    parameter that chose the labels, for error messages.
    """

    name: str
    source: str
    features: pd.DataFrame | np.ndarray
    labels: pd.Series | np.ndarray
    label_field: str
    class_names: list[str] | None = None
    feature_names: list[str] | None = None
    image_shape: tuple[int, int, int] | None = None
    task: str | None = None
    """The source's own task (scikit-learn's diabetes: regression); None lets the values decide."""


def prepare_dataset(raw: RawData, params: DataParams, *, seed: int, hash_params: dict[str, Any],
                    log: logging.Logger | None = None, progress: Progress | None = None) -> Dataset:
    """Clean, encode, split (stratified, from ``seed``) and scale ``raw`` into a ``Dataset``.

    ``content_hash`` covers the raw arrays, ``hash_params`` and ``seed``, since all
    three decide the splits. Once encoded, ``raw.features`` is replaced by the encoded matrix,
    so the table as read is freed while the splits are made. ``progress`` hears the passes
    over the rows (``statistics``, ``scaling``).
    """
    table = isinstance(raw.features, pd.DataFrame)
    one_hot = list(params.preprocess.one_hot)
    _check_features(raw, one_hot)
    content_hash = hash_arrays(*_hash_parts(raw.features), *_hash_parts(raw.labels),
                               {"params": hash_params, "seed": seed})

    features = raw.features if table else _as_matrix(raw.features)
    values, missing = _label_values(raw.labels)
    keys = _label_keys(values, missing)
    row_numbers = np.arange(len(values))  # each kept row's number in the table as read: what a hash split hashes

    dropped_missing = dropped_duplicates = 0
    if params.clean.drop_missing:
        drop = missing | _missing_feature_rows(features)
        dropped_missing = int(drop.sum())
        features, values, missing, keys, row_numbers = _take(~drop, features, values, missing, keys, row_numbers)
    if params.clean.drop_duplicates:
        drop = _duplicate_rows(features, keys)
        dropped_duplicates = int(drop.sum())
        features, values, missing, keys, row_numbers = _take(~drop, features, values, missing, keys, row_numbers)
    if missing.any():
        raise ValueError(f"{FIELD}.clean.drop_missing: {int(missing.sum())} rows of {raw.source} have no label; "
                         f"set data.clean.drop_missing to true to drop them")
    if len(values) == 0:
        raise ValueError(f"{FIELD}.clean: no rows of {raw.source} are left after cleaning "
                         f"({dropped_missing} with missing values, {dropped_duplicates} duplicates)")

    preprocessing: dict[str, Any] = {}
    if table:
        x, feature_names, categories = _encode_table(features, one_hot)
        preprocessing["columns"] = [str(column) for column in features.columns]
        preprocessing["one_hot"] = categories
    else:
        x, feature_names = features, raw.feature_names
    raw.features = features = x  # the table as read is no longer needed: let it go before the splits are made
    _release_arrow_memory()
    task, reason = _task(values, raw, params)
    image_shape = _check_image_shape(raw, x.shape[1])
    if task == "regression":
        y, class_names = values.astype(np.float64), []
        train, val, test = (_hash_split(row_numbers, params, seed, raw.source) if params.split.method == "hash"
                            else _random_split(len(y), params, seed, raw.source))
        y, target_scaling = _scale_targets(y, train, params)
    else:
        y, class_names = _encode_labels(values, raw)
        train, val, test = (_hash_split(row_numbers, params, seed, raw.source) if params.split.method == "hash"
                            else _stratified_split(y, class_names, params, seed, raw.source))
        target_scaling = {}
    scaling = _fit_scaling(x, train, params, Reporter(progress, "statistics", len(train)))
    preprocessing.update(scaling.record)
    preprocessing["dropped_missing"] = dropped_missing
    preprocessing["dropped_duplicates"] = dropped_duplicates
    preprocessing["task"] = {"task": task, "declared": params.task != "auto", "reason": reason}

    if log is not None:
        log.info("data %s: task %s (%s)", raw.name, task, reason)
        log.info("data %s: %d rows kept (%d with missing values and %d duplicates dropped), "
                 "%d features, %s; split %d/%d/%d", raw.name, len(y), dropped_missing,
                 dropped_duplicates, x.shape[1], "1 target" if task == "regression" else f"{len(class_names)} classes",
                 len(train), len(val), len(test))
    scaled = Reporter(progress, "scaling", len(y))
    x_train, x_val, x_test = (scaling.apply(x, rows, scaled) for rows in (train, val, test))
    scaled.finish()
    # What a server needs to score drift of live rows (as fed to the model) against this split: aios_core.drift.
    # A regression set has no class shares to compare (its labels are numbers): the features' drift only.
    labels = y[train] if task == "classification" else np.empty(0, dtype=np.int64)
    preprocessing["drift_reference"] = drift_reference(x_train, labels, class_names, feature_names=feature_names)
    return Dataset(
        name=raw.name,
        x_train=x_train, y_train=y[train],
        x_val=x_val, y_val=y[val],
        x_test=x_test, y_test=y[test],
        class_names=class_names,
        content_hash=content_hash,
        image_shape=image_shape,
        feature_names=feature_names,
        preprocessing=preprocessing,
        task=task,
        target_names=[_target_name(raw)] if task == "regression" else [],
        target_scaling=target_scaling,
    )


def _release_arrow_memory() -> None:
    """Give the memory pyarrow's pool keeps after freeing (a Parquet table's columns) back to the system."""
    import sys

    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()


# ---------------------------------------------------------------- the task
def _task(values: np.ndarray, raw: RawData, params: DataParams) -> tuple[str, str]:
    """The task and why: declared (``data.task``), the source's own, or inferred from the target's values."""
    numeric = values.dtype.kind in "iuf"
    if params.task == "regression" and not numeric:
        example = next(iter(values.tolist()), "")
        raise ValueError(f"{FIELD}.task: regression needs a numeric target, but {raw.label_field} of {raw.source} "
                         f"holds text (found {example!r}); set data.task to classification or pick a numeric target")
    if params.task != "auto":
        return params.task, "declared in data.task"
    if raw.task is not None:
        return raw.task, f"{raw.source} is a {raw.task} data set"
    distinct = len(np.unique(values))
    if numeric and distinct > REGRESSION_DISTINCT_VALUES:
        return "regression", (f"inferred: numeric target with {distinct} distinct values "
                              f"(> {REGRESSION_DISTINCT_VALUES}); set data.task to override")
    return "classification", (f"inferred: {'numeric' if numeric else 'text'} target with {distinct} distinct values; "
                              "set data.task to override")


def _target_name(raw: RawData) -> str:
    name = raw.labels.name if isinstance(raw.labels, pd.Series) else None
    return str(name) if name is not None else "target"


def _random_split(rows: int, params: DataParams, seed: int, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of train, validation and test, drawn uniformly (regression: no classes to stratify on)."""
    from sklearn.model_selection import train_test_split

    sizes = split_sizes(rows, params.split.validation, params.split.test)
    if min(sizes.values()) < 1:
        raise ValueError(f"{FIELD}.split: the {rows} rows of {source} leave an empty split "
                         f"({sizes['train']}/{sizes['validation']}/{sizes['test']}); use more rows")
    state = seed % 2**32
    rest, test = train_test_split(np.arange(rows), test_size=params.split.test, random_state=state)
    train, val = train_test_split(rest, test_size=params.split.validation / (1.0 - params.split.test),
                                  random_state=state)
    return train, val, test


def _hash_split(row_numbers: np.ndarray, params: DataParams, seed: int,
                source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of train, validation and test, each row placed by a hash of its number in the file and ``seed``
    (``split.method: hash``: the rows streaming mode gives each split, in file order)."""
    from aios_data._streaming import hash_split

    codes = hash_split(row_numbers, seed, params.split.validation, params.split.test)
    parts = tuple(np.flatnonzero(codes == split) for split in range(3))
    if min(len(part) for part in parts) < 1:
        raise ValueError(f"{FIELD}.split: the {len(row_numbers)} rows of {source} leave an empty split with "
                         f"split.method hash ({'/'.join(str(len(part)) for part in parts)}); use more rows")
    return parts  # type: ignore[return-value]


def _scale_targets(y: np.ndarray, train: np.ndarray, params: DataParams) -> tuple[np.ndarray, dict[str, Any]]:
    """Targets as float32 (n, 1), standardized with the train rows' statistics when asked; and the record."""
    if params.preprocess.target_scaling == "none":
        return y.reshape(-1, 1).astype(np.float32), {"scaling": "none"}
    mean, std = float(y[train].mean()), float(y[train].std())
    std = std if std > 0 else 1.0
    return ((y - mean) / std).reshape(-1, 1).astype(np.float32), {"scaling": "standardize", "mean": [mean],
                                                                    "std": [std]}


# ---------------------------------------------------------------- checks and hashing
def _check_features(raw: RawData, one_hot: list[str]) -> None:
    if not isinstance(raw.features, pd.DataFrame):
        if one_hot:
            raise ValueError(f"{FIELD}.preprocess.one_hot: one-hot encoding applies to named columns of CSV and "
                             f"Parquet files, not to {raw.source}")
        if raw.features.dtype.kind not in "biuf":
            raise ValueError(f"{FIELD}.path: the features of {raw.source} are not numeric (dtype {raw.features.dtype})")
        return
    columns = list(raw.features.columns)
    label_name = raw.labels.name if isinstance(raw.labels, pd.Series) else None
    for name in one_hot:
        if name not in columns:
            why = " (it is the target column)" if name == label_name else ""
            raise ValueError(f"{FIELD}.preprocess.one_hot: no feature column {name!r} in {raw.source}{why}; "
                             f"feature columns are: {_names(columns)}")
    for name in columns:
        column = raw.features[name]
        if name in one_hot or pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
            continue
        present = column.dropna()
        example = f" (found {present.iloc[0]!r})" if len(present) else ""
        raise ValueError(f"{FIELD}.path: column {name!r} of {raw.source} is not numeric{example}; "
                         f"list it in data.preprocess.one_hot to one-hot encode it")


def _hash_parts(data: pd.DataFrame | pd.Series | np.ndarray) -> list[Any]:
    """Raw data as ``hash_arrays`` parts: numeric arrays as bytes, anything else as text."""
    if isinstance(data, pd.DataFrame):
        parts: list[Any] = [[str(column) for column in data.columns]]
        for column in data.columns:
            parts.extend(_hash_parts(data[column]))
        return parts
    if isinstance(data, pd.Series):
        if pd.api.types.is_numeric_dtype(data) or pd.api.types.is_bool_dtype(data):
            array = data.to_numpy()
            if array.dtype.kind not in "biuf":  # a nullable column holding pd.NA
                array = data.to_numpy(dtype="float64", na_value=np.nan)
            return [array]
        return [[None if pd.isna(value) else str(value) for value in data.tolist()]]
    if data.dtype.kind in "biuf":
        return [data]
    return [[str(value) for value in data.tolist()]]


def _names(names: list[Any], limit: int = 20) -> str:
    shown = ", ".join(str(name) for name in names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


# ---------------------------------------------------------------- labels
def _label_values(labels: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels as integers, floats or strings (whichever keeps them apart) and a missing mask."""
    series = labels if isinstance(labels, pd.Series) else pd.Series(np.asarray(labels))
    missing = series.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        floats = series.to_numpy(dtype="float64", na_value=np.nan, copy=True)  # writable: a float column is a view
        floats[missing] = 0.0
        if np.all(np.isfinite(floats)) and np.all(floats == np.round(floats)):
            return floats.astype(np.int64), missing
        return floats, missing
    strings = np.array(["" if gone else str(value) for value, gone in zip(series.tolist(), missing)], dtype=object)
    return strings, missing


def _label_keys(values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """One integer per row, equal for equal labels, -1 for a missing one (used to find duplicates)."""
    _, inverse = np.unique(values, return_inverse=True)
    return np.where(missing, -1, inverse.reshape(-1)).astype(np.int64)


def _encode_labels(values: np.ndarray, raw: RawData) -> tuple[np.ndarray, list[str]]:
    classes, inverse = np.unique(values, return_inverse=True)
    y = inverse.reshape(-1).astype(np.int64)
    if len(classes) < 2:
        raise ValueError(f"{raw.label_field}: {raw.source} has a single class ({classes[0]!s}) after cleaning; "
                         f"a classifier needs at least two")
    if raw.class_names is not None:
        return y, [raw.class_names[int(value)] for value in classes]
    return y, [str(value) for value in classes]


# ---------------------------------------------------------------- cleaning
def _as_matrix(features: np.ndarray) -> np.ndarray:
    """Rows of floats; float32 when it holds the values exactly (8-bit images: half the memory)."""
    exact = features.dtype.kind in "bui" and features.dtype.itemsize <= 2 or features.dtype == np.float32
    return np.asarray(features, dtype=np.float32 if exact else np.float64).reshape(len(features), -1)


def _missing_feature_rows(features: pd.DataFrame | np.ndarray) -> np.ndarray:
    if isinstance(features, pd.DataFrame):
        return features.isna().any(axis=1).to_numpy()
    return np.isnan(features).any(axis=1)


def _duplicate_rows(features: pd.DataFrame | np.ndarray, keys: np.ndarray) -> np.ndarray:
    """True for each row equal (features and label) to an earlier one."""
    if isinstance(features, pd.DataFrame):
        frame = features.set_axis(range(features.shape[1]), axis=1).assign(label=keys)
        return frame.duplicated(keep="first").to_numpy()
    # a digest per row keeps memory flat for large image sets; 128 bits make a collision negligible
    seen: set[bytes] = set()
    duplicate = np.zeros(len(features), dtype=bool)
    for start in range(0, len(features), _BLOCK_ROWS):
        block = np.ascontiguousarray(features[start:start + _BLOCK_ROWS] + 0.0)  # + 0.0 turns -0.0 into 0.0
        for offset, (row, key) in enumerate(zip(block, keys[start:start + _BLOCK_ROWS].tolist())):
            digest = hashlib.blake2b(row.tobytes(), digest_size=16, person=key.to_bytes(8, "little", signed=True))
            if digest.digest() in seen:
                duplicate[start + offset] = True
            else:
                seen.add(digest.digest())
    return duplicate


def _take(keep: np.ndarray, features: pd.DataFrame | np.ndarray, *arrays: np.ndarray) -> tuple[Any, ...]:
    """The rows where ``keep`` is true; the inputs themselves (no copy) when it keeps every row."""
    if keep.all():
        return (features, *arrays)
    if isinstance(features, pd.DataFrame):
        kept = features.iloc[np.flatnonzero(keep)].reset_index(drop=True)
    else:
        kept = features[keep]
    return (kept, *(array[keep] for array in arrays))


# ---------------------------------------------------------------- encoding
def _encode_table(frame: pd.DataFrame, one_hot: list[str]) -> tuple[np.ndarray, list[str], dict[str, list[str]]]:
    """Numeric columns as they are, ``one_hot`` columns as one 0/1 column per category (sorted).

    Written column by column into one matrix, float32 when every column holds its values
    exactly in float32 (float32, bool and 8/16-bit integer columns: half the memory), else float64.
    """
    names: list[str] = []
    categories: dict[str, list[str]] = {}
    texts: dict[str, pd.Series] = {}
    for column in frame.columns:
        if column in one_hot:
            text = frame[column].map(lambda value: None if pd.isna(value) else str(value))
            found = sorted(value for value in set(text.tolist()) if value is not None)
            texts[str(column)], categories[str(column)] = text, found
            names.extend(f"{column}={category}" for category in found)
        else:
            names.append(str(column))
    exact = all(column in one_hot or _float32_exact(frame[column].dtype) for column in frame.columns)
    x = np.empty((len(frame), len(names)), dtype=np.float32 if exact else np.float64)
    position = 0
    for column in frame.columns:
        if column in one_hot:
            for category in categories[str(column)]:
                x[:, position] = texts[str(column)] == category
                position += 1
        else:
            x[:, position] = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
            position += 1
    return x, names, categories


def _float32_exact(dtype: Any) -> bool:
    """True when every value of a column of ``dtype`` is a float32 (NaN for missing ones)."""
    numpy_dtype = getattr(dtype, "numpy_dtype", dtype)  # pandas' nullable dtypes wrap a numpy one
    return numpy_dtype == np.float32 or numpy_dtype.kind == "b" or (numpy_dtype.kind in "iu" and numpy_dtype.itemsize <= 2)


def _check_image_shape(raw: RawData, num_features: int) -> tuple[int, int, int] | None:
    if raw.image_shape is None:
        return None
    shape = tuple(int(size) for size in raw.image_shape)
    if math.prod(shape) != num_features:
        raise ValueError(f"{FIELD}.image_shape: {list(shape)} holds {math.prod(shape)} values but the rows of "
                         f"{raw.source} have {num_features} features")
    return shape  # type: ignore[return-value]


# ---------------------------------------------------------------- split
def _stratified_split(y: np.ndarray, class_names: list[str], params: DataParams, seed: int,
                      source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of train, validation and test, each class in proportion."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(y, minlength=len(class_names))
    fewest = int(np.argmin(counts))
    if counts[fewest] < _MIN_ROWS_PER_CLASS:
        raise ValueError(f"{FIELD}.split: class {class_names[fewest]!r} has only {counts[fewest]} row(s) in {source} "
                         f"after cleaning; a stratified train/validation/test split needs at least "
                         f"{_MIN_ROWS_PER_CLASS} per class")
    # each split needs a row of every class
    sizes = split_sizes(len(y), params.split.validation, params.split.test)
    validation = params.split.validation / (1.0 - params.split.test)
    for part, size in sizes.items():
        if size < len(class_names):
            raise ValueError(f"{FIELD}.split: the {part} split of {source} would hold {size} rows for "
                             f"{len(class_names)} classes; a stratified split needs at least one row per class in "
                             f"each split: use more rows or change data.split.validation and data.split.test")
    state = seed % 2**32
    rows = np.arange(len(y))
    try:
        rest, test = train_test_split(rows, test_size=params.split.test, stratify=y, random_state=state)
        train, val = train_test_split(rest, test_size=validation, stratify=y[rest], random_state=state)
    except ValueError as error:
        raise ValueError(f"{FIELD}.split: cannot split the {len(y)} rows of {source} into stratified "
                         f"train/validation/test parts: {error}") from None
    return train, val, test


# ---------------------------------------------------------------- scaling
@dataclass
class _Scaling:
    """``(x - shift) / divisor`` per feature, and its JSON record."""

    shift: np.ndarray | float
    divisor: np.ndarray | float
    record: dict[str, Any]

    def apply(self, x: np.ndarray, rows: np.ndarray, reporter: Reporter | None = None) -> np.ndarray:
        """The scaled float32 rows ``x[rows]``, computed in float64."""
        out = np.empty((len(rows), x.shape[1]), dtype=np.float32)
        for start in range(0, len(rows), _BLOCK_ROWS):
            block = np.subtract(x[rows[start:start + _BLOCK_ROWS]], self.shift, dtype=np.float64)
            np.divide(block, self.divisor, out=block)  # in place: no temporary per block
            out[start:start + _BLOCK_ROWS] = block
            if reporter is not None:
                reporter.advance(len(block))
        return out


def _fit_scaling(x: np.ndarray, train: np.ndarray, params: DataParams, reporter: Reporter | None = None) -> _Scaling:
    """The scaling ``params`` asks for, with statistics of the train rows only."""
    scaling = params.preprocess.scaling
    if scaling == "none":
        return _Scaling(0.0, 1.0, {"scaling": "none"})
    if scaling == "scale":
        factor = params.preprocess.scale_factor
        return _Scaling(0.0, factor, {"scaling": "scale", "factor": int(factor) if factor.is_integer() else factor})
    mean, std, low, high = _column_statistics(x, train, reporter)
    shift, divisor = (mean, std) if scaling == "standardize" else (low, high - low)
    # a column without values (all missing, drop_missing off) is left as it is; a constant one is only shifted
    shift = np.where(np.isfinite(shift), shift, 0.0)
    divisor = np.where(np.isfinite(divisor) & (divisor > 0), divisor, 1.0)
    names = ("mean", "std") if scaling == "standardize" else ("min", "range")
    return _Scaling(shift, divisor, {"scaling": scaling, names[0]: shift.tolist(), names[1]: divisor.tolist()})


def _column_statistics(x: np.ndarray, rows: np.ndarray, reporter: Reporter | None = None) -> tuple[np.ndarray, ...]:
    """Mean, population std, min and max of each column of ``x[rows]``, ignoring NaN (nan if none).

    Block by block, merging means and squared deviations as Chan, Golub and LeVeque do.
    """
    width = x.shape[1]
    count, mean, squares = np.zeros(width), np.zeros(width), np.zeros(width)
    low, high = np.full(width, np.nan), np.full(width, np.nan)
    for start in range(0, len(rows), _BLOCK_ROWS):
        block = x[rows[start:start + _BLOCK_ROWS]].astype(np.float64)
        present = ~np.isnan(block)
        if present.all():  # the usual block (missing rows dropped): the same sums without the masks
            block_count = np.full(width, len(block))
            block_mean = block.sum(axis=0) / np.maximum(block_count, 1)
            block_squares = ((block - block_mean) ** 2).sum(axis=0)
        else:
            block_count = present.sum(axis=0)
            block_mean = np.where(present, block, 0.0).sum(axis=0) / np.maximum(block_count, 1)
            block_squares = (np.where(present, block - block_mean, 0.0) ** 2).sum(axis=0)
        total = count + block_count
        delta = block_mean - mean
        mean = mean + delta * block_count / np.maximum(total, 1)
        squares = squares + block_squares + delta**2 * count * block_count / np.maximum(total, 1)
        count = total
        low = np.fmin(low, np.fmin.reduce(block, axis=0))
        high = np.fmax(high, np.fmax.reduce(block, axis=0))
        if reporter is not None:
            reporter.advance(len(block))
    if reporter is not None:
        reporter.finish()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, mean, np.nan), np.sqrt(squares / count), low, high
