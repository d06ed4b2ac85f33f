"""Reading and preparing a table report their progress, and read the same frame pandas reads in one call."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aios_core import Dataset, Monitor, RunContext, hookimpl
from aios_core.testing import plugin_manager

from aios_data import FilesDatastore
from aios_data._files import _read_csv, _read_numeric_parquet, _read_parquet, read_table
from aios_data._prepare import _encode_table


def _table(rows: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({f"f{i}": rng.normal(size=rows).astype(np.float32) for i in range(4)})
    frame["count"] = rng.integers(0, 9, rows)
    frame["maybe"] = np.where(rng.random(rows) < 0.1, np.nan, rng.normal(size=rows))
    frame["target"] = rng.choice(["a", "b", "c"], rows)
    return frame


class Recorder(Monitor):
    """Every ``aios_on_progress`` event: ``(phase, task, done, total, unit)``."""

    def __init__(self) -> None:
        super().__init__(name="progress-recorder")
        self.progress: list[tuple[str, str, int, int | None, str]] = []

    @hookimpl
    def aios_on_progress(self, phase: str, task: str, done: int, total: int | None, unit: str) -> None:
        self.progress.append((phase, task, done, total, unit))


def _load_recorded(path: Path, aios_run_context: Callable[..., RunContext], **params: Any) -> tuple[Dataset, Recorder]:
    recorder = Recorder()
    pm = plugin_manager(FilesDatastore(FilesDatastore.Params(path=path, **params)), recorder)
    run = aios_run_context(pm)
    run.phase = "data"
    return pm.hook.aios_load_dataset(run=run), recorder


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_table_reports_reading_and_statistics_each_ending_done(
        fmt: str, tmp_path: Path, aios_run_context: Callable[..., RunContext]) -> None:
    path = tmp_path / f"table.{fmt}"
    frame = _table()
    frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path, row_group_size=500)
    dataset, recorder = _load_recorded(path, aios_run_context, preprocess={"scaling": "standardize"})
    tasks = [task for _, task, *_ in recorder.progress]
    # The float32 matrix stays whole, its splits views scaled as rows are read: no scaling pass, whatever the columns'
    # types (this table's float64 and int64 columns are rounded to float32 as they are read).
    assert set(dataset.views) == {"train", "val", "test"}
    passes = ["reading", "statistics"]
    assert sorted(set(tasks)) == sorted(passes)
    assert [tasks.index(task) for task in passes] == sorted(tasks.index(task) for task in passes)
    for task in passes:
        reports = [(done, total, unit) for phase, name, done, total, unit in recorder.progress if name == task]
        assert all(phase == "data" for phase, *_ in recorder.progress)
        assert len(reports) <= 22, f"{task} reported {len(reports)} times; a few dozen at most"
        assert [done for done, _, _ in reports] == sorted(done for done, _, _ in reports)
        done, total, unit = reports[-1]
        assert done == total
    rows = {name: (total, unit) for _, name, _, total, unit in recorder.progress}
    assert rows["reading"] == ((3000, "rows") if fmt == "parquet" else (path.stat().st_size, "bytes"))
    assert rows["statistics"] == (len(dataset.y_train), "rows")
    kept = len(dataset.y_train) + len(dataset.y_val) + len(dataset.y_test)  # rows with a missing value dropped
    assert kept < 3000 and len(dataset.views["train"].x) == kept


def test_parquet_is_read_as_pandas_reads_it_whatever_its_row_groups_and_index(tmp_path: Path) -> None:
    frame = _table(2000)
    frame.index = pd.RangeIndex(5, 2005)
    path = tmp_path / "table.parquet"
    frame.to_parquet(path, row_group_size=300)
    assert pq.ParquetFile(path).num_row_groups == 7
    reports: list[tuple[str, int, int | None, str]] = []
    read = _read_parquet(path, lambda *report: reports.append(report))
    pd.testing.assert_frame_equal(read, pd.read_parquet(path))
    assert reports[-1] == ("reading", 2000, 2000, "rows")


def _numeric_table(rows: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({
        "small": rng.integers(-9, 9, rows).astype(np.int16),
        "target": rng.choice(["a", "b", "c"], rows),  # a label column between feature columns
        "half": rng.normal(size=rows).astype(np.float16),
        "flag": rng.random(rows) < 0.5,
        "gaps": np.where(rng.random(rows) < 0.1, np.nan, rng.normal(size=rows)).astype(np.float32),
        "wide": rng.integers(0, 2**40, rows),
        "score": rng.normal(size=rows),
    })
    frame.loc[7, "target"] = None
    return frame


@pytest.mark.parametrize("columns", [["small", "target", "flag", "gaps"], None])
def test_a_numeric_parquet_table_is_read_into_one_matrix_as_pandas_would_encode_it(
        columns: list[str] | None, tmp_path: Path) -> None:
    """Numeric columns (int16, bool, float32 with NaN, float64, int64) give a float32 matrix; the values, column
    names, labels and dtypes are those of ``pd.read_parquet`` however the file was cut and indexed, and the encoded
    matrix is the one ``_encode_table`` makes of pandas' frame (float64 and int64 values rounded once)."""
    frame = _numeric_table()[columns] if columns else _numeric_table()
    frame.index = pd.RangeIndex(5, 2005)
    path = tmp_path / "table.parquet"
    frame.to_parquet(path, row_group_size=300)
    reports: list[tuple[str, int, int | None, str]] = []
    read = _read_numeric_parquet(path, ["target"], lambda *report: reports.append(report))
    assert read is not None
    expected = pd.read_parquet(path).reset_index(drop=True)
    assert list(read.columns) == list(expected.columns)
    pd.testing.assert_series_equal(read["target"], expected["target"])
    x, names, _ = _encode_table(read.drop(columns="target"), [])
    wanted, wanted_names, _ = _encode_table(expected.drop(columns="target"), [])
    assert x.dtype == wanted.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_array_equal(x, wanted)
    assert names == wanted_names
    assert reports[-1] == ("reading", 2000, 2000, "rows")


def test_parquet_tables_the_matrix_path_does_not_take_are_read_by_pandas(tmp_path: Path) -> None:
    """Text features, integers with nulls (pandas makes them float64) and a missing target column go through
    ``pd.read_parquet`` (whose frame then names what is wrong); the table read is the same either way."""
    frame = _numeric_table(50)
    with_text = tmp_path / "text.parquet"
    frame.assign(colour=["red"] * 50).to_parquet(with_text)
    with_nulls = tmp_path / "nulls.parquet"
    table = pa.Table.from_pandas(frame, preserve_index=False)  # no pandas metadata: pandas picks the dtypes
    pq.write_table(table.set_column(0, "small", pa.array([None] + [1] * 49, pa.int16())).replace_schema_metadata(),
                   with_nulls)
    for path in (with_text, with_nulls):
        assert _read_numeric_parquet(path, ["target"], None) is None
        raw = read_table(path, "parquet", "target")
        pd.testing.assert_frame_equal(raw.features, pd.read_parquet(path).drop(columns="target"))
    assert _read_numeric_parquet(with_text, ["nothing"], None) is None
    with pytest.raises(ValueError, match="no column 'nothing'"):
        read_table(with_text, "parquet", "nothing")


@pytest.mark.parametrize("name", ["table.csv", "table.csv.gz"])
def test_csv_counted_while_read_is_the_frame_pandas_reads(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    frame = _table(2000)
    frame.loc[1500:, "count"] = np.nan  # a type pandas infers from rows far from the first: float, not int
    frame.to_csv(path, index=False)
    reports: list[tuple[str, int, int | None, str]] = []
    read = _read_csv(path, lambda *report: reports.append(report))
    pd.testing.assert_frame_equal(read, pd.read_csv(path))
    assert reports[-1] == ("reading", path.stat().st_size, path.stat().st_size, "bytes")


def test_an_npz_archive_reports_its_two_arrays_then_the_statistics_pass(
        tmp_path: Path, aios_run_context: Callable[..., RunContext]) -> None:
    path = tmp_path / "arrays.npz"
    rng = np.random.default_rng(2)
    np.savez(path, x=rng.normal(size=(600, 5)).astype(np.float32), y=np.arange(600) % 3)
    _, recorder = _load_recorded(path, aios_run_context)
    assert [(task, done, total, unit) for _, task, done, total, unit in recorder.progress if task == "reading"] == [
        ("reading", 1, 2, "arrays"), ("reading", 2, 2, "arrays")]
    assert recorder.progress[-1][1:4] == ("statistics", 420, 420)
