"""The task a target implies (``task: auto``), by one rule, before a run and when the data loads.

Before a run (``aios validate``), only the target is read: a CSV file's target column
(streamed by the standard library, with the rows ``clean.drop_missing`` would drop left
out, as loading does), a Parquet file's target column (pyarrow), an ``.npz`` archive's
``y_key`` array (numpy) or an IDX labels file. pandas and scikit-learn are not imported.
A file larger than ``SCAN_BYTES`` is not read: its task is then known when it loads.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path
from typing import TYPE_CHECKING

from aios_data._headers import pandas_column_names, parse_idx_header

if TYPE_CHECKING:
    from aios_data import FilesDatastore

REGRESSION_DISTINCT_VALUES = 20
"""``task: auto`` picks regression for a numeric target with more distinct values than this."""
SCAN_BYTES = 256 * 2**20
"""The largest data file whose target ``aios validate`` reads to tell the task."""
_NA_STRINGS = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                         "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})
"""What ``pandas.read_csv`` reads as a missing value (its default ``na_values``)."""


def inferred_task(numeric: bool, distinct: int) -> str:
    """The task ``auto`` means for a target: regression when it is numeric with many distinct values."""
    return "regression" if numeric and distinct > REGRESSION_DISTINCT_VALUES else "classification"


def target_task(params: FilesDatastore.Params, path: Path, fmt: str, labels: Path | None = None) -> str | None:
    """The task ``auto`` will infer for the file's target, or None when the file is too large to read it now.

    ``labels`` is the IDX labels file. Reading errors propagate (the caller reports them).
    """
    if path.stat().st_size > SCAN_BYTES:
        return None
    if fmt == "csv":
        return _csv_task(path, params.target, params.clean.drop_missing)
    if fmt == "parquet":
        return _parquet_task(path, params.target)
    if fmt == "npz":
        return _array_task(path, params.y_key)
    return _idx_task(labels) if labels is not None else None


def _csv_task(path: Path, target: str, drop_missing: bool) -> str:
    """Numbers as pandas would type the column (every present value parses as one), their distinct values counted
    over the rows loading keeps."""
    opener = gzip.open if path.name.endswith(".gz") else open
    numeric, numbers = True, set()
    with opener(path, "rt", encoding="utf-8-sig", newline="") as stream:
        rows = csv.reader(stream)
        header = pandas_column_names(next((row for row in rows if row), []))
        column = header.index(target)
        for row in rows:
            if not row:
                continue
            value = row[column] if column < len(row) else ""
            if value in _NA_STRINGS:
                continue
            kept = not drop_missing or (len(row) == len(header) and not any(cell in _NA_STRINGS for cell in row))
            try:
                number = float(value)
            except ValueError:
                return "classification"  # a text value: the column is read as text
            if kept and len(numbers) <= REGRESSION_DISTINCT_VALUES:
                numbers.add(number)
    return inferred_task(numeric=True, distinct=len(numbers))


def _parquet_task(path: Path, target: str) -> str:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from pyarrow import types

    column = pq.read_table(path, columns=[target]).column(target)
    numeric = types.is_integer(column.type) or types.is_floating(column.type)
    if numeric and types.is_floating(column.type):
        column = pc.drop_null(pc.if_else(pc.is_nan(column), None, column))  # pandas reads NaN as missing
    return inferred_task(numeric, len(pc.unique(pc.drop_null(column))))


def _array_task(path: Path, key: str) -> str:
    import numpy as np

    with np.load(path, allow_pickle=False) as archive:
        labels = archive[key]
    numeric = labels.dtype.kind in "iuf"
    present = labels[~np.isnan(labels)] if labels.dtype.kind == "f" else labels
    return inferred_task(numeric, len(np.unique(present)))


def _idx_task(labels: Path) -> str:
    import numpy as np

    opener = gzip.open if labels.name.endswith(".gz") else open
    with opener(labels, "rb") as stream:
        data = stream.read()
    header = parse_idx_header(data)
    values = np.frombuffer(data, dtype=header.dtype, offset=header.offset)
    return inferred_task(True, len(np.unique(values)))
