"""From raw features and labels to a ``Dataset``: clean, encode, split, scale.

Both datastores end here, so every source gets the same cleaning, the same split
(stratified for classification, uniformly random for regression), the same task
inference and the same record of what was applied.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
from aios_core import Dataset, array_header, drift_reference, hash_arrays
from aios_core.batches import IndexedSplit

from aios_data._checks import split_sizes
from aios_data._statistics import BLOCK_ROWS, ColumnStatistics, Scaling, fit_scaling, needs_statistics
from aios_data._targets import REGRESSION_DISTINCT_VALUES, inferred_task

if TYPE_CHECKING:
    from aios_data import DataParams

FIELD = "data"
"""The stack key of the datastore; error messages start with ``data.<field>``."""

_T = TypeVar("_T")
_MIN_ROWS_PER_CLASS = 3  # one each for train, validation and test

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


Watch = Callable[[np.ndarray], None]
"""Shown an array's bytes in C order as they are read: consecutive pieces (uint8 arrays, each a whole number of
values), in order, on one background thread at a time."""


@dataclass(frozen=True)
class PendingArray:
    """An array known from its header, its values still to be read (``read(watch)``): an NPZ archive's features,
    which ``prepare_dataset`` reads on another thread while it splits the labels (``read_data_file(pending=True)``).

    ``read(watch)`` returns the values; ``watch`` (a ``Watch``, or None) has seen all their bytes by then.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    read: Callable[[Watch | None], np.ndarray]
    done: Callable[[], None] = lambda: None
    """Called once the values are read, on the thread that waited for them (progress reports: a monitor's hook
    runs on the run's thread)."""

    @property
    def ndim(self) -> int:
        return len(self.shape)


@dataclass
class RawData:
    """Features and labels as loaded, before any cleaning.

    ``features`` is a table of feature columns (CSV, Parquet) or a numeric array with one
    row per sample (any trailing shape), or such an array still to be read (``PendingArray``). ``class_names`` names integer labels 0..k-1 when
    the source provides names (scikit-learn's ``target_names``). ``label_field`` is the
    parameter that chose the labels, for error messages.
    """

    name: str
    source: str
    features: pd.DataFrame | np.ndarray | PendingArray
    labels: pd.Series | np.ndarray
    label_field: str
    class_names: list[str] | None = None
    feature_names: list[str] | None = None
    image_shape: tuple[int, int, int] | None = None
    task: str | None = None
    """The source's own task (scikit-learn's diabetes: regression); None lets the values decide."""


def prepare_dataset(raw: RawData, params: DataParams, *, seed: int, hash_params: dict[str, Any],
                    log: logging.Logger | None = None, progress: Progress | None = None) -> Dataset:
    """Encode, hash, clean, split (stratified, from ``seed``) and scale ``raw`` into a ``Dataset``.

    ``content_hash`` covers the encoded rows before cleaning (the features as float32, the labels,
    the one-hot categories), ``hash_params`` and ``seed``, since all three decide the splits: the
    same table gives the same hash whether it came as CSV, Parquet or NPZ. The features are
    encoded as one float32 matrix (what the models take; a CSV's decimals and float64 columns are
    rounded once, as they are read) and ``raw.features`` is replaced by it, so the table as read is
    freed before the splits are made. The matrix is kept whole and each split is a view of it
    (``aios_core.batches.IndexedSplit``: its rows' numbers, scaled as they are read; ``Dataset.views``),
    so no scaled copy is made unless someone asks for a whole ``x_*`` array. ``progress`` hears the
    pass over the train rows (``statistics``).
    """
    table = isinstance(raw.features, pd.DataFrame)
    one_hot = list(params.preprocess.one_hot)
    _check_features(raw, one_hot)
    preprocessing: dict[str, Any] = {}
    categories: dict[str, list[str]] = {}
    missing_categories = None
    values, missing = _label_values(raw.labels, raw.source)
    labelled = any_nan = features_digest = None
    if isinstance(raw.features, PendingArray):
        # the features are read on another thread while the labels are split here; that split holds if no row is
        # dropped. Each piece read is checked for NaN and hashed (float32: the matrix's bytes) as it comes.
        pending, watch = raw.features, _FeatureWatch(raw.features)
        reading = _in_background(pending.read, watch, alone=True)
        labelled = _now(_split_labels, values, None, raw, params, seed)
        raw.features, any_nan, features_digest = reading.result(), watch.any_nan, watch.digest
        pending.done()
    if table:
        missing_categories = _missing_category_rows(raw.features, one_hot)
        preprocessing["columns"] = [str(column) for column in raw.features.columns]
        x, feature_names, categories = _encode_table(raw.features, one_hot)
        preprocessing["one_hot"] = categories
    else:
        x, feature_names = _as_matrix(raw.features), raw.feature_names
    raw.features = x  # the table as read is no longer needed: let it go before the splits are made
    _release_arrow_memory()
    hashing = _in_background(_content_hash, x, values, missing,
                             {"one_hot": categories, "params": hash_params, "seed": seed}, features_digest)
    row_numbers = None  # each kept row's number in the table as read (what a hash split hashes); None: all, in order

    dropped_missing = dropped_duplicates = 0
    if params.clean.drop_missing:
        drop = missing | _missing_feature_rows(x, missing_categories, any_nan)
        dropped_missing = int(drop.sum())
        x, values, missing, row_numbers = _take(~drop, x, values, missing, row_numbers)
    if params.clean.drop_duplicates:
        drop = _duplicate_rows(x, _label_keys(values, missing), table)
        dropped_duplicates = int(drop.sum())
        x, values, missing, row_numbers = _take(~drop, x, values, missing, row_numbers)
    raw.features = x
    if missing.any():
        raise ValueError(f"{FIELD}.clean.drop_missing: {int(missing.sum())} rows of {raw.source} have no label; "
                         f"set data.clean.drop_missing to true to drop them")
    if len(values) == 0:
        raise ValueError(f"{FIELD}.clean: no rows of {raw.source} are left after cleaning "
                         f"({dropped_missing} with missing values, {dropped_duplicates} duplicates)")

    image_shape = _check_image_shape(raw, x.shape[1])
    if labelled is not None and row_numbers is None:  # no row dropped: the split made while the features were read
        split = labelled.result()
    else:
        split = _split_labels(values, row_numbers, raw, params, seed)
    task, reason, y, class_names, (train, val, test), target_scaling = split
    del values

    if log is not None:
        log.info("data %s: task %s (%s)", raw.name, task, reason)
        log.info("data %s: %d rows kept (%d with missing values and %d duplicates dropped), "
                 "%d features, %s; split %d/%d/%d", raw.name, len(y), dropped_missing,
                 dropped_duplicates, x.shape[1],
                 f"{y.shape[1]} target(s)" if task == "regression" else f"{len(class_names)} classes",
                 len(train), len(val), len(test))
    views, scaling, bounds = _indexed_splits(x, (train, val, test), y, params, progress)
    content_hash = hashing.result()
    raw.features = x = None  # type: ignore[assignment]  # the views hold the rows now
    preprocessing.update(scaling.record)
    preprocessing["dropped_missing"] = dropped_missing
    preprocessing["dropped_duplicates"] = dropped_duplicates
    preprocessing["task"] = {"task": task, "declared": params.task != "auto", "reason": reason}
    # What a server needs to score drift of live rows (as fed to the model) against this split: aios_core.drift.
    # A regression set has no class shares to compare (its labels are numbers): the features' drift only.
    labels = views["train"].y if task == "classification" else np.empty(0, dtype=np.int64)
    preprocessing["drift_reference"] = drift_reference(views["train"], labels, class_names,
                                                       feature_names=feature_names, bounds=bounds)
    return Dataset(
        name=raw.name,
        x_train=None, y_train=views["train"].y,  # type: ignore[arg-type]  # None: gathered when asked
        x_val=None, y_val=views["val"].y,  # type: ignore[arg-type]
        x_test=None, y_test=views["test"].y,  # type: ignore[arg-type]
        views=views,
        class_names=class_names,
        content_hash=content_hash,
        image_shape=image_shape,
        feature_names=feature_names,
        preprocessing=preprocessing,
        task=task,
        target_names=_target_names(raw) if task == "regression" else [],
        target_scaling=target_scaling,
    )


def _split_labels(values: np.ndarray, row_numbers: np.ndarray | None, raw: RawData, params: DataParams,
                  seed: int) -> tuple[str, str, np.ndarray, list[str], tuple[np.ndarray, ...], dict[str, Any]]:
    """The task (and why), the labels as the ``Dataset`` holds them, the class names, the train, validation and
    test rows and the target's scaling, of the kept rows' label ``values`` (``row_numbers``: their rows in the
    table as read, None for all in order)."""
    classes, inverse = _unique(values)
    task, reason = _task(values, len(classes), raw, params)
    if task == "regression":
        y, class_names = values.astype(np.float64), []
        splits = (_hash_split(_numbers(row_numbers, len(y)), params, seed, raw.source)
                  if params.split.method == "hash" else _random_split(len(y), params, seed, raw.source))
        y, target_scaling = _scale_targets(y, splits[0], params)
    else:
        y, class_names = _encode_labels(classes, inverse, raw)
        splits = (_hash_split(_numbers(row_numbers, len(y)), params, seed, raw.source)
                  if params.split.method == "hash" else _stratified_split(y, class_names, params, seed, raw.source))
        target_scaling = {}
    return task, reason, y, class_names, splits, target_scaling


def _content_hash(x: np.ndarray, values: np.ndarray, missing: np.ndarray, settings: dict[str, Any],
                  features_digest: Any = None) -> str:
    """The hash of the encoded rows: features as float32 (what the splits hold), labels as read, and ``settings``.

    xxh3-128 (the ``xxhash`` package), not sha256: it identifies data, it does not guard against forgery,
    and it reads 256 MB in about 0.02 s here where sha256 takes 0.4 s. ``features_digest``: a digest that has
    been fed ``x`` already, as it was read (``_FeatureWatch``); the same hash.
    """
    import xxhash

    labels = values.tolist() if values.dtype.hasobject else values  # text labels as text, not object pointers
    if features_digest is not None:
        return hash_arrays(labels, missing, settings, digest=features_digest)
    return hash_arrays(x, labels, missing, settings, digest=xxhash.xxh3_128())


class _FeatureWatch:
    """What the NPZ read's background thread works out from the features' bytes as they arrive (a ``Watch``):
    whether a value is NaN (each piece's ``min``, which is NaN as soon as one value is) and, for float32 features,
    the content hash's digest of the matrix they make (``digest``; None for another dtype, converted afterwards).
    Each piece is still in the cache from its read: a pass over the whole matrix afterwards reads it from memory."""

    def __init__(self, pending: PendingArray) -> None:
        self.any_nan = False
        self.digest: Any = None
        self._dtype = np.dtype(pending.dtype)
        if self._dtype == np.float32:
            import xxhash

            self.digest = xxhash.xxh3_128()
            self.digest.update(array_header(np.float32, (pending.shape[0], math.prod(pending.shape[1:]))))

    def __call__(self, piece: np.ndarray) -> None:
        if self.digest is not None:
            self.digest.update(piece)
        if self._dtype.kind == "f" and piece.size and not self.any_nan:
            self.any_nan = bool(np.isnan(piece.view(self._dtype).min()))


def _in_background(function: Callable[..., _T], *args: Any, alone: bool = False) -> Future[_T]:
    """``function(*args)`` on one of the datastore's background threads, for work that releases the GIL (the content
    hash beside the splitting, an NPZ member's CRC-32 beside its read, half of the statistics' pass); here and now
    when no thread can be started.

    Two threads, started on first use and kept: starting a thread per call cost 0.1-2 ms here, and an NPZ read
    makes one call per 16 MiB. A forked child starts its own. ``alone``: on a thread of its own instead, for work
    that waits for the shared threads itself (an NPZ read waits for its CRC-32 sums: two such reads on the shared
    threads at once would hold both and wait for ever).
    """
    global _BACKGROUND
    try:
        if alone:
            own = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aios-data-alone")
            try:
                return own.submit(function, *args)
            finally:
                own.shutdown(wait=False)  # the submitted call still runs to the end
        if _BACKGROUND is None or _BACKGROUND[0] != os.getpid():
            _BACKGROUND = (os.getpid(), ThreadPoolExecutor(max_workers=2, thread_name_prefix="aios-data"))
        return _BACKGROUND[1].submit(function, *args)
    except RuntimeError:  # no thread to be had (a cap on address space, say): do it here and now
        return _now(function, *args)


def _now(function: Callable[..., _T], *args: Any) -> Future[_T]:
    """``function(*args)`` called here and now, its result or its exception held for later (``Future.result``)."""
    done: Future[_T] = Future()
    try:
        done.set_result(function(*args))
    except Exception as error:  # noqa: BLE001 -- raised again by result(), if the caller still wants it
        done.set_exception(error)
    return done


_BACKGROUND: tuple[int, ThreadPoolExecutor] | None = None
"""The process that started the background threads, and their executor."""


def _release_arrow_memory() -> None:
    """Give the memory pyarrow's pool keeps after freeing (a Parquet table's columns) back to the system."""
    import sys

    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()


# ---------------------------------------------------------------- the task
def _task(values: np.ndarray, distinct: int, raw: RawData, params: DataParams) -> tuple[str, str]:
    """The task and why: declared (``data.task``), the source's own, or inferred from the target's values."""
    numeric = values.dtype.kind in "iuf"
    if values.ndim == 2:  # several target columns
        if params.task == "classification":
            raise ValueError(f"{FIELD}.task: several target columns are regression targets; set data.task to auto "
                             "or regression, or name one target column")
        return "regression", f"{values.shape[1]} target columns: multi-output regression"
    if params.task == "regression" and not numeric:
        example = next(iter(values.tolist()), "")
        raise ValueError(f"{FIELD}.task: regression needs a numeric target, but {raw.label_field} of {raw.source} "
                         f"holds text (found {example!r}); set data.task to classification or pick a numeric target")
    if params.task != "auto":
        return params.task, "declared in data.task"
    if raw.task is not None:
        return raw.task, f"{raw.source} is a {raw.task} data set"
    if inferred_task(numeric, distinct) == "regression":
        return "regression", (f"inferred: numeric target with {distinct} distinct values "
                              f"(> {REGRESSION_DISTINCT_VALUES}); set data.task to override")
    return "classification", (f"inferred: {'numeric' if numeric else 'text'} target with {distinct} distinct values; "
                              "set data.task to override")


def _target_names(raw: RawData) -> list[str]:
    if isinstance(raw.labels, pd.DataFrame):
        return [str(name) for name in raw.labels.columns]
    name = raw.labels.name if isinstance(raw.labels, pd.Series) else None
    return [str(name) if name is not None else "target"]


def _random_split(rows: int, params: DataParams, seed: int, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of train, validation and test, drawn uniformly (regression: no classes to stratify on)."""
    sizes = split_sizes(rows, params.split.validation, params.split.test)
    if min(sizes.values()) < 1:
        raise ValueError(f"{FIELD}.split: the {rows} rows of {source} leave an empty split "
                         f"({sizes['train']}/{sizes['validation']}/{sizes['test']}); use more rows")
    return _drawn_split(np.zeros(rows, dtype=np.uint8), np.array([rows]), sizes, seed)


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
    """Targets as float32 (n, targets), each standardized with the train rows' statistics when asked; and the
    record (a mean and a std per target)."""
    y = y.reshape(len(y), -1)
    if params.preprocess.target_scaling == "none":
        return y.astype(np.float32), {"scaling": "none"}
    mean, std = y[train].mean(axis=0), y[train].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return ((y - mean) / std).astype(np.float32), {"scaling": "standardize", "mean": [float(m) for m in mean],
                                                    "std": [float(d) for d in std]}


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


def _names(names: list[Any], limit: int = 20) -> str:
    shown = ", ".join(str(name) for name in names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


# ---------------------------------------------------------------- labels
def _label_values(labels: pd.Series | pd.DataFrame | np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Labels as integers, floats or strings (whichever keeps them apart) and a missing mask; several target
    columns as floats (n, targets), a row missing when any of its targets is."""
    if isinstance(labels, pd.DataFrame):
        for name in labels.columns:
            column = labels[name]
            if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
                present = column.dropna()
                example = f" (found {present.iloc[0]!r})" if len(present) else ""
                raise ValueError(f"{FIELD}.target: column {name!r} of {source} is not numeric{example}; several "
                                 "target columns are regression targets: name numeric columns")
        values = labels.to_numpy(dtype="float64", na_value=np.nan, copy=True)
        missing = np.isnan(values).any(axis=1)
        values[missing] = 0.0
        return values, missing
    whole = _integer_labels(labels)
    if whole is not None:
        return whole, np.zeros(len(whole), dtype=bool)
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


def _integer_labels(labels: pd.Series | np.ndarray) -> np.ndarray | None:
    """A column of plain NumPy integers (nothing missing) as int64, as the general path gives it, without its
    float64 detour; None for any other column (floats, text, pandas' nullable integers, or integers beyond
    2**53, which that path rounds)."""
    values = labels.to_numpy() if isinstance(labels, pd.Series) and isinstance(labels.dtype, np.dtype) else labels
    if not isinstance(values, np.ndarray) or values.ndim != 1 or values.dtype.kind not in "iu":
        return None
    if len(values) and (int(values.min()) < -2**53 or int(values.max()) > 2**53):
        return None
    return values.astype(np.int64, copy=False)


def _label_keys(values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """One integer per row, equal for equal labels, -1 for a missing one (used to find duplicates)."""
    _, inverse = np.unique(values, return_inverse=True, axis=0 if values.ndim == 2 else None)
    return np.where(missing, -1, inverse.reshape(-1)).astype(np.int64)


def _unique(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)``; small non-negative integers by counting (no sort)."""
    if values.dtype.kind in "iu" and len(values) and values.min() >= 0 and values.max() < 2**20:
        present = np.flatnonzero(np.bincount(values))
        if len(present) == present[-1] + 1 and values.dtype == np.int64:  # 0..k-1, each present: its own codes
            return present.astype(values.dtype), values
        index = np.zeros(int(present[-1]) + 1, dtype=np.int64)
        index[present] = np.arange(len(present))
        return present.astype(values.dtype), index[values]
    classes, inverse = np.unique(values, return_inverse=True, axis=0 if values.ndim == 2 else None)
    return classes, inverse.reshape(-1).astype(np.int64)


def _encode_labels(classes: np.ndarray, inverse: np.ndarray, raw: RawData) -> tuple[np.ndarray, list[str]]:
    if len(classes) < 2:
        raise ValueError(f"{raw.label_field}: {raw.source} has a single class ({classes[0]!s}) after cleaning; "
                         f"a classifier needs at least two")
    if raw.class_names is not None:
        return inverse, [raw.class_names[int(value)] for value in classes]
    return inverse, [str(value) for value in classes]


# ---------------------------------------------------------------- cleaning
def _as_matrix(features: np.ndarray) -> np.ndarray:
    """Rows of float32 (the array itself when it is float32 already)."""
    return np.asarray(features, dtype=np.float32).reshape(len(features), -1)


def _missing_category_rows(frame: pd.DataFrame, one_hot: list[str]) -> np.ndarray | None:
    """Rows missing a value of a one-hot column (encoded, such a row has only zeros there)."""
    if not one_hot:
        return None
    return frame[one_hot].isna().any(axis=1).to_numpy()


def _missing_feature_rows(x: np.ndarray, missing_categories: np.ndarray | None,
                          any_nan: bool | None = None) -> np.ndarray:
    """True for each row with a NaN feature (or a missing one-hot value); one pass of ``min`` when none is
    (``any_nan``: that pass's answer, when it was had already)."""
    missing = np.zeros(len(x), dtype=bool) if missing_categories is None else missing_categories
    if not (_has_nan(x) if any_nan is None else any_nan):
        return missing
    for start in range(0, len(x), BLOCK_ROWS):
        missing[start:start + BLOCK_ROWS] |= np.isnan(x[start:start + BLOCK_ROWS]).any(axis=1)
    return missing


def _has_nan(x: np.ndarray) -> bool:
    """Whether any value of ``x`` is NaN: one pass of ``min``, which is NaN as soon as one value is."""
    return x.size > 0 and x.dtype.kind == "f" and bool(np.isnan(x.min()))


def _duplicate_rows(x: np.ndarray, keys: np.ndarray, table: bool) -> np.ndarray:
    """True for each row equal (features and label) to an earlier one."""
    if table:
        return pd.DataFrame(x + 0.0).assign(label=keys).duplicated(keep="first").to_numpy()  # + 0.0: -0.0 is 0.0
    # a digest per row keeps memory flat for large image sets; 128 bits make a collision negligible
    seen: set[bytes] = set()
    duplicate = np.zeros(len(x), dtype=bool)
    for start in range(0, len(x), BLOCK_ROWS):
        block = np.ascontiguousarray(x[start:start + BLOCK_ROWS] + 0.0)  # + 0.0 turns -0.0 into 0.0
        for offset, (row, key) in enumerate(zip(block, keys[start:start + BLOCK_ROWS].tolist())):
            digest = hashlib.blake2b(row.tobytes(), digest_size=16, person=key.to_bytes(8, "little", signed=True))
            if digest.digest() in seen:
                duplicate[start + offset] = True
            else:
                seen.add(digest.digest())
    return duplicate


def _take(keep: np.ndarray, *arrays: np.ndarray | None) -> tuple[np.ndarray | None, ...]:
    """The rows where ``keep`` is true; the inputs themselves (no copy) when it keeps every row. None stands for
    the row numbers 0..n-1 (made only when rows are dropped)."""
    if keep.all():
        return arrays
    return tuple(np.flatnonzero(keep) if array is None else array[keep] for array in arrays)


def _numbers(row_numbers: np.ndarray | None, rows: int) -> np.ndarray:
    """The kept rows' numbers in the table as read (``_take``'s None: all of them)."""
    return np.arange(rows) if row_numbers is None else row_numbers


# ---------------------------------------------------------------- encoding
def _encode_table(frame: pd.DataFrame, one_hot: list[str]) -> tuple[np.ndarray, list[str], dict[str, list[str]]]:
    """Numeric columns as they are, ``one_hot`` columns as one 0/1 column per category (sorted), in one float32
    matrix: the frame's columns are taken out of it (``pop``) one by one, so a float64 column (a CSV's decimals)
    is let go as soon as its float32 copy is made (fresh memory costs more than the copying here: 1.2 s for
    512 MiB on this VM when nothing has been freed to take it from).

    The matrix is written a block of rows at a time, so the block being filled stays in the processor's
    cache while each column is copied into it.
    """
    if not one_hot and len(frame.columns) and _one_matrix(frame):
        x = frame.to_numpy()  # a view of the matrix the frame was made of (aios_data._files reads Parquet so)
        owner = x
        while isinstance(owner.base, np.ndarray):
            owner = owner.base
        if owner.flags.writeable:  # read-only as pandas hands it out (copy on write), not as it was made
            x.flags.writeable = True
        return x, [str(column) for column in frame.columns], {}
    names: list[str] = []
    categories: dict[str, list[str]] = {}
    sources: list[tuple[np.ndarray, int | None]] = []  # per matrix column: the values, or the codes and one code
    rows = len(frame)
    for column in list(frame.columns):
        values = frame.pop(column)
        if column in one_hot:
            text = values.map(lambda value: None if pd.isna(value) else str(value))
            found = sorted(value for value in set(text.tolist()) if value is not None)
            codes = pd.Categorical(text, categories=found).codes  # -1 for a missing value: zeros
            categories[str(column)] = found
            names.extend(f"{column}={category}" for category in found)
            sources.extend((codes, code) for code in range(len(found)))
        else:
            names.append(str(column))
            sources.append((_column_values(values), None))
        del values
    x = np.empty((rows, len(names)), dtype=np.float32)
    copy_columns(x, sources)
    return x, names, categories


def copy_columns(out: np.ndarray, sources: list[tuple[np.ndarray, int | None]]) -> None:
    """Write each source into its column of ``out``: its values, or (codes, code) as ``codes == code`` (one-hot).

    A block of rows at a time (2 MiB of ``out``), so the rows being filled stay in the processor's cache while
    each column is copied into them (column by column over the whole matrix, each row's cache line would be
    fetched once per column).
    """
    step = max(256, (1 << 21) // max(1, out.shape[1] * out.itemsize))
    for start in range(0, len(out), step):
        block = out[start:start + step]
        for position, (values, code) in enumerate(sources):
            part = values[start:start + step]
            block[:, position] = part if code is None else part == code


def _one_matrix(frame: pd.DataFrame) -> bool:
    """True when the frame's columns are the columns of one row-major float32 matrix."""
    if any(dtype != np.float32 for dtype in frame.dtypes):
        return False
    first = frame.iloc[:, 0].to_numpy()
    return first.strides == (frame.shape[1] * 4,) and frame.to_numpy().flags.c_contiguous


def _column_values(column: pd.Series) -> np.ndarray:
    """A numeric or bool column as a NumPy array whose values float32 holds: a view of its values when it does
    (float32, bool, 8/16-bit integers), else a float32 copy (NaN for pandas' NA)."""
    if isinstance(column.dtype, np.dtype) and _float32_exact(column.dtype):
        return column.to_numpy()
    return column.to_numpy(dtype=np.float32, na_value=np.nan)


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
    counts = np.bincount(y, minlength=len(class_names))
    fewest = int(np.argmin(counts))
    if counts[fewest] < _MIN_ROWS_PER_CLASS:
        raise ValueError(f"{FIELD}.split: class {class_names[fewest]!r} has only {counts[fewest]} row(s) in {source} "
                         f"after cleaning; a stratified train/validation/test split needs at least "
                         f"{_MIN_ROWS_PER_CLASS} per class")
    # each split needs a row of every class
    sizes = split_sizes(len(y), params.split.validation, params.split.test)
    for part, size in sizes.items():
        if size < len(class_names):
            raise ValueError(f"{FIELD}.split: the {part} split of {source} would hold {size} rows for "
                             f"{len(class_names)} classes; a stratified split needs at least one row per class in "
                             f"each split: use more rows or change data.split.validation and data.split.test")
    return _drawn_split(_class_codes(y, len(class_names)), counts, sizes, seed)


def _drawn_split(codes: np.ndarray, counts: np.ndarray, sizes: dict[str, int],
                 seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train, validation and test rows: ``sizes`` rows each, each class (``codes``, with ``counts`` rows each) in
    proportion, the rows drawn with the seed; each split's rows in a random order.

    Each class's share of each split is apportioned as scikit-learn's stratified ``train_test_split`` apportions it
    (test out of all rows, then validation out of the rest: the same number of rows per class and split). Then
    one permutation of all rows, from NumPy's ``RandomState`` (whose stream NumPy keeps the same from version to
    version), orders each class's rows: its first rows go to test, the next to validation, the rest to train.
    One shuffle of the rows where the two calls of ``train_test_split`` make four (0.03 s against 0.07-0.09 s per
    million rows here; the rows differ from scikit-learn's).
    """
    from sklearn.utils.extmath import _approximate_mode

    state = seed % 2**32
    cut, rest = np.random.RandomState(state), np.random.RandomState(state)  # as train_test_split's two calls draw
    kept = _approximate_mode(counts, len(codes) - sizes["test"], cut)  # per class: the rows not in test
    train = _approximate_mode(kept, sizes["train"], rest)
    permutation = cut.permutation(len(codes))
    drawn = np.empty(len(codes), dtype=np.uint8)  # the split of each row, in the permutation's order
    drawn[np.argsort(codes[permutation], kind="stable")] = np.repeat(  # class by class: test, validation, train
        np.tile(np.array([_TEST, _VALIDATION, _TRAIN], dtype=np.uint8), len(counts)),
        np.column_stack([counts - kept, kept - train, train]).reshape(-1))
    return tuple(permutation[drawn == part] for part in (_TRAIN, _VALIDATION, _TEST))  # type: ignore[return-value]


_TRAIN, _VALIDATION, _TEST = 0, 1, 2


def _class_codes(y: np.ndarray, classes: int) -> np.ndarray:
    """Class numbers 0..classes-1 in the smallest unsigned dtype: NumPy's stable argsort of 8- and 16-bit integers
    is a radix sort (the same order as a merge sort), and gathering them moves a byte or two per row."""
    if classes <= 2**8:
        return y.astype(np.uint8)
    return y.astype(np.uint16) if classes <= 2**16 else y


# ---------------------------------------------------------------- scaling
def _indexed_splits(x: np.ndarray, splits: tuple[np.ndarray, ...], y: np.ndarray, params: DataParams,
                    progress: Progress | None) -> tuple[dict[str, IndexedSplit], Scaling, tuple[np.ndarray, np.ndarray]]:
    """Each split as an ``IndexedSplit`` over ``x`` (its rows' numbers), scaled with the train rows' statistics as
    rows are read; the scaling; and the train rows' per-feature range as scaled (for the drift reference).

    One pass over the train rows, gathered a block at a time into one reused buffer: no split is copied.
    """
    train = splits[0]
    reporter = Reporter(progress, "statistics", len(train))
    statistics = _rows_statistics(x, train, reporter).finish()
    reporter.finish()
    scaling = fit_scaling(params.preprocess, statistics if needs_statistics(params.preprocess) else None)
    # (x - shift) / divisor rounded to float32 is monotonic: the scaled range is the scaled raw range
    ends = [np.asarray(scaling.apply(np.array([values], dtype=np.float64)).astype(np.float32)[0], dtype=np.float64)
            for values in (statistics.min, statistics.max)]
    bounds = (np.fmin(*ends), np.fmax(*ends))
    views = {name: IndexedSplit(x, y[rows], rows, scaling.shift, scaling.divisor)
             for name, rows in zip(("train", "val", "test"), splits)}
    return views, scaling, bounds


def _rows_statistics(x: np.ndarray, rows: np.ndarray, reporter: Reporter) -> ColumnStatistics:
    """The statistics of ``x[rows]``, gathered a block at a time into a reused buffer.

    The rows are read in the matrix's order, not the split's (the statistics do not depend on it): a gather
    that moves forward through memory runs about twice as fast as one that jumps (at 3M rows here). The second
    half of many rows is read on a background thread (the passes release the GIL) and merged: 0.04-0.07 s
    against 0.07-0.09 s for one thread at 1M rows here; the merged statistics equal one pass's to float64
    rounding, and the same rows always give the same figures. The rows' numbers are listed once (one large
    array: fresh memory costs page faults, and many small lists made and freed kept costing them).
    """
    member = np.zeros(len(x), dtype=bool)
    member[rows] = True
    numbers = np.flatnonzero(member)  # the rows, in the matrix's order
    del member
    half = len(numbers) // 2 if len(numbers) >= _TWO_THREADS_ROWS else len(numbers)
    second = _in_background(_rows_in_order_statistics, x, numbers[half:], None) if half < len(numbers) else None
    accumulator = _rows_in_order_statistics(x, numbers[:half], reporter)
    if second is not None:
        accumulator.merge(second.result())
        reporter.advance(len(numbers) - half)
    return accumulator


_TWO_THREADS_ROWS = 16 * BLOCK_ROWS
"""Below this many rows the statistics' pass runs on one thread (a second would cost more than it saves)."""


def _rows_in_order_statistics(x: np.ndarray, numbers: np.ndarray, reporter: Reporter | None) -> ColumnStatistics:
    """The statistics of the rows ``numbers`` (increasing) of ``x``, gathered a block at a time into one buffer."""
    accumulator = ColumnStatistics()
    buffer = np.empty((BLOCK_ROWS, x.shape[1]), dtype=x.dtype)
    for start in range(0, len(numbers), BLOCK_ROWS):
        part = numbers[start:start + BLOCK_ROWS]
        block = buffer[:len(part)]
        np.take(x, part, axis=0, out=block, mode="clip")  # "raise" would buffer; the numbers are in range
        accumulator.update(block)
        if reporter is not None:
            reporter.advance(len(part))
    return accumulator
