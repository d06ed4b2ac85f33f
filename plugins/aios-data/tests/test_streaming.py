"""The ``files`` datastore's streaming mode: Parquet read a row group at a time, with the in-memory mode's results.

Each test writes a real Parquet table (several row groups) in tmp_path and loads it through a
real plugin manager, streamed (``streaming: true``) and, to compare, in memory with the same
hash split (``split.method: hash``) and seed.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aios_core import Dataset

from aios_data import FilesDatastore
from aios_data._streaming import hash_split

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
Load = Callable[..., Dataset]


def _columns(rows: int, features: int = 6, seed: int = 0, start: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)).astype(np.float32)
    label = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.7)
    return {f"f{i}": x[:, i] for i in range(features)} | {"amount": x[:, 2] * 10 + 3, "label": label}


def _write(path: Path, rows: int = 2400, group_rows: int = 300, **kwargs: Any) -> Path:
    pq.write_table(pa.table(_columns(rows, **kwargs)), path, row_group_size=group_rows)
    return path


def _rows(dataset: Dataset, split: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*dataset.batches(split, 500))
    return np.concatenate(xs), np.concatenate(ys)


def _same_splits(streamed: Dataset, held: Dataset) -> None:
    for split in ("train", "val", "test"):
        x, y = _rows(streamed, split)
        np.testing.assert_array_equal(x, getattr(held, f"x_{split}"))
        np.testing.assert_array_equal(y, getattr(held, f"y_{split}"))


def test_the_hash_split_is_a_function_of_row_number_and_seed() -> None:
    rows = np.arange(200_000)
    codes = hash_split(rows, 7, 0.15, 0.2)
    np.testing.assert_array_equal(hash_split(rows[1000:2000], 7, 0.15, 0.2), codes[1000:2000])
    shares = np.bincount(codes, minlength=3) / len(rows)
    assert shares == pytest.approx([0.65, 0.15, 0.2], abs=0.005)
    assert (hash_split(rows, 8, 0.15, 0.2) != codes).mean() > 0.3


def test_streamed_splits_hold_the_in_memory_hash_splits_rows(tmp_path: Path, load: Load) -> None:
    path = _write(tmp_path / "t.parquet")
    streamed = load(FilesDatastore, seed=3, path=path, target="label", streaming=True, sample_rows=40)
    held = load(FilesDatastore, seed=3, path=path, target="label", split={"method": "hash"})
    _same_splits(streamed, held)
    assert streamed.class_names == held.class_names == ["0", "1", "2"]
    assert streamed.preprocessing["mean"] == pytest.approx(held.preprocessing["mean"], rel=1e-12)
    assert streamed.preprocessing["std"] == pytest.approx(held.preprocessing["std"], rel=1e-12)
    assert [len(streamed.y_train), len(streamed.y_val), len(streamed.y_test)] == [40, 40, 40]
    np.testing.assert_array_equal(streamed.x_train, held.x_train[:40])  # the sample: each split's first rows
    assert streamed.summary()["sizes"] == held.summary()["sizes"]
    assert streamed.preprocessing["streaming"]["row_groups"] == 8


def test_a_regression_target_streams_with_the_train_splits_statistics(tmp_path: Path, load: Load) -> None:
    path = _write(tmp_path / "t.parquet")
    streamed = load(FilesDatastore, path=path, target="amount", streaming=True)
    held = load(FilesDatastore, path=path, target="amount", split={"method": "hash"})
    assert streamed.task == held.task == "regression"
    assert streamed.target_scaling["mean"] == pytest.approx(held.target_scaling["mean"], rel=1e-9)
    assert streamed.target_scaling["std"] == pytest.approx(held.target_scaling["std"], rel=1e-9)
    for split in ("train", "test"):
        x, y = _rows(streamed, split)
        np.testing.assert_array_equal(x, getattr(held, f"x_{split}"))
        np.testing.assert_allclose(y, getattr(held, f"y_{split}"), rtol=1e-6, atol=1e-6)


def test_rows_with_missing_values_are_dropped_alike(tmp_path: Path, load: Load) -> None:
    columns = _columns(1200)
    columns["f3"][::7] = np.nan
    pq.write_table(pa.table(columns), tmp_path / "t.parquet", row_group_size=250)
    streamed = load(FilesDatastore, path=tmp_path / "t.parquet", target="label", streaming=True)
    held = load(FilesDatastore, path=tmp_path / "t.parquet", target="label", split={"method": "hash"})
    assert streamed.preprocessing["dropped_missing"] == held.preprocessing["dropped_missing"] == 172
    _same_splits(streamed, held)


def test_a_directory_of_files_and_a_file_uri_stream_as_one_table(tmp_path: Path, load: Load) -> None:
    whole = _write(tmp_path / "whole.parquet", rows=1500, group_rows=500)
    table = pq.read_table(whole)
    (tmp_path / "parts").mkdir()
    for index, start in enumerate((0, 500, 1000)):  # names sort in row order
        pq.write_table(table.slice(start, 500), tmp_path / "parts" / f"part-{index}.parquet", row_group_size=200)
    one = load(FilesDatastore, path=whole, target="label", streaming=True)
    parts = load(FilesDatastore, path=tmp_path / "parts", target="label", streaming=True)
    uri = load(FilesDatastore, path=f"file://{tmp_path}/parts", target="label", streaming=True)
    assert parts.preprocessing["streaming"]["files"] == 3
    for split in ("train", "val", "test"):
        for other in (parts, uri):
            np.testing.assert_array_equal(_rows(other, split)[0], _rows(one, split)[0])
    assert one.content_hash == parts.content_hash == uri.content_hash  # the rows, not how they are stored


def test_a_split_stream_pickles_without_open_files_and_reads_the_same_rows(tmp_path: Path, load: Load) -> None:
    dataset = load(FilesDatastore, path=_write(tmp_path / "t.parquet"), target="label", streaming=True,
                   window_rows=100)
    stream = dataset.streams["train"]
    list(dataset.batches("train", 64))  # opens the file system and decodes a group
    payload = pickle.dumps(stream)
    assert len(payload) < 4000
    copy = pickle.loads(payload)
    for start, stop in ((0, 10), (250, 900), (stream.rows - 5, stream.rows)):
        np.testing.assert_array_equal(copy.read(start, stop)[0], stream.read(start, stop)[0])
    ends = np.cumsum(stream.table.counts[:, 0]).tolist()  # windows of 100 rows or less: one row group each
    assert stream.windows == list(zip([0, *ends[:-1]], ends))
    assert stream.window_rows == int(stream.table.counts[:, 0].max())


def test_the_first_pass_reports_its_progress(tmp_path: Path, load: Load, aios_run_context: Any) -> None:
    from aios_core import hookimpl
    from aios_core.testing import plugin_manager

    reports: list[tuple[str, int, int | None]] = []

    class Listener:
        @hookimpl
        def aios_on_progress(self, task: str, done: int, total: int | None, unit: str) -> None:
            reports.append((task, done, total))

    component = FilesDatastore(FilesDatastore.Params(path=_write(tmp_path / "t.parquet"), target="label",
                                                     streaming=True))
    pm = plugin_manager(component, Listener())
    pm.hook.aios_load_dataset(run=aios_run_context(pm))
    assert reports[-1] == ("first pass", 2400, 2400)
    assert len([r for r in reports if r[0] == "first pass"]) >= 4


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"clean": {"drop_duplicates": True}}, "data.clean.drop_duplicates", "cannot find repeated rows"),
    ({"preprocess": {"one_hot": ["f1"]}}, "data.preprocess.one_hot", "numeric and boolean feature columns only"),
    ({"split": {"method": "stratified"}}, "data.split.method", "split by a hash of each row's number"),
    ({"target": "nope"}, "data.target", "found 'nope', which is not a column of"),
    ({"target": ["label", "amount"]}, "data.target", "found 2 target columns with streaming: true; expected one"),
])
def test_validate_refuses_what_streaming_cannot_do(tmp_path: Path, write_stack: Any, stack_problems: Any,
                                                   fields: dict[str, Any], field: str, message: str) -> None:
    _write(tmp_path / "t.parquet")
    write_stack(path="t.parquet", streaming=True, **({"target": "label"} | fields))
    problems = stack_problems()
    assert len(problems) == 1 and f": {field}: " in problems[0] and message in problems[0], problems


def test_validate_describes_streamed_data(tmp_path: Path, write_stack: Any, stack_problems: Any) -> None:
    _write(tmp_path / "t.parquet")
    write_stack(path="t.parquet", target="label", streaming=True)
    assert stack_problems() == []
    component = FilesDatastore(FilesDatastore.Params(path=tmp_path / "t.parquet", target="label", streaming=True))
    from aios_data._streaming import inspect_streamed

    description, problems = inspect_streamed(component.params)
    assert problems == [] and description is not None
    assert (description.streaming, description.num_features, description.images) == (True, 7, False)


_BOUNDED = """
import sys
from pathlib import Path
from aios_core import RunContext
from aios_core.testing import plugin_manager
from aios_data import FilesDatastore

def rss(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024

def stream(path):
    pm = plugin_manager(FilesDatastore(FilesDatastore.Params(path=path, target="label", streaming=True,
                                                             window_rows=50_000, sample_rows=1000)))
    dataset = pm.hook.aios_load_dataset(run=RunContext(name="m", seed=0, threads=1, dir=Path(sys.argv[3]),
                                                       stack={}, hook=pm.hook))
    rows = sum(len(y) for _, y in dataset.batches("train", 1024, seed=0))  # a shuffled epoch
    return rows + dataset.rows("val") + dataset.rows("test"), dataset.streams["train"].window_rows

stream(sys.argv[1])  # the same work on a small file first: the code and pools it loads are not the table's
Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) restarts from the current RSS
before = rss("VmRSS:")
rows, window = stream(sys.argv[2])
print(rows, window, rss("VmHWM:") - before)
"""


def _peak_growth(warm_up: Path, path: Path, tmp_path: Path) -> tuple[int, int, int]:
    """(rows streamed, train window, peak RSS growth) of a fresh process streaming ``path`` after ``warm_up``."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(_BOUNDED), str(warm_up), str(path), str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows, window, growth = (int(value) for value in result.stdout.split())
    return rows, window, growth


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc/self/clear_refs")
def test_streaming_holds_a_bounded_number_of_rows(tmp_path: Path) -> None:
    """2M rows x 32 float32 features (244 MiB as one matrix) streamed in windows of 50k rows: a first pass and a
    shuffled epoch grow the peak RSS of a fresh process by less than a third of the table, and by about
    what 200k rows of the same file grow it (about 60 MiB on the machine this was written on: a window, a decoded
    row group and pyarrow's buffers). Ten times the rows, not ten times the memory."""
    rows, features, path = 2_000_000, 32, tmp_path / "big.parquet"
    columns = [f"f{i}" for i in range(features)]
    schema = pa.schema([(name, pa.float32()) for name in columns] + [("label", pa.int8())])
    rng = np.random.default_rng(0)
    with pq.ParquetWriter(path, schema) as writer:
        for _ in range(rows // 200_000):
            x = rng.normal(size=(200_000, features)).astype(np.float32)
            label = (x[:, 0] > 0).astype(np.int8)
            writer.write_table(pa.table([*x.T, label], schema=schema), row_group_size=50_000)
    first = pq.ParquetFile(path).read_row_group(0)
    pq.write_table(first, tmp_path / "small.parquet", row_group_size=25_000)
    pq.write_table(pq.ParquetFile(path).read_row_groups([0, 1, 2, 3]), tmp_path / "tenth.parquet",
                   row_group_size=50_000)
    table_bytes = rows * features * 4
    tenth_rows, _, tenth_growth = _peak_growth(tmp_path / "small.parquet", tmp_path / "tenth.parquet", tmp_path)
    seen, window, growth = _peak_growth(tmp_path / "small.parquet", path, tmp_path)
    assert (tenth_rows, seen) == (rows // 10, rows) and window <= 50_000
    shown = f"peak grew {growth / 2**20:.0f} MiB for {rows:,} rows, {tenth_growth / 2**20:.0f} MiB for {tenth_rows:,}"
    assert growth < table_bytes / 3, shown
    assert growth < tenth_growth + 40 * 2**20, shown  # holding the rows would add 220 MiB
