"""What a data file holds, read from its first bytes: its format, a table's columns, an archive's array shapes.

Both the readers (``_files``) and the checks before a run (``_checks``) use these, so a
file is judged by one set of rules. Nothing here reads the values: a CSV gives its
header line, a Parquet file its footer (pyarrow), an ``.npz`` archive the headers of its
arrays (numpy), an IDX file its first bytes. pandas and scikit-learn are not imported.
"""

from __future__ import annotations

import csv
import gzip
import math
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

FORMAT_LABELS = {"csv": "CSV", "parquet": "Parquet", "npz": "NPZ", "idx": "MNIST IDX"}
SUFFIX_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".npz": "npz", ".idx": "idx"}
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_TYPE_NAMES = "08 ubyte, 09 byte, 0b short, 0c int, 0d float, 0e double"
_IDX_NAME = re.compile(r"(idx\d|-ubyte$)")
_IDX_LABEL_NAMES = (("images-idx3-ubyte", "labels-idx1-ubyte"), ("images.idx3-ubyte", "labels.idx1-ubyte"))
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
_PARQUET_MAGIC = b"PAR1"
HEAD_BYTES = 4096
_GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)
"""What a damaged gzip stream raises; any other OSError is about the file itself (permissions, ...)."""


class HeaderError(ValueError):
    """A file is not what its format needs; the message continues ``<file> ...`` (``is not an IDX file: ...``)."""


# ---------------------------------------------------------------- format
def format_from_name(path: Path) -> str | None:
    """The format a file name implies: its suffix (before ``.gz``), IDX for MNIST-style names, else None."""
    base = without_gz(path.name.lower())
    fmt = SUFFIX_FORMATS.get(Path(base).suffix)
    if fmt is None and _IDX_NAME.search(base):
        fmt = "idx"
    return fmt


def format_from_content(path: Path) -> str | None:
    """The format a file's first bytes show (Parquet, NPZ or IDX), else None; CSV has no signature."""
    try:
        head = read_head(path, 8)
    except (OSError, HeaderError):
        return None
    if head.startswith(_PARQUET_MAGIC):
        return "parquet"
    if head.startswith(_ZIP_MAGIC) and is_npz(path):
        return "npz"
    try:
        parse_idx_header(read_head(path, 4 + 4 * 255))
    except (OSError, HeaderError):
        return None
    return "idx"


def read_head(path: Path, size: int = HEAD_BYTES) -> bytes:
    """The first ``size`` bytes of the file's content, decompressed when its name ends ``.gz``."""
    if not path.name.endswith(".gz"):
        with path.open("rb") as stream:
            return stream.read(size)
    try:
        with gzip.open(path, "rb") as stream:
            return stream.read(size)
    except _GZIP_ERRORS as error:
        raise HeaderError(f"cannot be decompressed (gzip): {first_line(error)}") from None


def is_gzip(path: Path) -> bool:
    """The file's raw bytes start as gzip data does."""
    with path.open("rb") as stream:
        return stream.read(2) == _GZIP_MAGIC


# ---------------------------------------------------------------- tables
@dataclass
class TableSchema:
    """A table's columns as pandas will name them, the non-numeric ones with their type, and the row count if known."""

    columns: list[str]
    non_numeric: dict[str, str] = field(default_factory=dict)
    rows: int | None = None


def csv_columns(path: Path) -> TableSchema:
    """The header line of a CSV file (gzipped when the name ends ``.gz``), with the names pandas gives the columns."""
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8-sig", newline="") as stream:
            header = next((row for row in csv.reader(stream) if row), None)
    except UnicodeDecodeError as error:
        raise HeaderError(f"is not UTF-8 text (byte {error.start}: {error.reason}), as a CSV file must be") from None
    except _GZIP_ERRORS as error:
        raise HeaderError(f"cannot be decompressed (gzip): {first_line(error)}") from None
    except csv.Error as error:
        raise HeaderError(f"has no readable CSV header line: {first_line(error)}") from None
    if header is None:
        raise HeaderError("is empty, with no header line naming the columns")
    return TableSchema(pandas_column_names(header))


def pandas_column_names(header: list[str]) -> list[str]:
    """The names ``pandas.read_csv`` gives: ``Unnamed: i`` for an empty name, ``name.1`` for a repeated one."""
    names: list[str] = []
    for index, name in enumerate(header):
        name = name or f"Unnamed: {index}"
        base, count = name, 0
        while name in names:
            count += 1
            name = f"{base}.{count}"
        names.append(name)
    return names


def parquet_schema(path: Path) -> TableSchema:
    """A Parquet file's columns, their types and its row count, from its footer (pandas' index columns left out)."""
    import pyarrow.parquet as pq
    from pyarrow import types

    try:
        metadata = pq.read_metadata(path)
        schema = metadata.schema.to_arrow_schema()
    except Exception as error:  # noqa: BLE001 -- pyarrow raises several types for one cause: not a Parquet file
        raise HeaderError(f"cannot be read as Parquet: {first_line(error)}") from None
    index = {name for name in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(name, str)}
    fields = [column for column in schema if column.name not in index]
    numeric = (types.is_integer, types.is_floating, types.is_boolean)
    non_numeric = {column.name: str(column.type) for column in fields
                   if not any(is_kind(column.type) for is_kind in numeric)}
    return TableSchema([column.name for column in fields], non_numeric, metadata.num_rows)


# ---------------------------------------------------------------- npz
@dataclass(frozen=True)
class ArrayHeader:
    """The shape and dtype of one array of an ``.npz`` archive, read from its ``.npy`` header."""

    shape: tuple[int, ...]
    dtype: str
    kind: str
    holds_objects: bool


def is_npz(path: Path) -> bool:
    """A zip archive (as ``numpy.savez`` writes)."""
    return zipfile.is_zipfile(path)


def npz_arrays(path: Path) -> dict[str, ArrayHeader | None]:
    """Each array of an ``.npz`` archive by the name ``numpy.load`` gives it, with its header (None if unreadable)."""
    import numpy as np

    arrays: dict[str, ArrayHeader | None] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                name = member.removesuffix(".npy")
                arrays[name] = None
                with archive.open(member) as stream:
                    try:
                        version = np.lib.format.read_magic(stream)
                        read = {(1, 0): np.lib.format.read_array_header_1_0,
                                (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                        if read is None:
                            continue
                        shape, _, dtype = read(stream)
                    except ValueError:
                        continue
                arrays[name] = ArrayHeader(tuple(int(size) for size in shape), str(dtype), dtype.kind,
                                           bool(dtype.hasobject))
    except (zipfile.BadZipFile, EOFError, zlib.error) as error:
        raise HeaderError(f"cannot be read as NPZ: {first_line(error)}") from None
    return arrays


def image_layout(shape: tuple[int, ...]) -> tuple[tuple[int, ...] | None, bool]:
    """The (channels, height, width) of the samples of a batch of ``shape``, and whether it is channels-last.

    (n, h, w) gives (1, h, w); (n, c, h, w) keeps its layout, unless it is (n, h, w, c)
    with 1 or 3 channels last and not first, which is transposed; other ranks have none.
    """
    if len(shape) == 3:
        return (1, *shape[1:]), False
    if len(shape) == 4:
        if shape[3] in (1, 3) and shape[1] not in (1, 3):
            return (shape[3], shape[1], shape[2]), True
        return tuple(shape[1:]), False
    return None, False


def features_per_row(shape: tuple[int, ...]) -> int:
    """How many features a sample of a batch of ``shape`` becomes once flattened."""
    return math.prod(shape[1:]) if len(shape) > 1 else 1


# ---------------------------------------------------------------- idx
@dataclass(frozen=True)
class IdxHeader:
    """An IDX file's value type (a numpy dtype string), its shape and the offset of its values."""

    dtype: str
    shape: tuple[int, ...]
    offset: int

    @property
    def value_bytes(self) -> int:
        return math.prod(self.shape) * int(self.dtype[-1])  # ">u1" .. ">f8": the item size ends the string


def parse_idx_header(data: bytes) -> IdxHeader:
    """The header at the start of ``data``: bytes 0 0, a type code, a dimension count, big-endian int32 sizes."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES or data[3] == 0:
        raise HeaderError(f"is not an IDX file: bad magic {data[:4].hex(' ') or '(empty)'}, expected 00 00, "
                          f"a type code ({IDX_TYPE_NAMES}) and a dimension count")
    ndim = data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise HeaderError(f"is truncated: its IDX header announces {ndim} dimensions "
                          f"but the file ends after {len(data)} bytes")
    shape = tuple(int.from_bytes(data[4 + 4 * axis: 8 + 4 * axis], "big") for axis in range(ndim))
    return IdxHeader(IDX_TYPES[data[2]], shape, offset)


def idx_header(path: Path) -> IdxHeader:
    """The IDX header of a file (gzipped when its name ends ``.gz``)."""
    return parse_idx_header(read_head(path, 4 + 4 * 255))


def derived_labels_path(images_path: Path) -> Path | None:
    """The MNIST labels file next to an images file (``train-images-idx3-ubyte`` -> ``train-labels-idx1-ubyte``).

    MNIST mirrors ship both compressed and plain files: when the derived name does not
    exist but the other of plain and ``.gz`` does, that one. None when the images file's
    name has no ``images-idx3-ubyte``.
    """
    for images_part, labels_part in _IDX_LABEL_NAMES:
        if images_part in images_path.name:
            candidate = images_path.with_name(images_path.name.replace(images_part, labels_part))
            alternative = candidate.with_name(without_gz(candidate.name) if candidate.name.endswith(".gz")
                                              else candidate.name + ".gz")
            return alternative if not candidate.is_file() and alternative.is_file() else candidate
    return None


# ---------------------------------------------------------------- shared
def without_gz(name: str) -> str:
    return name.removesuffix(".gz")


def first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
