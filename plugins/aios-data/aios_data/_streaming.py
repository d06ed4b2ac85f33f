"""The ``files`` datastore's streaming mode: Parquet read a row group at a time, never held whole.

``data.streaming: true`` makes ``aios_load_dataset`` do one *first pass* over every row
group of the Parquet files (a directory of them, one file, or an ``s3://`` / ``gs://`` /
``file://`` URI read through ``pyarrow.fs``): it counts the rows of each split per row
group, finds the classes (or the target's statistics for regression), the features'
statistics over the train rows and the content hash, reporting progress as ``first pass``.
Each row's split comes from a hash of its row number and the run's seed (``hash_split``),
so no row order needs to be held. The ``Dataset`` it returns carries one ``ParquetSplit``
per split (``Dataset.streams``): ``read(start, stop)`` finds the row groups holding those
positions of the split in that index, decodes them and scales their rows. The ``x_*`` /
``y_*`` arrays hold the first ``sample_rows`` rows of each split (calibration, drift
reference, latency). A ``ParquetSplit`` is picklable (locations and the small index, no
open file), so it can be shipped to other processes.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from aios_core import DataDescription, Dataset, drift_reference, hash_arrays

from aios_data._statistics import ColumnStatistics, Scaling, fit_scaling, needs_statistics

if TYPE_CHECKING:
    from aios_data import FilesDatastore
    from aios_data._prepare import Progress

FIELD = "data"
TRAIN, VALIDATION, TEST = 0, 1, 2
SPLITS = ("train", "val", "test")
_MAX_CLASSES = 10_000
"""Distinct label values tracked in the first pass; a classification target with more is refused."""
_REGRESSION_DISTINCT_VALUES = 20  # as the in-memory path's task: auto
_PARQUET_SUFFIXES = (".parquet", ".pq")
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


# ---------------------------------------------------------------- the split
def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a 64-bit integer hash whose outputs look uniform (wraps, as intended)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def hash_split(row_numbers: np.ndarray, seed: int, validation: float, test: float) -> np.ndarray:
    """Each row's split (0 train, 1 validation, 2 test) from a hash of its row number and ``seed``.

    A row's split depends on nothing else, so any reader of any part of the table agrees,
    and both modes of the ``files`` datastore give the same rows to the same split. The
    fractions hold in expectation (not exactly, as a stratified split's do).
    """
    with np.errstate(over="ignore"):
        key = _mix(np.asarray([seed % 2**64], dtype=np.uint64) + _GOLDEN)
        hashed = _mix(np.asarray(row_numbers, dtype=np.uint64) * _GOLDEN ^ key)
    uniform = (hashed >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return np.where(uniform < test, TEST, np.where(uniform < test + validation, VALIDATION, TRAIN)).astype(np.int8)


# ---------------------------------------------------------------- where the files are
def location(path: Any) -> str:
    """``data.path`` as pyarrow's ``FileSystem.from_uri`` takes it: a URI (``Path`` folds ``s3://`` into ``s3:/``), or an absolute path."""
    from pathlib import Path

    text = str(path)
    match = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]+):/+(.*)$", text)
    if match and len(match.group(1)) > 1:  # not a Windows drive letter
        scheme, rest = match.groups()
        return f"file:///{rest}" if scheme == "file" else f"{scheme}://{rest}"
    return str(Path(text).expanduser().absolute())


def parquet_files(where: str) -> tuple[Any, list[str]]:
    """The file system of ``where`` and its Parquet files (``where`` itself, or those under it, sorted by path)."""
    from pyarrow import fs

    filesystem, root = fs.FileSystem.from_uri(where)
    info = filesystem.get_file_info(root)
    if info.type == fs.FileType.NotFound:
        raise FileNotFoundError(f"{where} does not exist")
    if info.type == fs.FileType.File:
        return filesystem, [root]
    found = filesystem.get_file_info(fs.FileSelector(root, recursive=True))
    files = sorted(entry.path for entry in found
                   if entry.type == fs.FileType.File and entry.path.lower().endswith(_PARQUET_SUFFIXES))
    if not files:
        raise FileNotFoundError(f"{where} is a directory without .parquet or .pq files")
    return filesystem, files


def _open(filesystem: Any, path: str) -> Any:
    import pyarrow.parquet as pq

    return pq.ParquetFile(filesystem.open_input_file(path))


def _feature_columns(schema: Any, target: str) -> list[str]:
    """Every column but the target and pandas' stored index."""
    index = {name for name in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(name, str)}
    return [name for name in schema.names if name != target and name not in index]


# ---------------------------------------------------------------- the table, as the first pass found it
@dataclass
class StreamedTable:
    """What reading any split needs: the files, the row groups, each group's split counts, and the encoding.

    Small and picklable: locations, names and numbers (the row groups' index is one row per group).
    """

    where: str
    files: list[str]
    groups: list[tuple[int, int, int]]
    """(file index, row group index, global row number of its first row), in row order."""
    counts: np.ndarray
    """(groups, 3): the rows of each split in each group, after cleaning."""
    features: list[str]
    target: str
    seed: int
    validation: float
    test: float
    drop_missing: bool
    task: str = "classification"
    classes: np.ndarray | None = None
    scaling: Scaling | None = None
    target_mean: float = 0.0
    target_std: float = 1.0
    _filesystem: Any = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_filesystem": None}  # rebuilt from ``where`` where it is unpickled

    def filesystem(self) -> Any:
        if self._filesystem is None:
            from pyarrow import fs

            self._filesystem = fs.FileSystem.from_uri(self.where)[0]
        return self._filesystem

    def raw_group(self, group: int, parquet: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Row group ``group``'s features (float32, as the in-memory path reads them), label values, missing-row mask
        and split codes."""
        file_index, row_group, first_row = self.groups[group]
        parquet = parquet or _open(self.filesystem(), self.files[file_index])
        table = parquet.read_row_group(row_group, columns=[*self.features, self.target], use_threads=False)
        x = np.empty((table.num_rows, len(self.features)), dtype=np.float32)
        for index, name in enumerate(self.features):
            x[:, index] = table.column(name).to_numpy(zero_copy_only=False)
        labels = table.column(self.target)
        missing = np.asarray(labels.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        values = _label_values(labels)
        del table
        if self.drop_missing:
            missing = missing | np.isnan(x).any(axis=1)
        codes = hash_split(np.arange(first_row, first_row + len(x)), self.seed, self.validation, self.test)
        return x, values, missing, codes

    def encode(self, x: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows scaled as the train split's statistics say (float32), and labels as the Dataset holds them."""
        # x is a fresh array (rows gathered by a mask): scaled in place, in float64 blocks rounded once to float32
        scaled = self.scaling.apply(x) if self.scaling is not None else x
        if self.task == "regression":
            y = ((values.astype(np.float64) - self.target_mean) / self.target_std).astype(np.float32).reshape(-1, 1)
        else:
            y = np.searchsorted(self.classes, values).astype(np.int64)
        return scaled, y


def _label_values(labels: Any) -> np.ndarray:
    """Label values as numbers (float64) or text, bool labels as text (as the in-memory path reads them)."""
    from pyarrow import types

    if types.is_boolean(labels.type):
        return np.where(labels.fill_null(False).to_numpy(zero_copy_only=False), "True", "False")
    if types.is_integer(labels.type) or types.is_floating(labels.type) or types.is_decimal(labels.type):
        return np.asarray(labels.to_numpy(zero_copy_only=False), dtype=np.float64)
    return np.asarray([("" if value is None else str(value)) for value in labels.to_pylist()], dtype=str)


class ParquetSplit:
    """One split of a ``StreamedTable`` read through the ``aios_core.batches.SplitStream`` contract.

    ``read(start, stop)`` decodes the row groups that hold the split's rows ``start:stop``
    (the last one decoded is kept, so consecutive reads within a group decode it once).
    Its ``windows`` are whole row groups, as many consecutive ones as fit in ``window_rows``
    (at least one), so a shuffled epoch decodes each group once; memory is about one
    window plus one group.
    """

    def __init__(self, table: StreamedTable, split: int, window_rows: int) -> None:
        self.table, self.split = table, split
        counts = table.counts[:, split].tolist()
        self.rows = int(sum(counts))
        self.windows: list[tuple[int, int]] = []
        start = stop = 0
        for count in counts:
            if stop > start and stop - start + count > window_rows:
                self.windows.append((start, stop))
                start = stop
            stop += count
        if stop > start:
            self.windows.append((start, stop))
        self.window_rows = max((stop - start for start, stop in self.windows), default=1)
        self._cached: tuple[int, np.ndarray, np.ndarray] | None = None
        self._parquet: tuple[int, Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cached": None, "_parquet": None}

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        counts = self.table.counts[:, self.split]
        ends = np.cumsum(counts)
        start, stop = max(0, start), min(stop, self.rows)
        xs, ys = [], []
        group = int(np.searchsorted(ends, start, side="right"))
        while start < stop:
            if counts[group] == 0:  # no row of this split in the group: nothing to decode
                group += 1
                continue
            x, y = self._group(group)
            offset = int(ends[group] - counts[group])
            taken = slice(start - offset, min(stop, int(ends[group])) - offset)
            xs.append(x[taken])
            ys.append(y[taken])
            start, group = int(ends[group]), group + 1
        if not xs:
            width = len(self.table.features)
            return np.empty((0, width), dtype=np.float32), self.table.encode(np.empty((0, width)), np.empty(0))[1]
        return (xs[0], ys[0]) if len(xs) == 1 else (np.concatenate(xs), np.concatenate(ys))

    def _group(self, group: int) -> tuple[np.ndarray, np.ndarray]:
        if self._cached is None or self._cached[0] != group:
            self._cached = None  # let the previous group go before the next is decoded
            file_index = self.table.groups[group][0]
            if self._parquet is None or self._parquet[0] != file_index:
                self._parquet = (file_index, _open(self.table.filesystem(), self.table.files[file_index]))
            x, values, missing, codes = self.table.raw_group(group, self._parquet[1])
            keep = (codes == self.split) & ~missing
            self._cached = (group, *self.table.encode(x[keep], values[keep]))
        return self._cached[1], self._cached[2]


# ---------------------------------------------------------------- the first pass
def load_streamed(params: FilesDatastore.Params, *, seed: int, hash_params: dict[str, Any],
                  log: logging.Logger | None = None, progress: Progress | None = None) -> Dataset:
    """The first pass over every row group, then a ``Dataset`` whose splits stream (``Dataset.streams``)."""
    from aios_data._prepare import Reporter

    where = location(params.path)
    try:
        filesystem, files = parquet_files(where)
    except FileNotFoundError as error:
        raise ValueError(f"{FIELD}.path: {error}; streaming reads a Parquet file or a directory of them") from None
    import pyarrow.parquet as pq

    schema, features, groups, first_row = None, [], [], 0
    for index, path in enumerate(files):  # the footers only; each file is opened again when its rows are read
        with filesystem.open_input_file(path) as stream:
            metadata = pq.read_metadata(stream)
        names = metadata.schema.to_arrow_schema().names
        if schema is None:
            schema = metadata.schema.to_arrow_schema()
            if params.target not in schema.names:
                raise ValueError(f"{FIELD}.target: no column {params.target!r} in {path}; columns are: "
                                 f"{', '.join(schema.names)}")
            features = _feature_columns(schema, params.target)
        absent = [name for name in (*features, params.target) if name not in names]
        if absent:
            raise ValueError(f"{FIELD}.path: {path} has no column {absent[0]!r}, which {files[0]} has; "
                             "every file of a streamed table needs the same columns")
        for row_group in range(metadata.num_row_groups):
            groups.append((index, row_group, first_row))
            first_row += metadata.row_group(row_group).num_rows
    table = StreamedTable(where, files, groups, np.zeros((len(groups), 3), dtype=np.int64), features, params.target,
                          seed, params.split.validation, params.split.test, params.clean.drop_missing)
    table._filesystem = filesystem

    statistics, target = ColumnStatistics(), ColumnStatistics()
    digests = [hashlib.sha256() for _ in range(len(features) + 1)]
    distinct: set[Any] = set()
    numeric, integral, dropped = True, True, 0
    samples: list[list[tuple[np.ndarray, np.ndarray]]] = [[], [], []]
    sampled = [0, 0, 0]
    reporter = Reporter(progress, "first pass", first_row)
    parquet, opened = None, -1
    for group, (file_index, _, _) in enumerate(groups):
        if file_index != opened:
            parquet, opened = _open(filesystem, files[file_index]), file_index
        x, values, missing, codes = table.raw_group(group, parquet)
        for index in range(len(features)):
            digests[index].update(np.ascontiguousarray(x[:, index]).view(np.uint8))
        digests[-1].update(values.tobytes())
        if missing.any() and not params.clean.drop_missing:
            raise ValueError(f"{FIELD}.clean.drop_missing: rows of {files[file_index]} have no label; "
                             "set data.clean.drop_missing to true to drop them")
        dropped += int(missing.sum())
        numeric = numeric and values.dtype.kind == "f"
        kept_values = values[~missing]
        if numeric:
            integral = integral and bool(np.all(kept_values == np.round(kept_values)))
        if len(distinct) <= _MAX_CLASSES:
            distinct.update(np.unique(kept_values).tolist())
        for split in (TRAIN, VALIDATION, TEST):
            chosen = (codes == split) & ~missing
            table.counts[group, split] = int(chosen.sum())
            if split == TRAIN:
                statistics.update(x[chosen])
                if numeric:
                    target.update(values[chosen].reshape(-1, 1))
            if sampled[split] < params.sample_rows:
                rows = np.flatnonzero(chosen)[:params.sample_rows - sampled[split]]
                samples[split].append((x[rows], values[rows]))
                sampled[split] += len(rows)
        reporter.advance(len(x))
    reporter.finish()

    task, reason = _task(params, numeric, len(distinct))
    table.task = task
    if task == "classification":
        if len(distinct) > _MAX_CLASSES:
            raise ValueError(f"{FIELD}.task: {params.target} of {where} has more than {_MAX_CLASSES} distinct values; "
                             "set data.task to regression for a numeric target")
        table.classes = np.asarray(sorted(distinct), dtype=np.float64 if numeric else str)
        class_names = [str(int(v)) if numeric and integral else str(v) for v in table.classes.tolist()]
        if len(class_names) < 2:
            raise ValueError(f"{FIELD}.target: {where} has a single class ({class_names[0] if class_names else '-'}) "
                             "after cleaning; a classifier needs at least two")
        target_scaling: dict[str, Any] = {}
    else:
        class_names = []
        if params.preprocess.target_scaling == "standardize":
            moments = target.finish()
            std = float(moments.std[0])
            table.target_mean, table.target_std = float(moments.mean[0]), std if std > 0 else 1.0
            target_scaling = {"scaling": "standardize", "mean": [table.target_mean], "std": [table.target_std]}
        else:
            target_scaling = {"scaling": "none"}
    sizes = table.counts.sum(axis=0)
    if sizes.min() < 1:
        raise ValueError(f"{FIELD}.split: the {int(sizes.sum())} rows kept of {where} leave an empty split "
                         f"({sizes[0]}/{sizes[1]}/{sizes[2]} train/validation/test); use more rows or larger fractions")
    table.scaling = fit_scaling(params.preprocess,
                                statistics.finish() if needs_statistics(params.preprocess) else None)
    record = table.scaling.record

    arrays = []
    for split in (TRAIN, VALIDATION, TEST):
        x = np.concatenate([part for part, _ in samples[split]]) if samples[split] else np.empty((0, len(features)))
        values = (np.concatenate([part for _, part in samples[split]]) if samples[split]
                  else np.empty(0, dtype=np.float64 if numeric else str))
        arrays.extend(table.encode(x, values))
    streams = {name: ParquetSplit(table, split, params.window_rows) for split, name in enumerate(SPLITS)}
    preprocessing: dict[str, Any] = {
        "columns": features, "one_hot": {}, **record, "dropped_missing": dropped, "dropped_duplicates": 0,
        "task": {"task": task, "declared": params.task != "auto", "reason": reason},
        "streaming": {"files": len(files), "row_groups": len(groups), "rows": first_row, "split": "hash",
                      "window_rows": {name: stream.window_rows for name, stream in streams.items()},
                      "sample_rows": params.sample_rows},
    }
    labels = arrays[1] if task == "classification" else np.empty(0, dtype=np.int64)
    preprocessing["drift_reference"] = drift_reference(arrays[0], labels, class_names, feature_names=features)
    content_hash = hash_arrays([*features, params.target], [digest.hexdigest() for digest in digests],
                               {"params": hash_params, "seed": seed, "mode": "streaming"})
    name = re.sub(r"\.(parquet|pq)$", "", where.rstrip("/").rsplit("/", 1)[-1], flags=re.IGNORECASE)
    if log is not None:
        log.info("data %s: streamed from %d file(s), %d row groups: %d rows kept (%d with missing values dropped), "
                 "%d features, task %s (%s); hash split %d/%d/%d; windows of %d rows", name, len(files), len(groups),
                 int(sizes.sum()), dropped, len(features), task, reason, *sizes.tolist(), streams["train"].window_rows)
    return Dataset(name=name, x_train=arrays[0], y_train=arrays[1], x_val=arrays[2], y_val=arrays[3],
                   x_test=arrays[4], y_test=arrays[5], class_names=class_names, content_hash=content_hash,
                   image_shape=tuple(params.image_shape) if params.image_shape else None, feature_names=features,
                   preprocessing=preprocessing, task=task,
                   target_names=[params.target] if task == "regression" else [], target_scaling=target_scaling,
                   streams=streams)


def _task(params: FilesDatastore.Params, numeric: bool, distinct: int) -> tuple[str, str]:
    if params.task == "regression" and not numeric:
        raise ValueError(f"{FIELD}.task: regression needs a numeric target, but {params.target} holds text; "
                         "set data.task to classification or pick a numeric target")
    if params.task != "auto":
        return params.task, "declared in data.task"
    shown = f"more than {_MAX_CLASSES}" if distinct > _MAX_CLASSES else str(distinct)
    if numeric and distinct > _REGRESSION_DISTINCT_VALUES:
        return "regression", (f"inferred: numeric target with {shown} distinct values "
                              f"(> {_REGRESSION_DISTINCT_VALUES}); set data.task to override")
    return "classification", (f"inferred: {'numeric' if numeric else 'text'} target with {shown} distinct values; "
                              "set data.task to override")


# ---------------------------------------------------------------- before a run
def inspect_streamed(params: FilesDatastore.Params) -> tuple[DataDescription | None, list[tuple[str, str]]]:
    """What ``aios validate`` learns of a streamed table from the files' footers, and what cannot work."""
    problems: list[tuple[str, str]] = []
    if params.format not in ("auto", "parquet"):
        problems.append(("format", f"found {params.format!r} with streaming: true; expected parquet (streaming "
                                   "reads Parquet files only) or streaming: false"))
    if params.clean.drop_duplicates:
        problems.append(("clean.drop_duplicates", "found true with streaming: true, which cannot find repeated rows "
                                                  "without holding them; expected false"))
    if params.preprocess.one_hot:
        problems.append(("preprocess.one_hot", f"found {params.preprocess.one_hot} with streaming: true; expected [] "
                                               "(streaming reads numeric and boolean feature columns only)"))
    if params.split.method == "stratified":
        problems.append(("split.method", "found 'stratified' with streaming: true; expected auto or hash (a "
                                         "streamed table is split by a hash of each row's number)"))
    if params.labels_path is not None:
        problems.append(("labels_path", "found a labels file with streaming: true; expected none (the target is a "
                                        "column of the Parquet files)"))
    if len(params.targets) > 1:
        return None, [*problems, ("target", f"found {len(params.targets)} target columns with streaming: true; "
                                            "expected one (streaming reads a single target column) or streaming: "
                                            "false for several")]
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return None, [*problems, ("plugin", "found 'files' with streaming: true, which needs pyarrow, not installed; "
                                            "expected it installed: pip install pyarrow")]
    where = location(params.path)
    try:
        filesystem, files = parquet_files(where)
        parquet = _open(filesystem, files[0])
        schema = parquet.schema_arrow
    except Exception as error:  # noqa: BLE001 -- pyarrow raises several types for one cause
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        shown = where if "://" in where else params.path  # a URI as written, not as ``Path`` folds it (s3:/...)
        return None, [*problems, ("path", f"found '{shown}', which cannot be streamed ({message}); expected "
                                          "a Parquet file, a directory of them, or an s3://, gs:// or file:// URI")]
    if params.target not in schema.names:
        problems.append(("target", f"found '{params.target}', which is not a column of {files[0]}; expected one of: "
                                   f"{', '.join(schema.names[:20])}"))
        return DataDescription(images=False, task=_declared(params), streaming=True), problems
    features = _feature_columns(schema, params.target)
    from pyarrow import types

    for name in features:
        kind = schema.field(name).type
        if not (types.is_integer(kind) or types.is_floating(kind) or types.is_boolean(kind)):
            problems.append(("path", f"found column '{name}' of {files[0]} holding {kind} values; expected numbers "
                                     "or booleans (streaming does not one-hot encode)"))
    if not features:
        problems.append(("path", f"found no column besides the target in {files[0]}; expected feature columns"))
    features_count = len(features) if params.image_shape is None else int(np.prod(params.image_shape))
    return DataDescription(num_features=features_count or None, image_shape=params.image_shape, images=False
                           if params.image_shape is None else True, task=_declared(params), streaming=True), problems


def _declared(params: FilesDatastore.Params) -> str | None:
    return None if params.task == "auto" else params.task
