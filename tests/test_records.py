"""The records' helpers: ``hash_arrays`` is stable across array layouts and copies no large array."""

from __future__ import annotations

import hashlib
import json
import tracemalloc

import numpy as np
import pytest

from aios_core import records
from aios_core.records import array_header, hash_arrays


def _copying_hash(*parts: object) -> str:
    """The definition ``hash_arrays`` keeps: dtype, shape and C-order bytes of each array, JSON of the rest."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            array = np.ascontiguousarray(part)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()


_MATRIX = np.random.default_rng(0).random((300, 12)).astype(np.float32)
_LAYOUTS = {
    "contiguous": _MATRIX, "column": _MATRIX[:, 3], "transposed": _MATRIX.T, "strided rows": _MATRIX[::2],
    "scalar": np.array(3.0), "empty": np.zeros((0, 5)), "bool": np.arange(10) > 4,
    "uint8 images": np.arange(60, dtype=np.uint8).reshape(5, 2, 6), "strings": np.array(["a", "bc"]),
}


@pytest.mark.parametrize("chunk_bytes", [1 << 24, 64])
@pytest.mark.parametrize("name", list(_LAYOUTS))
def test_hash_is_the_same_whatever_the_layout(name: str, chunk_bytes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records, "_HASH_CHUNK_BYTES", chunk_bytes)
    array = _LAYOUTS[name]
    assert hash_arrays(array, {"seed": 1}) == _copying_hash(array, {"seed": 1})
    assert hash_arrays(np.ascontiguousarray(array)) == hash_arrays(array)


def test_hash_tells_dtype_shape_and_values_apart() -> None:
    base = hash_arrays(_MATRIX)
    assert hash_arrays(_MATRIX.astype(np.float64)) != base
    assert hash_arrays(_MATRIX.reshape(600, 6)) != base
    changed = _MATRIX.copy()
    changed[7, 3] += 1
    assert hash_arrays(changed) != base


def test_hashing_a_large_array_copies_none_of_it() -> None:
    large = np.ones((500_000, 16), dtype=np.float32)  # 32 MB
    strided = np.ones((64, 200_000), dtype=np.float32).T  # 51 MB, not C-contiguous
    tracemalloc.start()
    try:
        hash_arrays(large)
        contiguous_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        hash_arrays(strided)
        strided_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert contiguous_peak < 1 << 20, f"hashing a contiguous 32 MB array allocated {contiguous_peak} bytes"
    assert strided_peak < 2 * records._HASH_CHUNK_BYTES, f"hashing a strided array allocated {strided_peak} bytes"


@pytest.mark.parametrize("piece_bytes", [64, 1000, 1 << 20])
def test_an_array_hashed_piece_by_piece_then_passed_on_hashes_as_a_whole(piece_bytes: int) -> None:
    """``array_header`` and the array's bytes in pieces, then the digest handed to ``hash_arrays`` for the rest:
    what a reader hashing an array as it arrives does (aios-data's NPZ read)."""
    labels = np.arange(300) % 7
    digest = hashlib.sha256()
    digest.update(array_header(_MATRIX.dtype, _MATRIX.shape))
    data = _MATRIX.reshape(-1).view(np.uint8)
    for begin in range(0, len(data), piece_bytes):
        digest.update(data[begin:begin + piece_bytes])
    assert hash_arrays(labels, {"seed": 1}, digest=digest) == hash_arrays(_MATRIX, labels, {"seed": 1})
