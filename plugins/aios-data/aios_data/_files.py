"""Readers for labelled data files: CSV and Parquet tables, ``.npz`` arrays, IDX (MNIST)."""

from __future__ import annotations

import difflib
import gzip
import struct
import zipfile
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from aios_data._headers import (
    HeaderError,
    derived_labels_path,
    first_line,
    format_from_name,
    image_layout,
    is_npz,
    parse_idx_header,
    without_gz,
)
from aios_data._prepare import (FIELD, PendingArray, Progress, RawData, Reporter, Watch, _in_background, _names,
                                copy_columns)

if TYPE_CHECKING:
    from aios_data import FilesDatastore

def read_data_file(params: FilesDatastore.Params, progress: Progress | None = None, *,
                   pending: bool = False) -> RawData:
    """Read the file ``params.path`` names, in ``params.format`` (or the one its name implies).

    ``progress(task, done, total, unit)`` (``RunContext.report_progress``) hears how far reading got:
    bytes of a CSV file, rows of a Parquet file, arrays of an NPZ archive. With ``pending``, an NPZ
    archive's uncompressed features may be left to read (a ``PendingArray``, checked from its header):
    ``prepare_dataset`` reads them while it splits the labels.
    """
    path = _existing_file(params.path, f"{FIELD}.path")
    fmt = detect_format(path) if params.format == "auto" else params.format
    if params.labels_path is not None and fmt != "idx":
        raise ValueError(f"{FIELD}.labels_path: used only with IDX files, but {path} is read as {fmt}")
    if fmt in ("csv", "parquet"):
        raw = read_table(path, fmt, params.target, progress, one_hot=params.preprocess.one_hot)
    elif fmt == "npz":
        raw = read_npz(path, params.x_key, params.y_key, progress, pending=pending)
    else:
        raw = read_idx_pair(path, params.labels_path)
    if params.image_shape is not None:
        raw.image_shape = params.image_shape
    return raw


def detect_format(path: Path) -> str:
    """The format a file name implies: its suffix (before ``.gz``), or IDX for MNIST-style names."""
    fmt = format_from_name(path)
    if fmt is None:
        raise ValueError(f"{FIELD}.format: cannot tell the format of {path} from its name; "
                         f"set data.format to csv, parquet, npz or idx")
    return fmt


# ---------------------------------------------------------------- tables
def read_table(path: Path, fmt: str, target: str | list[str], progress: Progress | None = None,
               one_hot: Sequence[str] = ()) -> RawData:
    """A CSV or Parquet table whose column ``target`` holds the labels and the others the features; several target
    columns (a list) give a frame of labels, one column per target.

    A Parquet table whose feature columns are all numbers (and none to one-hot encode) is read straight into one
    matrix (``_read_numeric_parquet``); any other table is read as pandas reads it.
    """
    targets = [target] if isinstance(target, str) else list(target)
    try:
        frame = _read_numeric_parquet(path, targets, progress) if fmt == "parquet" and not one_hot else None
        if frame is None:
            frame = _read_csv(path, progress) if fmt == "csv" else _read_parquet(path, progress)
    except Exception as error:  # noqa: BLE001 -- pandas and pyarrow raise many types for one cause: not this format
        raise ValueError(f"{FIELD}.path: cannot read {path} as {fmt.upper()}: {first_line(error)}") from None
    frame = frame.reset_index(drop=True)
    columns = list(frame.columns)
    for name in targets:
        if name not in columns:
            close = difflib.get_close_matches(name, [str(column) for column in columns], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{FIELD}.target: no column {name!r} in {path}{hint}; columns are: {_names(columns)}")
    if len(columns) <= len(targets):
        raise ValueError(f"{FIELD}.path: {path} has no feature columns besides the target {_names(targets)}")
    if len(frame) == 0:
        raise ValueError(f"{FIELD}.path: {path} holds no rows")
    if len(targets) == 1:
        labels = frame.pop(targets[0])  # in place: the feature columns are not copied
    else:
        labels = pd.concat([frame.pop(name) for name in targets], axis=1)
    return RawData(name=_stem(path), source=str(path), features=frame, labels=labels, label_field=f"{FIELD}.target")


_COLUMNS_AT_ONCE = 16
"""Columns of a Parquet row group decoded at a time by ``_read_numeric_parquet`` (in parallel) and copied into the
matrix: their buffers, not the whole table's, sit beside it (64 MiB for a million float32 rows); 16 float32
values fill a 64-byte cache line of each row."""

def _read_numeric_parquet(path: Path, targets: list[str], progress: Progress | None) -> pd.DataFrame | None:
    """``pd.read_parquet``'s frame when every feature column holds numbers or bools (and its integer and bool
    columns no nulls), its feature columns held in one row-major matrix; None for any other table.

    The matrix is float32 (as ``_encode_table`` encodes the frame pandas would read: float64 and wide integer
    columns rounded once), and ``_encode_table`` takes it as it is. Each row group is decoded
    ``_COLUMNS_AT_ONCE`` columns at a time, each column copied into the matrix: no Arrow table nor pandas frame
    of the whole file sits beside the matrix (the peak is the matrix and about 150 MiB at a million rows, where
    ``pd.read_parquet`` holds the table twice). The label columns become pandas columns exactly as
    ``pd.read_parquet`` makes them.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    # buffer_size: each column chunk read 1 MiB at a time as it is decoded, not whole (the file's size again in memory)
    with pq.ParquetFile(path, buffer_size=1 << 20) as parquet:
        schema = parquet.schema_arrow
        index = {name for name in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(name, str)}
        fields = [name for name in schema.names if name not in index]
        try:  # the columns (names, dtypes) pandas would give: the pandas metadata of the file decides them
            empty = schema.empty_table().to_pandas()
        except Exception:  # noqa: BLE001 -- metadata this reader does not follow: pandas reads the file
            return None
        columns = empty.columns
        if columns.nlevels != 1 or not columns.is_unique or len(columns) != len(fields) or len(set(fields)) < len(fields):
            return None
        labels = [position for position, name in enumerate(columns) if name in targets]
        features = [position for position in range(len(fields)) if position not in labels]
        if len(labels) != len(set(targets)) or not features:
            return None  # pandas' path names what is missing
        types = [schema.field(fields[position]).type for position in features]
        dtypes = [empty.dtypes.iloc[position] for position in features]
        if not all(isinstance(dtype, np.dtype) and dtype.kind in "biuf" for dtype in dtypes) or not all(
                pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) for kind in types):
            return None
        rows = parquet.metadata.num_rows
        x = np.empty((rows, len(features)), dtype=np.float32)
        reporter = Reporter(progress, "reading", rows, "rows")
        label_tables, done = [], 0
        for group in range(parquet.metadata.num_row_groups):
            size = parquet.metadata.row_group(group).num_rows
            for first in range(0, len(features), _COLUMNS_AT_ONCE):
                names = [fields[p] for p in features[first:first + _COLUMNS_AT_ONCE]]
                part = parquet.read_row_group(group, columns=names, use_threads=True)
                if not _fill(x[done:done + size, first:first + len(names)], part):
                    return None  # an integer or bool column with nulls: pandas makes it float64 or object
                del part  # its buffers go back to Arrow's pool, for the next columns
            label_tables.append(parquet.read_row_group(group, columns=[fields[p] for p in labels]))
            done += size
            reporter.advance(size)
    reporter.finish()
    label_tables = label_tables or [schema.empty_table().select([fields[p] for p in labels])]
    label_frame = pa.concat_tables(label_tables).replace_schema_metadata(schema.metadata).to_pandas()
    label_frame = label_frame.reset_index(drop=True)
    del label_tables
    frame = pd.DataFrame(x, columns=columns[features], copy=False)
    for position in labels:
        frame.insert(position, columns[position], label_frame[columns[position]])
    pa.default_memory_pool().release_unused()
    return frame


def _fill(block: np.ndarray, table: Any) -> bool:
    """Copy the columns of ``table`` into those of ``block`` (``copy_columns``); False when a column holds a null
    that only a float column can take (as NaN)."""
    import pyarrow as pa

    if any(column.null_count and not pa.types.is_floating(column.type) for column in table.columns):
        return False
    copy_columns(block, [(column.to_numpy(), None) for column in table.columns])  # views of single chunks, NaN for nulls
    return True


def _read_parquet(path: Path, progress: Progress | None) -> pd.DataFrame:
    """``pd.read_parquet``'s frame, read row group by row group (reporting rows) and handed to pandas column by
    column.

    Through pyarrow's dataset API, whose buffers ``to_pandas(self_destruct=True)`` can free column by column
    (``ParquetFile``'s cannot: its table stayed alive beside the frame); ``split_blocks`` keeps one block per
    column (no consolidated copy). The memory Arrow's pool kept is then given back to the system.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    fragments = [group for fragment in ds.dataset(path, format="parquet").get_fragments()
                 for group in fragment.split_by_row_group()]
    rows = sum(info.num_rows for group in fragments for info in group.row_groups)  # count_rows() counts the file
    reporter = Reporter(progress, "reading", rows, "rows")
    pieces = []
    for group in fragments:
        pieces.append(group.to_table())
        reporter.advance(pieces[-1].num_rows)
    table = pa.concat_tables(pieces)
    reporter.finish()
    pieces.clear()  # the table now holds the only reference to the buffers: self_destruct can free them
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    pa.default_memory_pool().release_unused()
    return frame


def _read_csv(path: Path, progress: Progress | None) -> pd.DataFrame:
    """``pd.read_csv(path)`` (in one piece, so pandas infers each column's type from all its rows), reporting
    its progress in bytes of the file.

    pandas parses a path from a memory map, on several threads: 1.4-1.8x as fast here (1M rows, 64 columns)
    as from a file object whose reads could be counted, and its progress cannot be followed. So an uncompressed
    file reports the read's start and end; a gzip file, which pandas reads through a stream either way, the
    compressed bytes read so far.
    """
    size = path.stat().st_size
    if progress is None or size == 0:
        return pd.read_csv(path)
    reporter = Reporter(progress, "reading", size, "bytes")
    if path.name.endswith(".gz"):
        with open(path, "rb") as handle:
            frame = pd.read_csv(_CountingReader(handle, reporter), compression="gzip")
    else:
        progress("reading", 0, size, "bytes")
        frame = pd.read_csv(path)
    reporter.finish()
    return frame


class _CountingReader:
    """A binary file that reports how many of its bytes were read (through a ``Reporter``)."""

    def __init__(self, handle: Any, reporter: Reporter) -> None:
        self._handle, self._reporter = handle, reporter

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._reporter.advance(len(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __iter__(self) -> Any:
        return iter(self._handle)


# ---------------------------------------------------------------- npz
def read_npz(path: Path, x_key: str, y_key: str, progress: Progress | None = None, *,
             pending: bool = False) -> RawData:
    """Features ``x_key`` (n, ...) and labels ``y_key`` (n,) from a NumPy ``.npz`` archive.

    Image batches (n, h, w) get image_shape (1, h, w); (n, c, h, w) keep their layout, and
    channels-last batches (n, h, w, c) with 1 or 3 channels become channels-first. With ``pending``,
    uncompressed features are checked from their header and left to read (``PendingArray``).
    """
    if not is_npz(path):
        raise ValueError(f"{FIELD}.path: cannot read {path} as NPZ: not a zip archive of arrays "
                         f"(as numpy.savez writes)")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:  # noqa: BLE001 -- numpy and zipfile raise several types for one cause: a damaged archive
        raise ValueError(f"{FIELD}.path: cannot read {path} as NPZ: {first_line(error)}") from None
    reporter = Reporter(progress, "reading", 2, "arrays")
    with archive:
        keys = list(archive.files)
        for key, field in ((x_key, "x_key"), (y_key, "y_key")):
            if key not in keys:
                raise ValueError(f"{FIELD}.{field}: no array {key!r} in {path}; arrays are: {_names(keys)}")
        y = _npz_array(archive, y_key, "y_key", path)
        reporter.advance(1)
        x: np.ndarray | PendingArray | None = _npz_member(archive, x_key, "x_key", path) if pending else None
        if x is None:
            x = _npz_array(archive, x_key, "x_key", path)
            reporter.advance(1)
    if x.ndim == 0 or x.dtype.kind not in "biuf":
        raise ValueError(f"{FIELD}.x_key: array {x_key!r} in {path} must be numeric with one row per sample "
                         f"(found dtype {x.dtype}, shape {x.shape})")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise ValueError(f"{FIELD}.y_key: array {y_key!r} in {path} must hold one label per row "
                         f"(found shape {y.shape})")
    if x.shape[0] != len(y):
        raise ValueError(f"{FIELD}.y_key: {path} holds {len(y)} labels ({y_key!r}) but {x.shape[0]} rows ({x_key!r})")
    image_shape, channels_last = image_layout(x.shape if x.ndim > 1 else (*x.shape, 1))
    if isinstance(x, PendingArray):
        member = x

        def read_done() -> None:
            reporter.advance(1)
            reporter.finish()

        def read(watch: Watch | None) -> np.ndarray:
            if channels_last:  # the bytes move: watched once laid out
                return _watched(_npz_layout(member.read(None), channels_last), watch)
            return _npz_layout(member.read(watch), channels_last)  # the same bytes in the same order

        x = PendingArray(member.shape, member.dtype, read, read_done)
    else:
        x = _npz_layout(x, channels_last)
        reporter.finish()
    return RawData(name=_stem(path), source=str(path), features=x, labels=y,
                   label_field=f"{FIELD}.y_key", image_shape=image_shape)


def _npz_layout(x: np.ndarray, channels_last: bool) -> np.ndarray:
    """One row per sample (a column for a 1-D array), channels first."""
    if x.ndim == 1:
        return x.reshape(-1, 1)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if channels_last else x


def _npz_array(archive: np.lib.npyio.NpzFile, key: str, field: str, path: Path) -> np.ndarray:
    """Array ``key`` of the archive, read now (``_stored_npy``, else ``np.load``)."""
    member = _npz_member(archive, key, field, path)
    if member is not None:
        return member.read(None)
    try:
        return archive[key]
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise _damaged(key, path, error) from None
    except ValueError:
        raise _objects(key, field, path) from None


def _npz_member(archive: np.lib.npyio.NpzFile, key: str, field: str, path: Path) -> PendingArray | None:
    """Array ``key`` of an uncompressed archive, to be read (``_stored_npy``); None for any other member."""
    try:
        member = _stored_npy(archive.zip, key, path)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise _damaged(key, path, error) from None
    except ValueError:
        raise _objects(key, field, path) from None
    if member is None:
        return None

    def read(watch: Watch | None) -> np.ndarray:
        try:
            return member.read(watch)
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise _damaged(key, path, error) from None

    return PendingArray(member.shape, member.dtype, read)


def _damaged(key: str, path: Path, error: BaseException) -> ValueError:
    return ValueError(f"{FIELD}.path: cannot read array {key!r} of {path}: {first_line(error)}; the file is "
                      f"damaged or incomplete: write it again (numpy.savez)")


def _objects(key: str, field: str, path: Path) -> ValueError:
    return ValueError(f"{FIELD}.{field}: array {key!r} in {path} holds Python objects, which are not loaded "
                      f"(that would run code from the file); save it as a numeric or string array")


NPY_CHUNK = 16 * 2**20
"""Bytes read at a time by ``_stored_npy``; each chunk's CRC-32 is computed while the next one is read."""


def _stored_npy(archive: zipfile.ZipFile, key: str, path: Path) -> PendingArray | None:
    """The array ``key`` of an uncompressed archive (``np.savez``), from its header, to be read (``read()``) straight
    into its final memory with the member's CRC-32 checked on a second thread as the next chunk is read: ``np.load``
    reads it in small pieces and checks the CRC in between, which takes about half its time. None for any other
    member (compressed, encrypted, an object array, a format 3.0 header), which ``np.load`` reads."""
    names = archive.namelist()
    name = f"{key}.npy" if f"{key}.npy" in names else key
    info = archive.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        return None
    with open(path, "rb", buffering=0) as handle:
        handle.seek(info.header_offset)
        header = struct.unpack(zipfile.structFileHeader, handle.read(zipfile.sizeFileHeader))
        start = info.header_offset + zipfile.sizeFileHeader + header[10] + header[11]  # + name and extra field
        handle.seek(start)
        version = np.lib.format.read_magic(handle)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:
            return None
        shape, fortran, dtype = readers[version](handle)
        if dtype.hasobject:
            return None
        head = handle.tell() - start
    if head + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != info.file_size:
        return None  # np.load says what is wrong

    def read(watch: Watch | None) -> np.ndarray:
        flat = np.empty(shape[::-1] if fortran else shape, dtype=dtype)  # C order: the file's bytes in order
        with open(path, "rb", buffering=0) as handle:
            handle.seek(start)
            crc = _read_checked(handle, flat.reshape(-1).view(np.uint8), zlib.crc32(handle.read(head)),
                                None if fortran else watch, dtype.itemsize)
        if crc != info.CRC:
            raise zipfile.BadZipFile(f"Bad CRC-32 for file {name!r}")
        return _watched(flat.T, watch) if fortran else flat

    return PendingArray(tuple(shape), dtype, read)


def _read_checked(handle: Any, body: np.ndarray, crc: int, watch: Watch | None, itemsize: int) -> int:
    """Fill ``body`` (uint8, values of ``itemsize`` bytes) from ``handle``; the CRC-32 of what was read, continuing
    ``crc``. Each chunk's sum (zlib releases the GIL) and ``watch`` run on a second thread (``_in_background``) while
    the next chunk is read; a chunk holds whole values."""
    pending: Future[int] | None = None
    step = max(1, NPY_CHUNK // itemsize) * itemsize
    for begin in range(0, len(body), step):
        chunk = body[begin:begin + step]
        view, filled = chunk.data, 0
        while filled < len(chunk):
            count = handle.readinto(view[filled:])
            if not count:
                raise zipfile.BadZipFile("the archive ends inside an array")
            filled += count
        if pending is not None:
            crc = pending.result()
        pending = _in_background(_checked_chunk, chunk, crc, watch)
    return crc if pending is None else pending.result()


def _checked_chunk(chunk: np.ndarray, crc: int, watch: Watch | None) -> int:
    """``crc`` continued over ``chunk``, which ``watch`` is shown."""
    if watch is not None:
        watch(chunk)
    return zlib.crc32(chunk, crc)


def _watched(array: np.ndarray, watch: Watch | None) -> np.ndarray:
    """``array``, whose bytes in C order ``watch`` has been shown, a block of rows at a time (they were not read in
    that order)."""
    if watch is not None:
        rows = max(1, NPY_CHUNK // max(1, array[:1].nbytes))
        for start in range(0, len(array), rows):
            watch(np.ascontiguousarray(array[start:start + rows]).reshape(-1).view(np.uint8))
    return array


# ---------------------------------------------------------------- idx (MNIST)
def read_idx_pair(images_path: Path, labels_path: Path | None) -> RawData:
    """An IDX images file and its labels file; (n, h, w) images get image_shape (1, h, w)."""
    images = read_idx(images_path, f"{FIELD}.path")
    labels_path = _existing_file(labels_path, f"{FIELD}.labels_path") if labels_path else _labels_for(images_path)
    labels = read_idx(labels_path, f"{FIELD}.labels_path")
    if images.ndim < 2:
        raise ValueError(f"{FIELD}.path: {images_path} holds a 1-dimensional IDX array, like a labels file; "
                         f"data.path must name the images file")
    if labels.ndim != 1:
        raise ValueError(f"{FIELD}.labels_path: {labels_path} holds an IDX array of shape {labels.shape}; "
                         f"a labels file holds one label per image")
    if len(labels) != len(images):
        raise ValueError(f"{FIELD}.labels_path: {labels_path} holds {len(labels)} labels but {images_path} "
                         f"holds {len(images)} images")
    image_shape, _ = image_layout(images.shape)
    return RawData(name=_stem(images_path), source=str(images_path), features=images, labels=labels,
                   label_field=f"{FIELD}.labels_path", image_shape=image_shape)


def read_idx(path: Path, field: str) -> np.ndarray:
    """An IDX array: bytes 0 0, a type code, a dimension count, big-endian int32 sizes, then the values."""
    data = _read_bytes(path, field)
    try:
        header = parse_idx_header(data)
    except HeaderError as error:
        raise ValueError(f"{field}: {path} {error}") from None
    dtype = np.dtype(header.dtype)
    if len(data) - header.offset != header.value_bytes:
        raise ValueError(f"{field}: {path} holds {len(data) - header.offset} bytes of values but its IDX header "
                         f"announces shape {header.shape} of {dtype.name} ({header.value_bytes} bytes)")
    values = np.frombuffer(data, dtype=dtype, offset=header.offset).reshape(header.shape)
    return values.astype(dtype.newbyteorder("="))


def _labels_for(images_path: Path) -> Path:
    """The MNIST labels file next to an images file (``train-images-idx3-ubyte`` -> ``train-labels-idx1-ubyte``)."""
    candidate = derived_labels_path(images_path)
    if candidate is None:
        raise ValueError(f"{FIELD}.labels_path: cannot derive a labels file from {images_path} (its name has no "
                         f"'images-idx3-ubyte'); set data.labels_path")
    if not candidate.is_file():
        raise ValueError(f"{FIELD}.labels_path: no such file: {candidate} (the labels file derived from "
                         f"{images_path.name}); set data.labels_path")
    return candidate


# ---------------------------------------------------------------- shared
def _existing_file(path: Path, field: str) -> Path:
    path = path.expanduser().absolute()
    if path.is_dir():
        raise ValueError(f"{field}: {path} is a directory, expected a file")
    if not path.is_file():
        raise ValueError(f"{field}: no such file: {path}")
    return path


def _read_bytes(path: Path, field: str) -> bytes:
    if not path.name.endswith(".gz"):
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as stream:
            return stream.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"{field}: cannot decompress {path} (gzip): {first_line(error)}") from None


def _stem(path: Path) -> str:
    """The file's name without ``.gz`` and its suffix: ``train.csv.gz`` -> ``train``."""
    return Path(without_gz(path.name)).stem
